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
 * fs.promises here). Memory: every record is held until the walk ends (a
 * 1M-file tree costs several hundred MB as JS objects; see the report / a
 * later spill-to-disk sort).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InodeRecord, InodeType, Link } from '../model/inode';
import { sys } from '../sys/linux';

export const FERRY_DIR_NAME = '.ferry';
const FERRY_NAME = Buffer.from(FERRY_DIR_NAME);
const SLASH = Buffer.from('/');

/** XFS lists these as mirrors of the POSIX ACL xattrs; the system.* names are the real ones. */
const SKIPPED_XATTRS = new Set(['trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT']);

export interface WalkEntry {
  rec: InodeRecord;
  /** Absolute path (raw bytes) of the first name seen for this inode; the root's own path for the root. */
  path: Buffer;
  /** Path relative to the root (raw bytes, no leading slash); empty for the root. */
  rel: Buffer;
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

/**
 * Walk `root` and return one entry per inode, sorted by ino. Generations are
 * 0 and extents unset; ./generations.ts fills them in.
 */
export function walkTree(root: string, opts: WalkOptions = {}): WalkEntry[] {
  const warn = opts.onWarning ?? (() => undefined);
  const withXattrs = opts.xattrs ?? true;
  const rootPath = Buffer.from(path.resolve(root));
  const rootSt = fs.lstatSync(rootPath, { bigint: true });
  if (!rootSt.isDirectory()) throw Object.assign(new Error(`not a directory: ${root}`), { code: 'ENOTDIR' });
  const birthOf = birthSource(rootPath, rootSt);
  const rootRec = makeRecord(rootSt, 'dir', birthOf(rootPath, rootSt, 'dir'));
  if (withXattrs) rootRec.xattrs = readXattrs(rootPath);
  const out: WalkEntry[] = [{ rec: rootRec, path: rootPath, rel: Buffer.alloc(0) }];
  /** Inodes with more than one name, to fold later links into one record. */
  const multi = new Map<bigint, WalkEntry>();
  const stack: WalkEntry[] = [out[0]];
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
      if (dir === out[0] && name.equals(FERRY_NAME)) continue;
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
      const link: Link = { parent: dir.rec.ino, name };
      const type = typeOf(Number(st.mode));
      if (type !== 'dir' && st.nlink > 1n) {
        const seen = multi.get(st.ino);
        if (seen) {
          seen.rec.links.push(link);
          continue;
        }
      }
      const rec = makeRecord(st, type, birthOf(p, st, type));
      rec.links.push(link);
      if (withXattrs) rec.xattrs = readXattrs(p);
      if (type === 'symlink') rec.target = fs.readlinkSync(p, { encoding: 'buffer' });
      const rel = dir.rel.length ? Buffer.concat([dir.rel, SLASH, name]) : name;
      const entry: WalkEntry = { rec, path: p, rel };
      out.push(entry);
      if (type === 'dir') stack.push(entry);
      else if (st.nlink > 1n) multi.set(st.ino, entry);
    }
  }
  for (const e of multi.values()) e.rec.links.sort(compareLinks);
  out.sort((a, b) => (a.rec.ino < b.rec.ino ? -1 : a.rec.ino > b.rec.ino ? 1 : 0));
  return out;
}
