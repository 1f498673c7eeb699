/**
 * Generations and block hashes: turn a fresh walk plus the parent snapshot's
 * index into the records of the new index.
 *
 * Owns: the change key, block hashing, sub-block digests, and which transid
 * each inode and block carries. An incremental send from parent P takes
 * every inode or extent whose generation is above P's transid, so these
 * rules decide what is sent:
 *
 * - An inode is the parent's inode when ino, birth and type match. A reused
 *   inode number (different birth) is a new inode.
 * - Change key: size, mtime_ns, ctime_ns, mode, uid, gid, nlink (with ino and
 *   birth as identity). Unchanged inodes are not read: they keep the
 *   parent's extents and generation, unless their links, xattrs, symlink
 *   target or rdev differ, which bumps the inode generation only.
 * - The walk may leave an inode's xattrs and symlink target unread when the
 *   parent had the same ino, birth and ctime (WalkOptions.known). They are
 *   taken from the parent's record here, after an exact check of those
 *   fields, and read from the path when it fails.
 * - A changed or new file is read and hashed in fixed BLOCK_SIZE blocks. A
 *   new inode's blocks all get the new transid; a changed file's block keeps
 *   the parent block's generation when offset, length and hash are equal.
 * - Files of SUB_DIGEST_MIN_FILE bytes and more also get keyed 8-byte digests
 *   of every 4 KiB slice (Extent.sub), so the planner can send only the
 *   slices of a changed block that differ. The block hash (unkeyed SHA-256,
 *   16 bytes) is unchanged from format 1 and stays the evidence of change
 *   (src/diff/manifest.ts builds on it). A block whose hash equals the
 *   parent's block at that offset takes the parent's digests, so only
 *   changed blocks pay for the keyed pass. In files of HELPER_MIN_FILE and
 *   more, a new block's digests are made on a helper thread while this one
 *   computes the block hash (src/diff/sub-digests.ts).
 * - Reflink volumes (`parentCopy`): a changed file's frozen copy and the
 *   parent's frozen copy are compared with FS_IOC_FIEMAP; a block whose every
 *   byte maps to the same physical address in both, through extents flagged
 *   SHARED, still holds the parent's data and takes the parent's extent
 *   unread. Only blocks holding a change are read.
 *
 * Holes: Node has no lseek(SEEK_DATA/SEEK_HOLE) and sys() does not bind it,
 * so holes come from FS_IOC_FIEMAP where the filesystem supports it (a block
 * no data extent overlaps, or only unwritten ones, is a hole and is not
 * read); elsewhere (tmpfs) an all-zero block is recorded as a hole. Either
 * way a hole (hash null) reads as zeros, which is all the sender needs.
 *
 * Reads ahead: while a file is to be read, the entries after it are merged
 * with the parent up to LOOKAHEAD_ENTRIES ahead, and the files among them
 * that will be read are hinted to the kernel (posix_fadvise WILLNEED of their
 * first 4 MiB, at most 32 MiB not yet read), so a cold tree's many small
 * reads are in flight together instead of one at a time. Entries that need
 * no read pass straight through (records held longer get promoted by V8).
 * Hints change no record: the same records come out with lookahead 0.
 *
 * The parent index is consumed as a stream (merge-join on ino), and so are
 * the walk's entries: this module holds neither in memory. With
 * `parentCopy` it keeps the parent's directory names (to find a file in the
 * parent's copy), read in a pass of their own first.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Extent, InodeRecord, Link, SUB_DIGEST_MIN_FILE } from '../model/inode';
import { FiemapExtent, FIEMAP_EXTENT_DELALLOC, FIEMAP_EXTENT_SHARED, FIEMAP_EXTENT_UNKNOWN, FIEMAP_EXTENT_UNWRITTEN, sys } from '../sys/linux';
import { SubDigester } from './sub-digests';
import { isUnread, readUnread, WalkEntry } from './walker';

export const BLOCK_SIZE = 128 * 1024;
const HASH_BYTES = 16;
const STABLE_TRIES = 3;
const ZERO = Buffer.alloc(BLOCK_SIZE);
/** Files from this size on have their sub-block digests made on the helper thread (SubDigester.begin). */
const HELPER_MIN_FILE = 1024n * 1024n;

// FIEMAP extent flags (linux/fiemap.h) beyond those src/sys exports.
const FIEMAP_EXTENT_ENCODED = 0x8;
const FIEMAP_EXTENT_DATA_ENCRYPTED = 0x80;
const FIEMAP_EXTENT_NOT_ALIGNED = 0x100;
const FIEMAP_EXTENT_DATA_INLINE = 0x200;
const FIEMAP_EXTENT_DATA_TAIL = 0x400;
/** Extents whose physical address says nothing reliable about their data. */
const NOT_COMPARABLE =
  FIEMAP_EXTENT_UNKNOWN |
  FIEMAP_EXTENT_DELALLOC |
  FIEMAP_EXTENT_DATA_ENCRYPTED |
  FIEMAP_EXTENT_NOT_ALIGNED |
  FIEMAP_EXTENT_DATA_INLINE |
  FIEMAP_EXTENT_DATA_TAIL |
  FIEMAP_EXTENT_UNWRITTEN;

/** Content hash of one block: SHA-256 truncated to 16 bytes. */
export function blockHash(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, HASH_BYTES);
}

/** Bytes read from disk to hash, and bytes taken from the parent unread (FIEMAP). */
export interface ReadCounter {
  read: number;
  shared: number;
}

/** Everything FIEMAP reports for a file, or undefined where unsupported. */
function fiemapAll(fd: number, size: bigint): FiemapExtent[] | undefined {
  try {
    return sys().fiemap(fd, 0n, size);
  } catch {
    return undefined;
  }
}

/** Index of the first extent that ends after `pos` (extents sorted by logical offset). */
function firstEnding(ext: FiemapExtent[], pos: bigint): number {
  let lo = 0;
  let hi = ext.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ext[mid].logical + ext[mid].length <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * True when every byte of [start, end) of the new file maps, through a
 * written extent flagged SHARED, to the same physical byte as the same
 * offset of the parent's copy: the range still holds the parent's data.
 */
export function sharedRange(mine: FiemapExtent[], theirs: FiemapExtent[], start: bigint, end: bigint): boolean {
  let pos = start;
  let i = firstEnding(mine, pos);
  let j = firstEnding(theirs, pos);
  while (pos < end) {
    const a = mine[i];
    const b = theirs[j];
    if (!a || !b || a.logical > pos || b.logical > pos) return false;
    if (a.flags & NOT_COMPARABLE || b.flags & NOT_COMPARABLE || !(a.flags & FIEMAP_EXTENT_SHARED)) return false;
    if (a.physical === 0n || b.physical === 0n) return false;
    if ((a.flags | b.flags) & FIEMAP_EXTENT_ENCODED) {
      // Compressed: addresses are not linear inside the extent; only the very same extent counts.
      if (a.logical !== b.logical || a.physical !== b.physical || a.length !== b.length) return false;
    } else if (a.physical + (pos - a.logical) !== b.physical + (pos - b.logical)) return false;
    const aEnd = a.logical + a.length;
    const bEnd = b.logical + b.length;
    pos = aEnd < bEnd ? aEnd : bEnd;
    if (pos === aEnd) i++;
    if (pos === bEnd) j++;
  }
  return true;
}

/** One block as hashed: null for a hole; `reused` when taken from the parent unread. */
export type BlockDigest = { hash: Buffer; sub?: Buffer; reused?: Extent } | null;

export interface HashOptions {
  /** Record sub-block digests (files of SUB_DIGEST_MIN_FILE and more). */
  sub?: SubDigester;
  /** The parent's extents: a block with the same hash takes the parent's sub digests instead of computing them. */
  prev?: Extent[];
  /** The parent's frozen copy's FIEMAP (with `prev`): blocks still shared are not read. */
  theirs?: FiemapExtent[];
  counter?: ReadCounter;
}

/**
 * Hash an open file's blocks over [0, size). Returns one digest per block,
 * null for holes. Reads at most BLOCK_SIZE at a time, and nothing for holes
 * or blocks still shared with the parent.
 */
export function hashBlocks(fd: number, size: bigint, o: HashOptions = {}): BlockDigest[] {
  const out: BlockDigest[] = [];
  if (size === 0n) return out;
  const mine = fiemapAll(fd, size);
  const ranges = mine?.filter((e) => !(e.flags & FIEMAP_EXTENT_UNWRITTEN)).map((e) => [e.logical, e.logical + e.length] as [bigint, bigint]);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const bs = BigInt(BLOCK_SIZE);
  let r = 0;
  for (let off = 0n, i = 0; off < size; off += bs, i++) {
    const len = Number(size - off < bs ? size - off : bs);
    if (ranges) {
      while (r < ranges.length && ranges[r][1] <= off) r++;
      const overlaps = r < ranges.length && ranges[r][0] < off + BigInt(len);
      if (!overlaps) {
        out.push(null);
        continue;
      }
    }
    const p = o.prev?.[i];
    const same = p && p.hash && p.offset === off && p.length === len && !!p.sub === !!o.sub ? p : undefined;
    if (mine && same && o.theirs && sharedRange(mine, o.theirs, off, off + BigInt(len))) {
      out.push({ hash: same.hash!, sub: same.sub, reused: same });
      if (o.counter) o.counter.shared += len;
      continue;
    }
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, off + BigInt(got));
      if (n === 0) break; // shrank under us: the rest reads as zeros
      got += n;
    }
    if (o.counter) o.counter.read += got;
    if (got < len) buf.fill(0, got, len);
    const block = buf.subarray(0, len);
    if (!ranges && block.equals(ZERO.subarray(0, len))) {
      out.push(null);
      continue;
    }
    // A block with no parent block at its offset needs its digests whatever
    // its hash: in a big file they are made on the helper thread while this
    // one hashes (in a small one, waking the helper costs what it saves).
    const ahead = !!o.sub && !same && size >= HELPER_MIN_FILE;
    if (ahead) o.sub!.begin(block);
    const hash = blockHash(block);
    if (!o.sub) out.push({ hash });
    else if (ahead) out.push({ hash, sub: o.sub.end() });
    // An unchanged block's digests are the parent's (the keyed pass costs more than the block hash).
    else if (same?.hash!.equals(hash)) out.push({ hash, sub: same.sub });
    else out.push({ hash, sub: o.sub.digest(block) });
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

export interface HashRecordOptions {
  /** Sub-block digests for files of SUB_DIGEST_MIN_FILE bytes and more. */
  sub?: SubDigester;
  /** The parent's record of this inode (same identity). */
  prev?: InodeRecord;
  /** Reflink volumes: the absolute path of the parent's frozen copy of this inode. */
  prevCopy?: Buffer;
  counter?: ReadCounter;
}

/** FIEMAP of the parent's frozen copy, when the copy is there and its size agrees with the parent's record. */
function parentLayout(p: { rec: InodeRecord; copy: Buffer }): FiemapExtent[] | undefined {
  if (!p.rec.extents || p.rec.size === 0n) return undefined;
  let fd: number;
  try {
    fd = openNoFollow(p.copy);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size !== p.rec.size) return undefined;
    return fiemapAll(fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Hash a file, re-reading it while it changes underneath (live trees). On a
 * live tree the record's size and times are updated to what was read.
 */
export function hashRecord(rec: InodeRecord, src: HashSource, warn: (m: string) => void, o: HashRecordOptions = {}): BlockDigest[] {
  const fd = openNoFollow(src.path);
  try {
    for (let attempt = 1; ; attempt++) {
      const before = fs.fstatSync(fd, { bigint: true });
      const sub = o.sub && before.size >= BigInt(SUB_DIGEST_MIN_FILE) ? o.sub : undefined;
      // A frozen copy cannot change, so what FIEMAP says stays true while it is read.
      const theirs = !src.live && o.prev && o.prevCopy ? parentLayout({ rec: o.prev, copy: o.prevCopy }) : undefined;
      const hashes = hashBlocks(fd, before.size, { sub, prev: o.prev?.extents, theirs, counter: o.counter });
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

function buildExtents(size: bigint, hashes: BlockDigest[], transid: bigint, parent?: Extent[]): Extent[] {
  const out: Extent[] = [];
  const bs = BigInt(BLOCK_SIZE);
  for (let i = 0; i < hashes.length; i++) {
    const offset = BigInt(i) * bs;
    const length = Number(size - offset < bs ? size - offset : bs);
    const d = hashes[i];
    if (d?.reused) {
      out.push(d.reused);
      continue;
    }
    const hash = d ? d.hash : null;
    let generation = transid;
    const p = parent?.[i];
    if (p && p.offset === offset && p.length === length && (p.hash === null ? hash === null : hash !== null && p.hash.equals(hash))) {
      generation = p.generation;
    }
    const x: Extent = { offset, length, generation, hash };
    if (d?.sub) x.sub = d.sub;
    out.push(x);
  }
  return out;
}

export interface GenerationOptions {
  /** The new snapshot's transid. */
  transid: bigint;
  /**
   * A fresh pass over the parent snapshot's records in ino order each call
   * (one pass, two with `parentCopy`), or undefined for a first snapshot.
   */
  parent?: () => Iterable<InodeRecord>;
  /** Where to read a changed file's data (default: the walked path, live). */
  source?: (e: WalkEntry) => HashSource;
  onWarning?: (m: string) => void;
  /**
   * Key for sub-block digests (SUB_KEY_BYTES); without it none are recorded.
   * Must be the parent index's key when that has one (digests of a block
   * whose hash did not change are taken from the parent).
   */
  subKey?: Buffer;
  /**
   * Reflink volumes: absolute path of the parent snapshot's frozen copy.
   * Blocks of a changed file still shared with the parent's copy there
   * (FIEMAP) take the parent's extent without being read.
   */
  parentCopy?: Buffer;
  /**
   * Entries merged with the parent ahead of one that will be read, so that
   * the files among them that will be read can be hinted to the kernel
   * (default 32; 0: none ahead).
   */
  lookahead?: number;
  /**
   * Reflink volumes: freeze each entry (copy it into the snapshot's tree)
   * once it is merged with the parent and before its content is compared.
   * `parentCopy` is the parent's frozen copy of a regular file whose change
   * key equals the parent's (with `parentCopy` set above), which the new
   * tree may share. A frozen file's record may take the stat of what was
   * copied.
   */
  freeze?: (e: WalkEntry, parentCopy: Buffer | undefined) => void;
  /** The hint for a file about to be read (default: posix_fadvise WILLNEED of its first `bytes`). */
  prefetch?: (path: Buffer, bytes: bigint) => void;
}

export interface GenerationStats {
  inodes: number;
  /** Inodes new or changed since the parent (generation == transid). */
  changed: number;
  /** Files read and hashed. */
  hashedFiles: number;
  hashedBytes: bigint;
  /** Bytes actually read from disk to hash them (holes and shared blocks are not read). */
  readBytes: bigint;
  /** Bytes taken from the parent's record unread because FIEMAP shows them shared. */
  sharedBytes: bigint;
}

const SLASH = Buffer.from('/');

/** The parent's directory names, to spell a parent inode's path in its frozen copy. */
class ParentNames {
  root: bigint | undefined;
  private readonly dirs = new Map<bigint, Link>();
  private readonly memo = new Map<bigint, Buffer | null>();

  see(r: InodeRecord): void {
    if (r.type !== 'dir') return;
    if (r.links.length === 0) this.root = r.ino;
    else this.dirs.set(r.ino, r.links[0]);
  }

  private dirPath(ino: bigint, depth: number): Buffer | null {
    if (ino === this.root) return Buffer.alloc(0);
    const known = this.memo.get(ino);
    if (known !== undefined) return known;
    const l = this.dirs.get(ino);
    let p: Buffer | null = null;
    if (l && depth < 4096) {
      const up = this.dirPath(l.parent, depth + 1);
      if (up) p = up.length ? Buffer.concat([up, SLASH, l.name]) : l.name;
    }
    this.memo.set(ino, p);
    return p;
  }

  /** Relative path of a parent inode's first name, or undefined when the names do not lead to the root. */
  pathOf(r: InodeRecord): Buffer | undefined {
    const l = r.links[0];
    if (!l) return undefined;
    const up = this.dirPath(l.parent, 0);
    if (up === null) return undefined;
    return up.length ? Buffer.concat([up, SLASH, l.name]) : l.name;
  }
}

export function newGenerationStats(): GenerationStats {
  return { inodes: 0, changed: 0, hashedFiles: 0, hashedBytes: 0n, readBytes: 0n, sharedBytes: 0n };
}

/**
 * Fill in generation and extents on each entry's record as it comes (entries
 * in ino order) and yield the record: a merge-join with one pass over the
 * parent's records, so neither side is held in memory. With `parentCopy`,
 * one more pass over the parent first collects its directory names. Adds
 * to `stats` as it goes; the byte counts are final when the generator ends.
 */
export function* generations(entries: Iterable<WalkEntry>, opts: GenerationOptions, stats: GenerationStats): Generator<InodeRecord> {
  const warn = opts.onWarning ?? (() => undefined);
  const source = opts.source ?? ((e: WalkEntry) => ({ path: e.path, live: true }));
  const prefetch = opts.prefetch ?? prefetchFile;
  const lookahead = opts.lookahead ?? LOOKAHEAD_ENTRIES;
  const { transid } = opts;
  const counter: ReadCounter = { read: 0, shared: 0 };
  const sub = opts.subKey ? new SubDigester(opts.subKey) : undefined;
  let names: ParentNames | undefined;
  if (opts.parentCopy && opts.parent) {
    names = new ParentNames();
    for (const r of opts.parent()) names.see(r);
  }
  const it = opts.parent?.()[Symbol.iterator]();
  let p: InodeRecord | undefined;
  const next = () => {
    const r = it?.next();
    p = r && !r.done ? r.value : undefined;
  };
  const hash = (rec: InodeRecord, e: WalkEntry, prev?: InodeRecord, prevCopy?: Buffer) => {
    const hashes = hashRecord(rec, source(e), warn, { sub, prev, prevCopy, counter });
    stats.hashedFiles++;
    stats.hashedBytes += rec.size;
    return hashes;
  };
  const copyOf = (prev: InodeRecord) => {
    const rel = names?.pathOf(prev);
    return rel ? Buffer.concat([opts.parentCopy!, SLASH, rel]) : undefined;
  };
  /** Merge one entry with the parent: whether it keeps the parent's content or must be read. */
  const decide = (e: WalkEntry): Step => {
    const rec = e.rec;
    while (p && p.ino < rec.ino) next();
    const prev = p && p.ino === rec.ino && sameIdentity(p, rec) ? p : undefined;
    if (isUnread(rec)) {
      // The walk saw the parent's ino, birth and ctime (a fingerprint): nothing that moves ctime happened.
      if (prev && prev.ctimeNs === rec.ctimeNs) {
        rec.xattrs = prev.xattrs;
        if (rec.type === 'symlink') rec.target = prev.target;
      } else readUnread(rec, e.path);
    }
    if (opts.freeze) {
      // An unchanged file's frozen data is the parent's frozen copy of it.
      const same = prev && rec.type === 'file' && prev.extents && sameKey(prev, rec) ? copyOf(prev) : undefined;
      opts.freeze(e, same); // may update rec to what was frozen
    }
    const keep = !!prev && sameKey(prev, rec) && (rec.type !== 'file' || !!prev.extents);
    const read = !keep && rec.type === 'file';
    // Blocks a reflink copy still shares with the parent's copy are skipped unread: no hint for them.
    const hint = read && rec.size > 0n && !(names && prev?.extents) ? (rec.size < FILE_HINT_BYTES ? rec.size : FILE_HINT_BYTES) : 0n;
    return { e, prev, keep, hint, hinted: false };
  };
  // The next entries are decided ahead of the one being hashed, and the
  // files among them that will be read are hinted to the kernel, so their
  // reads are under way while this one is hashed.
  const ahead: Step[] = [];
  let head = 0;
  /** Entries before this one are hinted or need no hint (each entry is looked at once, not once per step). */
  let nextHint = 0;
  let hintedBytes = 0n;
  const src = entries[Symbol.iterator]();
  let more = true;
  const pull = () => {
    const r = src.next();
    if (r.done) more = false;
    else ahead.push(decide(r.value));
  };
  const fill = () => {
    if (head === ahead.length && more) pull();
    // Only while files are being read: entries held across many steps would
    // outlive V8's young generation and be promoted (a no-change run holds none).
    if (head === ahead.length || ahead[head].hint === 0n) return;
    while (more && ahead.length - head <= lookahead) pull();
    if (nextHint < head) nextHint = head;
    for (; nextHint < ahead.length && hintedBytes < HINT_BUDGET_BYTES; nextHint++) {
      const s = ahead[nextHint];
      if (s.hint === 0n) continue;
      s.hinted = true;
      hintedBytes += s.hint;
      prefetch(source(s.e).path, s.hint);
    }
  };
  next();
  try {
    for (;;) {
      fill();
      if (head === ahead.length) break;
      const step = ahead[head++];
      if (head === ahead.length || head >= 1024) {
        ahead.splice(0, head);
        nextHint = Math.max(0, nextHint - head);
        head = 0;
      }
      if (step.hinted) hintedBytes -= step.hint;
      const { e, prev } = step;
      const rec = e.rec;
      if (step.keep) {
        rec.generation = namesOrMetaDiffer(prev!, rec) ? transid : prev!.generation;
        if (rec.type === 'file') rec.extents = prev!.extents;
      } else {
        rec.generation = transid;
        if (rec.type === 'file') {
          const old = prev?.extents ? prev : undefined;
          const h = hash(rec, e, old, old && names ? copyOf(old) : undefined); // may update rec.size (live trees)
          rec.extents = buildExtents(rec.size, h, transid, old?.extents);
        }
      }
      stats.inodes++;
      if (rec.generation === transid) stats.changed++;
      yield rec;
    }
  } finally {
    stats.readBytes = BigInt(counter.read);
    stats.sharedBytes = BigInt(counter.shared);
    it?.return?.();
    src.return?.();
  }
}

/** An entry merged with the parent, waiting its turn to be hashed and yielded. */
interface Step {
  e: WalkEntry;
  prev?: InodeRecord;
  /** Unchanged: takes the parent's content and generation. */
  keep: boolean;
  /** Bytes to hint ahead of the read (0: not read, or read only in part). */
  hint: bigint;
  hinted: boolean;
}

/** Entries decided ahead of one being hashed (enough reads in flight; few records held). */
const LOOKAHEAD_ENTRIES = 32;
/** Bytes hinted per file: its first FILE_HINT_BYTES (the kernel's own readahead takes over after that). */
const FILE_HINT_BYTES = 4n << 20n;
/** Bytes hinted and not yet read, at most (page cache the hints may fill ahead of the reads). */
const HINT_BUDGET_BYTES = 32n << 20n;

/** Ask the kernel to start reading a file's first `bytes` (a hint: any failure is ignored). */
function prefetchFile(path: Buffer, bytes: bigint): void {
  let fd: number;
  try {
    fd = openNoFollow(path);
  } catch {
    return; // gone or unreadable: its hash will say so
  }
  try {
    sys().readahead(fd, 0n, bytes);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Fill in generation and extents on every entry's record (entries sorted by
 * ino, as walkTree returns them). Mutates the records in place.
 */
export function assignGenerations(entries: WalkEntry[], opts: GenerationOptions): GenerationStats {
  const stats = newGenerationStats();
  for (const _ of generations(entries, opts, stats));
  return stats;
}
