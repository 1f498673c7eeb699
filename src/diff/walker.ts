/**
 * The tree walker: lstat every entry of a volume and produce one InodeRecord
 * per inode (without generations or extents; see ./generations.ts).
 *
 * Owns: what an inode looks like in the index (type, permission bits, ids,
 * times, xattrs, symlink target, every (parent ino, name) link) and which
 * entries are part of the volume.
 *
 * Never: descends into ROOT/.ferry; follows a symlink; crosses into another
 * filesystem (an entry whose st_dev differs from the root's is skipped with a
 * warning); reads file data.
 *
 * Invariants: one record per inode however many names it has; the root has
 * no links and is the parent of top-level names; output is sorted by ino.
 * Walking is synchronous (readdirSync + lstatSync measured ~4x faster than
 * fs.promises here). Memory: every record is held until the walk ends, but
 * encoded (./record-spool.ts, about 150 bytes a file) rather than as JS
 * objects (over 1 KB each), plus each directory's relative path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InodeRecord, InodeType, Link } from '../model/inode';
import { sys } from '../sys/linux';
import { RecordSpool } from './record-spool';

export const FERRY_DIR_NAME = '.ferry';
const FERRY_NAME = Buffer.from(FERRY_DIR_NAME);
const SLASH = Buffer.from('/');

/** XFS lists these as mirrors of the POSIX ACL xattrs; the system.* names are the real ones. */
const SKIPPED_XATTRS = new Set(['trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT']);

export interface WalkEntry {
  readonly rec: InodeRecord;
  /** Absolute path (raw bytes) of the inode's first link (links are sorted); the root's own path for the root. */
  readonly path: Buffer;
  /** Path relative to the root (raw bytes, no leading slash); empty for the root. */
  readonly rel: Buffer;
}

export interface WalkOptions {
  onWarning?: (message: string) => void;
  /** Read xattrs (default true). */
  xattrs?: boolean;
}

export function typeOf(mode: number): InodeType {
  switch (mode & fs.constants.S_IFMT) {
    case fs.constants.S_IFREG:
      return 'file';
    case fs.constants.S_IFDIR:
      return 'dir';
    case fs.constants.S_IFLNK:
      return 'symlink';
    case fs.constants.S_IFCHR:
      return 'chr';
    case fs.constants.S_IFBLK:
      return 'blk';
    case fs.constants.S_IFIFO:
      return 'fifo';
    default:
      return 'sock';
  }
}

/** Sorted xattrs of a path (never follows a symlink); [] where the fs has none. */
export function readXattrs(p: Buffer): Array<[Buffer, Buffer]> {
  const s = sys();
  let names: Buffer[];
  try {
    names = s.llistxattr(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS') return [];
    throw e;
  }
  if (names.length === 0) return [];
  const out: Array<[Buffer, Buffer]> = [];
  for (const n of names) {
    if (SKIPPED_XATTRS.has(n.toString('latin1'))) continue;
    const v = s.lgetxattr(p, n);
    if (v !== undefined) out.push([n, v]);
  }
  out.sort((a, b) => Buffer.compare(a[0], b[0]));
  return out;
}

export function compareLinks(a: Link, b: Link): number {
  return a.parent < b.parent ? -1 : a.parent > b.parent ? 1 : Buffer.compare(a.name, b.name);
}

type Birth = (p: Buffer, st: fs.BigIntStats, type: InodeType) => bigint;

/**
 * How to learn an inode's birth: lstat's birthtime when it is the real
 * statx btime (checked once against sys().btimeNs), else sys().btimeNs per
 * path, else the inode generation through an fd (files and dirs), else 0.
 */
function birthSource(root: Buffer, rootSt: fs.BigIntStats): Birth {
  const s = sys();
  let bt: bigint | undefined;
  try {
    bt = s.btimeNs(root);
  } catch {
    bt = undefined;
  }
  if (bt !== undefined && bt !== 0n) {
    if (rootSt.birthtimeNs === bt) return (_p, st) => st.birthtimeNs;
    return (p, st) => {
      try {
        return s.btimeNs(p) ?? 0n;
      } catch {
        return st.birthtimeNs;
      }
    };
  }
  return (p, _st, type) => {
    if (type !== 'file' && type !== 'dir') return 0n;
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch {
      return 0n;
    }
    try {
      return s.inodeGeneration(fd) ?? 0n;
    } catch {
      return 0n;
    } finally {
      fs.closeSync(fd);
    }
  };
}

function makeRecord(st: fs.BigIntStats, type: InodeType, birth: bigint): InodeRecord {
  return {
    ino: st.ino,
    birth,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    // Directory sizes are filesystem-specific and carry no content; they are 0 in the index.
    size: type === 'file' || type === 'symlink' ? st.size : 0n,
    rdev: type === 'chr' || type === 'blk' ? st.rdev : 0n,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    nlink: Number(st.nlink),
    xattrs: [],
    links: [],
    generation: 0n,
  };
}

interface DirFrame {
  ino: bigint;
  path: Buffer;
  /** Path relative to the root, as latin1 (one char per byte, lossless). */
  rel: string;
  top: boolean;
}

/**
 * A finished walk: every inode's record, held compactly (./record-spool.ts)
 * and read back one entry at a time in ino order. Holds per directory its
 * relative path (to spell any entry's path) and per multi-link inode the
 * names seen after the first.
 */
export class Walk {
  /** Directory relative paths (latin1) by ino. */
  private readonly dirRel = new Map<bigint, string>();
  /** Spool positions of directories in the order found: parents before children. */
  private dirPos = new Uint32Array(256);
  private nDirs = 0;
  /** Inodes (not dirs) with nlink > 1: the names found after the first, or null while there are none. */
  readonly moreNames = new Map<bigint, Link[] | null>();

  constructor(
    readonly rootPath: Buffer,
    readonly rootIno: bigint,
    readonly records: RecordSpool,
  ) {}

  get length(): number {
    return this.records.length;
  }

  /** @internal walker only */
  addDir(ino: bigint, rel: string, pos: number): void {
    this.dirRel.set(ino, rel);
    if (this.nDirs === this.dirPos.length) {
      const d = new Uint32Array(this.nDirs * 2);
      d.set(this.dirPos);
      this.dirPos = d;
    }
    this.dirPos[this.nDirs++] = pos;
  }

  /** Relative path of an inode's first link (empty for the root). */
  relOf(rec: InodeRecord): Buffer {
    const l = rec.links[0];
    if (!l) return Buffer.alloc(0);
    const up = this.dirRel.get(l.parent);
    if (up === undefined) throw new Error(`walk: no directory ${l.parent} for inode ${rec.ino}`);
    return up ? Buffer.concat([Buffer.from(up, 'latin1'), SLASH, l.name]) : l.name;
  }

  /** Absolute path of a directory found by the walk, or undefined. */
  dirPath(ino: bigint): Buffer | undefined {
    const rel = this.dirRel.get(ino);
    if (rel === undefined) return undefined;
    return rel ? Buffer.concat([this.rootPath, SLASH, Buffer.from(rel, 'latin1')]) : this.rootPath;
  }

  private entryAt(pos: number): WalkEntry {
    const rec = this.records.get(pos);
    if (rec.type !== 'dir' && rec.nlink > 1) {
      const more = this.moreNames.get(rec.ino);
      if (more) {
        rec.links.push(...more);
        rec.links.sort(compareLinks);
      }
    }
    return new SpooledEntry(rec, this);
  }

  /** Every inode, in ino order, each a fresh record. */
  *entries(): Generator<WalkEntry> {
    const order = this.records.sorted();
    for (let i = 0; i < order.length; i++) yield this.entryAt(order[i]);
  }

  /** The directories, parents before children (`reverse`: children first). */
  *dirs(reverse = false): Generator<WalkEntry> {
    for (let k = 0; k < this.nDirs; k++) yield this.entryAt(this.dirPos[reverse ? this.nDirs - 1 - k : k]);
  }
}

/** A walk entry whose paths are spelled when first asked for. */
class SpooledEntry implements WalkEntry {
  private relB: Buffer | undefined;
  private pathB: Buffer | undefined;

  constructor(
    readonly rec: InodeRecord,
    private readonly walk: Walk,
  ) {}

  get rel(): Buffer {
    return (this.relB ??= this.walk.relOf(this.rec));
  }

  get path(): Buffer {
    if (!this.pathB) this.pathB = this.rel.length ? Buffer.concat([this.walk.rootPath, SLASH, this.rel]) : this.walk.rootPath;
    return this.pathB;
  }
}

/**
 * Walk `root`, keeping every inode's record in a compact spool. Generations
 * are 0 and extents unset; ./generations.ts fills them in as the entries
 * are read back in ino order.
 */
export function walkVolume(root: string, opts: WalkOptions = {}): Walk {
  const warn = opts.onWarning ?? (() => undefined);
  const withXattrs = opts.xattrs ?? true;
  const rootPath = Buffer.from(path.resolve(root));
  const rootSt = fs.lstatSync(rootPath, { bigint: true });
  if (!rootSt.isDirectory()) throw Object.assign(new Error(`not a directory: ${root}`), { code: 'ENOTDIR' });
  const birthOf = birthSource(rootPath, rootSt);
  const rootRec = makeRecord(rootSt, 'dir', birthOf(rootPath, rootSt, 'dir'));
  if (withXattrs) rootRec.xattrs = readXattrs(rootPath);
  const walk = new Walk(rootPath, rootRec.ino, new RecordSpool());
  walk.addDir(rootRec.ino, '', walk.records.add(rootRec));
  const stack: DirFrame[] = [{ ino: rootRec.ino, path: rootPath, rel: '', top: true }];
  while (stack.length) {
    const dir = stack.pop()!;
    let dirents: fs.Dirent<Buffer>[];
    try {
      dirents = fs.readdirSync(dir.path, { withFileTypes: true, encoding: 'buffer' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        warn(`directory vanished during the walk: ${dir.path.toString()}`);
        continue;
      }
      throw e;
    }
    for (const d of dirents) {
      const name = d.name as Buffer;
      if (dir.top && name.equals(FERRY_NAME)) continue;
      const p = Buffer.concat([dir.path, SLASH, name]);
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(p, { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          warn(`file vanished during the walk: ${p.toString()}`);
          continue;
        }
        throw e;
      }
      if (st.dev !== rootSt.dev) {
        warn(`skipped a mount point (another filesystem): ${p.toString()}`);
        continue;
      }
      const link: Link = { parent: dir.ino, name };
      const type = typeOf(Number(st.mode));
      const multi = type !== 'dir' && st.nlink > 1n;
      if (multi && walk.moreNames.has(st.ino)) {
        const more = walk.moreNames.get(st.ino);
        if (more) more.push(link);
        else walk.moreNames.set(st.ino, [link]);
        continue;
      }
      const rec = makeRecord(st, type, birthOf(p, st, type));
      rec.links.push(link);
      if (withXattrs) rec.xattrs = readXattrs(p);
      if (type === 'symlink') rec.target = fs.readlinkSync(p, { encoding: 'buffer' });
      const pos = walk.records.add(rec);
      if (type === 'dir') {
        const rel = dir.rel ? `${dir.rel}/${name.toString('latin1')}` : name.toString('latin1');
        walk.addDir(st.ino, rel, pos);
        stack.push({ ino: st.ino, path: p, rel, top: false });
      } else if (multi) walk.moreNames.set(st.ino, null);
    }
  }
  return walk;
}

/**
 * Walk `root` and return one entry per inode, sorted by ino, all in memory
 * (small trees and tests; snapshots read a Walk one entry at a time).
 */
export function walkTree(root: string, opts: WalkOptions = {}): WalkEntry[] {
  return [...walkVolume(root, opts).entries()];
}
