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
 */
import * as fs from 'node:fs';
import { Sys } from '../sys/linux';
import { InoSet, inoKey as key } from './ino-set';
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
 * Build `dst` (which must exist and be empty) as a copy of `src`.
 * `method` 'auto' picks reflink where FICLONE works, else farm.
 */
export function seedFromParent(sys: Sys, src: Buffer, dst: Buffer, method: SeedMethod | 'auto'): SeedResult {
  let m: SeedMethod = method === 'auto' ? (probeReflink(sys, firstFile(src), dst) ? 'reflink' : 'farm') : method;
  if (m === 'reflink' && method !== 'auto' && !probeReflink(sys, firstFile(src), dst)) m = 'copy';
  const shared = new InoSet();
  /** parent inode → staging path of its private copy, for in-snapshot link groups. */
  const groups = new Map<bigint, Buffer>();
  /**
   * parent inode → staging path (latin1) where it is still farm-linked. Every
   * file of the parent is here until the walk ends, so paths are strings: a
   * million small Buffers would each pin one of Node's shared 8 KiB slabs.
   */
  const farmed = new Map<number | bigint, string>();
  let entries = 0;

  const meta = (from: Buffer, to: Buffer, st: fs.BigIntStats, isLink: boolean) => {
    fs.lchownSync(to, Number(st.uid), Number(st.gid));
    if (!isLink) fs.chmodSync(to, Number(st.mode & 0o7777n));
    copyXattrs(sys, from, to);
  };

  const walk = (sdir: Buffer, ddir: Buffer) => {
    const names = fs.readdirSync(sdir, { encoding: 'buffer' }) as Buffer[];
    for (const name of names) {
      const s = join(sdir, name);
      const d = join(ddir, name);
      const st = fs.lstatSync(s, { bigint: true });
      entries++;
      if (st.isDirectory()) {
        fs.mkdirSync(d, 0o700);
        walk(s, d);
        meta(s, d, st, false);
        sys.lutimens(d, ts(st.atimeNs), ts(st.mtimeNs));
      } else if (st.isFile()) {
        if (m === 'farm') {
          const grouped = groups.get(st.ino);
          if (grouped) {
            fs.linkSync(grouped, d);
            continue;
          }
          const first = farmed.get(key(st.ino));
          if (first !== undefined) {
            const firstPath = Buffer.from(first, 'latin1');
            // Second name of a parent inode: this snapshot needs its own
            // inode for the group. Copy once, link every name to the copy.
            const tmp = join(ddir, Buffer.from(`.ferry-seed-${process.pid}`));
            copyFilePrivate(sys, s, tmp, st);
            // The first name's directory may already carry its final times
            // (readdir order is arbitrary); the swap must not change them.
            const firstDir = firstPath.subarray(0, firstPath.lastIndexOf(0x2f));
            const fst = fs.lstatSync(firstDir, { bigint: true });
            fs.renameSync(tmp, firstPath);
            sys.lutimens(firstDir, ts(fst.atimeNs), ts(fst.mtimeNs));
            fs.linkSync(firstPath, d);
            farmed.delete(key(st.ino));
            shared.delete(st.ino);
            groups.set(st.ino, firstPath);
            continue;
          }
          fs.linkSync(s, d);
          farmed.set(key(st.ino), d.toString('latin1'));
          shared.add(st.ino);
        } else {
          const grouped = groups.get(st.ino);
          if (grouped) {
            fs.linkSync(grouped, d);
            continue;
          }
          copyFilePrivate(sys, s, d, st);
          if (st.nlink > 1n) groups.set(st.ino, d);
        }
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
  };

  walk(src, dst);
  const rst = fs.lstatSync(src, { bigint: true });
  meta(src, dst, rst, false);
  sys.lutimens(dst, ts(rst.atimeNs), ts(rst.mtimeNs));
  return { method: m, shared, entries };
}
