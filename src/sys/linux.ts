/**
 * The one place ferry calls Linux syscalls that Node lacks: xattrs without
 * following symlinks, nanosecond utimensat, mknod, fallocate, reflink
 * ioctls, copy_file_range, renameat2, FIEMAP, inode flags, statx birth time,
 * inode generation, syncfs and statfs.
 *
 * Owns: the koffi bindings to libc (loaded once, each function declared
 * once, scratch buffers reused between calls) and the choice between them
 * and the portable implementation in ./fallback.ts. `sys()` picks once per
 * process; FERRY_NO_NATIVE=1 forces the fallback; `createSys({native})`
 * builds either on demand (tests use both).
 *
 * Never: follows a final symlink where the name says `l...`; silently
 * substitutes a non-atomic operation for an atomic one (exchange throws
 * instead); truncates a path at an embedded NUL (such paths are refused).
 *
 * Invariant: every failure is a Node-style errno Error (`code` 'ENOENT',
 * `errno` -2, `syscall`, `path`, `dest`), so callers treat these like `fs`
 * errors. Functions documented as returning false/undefined when unsupported
 * do so only for "this filesystem or kernel can't" errnos; others throw.
 *
 * Not thread-safe across workers sharing one instance (there is none: each
 * worker loads its own module copy). Calls are synchronous and block the
 * event loop for as long as the kernel takes (copyRange on big ranges).
 */
import * as fs from 'node:fs';
import {
  checkPath,
  checkTimespec,
  copyRangeByReadWrite,
  createFallbackSys,
  freeBytesByStatfs,
  renameNoReplaceByLink,
  sysError,
} from './fallback';

/** A path: a string (UTF-8 encoded) or raw bytes, without a terminating NUL. */
export type PathLike = string | Buffer;
export interface Timespec {
  sec: bigint;
  nsec: number;
}
export interface FiemapExtent {
  logical: bigint;
  physical: bigint;
  length: bigint;
  flags: number;
}

export interface Sys {
  readonly native: boolean; // true when koffi bindings loaded
  lsetxattr(path: PathLike, name: Buffer, value: Buffer): void;
  lgetxattr(path: PathLike, name: Buffer): Buffer | undefined; // undefined on ENODATA
  llistxattr(path: PathLike): Buffer[]; // names, without NULs
  lremovexattr(path: PathLike, name: Buffer): void;
  /** utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW) — nanosecond precision, never follows a final symlink */
  lutimens(path: PathLike, atime: Timespec, mtime: Timespec): void;
  /** futimens(fd, ...) */
  futimens(fd: number, atime: Timespec, mtime: Timespec): void;
  mknod(path: PathLike, mode: number, rdev: bigint): void; // mode includes S_IFCHR/S_IFBLK/S_IFIFO/S_IFSOCK bits
  fallocate(fd: number, mode: number, offset: bigint, len: bigint): void; // mode 3 = KEEP_SIZE|PUNCH_HOLE
  /** FICLONERANGE; returns false (no throw) when the fs or the pair can't clone (EOPNOTSUPP, EXDEV, EINVAL, ENOTTY, EBADF for cross-fs), throws other errors */
  cloneRange(srcFd: number, srcOffset: bigint, len: bigint, dstFd: number, dstOffset: bigint): boolean;
  /** FICLONE whole file; false when unsupported */
  cloneFile(srcFd: number, dstFd: number): boolean;
  /** copy_file_range loop until len copied or EOF; returns bytes copied; the fallback uses pread/pwrite with a 1 MiB buffer */
  copyRange(srcFd: number, srcOffset: bigint, dstFd: number, dstOffset: bigint, len: bigint): bigint;
  /** renameat2(RENAME_EXCHANGE); throws an Error with code 'ENOSYS' / 'EINVAL' where unsupported (no silent non-atomic fallback) */
  exchange(a: PathLike, b: PathLike): void;
  /** renameat2(RENAME_NOREPLACE); fallback: link+unlink for files, or lstat-check then rename (document the race) */
  renameNoReplace(from: PathLike, to: PathLike): void;
  /** FS_IOC_FIEMAP over [start, start+len); undefined when unsupported */
  fiemap(fd: number, start: bigint, len: bigint): FiemapExtent[] | undefined;
  /** FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (e.g. FS_IMMUTABLE_FL = 0x10); undefined/false when unsupported */
  getFlags(fd: number): number | undefined;
  setFlags(fd: number, flags: number): boolean;
  /** statx(AT_SYMLINK_NOFOLLOW, STATX_BTIME|STATX_BASIC_STATS): birth time in ns if the fs reports it, else undefined */
  btimeNs(path: PathLike): bigint | undefined;
  /**
   * statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS
   * | STATX_BTIME) into `out` (at least STATX_BYTES: the kernel's struct statx,
   * fields at STATX_OFFSET). An entry is stat'ed relative to its open
   * directory, without the kernel resolving the whole path again. Throws an
   * errno error (ENOENT, ...). Absent in the fallback and where libc lacks
   * statx: callers lstat the path instead.
   */
  statxAt?: (dirfd: number, name: Buffer, out: Buffer) => void;
  /** FS_IOC_GETVERSION (inode generation, ext4/XFS support it); undefined when unsupported */
  inodeGeneration(fd: number): bigint | undefined;
  /**
   * BTRFS_IOC_SET_RECEIVED_SUBVOL on the root of a writable btrfs subvolume
   * (`fd`): record that it was received from the sender's subvolume `uuid`
   * (16 bytes) at its ctransid `stransid`, as btrfs receive does before it
   * sets the subvolume read-only. The kernel adds the uuid to its uuid tree,
   * so `btrfs receive` and `btrfs subvolume list -R` find the subvolume by
   * it. False when unsupported (not btrfs, no binding); throws other errors
   * (EPERM without CAP_SYS_ADMIN or ownership, EROFS once read-only).
   */
  setReceivedSubvol(fd: number, uuid: Buffer, stransid: bigint): boolean;
  /**
   * BTRFS_IOC_SUBVOL_GETFLAGS: whether the btrfs subvolume whose root is
   * `fd` is read-only; undefined when `fd` is not a subvolume root or not on
   * btrfs (or there is no binding).
   */
  subvolReadonly(fd: number): boolean | undefined;
  /**
   * BTRFS_IOC_SUBVOL_SETFLAGS: make the subvolume whose root is `fd`
   * read-only or writable, keeping its other flags (the kernel itself does
   * not clear a received uuid on the way back to writable). False when
   * `fd` is not a subvolume root or unsupported; throws other errors
   * (EPERM, EBUSY while a send uses it).
   */
  setSubvolReadonly(fd: number, on: boolean): boolean;
  syncfs(fd: number): void;
  /**
   * fcntl(F_SETPIPE_SZ): grow the pipe `fd` belongs to (either end) to at
   * least `bytes`, for fewer, larger transfers between the processes of a
   * pipeline. Returns the pipe's new capacity, or undefined when `fd` is not
   * a pipe, the size is over the caller's limit, or there is no binding (the
   * pipe keeps its size: a portable no-op).
   */
  widenPipe(fd: number, bytes: number): number | undefined;
  /**
   * posix_fadvise(POSIX_FADV_WILLNEED): ask the kernel to start reading
   * [offset, offset+len) of `fd` into the page cache and return without
   * waiting for the data, so a later read of it need not wait for the disk.
   * A hint only: false when it was not given (no binding, or the kernel
   * refused, as for a pipe), never a throw.
   */
  readahead(fd: number, offset: bigint, len: bigint): boolean;
  /** statvfs: free bytes available to unprivileged users (f_bavail * f_frsize) and total */
  freeBytes(path: PathLike): { available: bigint; total: bigint };
}

// ---------------------------------------------------------------------------
// Kernel ABI constants (checked against linux/fs.h, linux/fiemap.h, linux/stat.h)

/** The kernel's _IOC(dir, type, nr, size) for the generic ioctl layout (x86, arm, riscv). */
export function ioc(dir: 'none' | 'r' | 'w' | 'rw', type: number, nr: number, size: number): number {
  const d = { none: 0, w: 1, r: 2, rw: 3 }[dir];
  return ((d << 30) >>> 0) + (size << 16) + (type << 8) + nr;
}

export const IOCTL = {
  /** _IOW(0x94, 9, int) */
  FICLONE: 0x40049409,
  /** _IOW(0x94, 13, struct file_clone_range) — 32 bytes */
  FICLONERANGE: 0x4020940d,
  /** _IOWR('f', 11, struct fiemap) — 32-byte header */
  FS_IOC_FIEMAP: 0xc020660b,
  /** _IOR('f', 1, long) — the kernel reads/writes an int */
  FS_IOC_GETFLAGS: 0x80086601,
  /** _IOW('f', 2, long) */
  FS_IOC_SETFLAGS: 0x40086602,
  /** _IOR('v', 1, long) — the kernel writes an int */
  FS_IOC_GETVERSION: 0x80087601,
  /** _IOWR(0x94, 37, struct btrfs_ioctl_received_subvol_args) — 200 bytes */
  BTRFS_IOC_SET_RECEIVED_SUBVOL: 0xc0c89425,
  /** _IOR(0x94, 25, __u64) */
  BTRFS_IOC_SUBVOL_GETFLAGS: 0x80089419,
  /** _IOW(0x94, 26, __u64) */
  BTRFS_IOC_SUBVOL_SETFLAGS: 0x4008941a,
} as const;

/** BTRFS_SUBVOL_RDONLY in the flags of BTRFS_IOC_SUBVOL_{GET,SET}FLAGS. */
export const BTRFS_SUBVOL_RDONLY = 0x2n;

/**
 * struct btrfs_ioctl_received_subvol_args: uuid[16], stransid u64 @16,
 * rtransid u64 @24 (out), stime {u64 sec, u32 nsec} @32, rtime @48 (out),
 * flags u64 @64, reserved u64[16] @72.
 */
export const RECEIVED_SUBVOL_ARGS_BYTES = 200;

export const FS_IMMUTABLE_FL = 0x10;
export const FS_APPEND_FL = 0x20;
export const FS_NODUMP_FL = 0x40;
export const FS_NOATIME_FL = 0x80;

export const FIEMAP_FLAG_SYNC = 0x1;
export const FIEMAP_EXTENT_LAST = 0x1;
export const FIEMAP_EXTENT_UNKNOWN = 0x2;
export const FIEMAP_EXTENT_DELALLOC = 0x4;
export const FIEMAP_EXTENT_UNWRITTEN = 0x800;
export const FIEMAP_EXTENT_SHARED = 0x2000;
const FIEMAP_HEADER_BYTES = 32;
const FIEMAP_EXTENT_BYTES = 56;
/** Extents fetched per FS_IOC_FIEMAP call; larger files take several calls. */
export const FIEMAP_BATCH = 128;

export const FALLOC_FL_KEEP_SIZE = 0x1;
export const FALLOC_FL_PUNCH_HOLE = 0x2;

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_NO_AUTOMOUNT = 0x800;
const F_SETPIPE_SZ = 1031;
/** linux/fadvise.h (the same on every architecture Node runs on). */
const POSIX_FADV_WILLNEED = 3;
/** Bytes per readahead hint: the smallest readahead window a Linux disk commonly has. */
const HINT_STEP = 128n * 1024n;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const STATX_BASIC_STATS = 0x7ff;
export const STATX_BTIME = 0x800;
/** Size of the kernel's struct statx. */
export const STATX_BYTES = 256;
/** Byte offsets in struct statx (linux/stat.h); a timestamp is i64 seconds then u32 nanoseconds. */
export const STATX_OFFSET = {
  mask: 0,
  nlink: 16,
  uid: 20,
  gid: 24,
  mode: 28,
  ino: 32,
  size: 40,
  atime: 64,
  btime: 80,
  ctime: 96,
  mtime: 112,
  rdevMajor: 128,
  rdevMinor: 132,
  devMajor: 136,
  devMinor: 140,
} as const;
/** The statx timestamp at byte `at` of `b` (i64 seconds, u32 nanoseconds) in ns, as Node's BigIntStats gives times. */
export function statxTimeNs(b: Buffer, at: number): bigint {
  return b.readBigInt64LE(at) * 1_000_000_000n + BigInt(b.readUInt32LE(at + 8));
}
const XATTR_FIRST_TRY = 4096; // most values and lists fit; the kernel zeroes `size` bytes per call
const PATH_SCRATCH = 4096 + 1; // PATH_MAX + NUL; longer paths get their own buffer
const NAME_SCRATCH = 255 + 1; // XATTR_NAME_MAX + NUL
const COPY_CHUNK = 1 << 30;

const E = {
  EINTR: 4,
  EBADF: 9,
  EXDEV: 18,
  ENOTTY: 25,
  EINVAL: 22,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  EOPNOTSUPP: 95,
} as const;

// ---------------------------------------------------------------------------
// Bindings

type CStr = string | Buffer;
type Koffi = typeof import('koffi');

interface Libc {
  errno(): number;
  lsetxattr(path: CStr, name: CStr, value: Buffer, size: number, flags: number): number;
  lgetxattr(path: CStr, name: CStr, value: Buffer | null, size: number): number;
  llistxattr(path: CStr, list: Buffer | null, size: number): number;
  lremovexattr(path: CStr, name: CStr): number;
  utimensat(dirfd: number, path: CStr, times: Buffer, flags: number): number;
  futimens(fd: number, times: Buffer): number;
  fallocate(fd: number, mode: number, offset: bigint, len: bigint): number;
  ioctlPtr(fd: number, request: number, arg: Buffer): number;
  ioctlInt(fd: number, request: number, arg: number): number;
  syncfs(fd: number): number;
  fcntlInt(fd: number, cmd: number, arg: number): number;
  /** Returns the error number itself (0 on success), not -1 and errno. */
  posixFadvise(fd: number, offset: bigint, len: bigint, advice: number): number;
  // Newer glibc symbols: absent ones fall back per function.
  mknod?(path: CStr, mode: number, dev: bigint): number;
  copyFileRange?(fdIn: number, offIn: Buffer, fdOut: number, offOut: Buffer, len: number, flags: number): number;
  renameat2?(olddirfd: number, oldpath: CStr, newdirfd: number, newpath: CStr, flags: number): number;
  statx?(dirfd: number, path: CStr, flags: number, mask: number, buf: Buffer): number;
}

let libc: Libc | undefined;
let loadError: unknown;

const LIBC_NAMES: Record<string, string[]> = {
  x64: ['libc.so.6', 'libc.musl-x86_64.so.1'],
  arm64: ['libc.so.6', 'libc.musl-aarch64.so.1'],
};

function loadLibc(): Libc | undefined {
  if (libc || loadError) return libc;
  try {
    if (process.platform !== 'linux') throw new Error(`native bindings are Linux-only (platform ${process.platform})`);
    const koffi = require('koffi') as Koffi;
    let lib: ReturnType<Koffi['load']> | undefined;
    let lastError: unknown;
    for (const name of LIBC_NAMES[process.arch] ?? ['libc.so.6']) {
      try {
        lib = koffi.load(name);
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!lib) throw lastError;
    const l = lib;
    const optional = (proto: string) => {
      try {
        return l.func(proto);
      } catch {
        return undefined;
      }
    };
    // ioctl(2) is variadic; on the Linux x86_64/arm64 ABIs a variadic
    // pointer or long travels exactly like a fixed third argument, so it is
    // declared twice with fixed types (much cheaper per call than koffi's
    // variadic marshalling).
    libc = {
      errno: () => koffi.errno(),
      lsetxattr: l.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
      lgetxattr: l.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)'),
      llistxattr: l.func('intptr_t llistxattr(const char *path, char *list, size_t size)'),
      lremovexattr: l.func('int lremovexattr(const char *path, const char *name)'),
      utimensat: l.func('int utimensat(int dirfd, const char *path, const void *times, int flags)'),
      futimens: l.func('int futimens(int fd, const void *times)'),
      fallocate: l.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
      ioctlPtr: l.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
      ioctlInt: l.func('ioctl', 'int', ['int', 'unsigned long', 'long']),
      syncfs: l.func('int syncfs(int fd)'),
      // Variadic too; an int third argument travels like a fixed one (see ioctl).
      fcntlInt: l.func('fcntl', 'int', ['int', 'int', 'int']),
      posixFadvise: l.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)'),
      mknod: optional('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
      copyFileRange: optional(
        'intptr_t copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)',
      ),
      renameat2: optional(
        'int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)',
      ),
      statx: optional('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)'),
    };
  } catch (e) {
    loadError = e;
  }
  return libc;
}

/** Why the native bindings are unavailable (undefined when they loaded or were not tried). */
export function nativeLoadError(): unknown {
  loadLibc();
  return loadError;
}

// ---------------------------------------------------------------------------
// Native Sys

const NUL = Buffer.from([0]);

/** A NUL-terminated C string for a path or name: strings go through as is (koffi encodes UTF-8). */
function cstr(p: PathLike, scratch: Buffer, what: string): CStr {
  checkPath(p, what);
  if (typeof p === 'string') return p;
  if (p.length < scratch.length) {
    p.copy(scratch);
    scratch[p.length] = 0;
    return scratch;
  }
  return Buffer.concat([p, NUL]);
}

function createNativeSys(c: Libc): Sys {
  const fallback = createFallbackSys();
  const pathA = Buffer.allocUnsafe(PATH_SCRATCH);
  const pathB = Buffer.allocUnsafe(PATH_SCRATCH);
  const nameBuf = Buffer.allocUnsafe(NAME_SCRATCH);
  const xattrBuf = Buffer.allocUnsafe(XATTR_FIRST_TRY);
  const times = Buffer.alloc(32);
  const word = Buffer.alloc(8);
  const cloneArgs = Buffer.alloc(32);
  const offIn = Buffer.alloc(8);
  const offOut = Buffer.alloc(8);
  const statxBuf = Buffer.alloc(STATX_BYTES);
  let fiemapBuf: Buffer | undefined;

  /** Run a call returning -1 on error, retrying EINTR; the errno on failure. */
  const call = (fn: () => number): number => {
    for (;;) {
      const r = fn();
      if (r !== -1) return r;
      const e = c.errno();
      if (e !== E.EINTR) return -e;
    }
  };

  const setTimes = (atime: Timespec, mtime: Timespec): Buffer => {
    times.writeBigInt64LE(atime.sec, 0);
    times.writeBigInt64LE(BigInt(atime.nsec), 8);
    times.writeBigInt64LE(mtime.sec, 16);
    times.writeBigInt64LE(BigInt(mtime.nsec), 24);
    return times;
  };

  /** An xattr call that reports a size: try the small scratch, then the exact size. */
  const sizedRead = (fn: (buf: Buffer | null, size: number) => number, syscall: string, path: PathLike): Buffer | number => {
    let r = call(() => fn(xattrBuf, xattrBuf.length));
    if (r >= 0) return Buffer.from(xattrBuf.subarray(0, r));
    for (let tries = 0; r === -E.ERANGE && tries < 8; tries++) {
      const size = call(() => fn(null, 0));
      if (size < 0) return size;
      const big = Buffer.allocUnsafe(size);
      r = call(() => fn(big, size));
      if (r >= 0) return big.subarray(0, r);
    }
    if (r === -E.ERANGE) throw sysError(E.ERANGE, syscall, path);
    return r;
  };

  const unsupported = (e: number) => e === -E.ENOTTY || e === -E.EOPNOTSUPP || e === -E.ENOSYS;

  /** BTRFS_IOC_SUBVOL_GETFLAGS; undefined when `fd` is no subvolume root (EINVAL on btrfs) or unsupported. */
  const subvolFlags = (fd: number): bigint | undefined => {
    word.fill(0);
    const r = call(() => c.ioctlPtr(fd, IOCTL.BTRFS_IOC_SUBVOL_GETFLAGS, word));
    if (r >= 0) return word.readBigUInt64LE(0);
    if (unsupported(r) || r === -E.EINVAL) return undefined;
    throw sysError(r, 'ioctl(BTRFS_IOC_SUBVOL_GETFLAGS)');
  };

  const fdIsOpen = (fd: number) => {
    try {
      fs.fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };

  const cloneResult = (r: number, syscall: string, srcFd: number, dstFd: number): boolean => {
    if (r >= 0) return true;
    if (r === -E.EXDEV || r === -E.EINVAL || unsupported(r)) return false;
    // EBADF is also how some kernels refuse a pair (dst opened O_APPEND,
    // src on another filesystem type); a descriptor that is not open at
    // all is a caller bug and throws.
    if (r === -E.EBADF && fdIsOpen(srcFd) && fdIsOpen(dstFd)) return false;
    throw sysError(r, syscall);
  };

  const sys: Sys = {
    native: true,

    lsetxattr(path, name, value) {
      const p = cstr(path, pathA, 'path');
      const n = cstr(name, nameBuf, 'name');
      const r = call(() => c.lsetxattr(p, n, value, value.length, 0));
      if (r < 0) throw sysError(r, 'lsetxattr', path);
    },

    lgetxattr(path, name) {
      const p = cstr(path, pathA, 'path');
      const n = cstr(name, nameBuf, 'name');
      const r = sizedRead((buf, size) => c.lgetxattr(p, n, buf, size), 'lgetxattr', path);
      if (typeof r !== 'number') return r;
      if (r === -E.ENODATA) return undefined;
      throw sysError(r, 'lgetxattr', path);
    },

    llistxattr(path) {
      const p = cstr(path, pathA, 'path');
      const r = sizedRead((buf, size) => c.llistxattr(p, buf, size), 'llistxattr', path);
      if (typeof r === 'number') throw sysError(r, 'llistxattr', path);
      const names: Buffer[] = [];
      let start = 0;
      while (start < r.length) {
        let end = r.indexOf(0, start);
        if (end < 0) end = r.length;
        if (end > start) names.push(r.subarray(start, end));
        start = end + 1;
      }
      return names;
    },

    lremovexattr(path, name) {
      const p = cstr(path, pathA, 'path');
      const n = cstr(name, nameBuf, 'name');
      const r = call(() => c.lremovexattr(p, n));
      if (r < 0) throw sysError(r, 'lremovexattr', path);
    },

    lutimens(path, atime, mtime) {
      checkTimespec(atime, 'utimensat', path);
      checkTimespec(mtime, 'utimensat', path);
      const p = cstr(path, pathA, 'path');
      const t = setTimes(atime, mtime);
      const r = call(() => c.utimensat(AT_FDCWD, p, t, AT_SYMLINK_NOFOLLOW));
      if (r < 0) throw sysError(r, 'utimensat', path);
    },

    futimens(fd, atime, mtime) {
      checkTimespec(atime, 'futimens');
      checkTimespec(mtime, 'futimens');
      const t = setTimes(atime, mtime);
      const r = call(() => c.futimens(fd, t));
      if (r < 0) throw sysError(r, 'futimens');
    },

    mknod(path, mode, rdev) {
      const mknod = c.mknod;
      if (!mknod) return fallback.mknod(path, mode, rdev);
      const p = cstr(path, pathA, 'path');
      const r = call(() => mknod(p, mode >>> 0, BigInt.asUintN(64, rdev)));
      if (r < 0) throw sysError(r, 'mknod', path);
    },

    fallocate(fd, mode, offset, len) {
      const r = call(() => c.fallocate(fd, mode, offset, len));
      if (r < 0) throw sysError(r, 'fallocate');
    },

    cloneRange(srcFd, srcOffset, len, dstFd, dstOffset) {
      cloneArgs.writeBigInt64LE(BigInt(srcFd), 0);
      cloneArgs.writeBigUInt64LE(srcOffset, 8);
      cloneArgs.writeBigUInt64LE(len, 16);
      cloneArgs.writeBigUInt64LE(dstOffset, 24);
      const r = call(() => c.ioctlPtr(dstFd, IOCTL.FICLONERANGE, cloneArgs));
      return cloneResult(r, 'ioctl(FICLONERANGE)', srcFd, dstFd);
    },

    cloneFile(srcFd, dstFd) {
      const r = call(() => c.ioctlInt(dstFd, IOCTL.FICLONE, srcFd));
      return cloneResult(r, 'ioctl(FICLONE)', srcFd, dstFd);
    },

    copyRange(srcFd, srcOffset, dstFd, dstOffset, len) {
      const cfr = c.copyFileRange;
      if (!cfr) return copyRangeByReadWrite(srcFd, srcOffset, dstFd, dstOffset, len);
      if (srcOffset < 0n || dstOffset < 0n || len < 0n) throw sysError('EINVAL', 'copy_file_range');
      offIn.writeBigInt64LE(srcOffset, 0);
      offOut.writeBigInt64LE(dstOffset, 0);
      let copied = 0n;
      while (copied < len) {
        const chunk = len - copied > BigInt(COPY_CHUNK) ? COPY_CHUNK : Number(len - copied);
        const r = call(() => cfr(srcFd, offIn, dstFd, offOut, chunk, 0));
        if (r === 0) break; // EOF
        if (r < 0) {
          // Kernels or filesystems that can't (cross-fs before 5.3 or
          // between different fs types since 5.19, FUSE, ...): plain copy.
          if (r === -E.EXDEV || unsupported(r)) {
            return copied + copyRangeByReadWrite(srcFd, srcOffset + copied, dstFd, dstOffset + copied, len - copied);
          }
          throw sysError(r, 'copy_file_range');
        }
        copied += BigInt(r);
      }
      return copied;
    },

    exchange(a, b) {
      const rename = c.renameat2;
      if (!rename) return fallback.exchange(a, b);
      const pa = cstr(a, pathA, 'path');
      const pb = cstr(b, pathB, 'dest');
      const r = call(() => rename(AT_FDCWD, pa, AT_FDCWD, pb, RENAME_EXCHANGE));
      if (r < 0) throw sysError(r, 'renameat2', a, b);
    },

    renameNoReplace(from, to) {
      const rename = c.renameat2;
      if (!rename) return renameNoReplaceByLink(from, to);
      const pa = cstr(from, pathA, 'path');
      const pb = cstr(to, pathB, 'dest');
      const r = call(() => rename(AT_FDCWD, pa, AT_FDCWD, pb, RENAME_NOREPLACE));
      if (r >= 0) return;
      // EINVAL: this filesystem lacks RENAME_NOREPLACE (the fallback
      // re-raises EINVAL for the other cause, a directory into itself).
      if (r === -E.EINVAL || r === -E.ENOSYS) return renameNoReplaceByLink(from, to);
      throw sysError(r, 'renameat2', from, to);
    },

    fiemap(fd, start, len) {
      if (start < 0n || len < 0n) throw sysError('EINVAL', 'ioctl(FS_IOC_FIEMAP)');
      const out: FiemapExtent[] = [];
      if (len === 0n) return out;
      const MAX = 0xffffffffffffffffn;
      const end = start + len > MAX ? MAX : start + len;
      fiemapBuf ??= Buffer.alloc(FIEMAP_HEADER_BYTES + FIEMAP_BATCH * FIEMAP_EXTENT_BYTES);
      const buf = fiemapBuf;
      let cur = start;
      while (cur < end) {
        buf.writeBigUInt64LE(cur, 0);
        buf.writeBigUInt64LE(end - cur, 8);
        buf.writeUInt32LE(FIEMAP_FLAG_SYNC, 16);
        buf.writeUInt32LE(0, 20);
        buf.writeUInt32LE(FIEMAP_BATCH, 24);
        buf.writeUInt32LE(0, 28);
        const r = call(() => c.ioctlPtr(fd, IOCTL.FS_IOC_FIEMAP, buf));
        if (r < 0) {
          if (unsupported(r)) return undefined;
          throw sysError(r, 'ioctl(FS_IOC_FIEMAP)');
        }
        const mapped = Math.min(buf.readUInt32LE(20), FIEMAP_BATCH);
        if (mapped === 0) break;
        let last: FiemapExtent | undefined;
        for (let i = 0; i < mapped; i++) {
          const o = FIEMAP_HEADER_BYTES + i * FIEMAP_EXTENT_BYTES;
          last = {
            logical: buf.readBigUInt64LE(o),
            physical: buf.readBigUInt64LE(o + 8),
            length: buf.readBigUInt64LE(o + 16),
            flags: buf.readUInt32LE(o + 40),
          };
          out.push(last);
        }
        if (!last || last.flags & FIEMAP_EXTENT_LAST) break;
        const next = last.logical + last.length;
        if (next <= cur) break; // no progress: never loop forever on a confused fs
        cur = next;
      }
      return out;
    },

    getFlags(fd) {
      word.fill(0);
      const r = call(() => c.ioctlPtr(fd, IOCTL.FS_IOC_GETFLAGS, word));
      if (r >= 0) return word.readUInt32LE(0);
      if (unsupported(r)) return undefined;
      throw sysError(r, 'ioctl(FS_IOC_GETFLAGS)');
    },

    setFlags(fd, flags) {
      word.fill(0);
      word.writeUInt32LE(flags >>> 0, 0);
      const r = call(() => c.ioctlPtr(fd, IOCTL.FS_IOC_SETFLAGS, word));
      if (r >= 0) return true;
      if (unsupported(r)) return false;
      throw sysError(r, 'ioctl(FS_IOC_SETFLAGS)');
    },

    btimeNs(path) {
      const statx = c.statx;
      if (!statx) return undefined;
      const p = cstr(path, pathA, 'path');
      const r = call(() => statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, statxBuf));
      if (r < 0) {
        if (r === -E.ENOSYS) return undefined;
        throw sysError(r, 'statx', path);
      }
      if ((statxBuf.readUInt32LE(0) & STATX_BTIME) === 0) return undefined;
      return statxTimeNs(statxBuf, STATX_OFFSET.btime);
    },

    statxAt: c.statx
      ? (dirfd, name, out) => {
          const n = cstr(name, nameBuf, 'name');
          for (;;) {
            // Called once per walked entry: no closure per call, unlike call().
            if (c.statx!(dirfd, n, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_BTIME, out) === 0) return;
            const e = c.errno();
            if (e !== E.EINTR) throw sysError(-e, 'statx', name);
          }
        }
      : undefined,

    inodeGeneration(fd) {
      word.fill(0);
      const r = call(() => c.ioctlPtr(fd, IOCTL.FS_IOC_GETVERSION, word));
      if (r >= 0) return BigInt(word.readUInt32LE(0));
      if (unsupported(r)) return undefined;
      throw sysError(r, 'ioctl(FS_IOC_GETVERSION)');
    },

    setReceivedSubvol(fd, uuid, stransid) {
      if (uuid.length !== 16) throw sysError(-E.EINVAL, 'ioctl(BTRFS_IOC_SET_RECEIVED_SUBVOL)');
      const args = Buffer.alloc(RECEIVED_SUBVOL_ARGS_BYTES);
      uuid.copy(args, 0);
      args.writeBigUInt64LE(stransid, 16);
      const r = call(() => c.ioctlPtr(fd, IOCTL.BTRFS_IOC_SET_RECEIVED_SUBVOL, args));
      if (r >= 0) return true;
      if (unsupported(r)) return false;
      throw sysError(r, 'ioctl(BTRFS_IOC_SET_RECEIVED_SUBVOL)');
    },

    subvolReadonly(fd) {
      const flags = subvolFlags(fd);
      return flags === undefined ? undefined : (flags & BTRFS_SUBVOL_RDONLY) !== 0n;
    },

    setSubvolReadonly(fd, on) {
      const flags = subvolFlags(fd);
      if (flags === undefined) return false;
      word.writeBigUInt64LE(on ? flags | BTRFS_SUBVOL_RDONLY : flags & ~BTRFS_SUBVOL_RDONLY, 0);
      const r = call(() => c.ioctlPtr(fd, IOCTL.BTRFS_IOC_SUBVOL_SETFLAGS, word));
      if (r >= 0) return true;
      throw sysError(r, 'ioctl(BTRFS_IOC_SUBVOL_SETFLAGS)');
    },

    syncfs(fd) {
      const r = call(() => c.syncfs(fd));
      if (r < 0) throw sysError(r, 'syncfs');
    },

    widenPipe(fd, bytes) {
      const r = call(() => c.fcntlInt(fd, F_SETPIPE_SZ, bytes));
      return r < 0 ? undefined : r;
    },

    readahead(fd, offset, len) {
      // The kernel starts at most one readahead window per call (max of the
      // device's read_ahead_kb and io size; 128 KiB on many disks), so a
      // longer range is hinted a window at a time.
      const end = offset + len;
      for (let at = offset; at < end; at += HINT_STEP) {
        const n = end - at < HINT_STEP ? end - at : HINT_STEP;
        if (c.posixFadvise(fd, at, n, POSIX_FADV_WILLNEED) !== 0) return false;
      }
      return true;
    },

    // Node's statfs gives f_bavail and f_bsize; Linux local filesystems
    // report f_frsize == f_bsize, so this equals statvfs's bavail * frsize.
    freeBytes: freeBytesByStatfs,
  };
  return sys;
}

// ---------------------------------------------------------------------------
// Entry points

export interface CreateSysOptions {
  /** true: native or throw; false: the fallback; undefined: native when it loads. */
  native?: boolean;
}

export function createSys(options: CreateSysOptions = {}): Sys {
  if (options.native === false) return createFallbackSys();
  const c = loadLibc();
  if (c) return createNativeSys(c);
  if (options.native === true) {
    throw new Error(`native syscall bindings unavailable: ${String((loadError as Error)?.message ?? loadError)}`, {
      cause: loadError,
    });
  }
  return createFallbackSys();
}

let shared: Sys | undefined;

/** The process-wide Sys: koffi loaded once; FERRY_NO_NATIVE=1 forces the fallback. */
export function sys(): Sys {
  shared ??= createSys(process.env.FERRY_NO_NATIVE === '1' ? { native: false } : {});
  return shared;
}

