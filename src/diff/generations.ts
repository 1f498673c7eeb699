/**
 * Generations and block hashes: turn a fresh walk plus the parent snapshot's
 * index into the records of the new index.
 *
 * Owns: the change key, block hashing, and which transid each inode and
 * block carries. An incremental send from parent P takes every inode or
 * extent whose generation is above P's transid, so these rules decide what
 * is sent:
 *
 * - An inode is the parent's inode when ino, birth and type match. A reused
 *   inode number (different birth) is a new inode.
 * - Change key: size, mtime_ns, ctime_ns, mode, uid, gid, nlink (with ino and
 *   birth as identity). Unchanged inodes are not read: they keep the
 *   parent's extents and generation, unless their links, xattrs, symlink
 *   target or rdev differ, which bumps the inode generation only.
 * - A changed or new file is read and hashed in fixed BLOCK_SIZE blocks. A
 *   new inode's blocks all get the new transid; a changed file's block keeps
 *   the parent block's generation when offset, length and hash are equal.
 *
 * Holes: Node has no lseek(SEEK_DATA/SEEK_HOLE) and sys() does not bind it,
 * so holes come from FS_IOC_FIEMAP where the filesystem supports it (a block
 * no data extent overlaps, or only unwritten ones, is a hole and is not
 * read); elsewhere (tmpfs) an all-zero block is recorded as a hole. Either
 * way a hole (hash null) reads as zeros, which is all the sender needs.
 *
 * The parent index is consumed as a stream (merge-join on ino); never does
 * this module hold it in memory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Extent, InodeRecord } from '../model/inode';
import { FIEMAP_EXTENT_UNWRITTEN, sys } from '../sys/linux';
import { WalkEntry } from './walker';

export const BLOCK_SIZE = 128 * 1024;
const HASH_BYTES = 16;
const STABLE_TRIES = 3;
const ZERO = Buffer.alloc(BLOCK_SIZE);

/** Content hash of one block: SHA-256 truncated to 16 bytes. */
export function blockHash(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, HASH_BYTES);
}

/** The data ranges of a file from FIEMAP, or undefined where unsupported. */
function dataRanges(fd: number, size: bigint): Array<[bigint, bigint]> | undefined {
  let ext;
  try {
    ext = sys().fiemap(fd, 0n, size);
  } catch {
    return undefined;
  }
  if (ext === undefined) return undefined;
  return ext.filter((e) => !(e.flags & FIEMAP_EXTENT_UNWRITTEN)).map((e) => [e.logical, e.logical + e.length] as [bigint, bigint]);
}

/**
 * Hash an open file's blocks over [0, size). Returns one hash per block,
 * null for holes. Reads at most BLOCK_SIZE at a time.
 */
export function hashBlocks(fd: number, size: bigint): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  if (size === 0n) return out;
  const ranges = dataRanges(fd, size);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const bs = BigInt(BLOCK_SIZE);
  let r = 0;
  for (let off = 0n; off < size; off += bs) {
    const len = Number(size - off < bs ? size - off : bs);
    if (ranges) {
      while (r < ranges.length && ranges[r][1] <= off) r++;
      const overlaps = r < ranges.length && ranges[r][0] < off + BigInt(len);
      if (!overlaps) {
        out.push(null);
        continue;
      }
    }
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, off + BigInt(got));
      if (n === 0) break; // shrank under us: the rest reads as zeros
      got += n;
    }
    if (got < len) buf.fill(0, got, len);
    const block = buf.subarray(0, len);
    if (!ranges && block.equals(ZERO.subarray(0, len))) out.push(null);
    else out.push(blockHash(block));
  }
  return out;
}

function sameStat(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

let noatimeOk = true;
function openNoFollow(p: Buffer): number {
  const base = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;
  if (noatimeOk) {
    try {
      return fs.openSync(p, base | fs.constants.O_NOATIME);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
      noatimeOk = false;
    }
  }
  return fs.openSync(p, base);
}

export interface HashSource {
  /** Where to read the inode's data. */
  path: Buffer;
  /**
   * True when the file may change while read (the live tree): it is read
   * again until its stat is stable, and the record takes the final stat.
   */
  live: boolean;
}

/**
 * Hash a file, re-reading it while it changes underneath (live trees). On a
 * live tree the record's size and times are updated to what was read.
 */
export function hashRecord(rec: InodeRecord, src: HashSource, warn: (m: string) => void): Array<Buffer | null> {
  const fd = openNoFollow(src.path);
  try {
    for (let attempt = 1; ; attempt++) {
      const before = fs.fstatSync(fd, { bigint: true });
      const hashes = hashBlocks(fd, before.size);
      if (!src.live) return hashes;
      const after = fs.fstatSync(fd, { bigint: true });
      if (after.ino !== rec.ino) {
        warn(`file was replaced during the snapshot; its new content is recorded: ${src.path.toString()}`);
      }
      if (sameStat(before, after) || attempt >= STABLE_TRIES) {
        if (!sameStat(before, after)) warn(`file changed as we read it: ${src.path.toString()}`);
        rec.size = before.size;
        rec.mtimeNs = before.mtimeNs;
        rec.ctimeNs = before.ctimeNs;
        return hashes;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The change key: identity (ino, birth, type) plus size, times, mode, ids and nlink. */
export function sameKey(a: InodeRecord, b: InodeRecord): boolean {
  return (
    a.ino === b.ino &&
    a.birth === b.birth &&
    a.type === b.type &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.nlink === b.nlink
  );
}

/** Same inode (not a reused number): ino, birth and type agree. */
export function sameIdentity(a: InodeRecord, b: InodeRecord): boolean {
  return a.ino === b.ino && a.birth === b.birth && a.type === b.type;
}

function sameBufPairs(a: Array<[Buffer, Buffer]>, b: Array<[Buffer, Buffer]>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!a[i][0].equals(b[i][0]) || !a[i][1].equals(b[i][1])) return false;
  return true;
}

/** Names, xattrs, symlink target or device number differ (the change key does not see all of these). */
export function namesOrMetaDiffer(a: InodeRecord, b: InodeRecord): boolean {
  if (a.links.length !== b.links.length) return true;
  for (let i = 0; i < a.links.length; i++) {
    if (a.links[i].parent !== b.links[i].parent || !a.links[i].name.equals(b.links[i].name)) return true;
  }
  if (!sameBufPairs(a.xattrs, b.xattrs)) return true;
  if ((a.target === undefined) !== (b.target === undefined)) return true;
  if (a.target && b.target && !a.target.equals(b.target)) return true;
  return a.rdev !== b.rdev;
}

function buildExtents(size: bigint, hashes: Array<Buffer | null>, transid: bigint, parent?: Extent[]): Extent[] {
  const out: Extent[] = [];
  const bs = BigInt(BLOCK_SIZE);
  for (let i = 0; i < hashes.length; i++) {
    const offset = BigInt(i) * bs;
    const length = Number(size - offset < bs ? size - offset : bs);
    const hash = hashes[i];
    let generation = transid;
    const p = parent?.[i];
    if (p && p.offset === offset && p.length === length && (p.hash === null ? hash === null : hash !== null && p.hash.equals(hash))) {
      generation = p.generation;
    }
    out.push({ offset, length, generation, hash });
  }
  return out;
}

export interface GenerationOptions {
  /** The new snapshot's transid. */
  transid: bigint;
  /** The parent snapshot's records in ino order (a stream), or undefined for a first snapshot. */
  parent?: AsyncIterable<InodeRecord> | Iterable<InodeRecord>;
  /** Where to read a changed file's data (default: the walked path, live). */
  source?: (e: WalkEntry) => HashSource;
  onWarning?: (m: string) => void;
}

export interface GenerationStats {
  inodes: number;
  /** Inodes new or changed since the parent (generation == transid). */
  changed: number;
  /** Files read and hashed. */
  hashedFiles: number;
  hashedBytes: bigint;
}

/**
 * Fill in generation and extents on every entry's record (entries sorted by
 * ino, as walkTree returns them). Mutates the records in place.
 */
export async function assignGenerations(entries: WalkEntry[], opts: GenerationOptions): Promise<GenerationStats> {
  const warn = opts.onWarning ?? (() => undefined);
  const source = opts.source ?? ((e: WalkEntry) => ({ path: e.path, live: true }));
  const { transid } = opts;
  const stats: GenerationStats = { inodes: entries.length, changed: 0, hashedFiles: 0, hashedBytes: 0n };
  const it = opts.parent
    ? Symbol.asyncIterator in opts.parent
      ? (opts.parent as AsyncIterable<InodeRecord>)[Symbol.asyncIterator]()
      : (opts.parent as Iterable<InodeRecord>)[Symbol.iterator]()
    : undefined;
  let p: InodeRecord | undefined;
  let done = !it;
  const next = async () => {
    if (done) return;
    const r = await it!.next();
    if (r.done) {
      done = true;
      p = undefined;
    } else p = r.value;
  };
  await next();
  try {
    for (const e of entries) {
      const rec = e.rec;
      while (p && p.ino < rec.ino) await next();
      const prev = p && p.ino === rec.ino && sameIdentity(p, rec) ? p : undefined;
      const hash = () => {
        const hashes = hashRecord(rec, source(e), warn);
        stats.hashedFiles++;
        stats.hashedBytes += rec.size;
        return hashes;
      };
      if (prev && sameKey(prev, rec) && (rec.type !== 'file' || prev.extents)) {
        rec.generation = namesOrMetaDiffer(prev, rec) ? transid : prev.generation;
        if (rec.type === 'file') rec.extents = prev.extents;
      } else if (prev) {
        rec.generation = transid;
        if (rec.type === 'file') {
          const h = hash();
          rec.extents = buildExtents(rec.size, h, transid, prev.extents);
        }
      } else {
        rec.generation = transid;
        if (rec.type === 'file') {
          const h = hash();
          rec.extents = buildExtents(rec.size, h, transid);
        }
      }
      if (rec.generation === transid) stats.changed++;
    }
  } finally {
    if (it && !done && it.return) await it.return();
  }
  return stats;
}
