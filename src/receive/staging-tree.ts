/**
 * Stage two of path safety, and every filesystem operation of a receive.
 *
 * Owns: turning checked stream paths into operations on the staging tree.
 * Every parent component is lstat'ed and must be a real directory (not a
 * symlink) inside the tree; final components are never followed (lchown,
 * lutimens, l*xattr, O_NOFOLLOW opens, and an lstat before chmod/truncate).
 * Verified directories are cached and the cache is invalidated on rename and
 * rmdir; this is sound because the staging tree is private to this process.
 *
 * Hard-link farms: when the tree was seeded by hard-linking the parent
 * snapshot's files, those inodes are shared, and `ensurePrivate` copies a
 * file before its first change so the parent snapshot never changes.
 *
 * Resumable receives (docs/receive.md, "Resume") pass a scratch directory
 * outside the tree for those copies, so a kill never leaves a temp file in
 * the tree, and an `onStep` hook that hears of the two changes re-applying a
 * command would not undo (a copy renamed into a directory; chown about to
 * clear setuid bits) before they happen.
 *
 * Never: writes outside `root`, follows a symlink from the stream, or touches
 * a path it has not checked.
 */
import * as fs from 'node:fs';
import { FerryError } from '../errors';
import { Timespec } from '../model/command';
import { faultPoint } from '../model/fault';
import { Sys } from '../sys/linux';
import { InoSet } from './ino-set';
import { showPath } from './safe-path';

const { O_WRONLY, O_RDONLY, O_NOFOLLOW, O_CREAT, O_EXCL, O_RDWR } = fs.constants;
const SLASH = Buffer.from('/');

export interface OpContext {
  command: number;
  offset: number;
  cmd: string;
}

/** Join components into a relative path Buffer. */
export function joinParts(parts: Buffer[]): Buffer {
  if (parts.length === 1) return parts[0];
  const bufs: Buffer[] = [];
  parts.forEach((p, i) => {
    if (i) bufs.push(SLASH);
    bufs.push(p);
  });
  return Buffer.concat(bufs);
}

/** A change a command makes that applying the command again would not make again. */
export type RiskyStep =
  | { kind: 'dir-times'; dir: Buffer[]; atimeNs: bigint; mtimeNs: bigint }
  | { kind: 'mode'; path: Buffer[]; mode: number };

export interface StagingTreeOptions {
  /** Where copies before change are made (same filesystem, outside the tree). */
  scratch?: Buffer | string;
  /** Told before a risky step happens. */
  onStep?: (s: RiskyStep) => void;
}

export class StagingTree {
  readonly root: Buffer;
  private readonly okDirs = new Set<string>();
  /** Inode numbers shared with the parent snapshot (hard-link farm). */
  readonly shared: InoSet;
  private writeFd: { key: string; fd: number } | undefined;
  private cowCounter = 0;
  private readonly scratch?: Buffer;
  private readonly onStep?: (s: RiskyStep) => void;

  constructor(
    root: string | Buffer,
    readonly sys: Sys,
    shared: InoSet = new InoSet(),
    opts: StagingTreeOptions = {},
  ) {
    this.root = Buffer.isBuffer(root) ? root : Buffer.from(root);
    this.shared = shared;
    if (opts.scratch !== undefined) this.scratch = Buffer.isBuffer(opts.scratch) ? opts.scratch : Buffer.from(opts.scratch);
    this.onStep = opts.onStep;
  }

  abs(parts: Buffer[]): Buffer {
    if (parts.length === 0) return this.root;
    return Buffer.concat([this.root, SLASH, joinParts(parts)]);
  }

  private key(parts: Buffer[], n = parts.length): string {
    let k = '';
    for (let i = 0; i < n; i++) k += (i ? '/' : '') + parts[i].toString('latin1');
    return k;
  }

  /** lstat every parent component; returns the absolute path of `parts`. */
  resolve(parts: Buffer[], ctx: OpContext): Buffer {
    for (let n = 1; n < parts.length; n++) {
      const k = this.key(parts, n);
      if (this.okDirs.has(k)) continue;
      const p = this.abs(parts.slice(0, n));
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch (e) {
        throw this.applyError(e, `parent directory ${showPath(joinParts(parts.slice(0, n)))} is missing`, parts, ctx);
      }
      if (st.isSymbolicLink()) {
        throw new FerryError('RECV_SYMLINK_IN_PATH', 'receive refused: path goes through a symlink', {
          context: { path: showPath(joinParts(parts)), symlink: showPath(joinParts(parts.slice(0, n))), ...ctx },
          hint: 'nothing was committed; the stream is corrupt or hostile',
        });
      }
      if (!st.isDirectory()) {
        throw new FerryError('RECV_APPLY_FAILED', 'receive failed: a parent component is not a directory', {
          context: { path: showPath(joinParts(parts)), ...ctx },
          hint: 'nothing was committed; the stream does not match the parent snapshot',
        });
      }
      this.okDirs.add(k);
    }
    return this.abs(parts);
  }

  /** Drop cached directory facts at or below `parts`. */
  private forget(parts: Buffer[]): void {
    const k = this.key(parts);
    this.okDirs.delete(k);
    const prefix = k + '/';
    for (const d of this.okDirs) if (d.startsWith(prefix)) this.okDirs.delete(d);
  }

  applyError(e: unknown, what: string, parts: Buffer[], ctx: OpContext): FerryError {
    if (e instanceof FerryError) return e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT') {
      return new FerryError('RECV_NO_SPACE', `receive failed: no space left on the target (${err.code})`, {
        context: { path: showPath(joinParts(parts)), ...ctx },
        hint: 'nothing was committed; free space on the target and run again',
        cause: e,
      });
    }
    return new FerryError('RECV_APPLY_FAILED', `receive failed: ${what}: ${err.code ?? err.message}`, {
      context: { path: showPath(joinParts(parts)), ...ctx },
      hint: 'nothing was committed; the stream does not match what the target has',
      cause: e,
    });
  }

  private run<T>(what: string, parts: Buffer[], ctx: OpContext, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.applyError(e, what, parts, ctx);
    }
  }

  /** Whether the final component exists (parents are checked as always); never follows. */
  exists(parts: Buffer[], ctx: OpContext): boolean {
    const p = this.resolve(parts, ctx);
    try {
      fs.lstatSync(p);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw this.applyError(e, 'lstat', parts, ctx);
    }
  }

  /** Whether the node (never followed) has the xattr. */
  hasXattr(parts: Buffer[], name: Buffer, ctx: OpContext): boolean {
    const p = this.resolve(parts, ctx);
    return this.run('get xattr', parts, ctx, () => this.sys.lgetxattr(p, name) !== undefined);
  }

  /** lstat the final component; never follows. */
  lstat(parts: Buffer[], ctx: OpContext): fs.BigIntStats {
    const p = this.resolve(parts, ctx);
    return this.run('lstat', parts, ctx, () => fs.lstatSync(p, { bigint: true }));
  }

  // ---- creation -----------------------------------------------------------

  mkfile(parts: Buffer[], ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.run('create file', parts, ctx, () => fs.closeSync(fs.openSync(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)));
  }

  mkdir(parts: Buffer[], ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.run('create directory', parts, ctx, () => fs.mkdirSync(p, 0o700));
  }

  mknod(parts: Buffer[], mode: number, rdev: bigint, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.run('create special file', parts, ctx, () => this.sys.mknod(p, mode, rdev));
  }

  symlink(parts: Buffer[], target: Buffer, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    // The target is data: stored as given, never resolved or followed.
    this.run('create symlink', parts, ctx, () => fs.symlinkSync(target, p));
  }

  // ---- names --------------------------------------------------------------

  rename(from: Buffer[], to: Buffer[], ctx: OpContext): void {
    this.closeWrite();
    const a = this.resolve(from, ctx);
    const b = this.resolve(to, ctx);
    this.run('rename', from, ctx, () => fs.renameSync(a, b));
    this.forget(from);
    this.forget(to);
  }

  link(newParts: Buffer[], existing: Buffer[], ctx: OpContext): void {
    this.closeWrite();
    const src = this.resolve(existing, ctx);
    const dst = this.resolve(newParts, ctx);
    // A new link to a file shared with the parent would join the parent's
    // inode to this snapshot's link group: make it private first.
    this.ensurePrivate(existing, ctx);
    this.run('link', newParts, ctx, () => fs.linkSync(src, dst));
  }

  unlink(parts: Buffer[], ctx: OpContext): void {
    this.closeWrite();
    const p = this.resolve(parts, ctx);
    this.run('unlink', parts, ctx, () => fs.unlinkSync(p));
  }

  rmdir(parts: Buffer[], ctx: OpContext): void {
    this.closeWrite();
    const p = this.resolve(parts, ctx);
    this.run('remove directory', parts, ctx, () => fs.rmdirSync(p));
    this.forget(parts);
  }

  // ---- metadata -----------------------------------------------------------

  /**
   * Set an xattr. Returns false (and sets nothing) for a btrfs-private
   * attribute such as btrfs.compression on a filesystem that has no such
   * namespace; the caller warns.
   */
  setXattr(parts: Buffer[], name: Buffer, value: Buffer, ctx: OpContext): boolean {
    const p = this.resolve(parts, ctx);
    this.ensurePrivate(parts, ctx);
    try {
      this.sys.lsetxattr(p, name, value);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'EOPNOTSUPP' || code === 'ENOTSUP') && name.subarray(0, 6).toString('latin1') === 'btrfs.') return false;
      if (code === 'ENOSPC' || code === 'E2BIG' || code === 'ERANGE') {
        throw new FerryError('RECV_UNSUPPORTED', `receive failed: the target filesystem cannot store xattr ${name.toString('utf8')} of ${value.length} bytes (${code})`, {
          context: { path: showPath(joinParts(parts)), ...ctx },
          hint: 'nothing was committed; ext4 stores large xattrs only with the ea_inode feature (tune2fs -O ea_inode), or receive onto XFS or btrfs',
          cause: e,
        });
      }
      throw this.applyError(e, 'set xattr', parts, ctx);
    }
  }

  removeXattr(parts: Buffer[], name: Buffer, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.ensurePrivate(parts, ctx);
    this.run('remove xattr', parts, ctx, () => this.sys.lremovexattr(p, name));
  }

  chown(parts: Buffer[], uid: number, gid: number, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.ensurePrivate(parts, ctx);
    this.run('chown', parts, ctx, () => {
      const before = fs.lstatSync(p);
      if (!before.isSymbolicLink() && before.mode & 0o6000) this.onStep?.({ kind: 'mode', path: parts, mode: before.mode & 0o7777 });
      fs.lchownSync(p, uid, gid);
      faultPoint('receive:chown-done');
      // chown(2) clears setuid/setgid; the kernel sends no CHMOD when the
      // mode itself did not change, so put the bits back (btrfs receive
      // loses them here). They were accepted by policy when first set.
      if (!before.isSymbolicLink() && before.mode & 0o6000) fs.chmodSync(p, before.mode & 0o7777);
    });
  }

  chmod(parts: Buffer[], mode: number, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    const st = this.run('lstat', parts, ctx, () => fs.lstatSync(p));
    if (st.isSymbolicLink()) {
      throw new FerryError('RECV_SYMLINK_IN_PATH', 'receive refused: chmod of a symlink would change its target', {
        context: { path: showPath(joinParts(parts)), ...ctx },
        hint: 'nothing was committed; the stream is corrupt or hostile',
      });
    }
    this.ensurePrivate(parts, ctx);
    // The final component was just lstat'ed and is not a symlink; nothing
    // else writes to the private staging tree, so chmod cannot be redirected.
    this.run('chmod', parts, ctx, () => fs.chmodSync(p, mode));
  }

  utimes(parts: Buffer[], atime: Timespec, mtime: Timespec, ctx: OpContext): void {
    const p = this.resolve(parts, ctx);
    this.ensurePrivate(parts, ctx);
    this.run('set times', parts, ctx, () => this.sys.lutimens(p, atime, mtime));
  }

  // ---- data ---------------------------------------------------------------

  /** The cached write fd for a regular file, opened without following symlinks. */
  writeFdFor(parts: Buffer[], ctx: OpContext): number {
    const k = this.key(parts);
    if (this.writeFd && this.writeFd.key === k) return this.writeFd.fd;
    this.closeWrite();
    const p = this.resolve(parts, ctx);
    this.ensurePrivate(parts, ctx);
    const fd = this.run('open for writing', parts, ctx, () => {
      try {
        return fs.openSync(p, O_RDWR | O_NOFOLLOW);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
          throw new FerryError('RECV_SYMLINK_IN_PATH', 'receive refused: write through a symlink', {
            context: { path: showPath(joinParts(parts)), ...ctx },
            hint: 'nothing was committed; the stream is corrupt or hostile',
          });
        }
        throw e;
      }
    });
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      fs.closeSync(fd);
      throw new FerryError('RECV_APPLY_FAILED', 'receive failed: data for something that is not a regular file', {
        context: { path: showPath(joinParts(parts)), ...ctx },
      });
    }
    this.writeFd = { key: k, fd };
    return fd;
  }

  closeWrite(): void {
    if (this.writeFd) {
      fs.closeSync(this.writeFd.fd);
      this.writeFd = undefined;
    }
  }

  /** Open a file read-only without following a final symlink (clone sources). */
  openRead(parts: Buffer[], ctx: OpContext): number {
    const p = this.resolve(parts, ctx);
    return this.run('open clone source', parts, ctx, () => {
      const fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW);
      if (!fs.fstatSync(fd).isFile()) {
        fs.closeSync(fd);
        throw new FerryError('RECV_CLONE_SOURCE', 'receive refused: clone source is not a regular file', {
          context: { path: showPath(joinParts(parts)), ...ctx },
        });
      }
      return fd;
    });
  }

  // ---- hard-link farm -----------------------------------------------------

  /**
   * If `parts` names a regular file whose inode is shared with the parent
   * snapshot, replace it by a private copy (same data, owner, mode, xattrs and
   * times) so changes never reach the parent.
   */
  ensurePrivate(parts: Buffer[], ctx: OpContext): void {
    if (this.shared.size === 0 || parts.length === 0) return;
    const p = this.abs(parts);
    const st = this.run('lstat', parts, ctx, () => fs.lstatSync(p, { bigint: true }));
    if (!st.isFile() || !this.shared.has(st.ino)) return;
    this.shared.delete(st.ino);
    const dir = this.abs(parts.slice(0, -1));
    const tmpName = Buffer.from(`.ferry-cow-${process.pid}-${this.cowCounter++}`);
    const tmp = Buffer.concat([this.scratch ?? dir, SLASH, tmpName]);
    this.run('copy before change', parts, ctx, () => {
      // The swap below is ferry's own doing, not the stream's: the directory
      // keeps the times it had.
      const dst = fs.lstatSync(dir, { bigint: true });
      copyFilePrivate(this.sys, p, tmp, st);
      this.onStep?.({ kind: 'dir-times', dir: parts.slice(0, -1), atimeNs: dst.atimeNs, mtimeNs: dst.mtimeNs });
      fs.renameSync(tmp, p);
      faultPoint('receive:cow-renamed');
      this.sys.lutimens(dir, nsToTimespec(dst.atimeNs), nsToTimespec(dst.mtimeNs));
    });
  }
}

export function nsToTimespec(ns: bigint): Timespec {
  return { sec: ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) };
}

/** Copy a regular file with its metadata; clones where the filesystem can. */
export function copyFilePrivate(sys: Sys, src: Buffer, dst: Buffer, st: fs.BigIntStats): void {
  const ifd = fs.openSync(src, O_RDONLY | O_NOFOLLOW);
  try {
    const ofd = fs.openSync(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      if (!sys.cloneFile(ifd, ofd) && st.size > 0n) copySparse(sys, ifd, ofd, st.size);
      // chown first: it clears setuid bits and file capabilities.
      fs.fchownSync(ofd, Number(st.uid), Number(st.gid));
      fs.fchmodSync(ofd, Number(st.mode & 0o7777n));
      copyXattrs(sys, src, dst);
      sys.futimens(ofd, nsToTimespec(st.atimeNs), nsToTimespec(st.mtimeNs));
    } finally {
      fs.closeSync(ofd);
    }
  } finally {
    fs.closeSync(ifd);
  }
}

const ZERO_BLOCK = Buffer.alloc(64 * 1024);
const FIEMAP_EXTENT_UNWRITTEN = 0x800;

/**
 * Copy `size` bytes keeping holes: only the data extents FIEMAP reports (or,
 * where it reports none, only blocks that are not all zeros), then set the
 * size. Unwritten (preallocated) extents read as zeros and stay holes.
 */
export function copySparse(sys: Sys, ifd: number, ofd: number, size: bigint): void {
  const extents = sys.fiemap(ifd, 0n, size);
  if (extents) {
    for (const e of extents) {
      if (e.flags & FIEMAP_EXTENT_UNWRITTEN) continue;
      const end = e.logical + e.length > size ? size : e.logical + e.length;
      if (end <= e.logical) continue;
      const n = sys.copyRange(ifd, e.logical, ofd, e.logical, end - e.logical);
      if (n !== end - e.logical) throw new Error(`short copy: ${n} of ${end - e.logical} bytes at ${e.logical}`);
    }
  } else {
    const buf = Buffer.allocUnsafe(ZERO_BLOCK.length);
    for (let off = 0n; off < size; off += BigInt(buf.length)) {
      const n = fs.readSync(ifd, buf, 0, buf.length, off);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (!chunk.equals(ZERO_BLOCK.subarray(0, n))) fs.writeSync(ofd, chunk, 0, n, Number(off));
    }
  }
  fs.ftruncateSync(ofd, Number(size));
}

/** Copy every xattr of `src` to `dst`, neither followed if a symlink. */
export function copyXattrs(sys: Sys, src: Buffer, dst: Buffer): void {
  for (const name of sys.llistxattr(src)) {
    const v = sys.lgetxattr(src, name);
    if (v !== undefined) sys.lsetxattr(dst, name, v);
  }
}
