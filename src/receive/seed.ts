/**
 * Seeds a staging tree from the parent snapshot for an incremental receive.
 *
 * Owns: making `dst` equal to `src` in every attribute the stream relies on,
 * without ever modifying `src`:
 *   - reflink: every regular file is a FICLONE copy (private, no data copied);
 *   - farm: every regular file is a hard link to the parent's inode, recorded
 *     in the returned `shared` set so the staging tree copies it before its
 *     first change; files that are hard-linked within the parent are copied
 *     (so a snapshot's link groups never include another snapshot's inode);
 *   - copy: every regular file is copied.
 * Directories, symlinks and special files are always recreated. Directory
 * times are set after their contents.
 *
 * Farm memory (a million files and more): per farm-linked parent inode the
 * walk keeps only the index (in `dirs`) of the staging directory holding its
 * link, in the InoTable that becomes `shared` (the two always held the same
 * inos). When a second name of such an inode turns up, the first name is
 * found again among that directory's entries by inode: a farm link has the
 * parent's inode number, which no other inode of the filesystem has. A scan
 * record (`DirNames`) lstats each name at most once: a directory still being
 * walked is scanned over the names already created, a finished one over its
 * listing, and finished records are kept for later groups within a budget of
 * names, so trees full of link groups stay linear in lstat calls.
 */
import * as fs from 'node:fs';
import { Sys } from '../sys/linux';
import { startTreePrefetch } from '../sys/tree-prefetch';
import { InoSet, inoKey as key } from './ino-set';
import { InoTable } from './ino-table';
import { copyFilePrivate, copyXattrs, nsToTimespec as ts } from './staging-tree';

export type SeedMethod = 'reflink' | 'farm' | 'copy';

const SLASH = Buffer.from('/');
const join = (a: Buffer, b: Buffer) => Buffer.concat([a, SLASH, b]);

/** Whether FICLONE works from `srcDir`'s filesystem into `dstDir`. */
export function probeReflink(sys: Sys, srcFile: Buffer | undefined, dstDir: Buffer): boolean {
  if (!srcFile) return false;
  const probe = join(dstDir, Buffer.from(`.ferry-reflink-probe-${process.pid}`));
  let ifd = -1;
  let ofd = -1;
  try {
    ifd = fs.openSync(srcFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    ofd = fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    return sys.cloneFile(ifd, ofd);
  } catch {
    return false;
  } finally {
    if (ifd >= 0) fs.closeSync(ifd);
    if (ofd >= 0) fs.closeSync(ofd);
    fs.rmSync(probe, { force: true });
  }
}

/** Find any non-empty regular file under `root` (for the reflink probe). */
function firstFile(root: Buffer): Buffer | undefined {
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const ent of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
      const p = join(dir, ent.name as unknown as Buffer);
      if (ent.isFile()) return p;
      if (ent.isDirectory()) stack.push(p);
    }
  }
  return undefined;
}

export interface SeedResult {
  method: SeedMethod;
  shared: InoSet;
  entries: number;
}

/**
 * One staging directory's names, lstat'ed lazily to find farm links by inode.
 * `names[0..end)` exist in the staging directory; `names[0..scanned)` have
 * been lstat'ed, and those that are still farm links (and not yet taken) are
 * in `byIno`.
 */
interface DirNames {
  names: Buffer[];
  end: number;
  scanned: number;
  byIno: Map<number | bigint, number> | undefined;
}

export interface SeedOptions {
  /**
   * Farm: names kept in scan records of finished directories, least recently
   * used dropped first (the record in use is kept whatever its size). Tests
   * lower it.
   */
  keptNames?: number;
  /**
   * Once this many entries are seeded (default 1000; Infinity: never), a
   * second thread starts reading the parent tree's inodes just ahead of the
   * walk, which otherwise waits on each cold one. Small trees are done
   * before a thread would have started.
   */
  prefetchAfter?: number;
}

const PREFETCH_AFTER = 1000;

/**
 * Build `dst` (which must exist and be empty) as a copy of `src`.
 * `method` 'auto' picks reflink where FICLONE works, else farm.
 */
export function seedFromParent(
  sys: Sys,
  src: Buffer,
  dst: Buffer,
  method: SeedMethod | 'auto',
  opts: SeedOptions = {},
): SeedResult {
  const maxKept = opts.keptNames ?? 1 << 16;
  let m: SeedMethod = method === 'auto' ? (probeReflink(sys, firstFile(src), dst) ? 'reflink' : 'farm') : method;
  if (m === 'reflink' && method !== 'auto' && !probeReflink(sys, firstFile(src), dst)) m = 'copy';
  /**
   * Farm: parent inode → index in `dirs` of the staging directory where it is
   * still farm-linked. Its keys are the `shared` set, returned without values.
   */
  const farmed = new InoTable({ values: true });
  /** Staging directory paths (latin1: a million small Buffers would pin Node's shared slabs). */
  const dirs: string[] = [];
  /** Scan records of directories still being walked, by index in `dirs`. */
  const open = new Map<number, DirNames>();
  /** Scan records of finished directories, least recently used first. */
  const kept = new Map<number, DirNames>();
  let keptNames = 0;
  /** parent inode → staging path of its private copy, for in-snapshot link groups. */
  const groups = new Map<bigint, Buffer>();
  let entries = 0;
  const prefetchAfter = opts.prefetchAfter ?? PREFETCH_AFTER;
  let stopPrefetch = () => undefined as void;

  const meta = (from: Buffer, to: Buffer, st: fs.BigIntStats, isLink: boolean) => {
    fs.lchownSync(to, Number(st.uid), Number(st.gid));
    if (!isLink) fs.chmodSync(to, Number(st.mode & 0o7777n));
    copyXattrs(sys, from, to);
  };

  const keep = (di: number, rec: DirNames) => {
    kept.delete(di);
    kept.set(di, rec);
    keptNames += rec.names.length;
    for (const [old, r] of kept) {
      if (keptNames <= maxKept || old === di) break;
      kept.delete(old);
      keptNames -= r.names.length;
    }
  };

  /** Take the staging name of parent inode `ino` that is still farm-linked in directory `di`. */
  const takeFirstName = (di: number, ino: bigint): Buffer => {
    const dir = Buffer.from(dirs[di], 'latin1');
    let rec = open.get(di);
    if (!rec) {
      rec = kept.get(di);
      if (rec) {
        keptNames -= rec.names.length;
      } else {
        const names = fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[];
        rec = { names, end: names.length, scanned: 0, byIno: undefined };
      }
      keep(di, rec);
    }
    const byIno = (rec.byIno ??= new Map());
    const k = key(ino);
    let at = byIno.get(k);
    if (at !== undefined) byIno.delete(k);
    while (at === undefined && rec.scanned < rec.end) {
      const j = rec.scanned++;
      const st = fs.lstatSync(join(dir, rec.names[j]), { bigint: true });
      if (!st.isFile() || !farmed.has(st.ino)) continue;
      if (st.ino === ino) at = j;
      else byIno.set(key(st.ino), j);
    }
    if (at === undefined) {
      throw new Error(`seed failed: no farm link of parent inode ${ino} in its staging directory (${dirs[di]})`);
    }
    return join(dir, rec.names[at]);
  };

  /** A regular file of the parent, in farm mode. */
  const farm = (s: Buffer, d: Buffer, ddir: Buffer, di: number, st: fs.BigIntStats) => {
    const ino = st.ino;
    const grouped = groups.get(ino);
    if (grouped) {
      fs.linkSync(grouped, d);
      return;
    }
    const firstDi = farmed.get(ino);
    if (firstDi < 0) {
      fs.linkSync(s, d);
      farmed.set(ino, di);
      return;
    }
    // Second name of a parent inode: this snapshot needs its own inode for
    // the group. Copy once, link every name to the copy.
    const firstPath = takeFirstName(firstDi, ino);
    const tmp = join(ddir, Buffer.from(`.ferry-seed-${process.pid}`));
    copyFilePrivate(sys, s, tmp, st);
    // The first name's directory may already carry its final times
    // (readdir order is arbitrary); the swap must not change them.
    const firstDir = firstPath.subarray(0, firstPath.lastIndexOf(0x2f));
    const fst = fs.lstatSync(firstDir, { bigint: true });
    fs.renameSync(tmp, firstPath);
    sys.lutimens(firstDir, ts(fst.atimeNs), ts(fst.mtimeNs));
    fs.linkSync(firstPath, d);
    farmed.delete(ino);
    groups.set(ino, firstPath);
  };

  const walk = (sdir: Buffer, ddir: Buffer) => {
    const names = fs.readdirSync(sdir, { encoding: 'buffer' }) as Buffer[];
    const di = dirs.push(ddir.toString('latin1')) - 1;
    const rec: DirNames = { names, end: 0, scanned: 0, byIno: undefined };
    open.set(di, rec);
    for (let i = 0; i < names.length; i++) {
      rec.end = i;
      const name = names[i];
      const s = join(sdir, name);
      const d = join(ddir, name);
      const st = fs.lstatSync(s, { bigint: true });
      if (entries++ === prefetchAfter) stopPrefetch = startTreePrefetch(src, { order: 'preorder' });
      if (st.isDirectory()) {
        fs.mkdirSync(d, 0o700);
        walk(s, d);
        meta(s, d, st, false);
        sys.lutimens(d, ts(st.atimeNs), ts(st.mtimeNs));
      } else if (st.isFile()) {
        if (m === 'farm') {
          farm(s, d, ddir, di, st);
          continue;
        }
        const grouped = groups.get(st.ino);
        if (grouped) {
          fs.linkSync(grouped, d);
          continue;
        }
        copyFilePrivate(sys, s, d, st);
        if (st.nlink > 1n) groups.set(st.ino, d);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(s, { encoding: 'buffer' }), d);
        meta(s, d, st, true);
        sys.lutimens(d, ts(st.atimeNs), ts(st.mtimeNs));
      } else {
        sys.mknod(d, Number(st.mode & 0o170000n) | 0o600, st.rdev);
        meta(s, d, st, false);
        sys.lutimens(d, ts(st.atimeNs), ts(st.mtimeNs));
      }
    }
    open.delete(di);
    // A directory that already gave up a first name may well give more:
    // keep its names (staging names are the parent's) for later groups.
    if (rec.byIno) {
      rec.end = names.length;
      keep(di, rec);
    }
  };

  try {
    walk(src, dst);
  } finally {
    stopPrefetch();
  }
  const rst = fs.lstatSync(src, { bigint: true });
  meta(src, dst, rst, false);
  sys.lutimens(dst, ts(rst.atimeNs), ts(rst.mtimeNs));
  return { method: m, shared: new InoSet(farmed), entries };
}
