/**
 * The frozen tree of a `reflink` snapshot: a copy of the walked tree where
 * every regular file is a FICLONE of the live one (no data copied), or a hard
 * link to the parent snapshot's frozen inode when the file is unchanged since
 * the parent (same change key, and the parent's copy still matches its
 * record), and directories, symlinks, hard links and special files are
 * recreated with their owner, mode, xattrs and times.
 *
 * Owns: building the copy from walk entries, making its root immutable, and
 * clearing that again so a snapshot can be removed.
 *
 * Never: follows a symlink in the live tree (opens are O_NOFOLLOW); copies
 * data for a snapshot (a file that can't be cloned fails the snapshot with
 * VOLUME_METHOD; only a rollback from another filesystem asks to copy).
 *
 * Invariant: the copy's paths equal the live tree's paths at snapshot time,
 * so a sender finds an inode's data by the path its links spell; inode
 * numbers in the copy are NOT the index's inode numbers. Each cloned file's
 * record takes the live file's stat as it was when cloned (re-cloned while
 * the file changes under us), so index and copy agree; a shared file's record
 * is the walk's, equal to the parent's by the change key. A shared inode is
 * never written: its metadata is left as the parent froze it (atime
 * included), so no snapshot changes another.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { InodeRecord } from '../model/inode';
import { FS_IMMUTABLE_FL, Sys, sys, Timespec } from '../sys/linux';
import { WalkEntry } from '../diff/walker';

const SLASH = Buffer.from('/');
const TRIES = 3;

function ts(ns: bigint): Timespec {
  const sec = ns / 1_000_000_000n;
  let nsec = Number(ns - sec * 1_000_000_000n);
  let s = sec;
  if (nsec < 0) {
    nsec += 1_000_000_000;
    s -= 1n;
  }
  return { sec: s, nsec };
}

const IFMT: Record<string, number> = {
  chr: fs.constants.S_IFCHR,
  blk: fs.constants.S_IFBLK,
  fifo: fs.constants.S_IFIFO,
  sock: fs.constants.S_IFSOCK,
};

function applyMeta(p: Buffer, rec: InodeRecord): void {
  const s = sys();
  fs.lchownSync(p, rec.uid, rec.gid);
  if (rec.type !== 'symlink') fs.chmodSync(p, rec.mode);
  for (const [k, v] of rec.xattrs) {
    try {
      s.lsetxattr(p, k, v);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'EPERM') throw e;
    }
  }
  s.lutimens(p, ts(rec.atimeNs), ts(rec.mtimeNs));
}

/** Clone one live file into `dst`, re-cloning while it changes; updates the record's stat. `copy`: copy where cloning is refused. */
function cloneInto(src: Buffer, dst: Buffer, rec: InodeRecord, warn: (m: string) => void, copy = false): void {
  const s = sys();
  const sfd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const dfd = fs.openSync(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      for (let attempt = 1; ; attempt++) {
        const before = fs.fstatSync(sfd, { bigint: true });
        if (attempt > 1) fs.ftruncateSync(dfd, 0);
        if (!s.cloneFile(sfd, dfd)) {
          if (!copy) {
            throw new FerryError('VOLUME_METHOD', 'reflink snapshot failed: the filesystem refused FICLONE', {
              context: { file: src.toString() },
              hint: 'initialize the volume with --method index on this filesystem',
            });
          }
          s.copyRange(sfd, 0n, dfd, 0n, before.size);
          fs.ftruncateSync(dfd, Number(before.size));
        }
        const after = fs.fstatSync(sfd, { bigint: true });
        const stable = before.size === after.size && before.mtimeNs === after.mtimeNs && before.ctimeNs === after.ctimeNs;
        if (stable || attempt >= TRIES) {
          if (!stable) warn(`file changed as we cloned it: ${src.toString()}`);
          if (after.ino !== rec.ino) warn(`file was replaced during the snapshot; its new content is recorded: ${src.toString()}`);
          rec.size = before.size;
          rec.mtimeNs = before.mtimeNs;
          rec.ctimeNs = before.ctimeNs;
          rec.atimeNs = before.atimeNs;
          return;
        }
      }
    } finally {
      fs.closeSync(dfd);
    }
  } finally {
    fs.closeSync(sfd);
  }
}

/**
 * Link the parent snapshot's frozen copy `from` at `to`, if it still is what
 * the record says (a regular file of the same size, mode, owner and mtime).
 * False, with nothing created, when it is not or the link fails (gone, link
 * count limit, another filesystem): the caller clones instead.
 */
function linkFrozen(from: Buffer, to: Buffer, rec: InodeRecord): boolean {
  try {
    const st = fs.lstatSync(from, { bigint: true });
    if (!st.isFile() || st.size !== rec.size || st.mtimeNs !== rec.mtimeNs) return false;
    if (Number(st.mode & 0o7777n) !== rec.mode || Number(st.uid) !== rec.uid || Number(st.gid) !== rec.gid) return false;
    fs.linkSync(from, to);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds a frozen copy under `dest` (which must not exist) in three steps,
 * so a caller can stream entries through it: `mkdirs` (directories, parents
 * first), `add` for every other inode (a file record takes the stat of what
 * was cloned), then `finishDirs` (directory metadata, children first, so
 * entries added earlier do not bump their times).
 * `copyWhereNoClone`: copy a file's data (copy_file_range) where FICLONE is
 * refused, instead of failing (rollback from a copy on another filesystem).
 */
export class ReflinkCopier {
  private readonly destB: Buffer;
  private readonly dirPath = new Map<bigint, Buffer>();

  constructor(
    dest: string,
    private readonly warn: (m: string) => void,
    private readonly opts: { copyWhereNoClone?: boolean } = {},
  ) {
    this.destB = Buffer.from(path.resolve(dest));
    fs.mkdirSync(this.destB, { mode: 0o700 });
  }

  private at(e: WalkEntry): Buffer {
    return e.rel.length ? Buffer.concat([this.destB, SLASH, e.rel]) : this.destB;
  }

  /** Create the directories; each parent must come before its children. */
  mkdirs(dirs: Iterable<WalkEntry>): void {
    for (const d of dirs) {
      if (d.rel.length === 0) {
        this.dirPath.set(d.rec.ino, this.destB);
        continue;
      }
      const p = this.at(d);
      fs.mkdirSync(p, { mode: 0o700 });
      this.dirPath.set(d.rec.ino, p);
    }
  }

  /**
   * Copy one inode (directories are skipped: see mkdirs and finishDirs).
   * `parentCopy`: a regular file's frozen copy in the parent snapshot, with
   * the same change key as `e`. The new tree links that inode instead of
   * cloning the live file, when its type, size, mode, owner and mtime still
   * agree with the record; otherwise it clones as usual.
   */
  add(e: WalkEntry, parentCopy?: Buffer): void {
    const rec = e.rec;
    if (rec.type === 'dir') return;
    const p = this.at(e);
    if (rec.type === 'file' && parentCopy && linkFrozen(parentCopy, p, rec)) {
      // Shared with the parent's tree: its metadata is the parent's (equal by
      // the change key), and is not touched, so the parent stays as it was.
      this.linkOthers(p, rec);
      return;
    }
    try {
      switch (rec.type) {
        case 'file':
          cloneInto(e.path, p, rec, this.warn, this.opts.copyWhereNoClone);
          break;
        case 'symlink':
          fs.symlinkSync(rec.target!, p);
          break;
        default:
          sys().mknod(p, IFMT[rec.type] | 0o600, rec.rdev);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rec.type === 'file') {
        // Deleted after the walk saw it: keep it in the index as walked, with an empty copy.
        this.warn(`file vanished during the snapshot: ${e.path.toString()}`);
        fs.writeFileSync(p, '');
        rec.size = 0n;
      } else throw err;
    }
    applyMeta(p, rec);
    this.linkOthers(p, rec);
  }

  /** The record's other names, as links to its first (`p`). */
  private linkOthers(p: Buffer, rec: InodeRecord): void {
    for (const l of rec.links) {
      const lp = Buffer.concat([this.dirPath.get(l.parent)!, SLASH, l.name]);
      if (!lp.equals(p)) fs.linkSync(p, lp);
    }
  }

  /** Directory metadata; each child must come before its parent, the root last. */
  finishDirs(dirs: Iterable<WalkEntry>): void {
    for (const d of dirs) applyMeta(this.at(d), d.rec);
  }
}

/**
 * Build the frozen copy of `entries` (from walkTree, sorted by ino) under
 * `dest` (which must not exist). File records take the stat of what was cloned.
 */
export function buildReflinkCopy(entries: WalkEntry[], dest: string, warn: (m: string) => void, opts: { copyWhereNoClone?: boolean } = {}): void {
  const c = new ReflinkCopier(dest, warn, opts);
  // Shallowest first, so parents exist; the root (empty rel) sorts first.
  const dirs = entries.filter((e) => e.rec.type === 'dir').sort((a, b) => a.rel.length - b.rel.length);
  c.mkdirs(dirs);
  for (const e of entries) c.add(e);
  c.finishDirs(dirs.reverse());
}

/**
 * Set or clear the immutable flag on a directory; false where the fs can't,
 * or where the process lacks CAP_LINUX_IMMUTABLE (not root).
 */
export function setImmutable(dir: string, on: boolean, s: Sys = sys()): boolean {
  let fd: number;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const flags = s.getFlags(fd);
    if (flags === undefined) return false;
    const want = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    if (want === flags) return true;
    try {
      return s.setFlags(fd, want);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') return false;
      throw e;
    }
  } finally {
    fs.closeSync(fd);
  }
}
