/**
 * The portable implementation of `Sys`, used when koffi cannot be loaded (or
 * FERRY_NO_NATIVE=1), plus the errno-error and raw-path helpers that the
 * native implementation in ./linux.ts shares.
 *
 * Owns: turning errno numbers/names into Node-style errors, splitting raw
 * Buffer paths, and doing each syscall's job with what Node and the usual
 * Linux CLIs (getfattr/setfattr from `attr`, coreutils `touch` and `mknod`)
 * offer. It never runs a shell: every tool gets an argv array, and a file is
 * handed to a tool as an inherited descriptor (`/proc/self/fd/3`), never as a
 * path string, so raw non-UTF-8 names survive and a final symlink is never
 * followed (an O_PATH|O_NOFOLLOW descriptor of a symlink names the link
 * itself, and the kernel's jump through the /proc magic link stops there).
 *
 * Where the portable way is weaker than the syscall, the function says so:
 * - fallocate punches holes by writing zeros (the file loses sparseness);
 * - mknod sets permission bits exactly (the umask is not applied);
 * - renameNoReplace is atomic for non-directories (link + unlink) but only
 *   check-then-rename for directories (a racing creator can be replaced);
 * - exchange cannot be emulated atomically and throws ENOSYS;
 * - clone*, fiemap, getFlags, setFlags, btimeNs, inodeGeneration and the
 *   btrfs subvolume calls report "unsupported" (false / undefined);
 * - readahead gives no hint (false): reads then wait for the disk as they
 *   come;
 * - widenPipe leaves the pipe at its size (undefined), and there is no
 *   statxAt (the walker lstats paths instead).
 *
 * Invariant: every failure is an Error with Node's fields (code, errno,
 * syscall, path, dest), whichever way it was detected.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as util from 'node:util';
import type { FiemapExtent, PathLike, Sys, Timespec } from './linux';

// ---------------------------------------------------------------------------
// Errors

/** Errors thrown by Sys: the same fields Node's own fs errors carry. */
export interface SysError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(os.constants.errno)) {
  // EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK: keep the first (canonical) name.
  if (!ERRNO_NAMES.has(num)) ERRNO_NAMES.set(num, name);
}
/**
 * 95 is both ENOTSUP (Node's fs name) and EOPNOTSUPP (the name fallocate(2),
 * ioctl_ficlone(2), copy_file_range(2) and setxattr(2) document). These are
 * those calls, so it is EOPNOTSUPP here; code handling fs errors as well
 * should accept both.
 */
const EOPNOTSUPP = os.constants.errno.EOPNOTSUPP;
ERRNO_NAMES.set(EOPNOTSUPP, 'EOPNOTSUPP');
let systemErrorMap: Map<number, [string, string]> | undefined;

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `Unknown system error ${errno}`;
}

function errnoDescription(errno: number): string {
  if (errno === EOPNOTSUPP) return 'operation not supported';
  systemErrorMap ??= util.getSystemErrorMap();
  return systemErrorMap.get(-errno)?.[1] ?? 'unknown error';
}

/** Positive errno number for a name such as 'ENOENT' (EIO if unknown). */
export function errnoNumber(code: string): number {
  return (os.constants.errno as Record<string, number | undefined>)[code] ?? os.constants.errno.EIO;
}

/** Path as it appears in an error: Buffers decode as UTF-8, as in Node. */
function showPath(p: PathLike): string {
  return typeof p === 'string' ? p : p.toString('utf8');
}

/**
 * A Node-style errno error: message `CODE: description, syscall 'path' -> 'dest'`,
 * `.errno` negative as Node's, `.code` the errno name. Aliases collapse to
 * one name (ENOTSUP → 'EOPNOTSUPP', EWOULDBLOCK → 'EAGAIN').
 */
export function sysError(errno: number | string, syscall: string, path?: PathLike, dest?: PathLike): SysError {
  const num = typeof errno === 'number' ? Math.abs(errno) : errnoNumber(errno);
  const code = errnoName(num); // one name per number: 11 is 'EAGAIN', 95 'EOPNOTSUPP'
  let message = `${code}: ${errnoDescription(num)}, ${syscall}`;
  if (path !== undefined) message += ` '${showPath(path)}'`;
  if (dest !== undefined) message += ` -> '${showPath(dest)}'`;
  const err = new Error(message) as SysError;
  err.errno = -num;
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = showPath(path);
  if (dest !== undefined) err.dest = showPath(dest);
  return err;
}

/** Re-label an error thrown by a Node fs call as this module's syscall. */
function relabel(e: unknown, syscall: string, path?: PathLike, dest?: PathLike): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return sysError(code, syscall, path, dest);
  return e;
}

export function isCode(e: unknown, ...codes: string[]): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && codes.includes(code);
}

// ---------------------------------------------------------------------------
// Paths and timestamps

/** Reject a path that the kernel would silently truncate at a NUL byte. */
export function checkPath(p: PathLike, what = 'path'): void {
  if (typeof p === 'string' ? p.includes('\0') : p.includes(0)) {
    const err = new TypeError(`The argument '${what}' must be a string or Buffer without null bytes`) as TypeError & {
      code: string;
    };
    err.code = 'ERR_INVALID_ARG_VALUE';
    throw err;
  }
}

const SLASH = 0x2f;

/**
 * Split a path into its directory and last component, bytewise for Buffers.
 * Trailing slashes are ignored; a bare name has directory '.'.
 */
export function splitPath(p: PathLike): { dir: PathLike; base: PathLike } {
  const b = typeof p === 'string' ? Buffer.from(p) : p;
  let end = b.length;
  while (end > 1 && b[end - 1] === SLASH) end--;
  const slash = b.lastIndexOf(SLASH, end - 1);
  const dir = slash < 0 ? Buffer.from('.') : slash === 0 ? Buffer.from('/') : b.subarray(0, slash);
  const base = b.subarray(slash + 1, end);
  return typeof p === 'string' ? { dir: dir.toString(), base: base.toString() } : { dir, base };
}

/** `dir + '/' + name` in the path's own representation. */
function joinPath(dir: PathLike, name: string): PathLike {
  return typeof dir === 'string' ? `${dir}/${name}` : Buffer.concat([dir, Buffer.from(`/${name}`)]);
}

const NS_PER_SEC = 1_000_000_000;

export function checkTimespec(t: Timespec, syscall: string, path?: PathLike): void {
  if (typeof t.sec !== 'bigint' || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= NS_PER_SEC) {
    throw sysError('EINVAL', syscall, path);
  }
}

/** `@SEC.NNNNNNNNN` for `touch -d`, exact for negative times too (-1.5 s is sec -2, nsec 5e8). */
export function touchDate(t: Timespec): string {
  if (t.sec >= 0n || t.nsec === 0) {
    return `@${t.sec}.${String(t.nsec).padStart(9, '0')}`;
  }
  return `@-${-(t.sec + 1n)}.${String(NS_PER_SEC - t.nsec).padStart(9, '0')}`;
}

// ---------------------------------------------------------------------------
// Running tools on a descriptor

/** Linux O_PATH (the same on x86_64 and arm64); Node does not export it. */
const O_PATH = 0o10000000;
const FD_PATH = '/proc/self/fd/3';

/**
 * An O_PATH descriptor for `p` itself (a final symlink is not followed), or
 * with `directory`, for the directory `p` resolves to (a parent directory
 * of the real target, so symlinks are followed as the syscall would).
 */
function openPathFd(p: PathLike, syscall: string, directory = false): number {
  checkPath(p);
  try {
    return fs.openSync(p, O_PATH | (directory ? fs.constants.O_DIRECTORY : fs.constants.O_NOFOLLOW));
  } catch (e) {
    throw relabel(e, syscall, p);
  }
}

/** glibc strerror() texts the attr tools and coreutils print, to errno names. */
const STRERROR_CODES: Record<string, string> = {
  'No such attribute': 'ENODATA',
  'No data available': 'ENODATA',
  'Operation not supported': 'EOPNOTSUPP',
  'Operation not permitted': 'EPERM',
  'Permission denied': 'EACCES',
  'No such file or directory': 'ENOENT',
  'File exists': 'EEXIST',
  'No space left on device': 'ENOSPC',
  'Disk quota exceeded': 'EDQUOT',
  'Argument list too long': 'E2BIG',
  'Numerical result out of range': 'ERANGE',
  'Read-only file system': 'EROFS',
  'Invalid argument': 'EINVAL',
  'Not a directory': 'ENOTDIR',
  'Is a directory': 'EISDIR',
  'Too many levels of symbolic links': 'ELOOP',
  'File name too long': 'ENAMETOOLONG',
  'Bad file descriptor': 'EBADF',
  'Input/output error': 'EIO',
  'Function not implemented': 'ENOSYS',
};

function codeFromStderr(stderr: string): string {
  for (const line of stderr.split('\n').reverse()) {
    const i = line.lastIndexOf(': ');
    const text = (i >= 0 ? line.slice(i + 2) : line).trim();
    if (STRERROR_CODES[text]) return STRERROR_CODES[text];
  }
  return 'EIO';
}

interface ToolResult {
  stdout: Buffer;
}

/**
 * Run `cmd argv` with `fd` as the child's descriptor 3; throw a SysError
 * (code parsed from the tool's message) when it fails. A missing tool is
 * ENOSYS: the fallback cannot do this job on this machine.
 */
function runTool(
  cmd: string,
  args: string[],
  fd: number,
  syscall: string,
  path: PathLike | undefined,
  input?: Buffer,
): ToolResult {
  const r = spawnSync(cmd, args, {
    input,
    stdio: ['pipe', 'pipe', 'pipe', fd],
    env: { ...process.env, LC_ALL: 'C' },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    if (isCode(r.error, 'ENOENT')) {
      const err = sysError('ENOSYS', syscall, path);
      err.message += ` (the fallback needs the '${cmd}' command)`;
      throw err;
    }
    throw r.error;
  }
  if (r.status !== 0) {
    const stderr = r.stderr.toString();
    const err = sysError(codeFromStderr(stderr), syscall, path);
    err.message += ` (${cmd}: ${stderr.trim().split('\n').pop()})`;
    throw err;
  }
  return { stdout: r.stdout };
}

// ---------------------------------------------------------------------------
// xattr names in the attr tools' quoting (backslash + three octal digits)

const BACKSLASH = 0x5c;

/** Quote a raw xattr name for getfattr/setfattr: only printable ASCII other than `\` and `=` stays as is. */
export function quoteAttrName(name: Buffer): string {
  let out = '';
  for (const b of name) {
    if (b > 0x20 && b < 0x7f && b !== BACKSLASH && b !== 0x3d) out += String.fromCharCode(b);
    else out += '\\' + b.toString(8).padStart(3, '0');
  }
  return out;
}

/** Undo the tools' quoting on raw output bytes (`\ooo` → byte). */
export function unquoteAttrName(q: Buffer): Buffer {
  const out = Buffer.allocUnsafe(q.length);
  let n = 0;
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (c === BACKSLASH && i + 3 < q.length && isOctal(q[i + 1]) && isOctal(q[i + 2]) && isOctal(q[i + 3])) {
      out[n++] = ((q[i + 1] - 0x30) << 6) | ((q[i + 2] - 0x30) << 3) | (q[i + 3] - 0x30);
      i += 3;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

function isOctal(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x37;
}

/** Lines of getfattr output, raw, without the `# file:` header and blanks. */
function attrLines(stdout: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  while (start < stdout.length) {
    let end = stdout.indexOf(0x0a, start);
    if (end < 0) end = stdout.length;
    const line = stdout.subarray(start, end);
    if (line.length > 0 && line[0] !== 0x23 /* # */) lines.push(line);
    start = end + 1;
  }
  return lines;
}

/** Decode a `name=0xHEX` (or `name=""`, or bare `name`) line from `getfattr -e hex`. */
function parseAttrLine(line: Buffer): { name: Buffer; value: Buffer } {
  const eq = line.indexOf(0x3d);
  if (eq < 0) return { name: unquoteAttrName(line), value: Buffer.alloc(0) };
  const raw = line.subarray(eq + 1).toString('latin1');
  let value: Buffer;
  if (raw.startsWith('0x')) value = Buffer.from(raw.slice(2), 'hex');
  else if (raw.startsWith('0s')) value = Buffer.from(raw.slice(2), 'base64');
  else if (raw === '""') value = Buffer.alloc(0);
  else value = Buffer.from(raw.replace(/^"|"$/g, ''), 'latin1');
  return { name: unquoteAttrName(line.subarray(0, eq)), value };
}

// ---------------------------------------------------------------------------
// Shared pieces the native implementation reuses

let copyBuffer: Buffer | undefined;
const COPY_CHUNK = 1024 * 1024;

function toSafeNumber(v: bigint, syscall: string): number {
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw sysError('EINVAL', syscall);
  return Number(v);
}

/** pread/pwrite loop with one reused 1 MiB buffer; stops early at EOF. */
export function copyRangeByReadWrite(
  srcFd: number,
  srcOffset: bigint,
  dstFd: number,
  dstOffset: bigint,
  len: bigint,
): bigint {
  copyBuffer ??= Buffer.allocUnsafe(COPY_CHUNK);
  const buf = copyBuffer;
  let src = toSafeNumber(srcOffset, 'copy_file_range');
  let dst = toSafeNumber(dstOffset, 'copy_file_range');
  let left = toSafeNumber(len, 'copy_file_range');
  let copied = 0;
  while (left > 0) {
    let n: number;
    try {
      n = fs.readSync(srcFd, buf, 0, Math.min(left, buf.length), src);
    } catch (e) {
      throw relabel(e, 'pread');
    }
    if (n === 0) break;
    let off = 0;
    while (off < n) {
      try {
        off += fs.writeSync(dstFd, buf, off, n - off, dst + off);
      } catch (e) {
        throw relabel(e, 'pwrite');
      }
    }
    src += n;
    dst += n;
    left -= n;
    copied += n;
  }
  return BigInt(copied);
}

/** statfs through Node: f_bavail and f_blocks in f_bsize units (equal to f_frsize on Linux's local filesystems). */
export function freeBytesByStatfs(path: PathLike): { available: bigint; total: bigint } {
  checkPath(path);
  let st: fs.BigIntStatsFs;
  try {
    st = fs.statfsSync(path, { bigint: true });
  } catch (e) {
    throw relabel(e, 'statfs', path);
  }
  return { available: st.bavail * st.bsize, total: st.blocks * st.bsize };
}

/**
 * RENAME_NOREPLACE without renameat2: link + unlink for non-directories
 * (link fails with EEXIST atomically; a crash in between leaves both names,
 * and the inode's ctime changes), else lstat-check then rename — racy: a
 * name created between the check and the rename can be replaced.
 */
export function renameNoReplaceByLink(from: PathLike, to: PathLike): void {
  checkPath(from);
  checkPath(to);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(from);
  } catch (e) {
    throw relabel(e, 'rename', from, to);
  }
  if (!st.isDirectory()) {
    try {
      fs.linkSync(from, to);
    } catch (e) {
      // No hard links on this filesystem (or not allowed): use the racy way.
      if (!isCode(e, 'EPERM', 'EOPNOTSUPP', 'ENOTSUP', 'EMLINK', 'ENOSYS')) throw relabel(e, 'rename', from, to);
      checkThenRename(from, to);
      return;
    }
    try {
      fs.unlinkSync(from);
    } catch (e) {
      try {
        fs.unlinkSync(to);
      } catch {
        // Leave both names rather than hide the first error.
      }
      throw relabel(e, 'rename', from, to);
    }
    return;
  }
  checkThenRename(from, to);
}

function checkThenRename(from: PathLike, to: PathLike): void {
  let exists = true;
  try {
    fs.lstatSync(to);
  } catch (e) {
    if (!isCode(e, 'ENOENT')) throw relabel(e, 'rename', from, to);
    exists = false;
  }
  if (exists) throw sysError('EEXIST', 'rename', from, to);
  try {
    fs.renameSync(from, to);
  } catch (e) {
    throw relabel(e, 'rename', from, to);
  }
}

// ---------------------------------------------------------------------------
// mknod

const { S_IFMT, S_IFSOCK, S_IFREG, S_IFDIR, S_IFBLK, S_IFCHR, S_IFIFO } = fs.constants;

/** glibc's major()/minor() for a 64-bit dev_t. */
export function devMajorMinor(rdev: bigint): { major: bigint; minor: bigint } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { major, minor };
}

/** glibc's makedev(). */
export function makeDev(major: number | bigint, minor: number | bigint): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

let tmpCounter = 0;

function mknodByTools(path: PathLike, mode: number, rdev: bigint): void {
  checkPath(path);
  const type = mode & S_IFMT;
  const perm = mode & 0o7777;
  if (type === S_IFREG || type === 0) {
    try {
      fs.closeSync(fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, perm));
      fs.chmodSync(path, perm);
    } catch (e) {
      throw relabel(e, 'mknod', path);
    }
    return;
  }
  if (type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) {
    throw sysError(type === S_IFDIR ? 'EPERM' : 'EINVAL', 'mknod', path); // as the kernel's may_mknod()
  }
  // Create under a plain temporary name in the same directory, reached via
  // the directory's descriptor, then link it to the real (maybe raw-byte)
  // name: link gives mknod's EEXIST atomically.
  const { dir } = splitPath(path);
  const dirFd = openPathFd(dir, 'mknod', true);
  const tmpName = `.ferry-mknod-${process.pid}-${++tmpCounter}`;
  const tmpPath = joinPath(dir, tmpName);
  try {
    if (type === S_IFSOCK) {
      // No CLI makes a socket file; a child Node binds one and exits
      // without closing it, which leaves the socket inode in place.
      const script = `require('net').createServer().listen(${JSON.stringify(`${FD_PATH}/${tmpName}`)}, () => process.exit(0))`;
      runTool(process.execPath, ['-e', script], dirFd, 'mknod', path);
    } else {
      const args = ['-m', perm.toString(8), `${FD_PATH}/${tmpName}`, type === S_IFIFO ? 'p' : type === S_IFCHR ? 'c' : 'b'];
      if (type !== S_IFIFO) {
        const { major, minor } = devMajorMinor(rdev);
        args.push(String(major), String(minor));
      }
      runTool('mknod', args, dirFd, 'mknod', path);
    }
    try {
      fs.chmodSync(tmpPath, perm);
      fs.linkSync(tmpPath, path);
    } catch (e) {
      throw relabel(e, 'mknod', path);
    }
  } finally {
    fs.closeSync(dirFd);
    try {
      fs.unlinkSync(tmpPath);
    } catch {
      // Already gone (the tool failed before creating it).
    }
  }
}

// ---------------------------------------------------------------------------
// fallocate

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;
let zeroBuffer: Buffer | undefined;

function writeZeros(fd: number, from: number, to: number): void {
  zeroBuffer ??= Buffer.alloc(COPY_CHUNK);
  let pos = from;
  while (pos < to) {
    pos += fs.writeSync(fd, zeroBuffer, 0, Math.min(to - pos, zeroBuffer.length), pos);
  }
}

function fallocateByWrites(fd: number, mode: number, offset: bigint, len: bigint): void {
  if (offset < 0n || len <= 0n) throw sysError('EINVAL', 'fallocate');
  const start = toSafeNumber(offset, 'fallocate');
  const end = toSafeNumber(offset + len, 'fallocate');
  try {
    const size = fs.fstatSync(fd).size;
    const keep = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
    switch (mode) {
      case 0:
        // Reserve space: only the size is emulated, blocks stay unallocated.
        if (end > size) fs.ftruncateSync(fd, end);
        return;
      case FALLOC_FL_KEEP_SIZE:
        return;
      case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
        // Zeros instead of a hole: same contents, but the blocks stay allocated.
        writeZeros(fd, start, Math.min(end, size));
        return;
      case FALLOC_FL_ZERO_RANGE:
      case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
        writeZeros(fd, start, keep ? Math.min(end, size) : end);
        return;
      default:
        throw sysError('EOPNOTSUPP', 'fallocate');
    }
  } catch (e) {
    throw relabel(e, 'fallocate');
  }
}

// ---------------------------------------------------------------------------
// The fallback Sys

export function createFallbackSys(): Sys {
  const unsupportedFiemap = (): FiemapExtent[] | undefined => undefined;
  return {
    native: false,

    lsetxattr(path, name, value) {
      checkPath(name, 'name');
      const fd = openPathFd(path, 'lsetxattr');
      try {
        const line = `${quoteAttrName(name)}=${value.length === 0 ? '""' : `0x${value.toString('hex')}`}\n`;
        runTool('setfattr', ['--restore=-'], fd, 'lsetxattr', path, Buffer.from(`# file: ${FD_PATH}\n${line}`));
      } finally {
        fs.closeSync(fd);
      }
    },

    lgetxattr(path, name) {
      checkPath(name, 'name');
      const fd = openPathFd(path, 'lgetxattr');
      try {
        // getfattr -n takes the name verbatim (no unquoting), and argv can
        // only carry valid UTF-8 from Node: other names are found in a dump.
        const plain = name.toString('utf8');
        if (Buffer.from(plain).equals(name)) {
          const args = ['--absolute-names', '-e', 'hex', '-n', plain, FD_PATH];
          const line = attrLines(runTool('getfattr', args, fd, 'lgetxattr', path).stdout)[0];
          return line === undefined ? Buffer.alloc(0) : parseAttrLine(line).value;
        }
        const args = ['--absolute-names', '-d', '-m', '-', '-e', 'hex', FD_PATH];
        for (const line of attrLines(runTool('getfattr', args, fd, 'lgetxattr', path).stdout)) {
          const attr = parseAttrLine(line);
          if (attr.name.equals(name)) return attr.value;
        }
        return undefined;
      } catch (e) {
        if (isCode(e, 'ENODATA')) return undefined;
        throw e;
      } finally {
        fs.closeSync(fd);
      }
    },

    llistxattr(path) {
      const fd = openPathFd(path, 'llistxattr');
      try {
        const { stdout } = runTool('getfattr', ['--absolute-names', '-m', '-', FD_PATH], fd, 'llistxattr', path);
        return attrLines(stdout).map((l) => unquoteAttrName(l));
      } finally {
        fs.closeSync(fd);
      }
    },

    lremovexattr(path, name) {
      checkPath(name, 'name');
      const fd = openPathFd(path, 'lremovexattr');
      try {
        runTool('setfattr', ['-x', quoteAttrName(name), FD_PATH], fd, 'lremovexattr', path);
      } finally {
        fs.closeSync(fd);
      }
    },

    lutimens(path, atime, mtime) {
      checkTimespec(atime, 'utimensat', path);
      checkTimespec(mtime, 'utimensat', path);
      const fd = openPathFd(path, 'utimensat');
      try {
        touchFd(fd, atime, mtime, path);
      } finally {
        fs.closeSync(fd);
      }
    },

    futimens(fd, atime, mtime) {
      checkTimespec(atime, 'futimens');
      checkTimespec(mtime, 'futimens');
      try {
        fs.fstatSync(fd);
      } catch (e) {
        throw relabel(e, 'futimens');
      }
      touchFd(fd, atime, mtime, undefined);
    },

    mknod: mknodByTools,
    fallocate: fallocateByWrites,
    cloneRange: () => false,
    cloneFile: () => false,
    copyRange: copyRangeByReadWrite,

    exchange(a, b) {
      const err = sysError('ENOSYS', 'renameat2', a, b);
      err.message += ' (RENAME_EXCHANGE needs the native bindings; there is no atomic fallback)';
      throw err;
    },

    renameNoReplace: renameNoReplaceByLink,
    fiemap: unsupportedFiemap,
    getFlags: () => undefined,
    setFlags: () => false,
    btimeNs: () => undefined,
    inodeGeneration: () => undefined,
    setReceivedSubvol: () => false,
    subvolReadonly: () => undefined,
    setSubvolReadonly: () => false,

    syncfs(fd) {
      try {
        fs.fsyncSync(fd);
      } catch (e) {
        throw relabel(e, 'syncfs');
      }
    },

    widenPipe: () => undefined,
    readahead: () => false,
    freeBytes: freeBytesByStatfs,
  };
}

/**
 * Set times through coreutils touch on /proc/self/fd/3 (nanoseconds survive
 * `-d @SEC.NSEC`). `-c` never creates; one call when atime equals mtime,
 * else `-a` then `-m`.
 */
function touchFd(fd: number, atime: Timespec, mtime: Timespec, path: PathLike | undefined): void {
  const a = touchDate(atime);
  const m = touchDate(mtime);
  if (a === m) {
    runTool('touch', ['-c', '-d', a, FD_PATH], fd, 'utimensat', path);
    return;
  }
  runTool('touch', ['-c', '-a', '-d', a, FD_PATH], fd, 'utimensat', path);
  runTool('touch', ['-c', '-m', '-d', m, FD_PATH], fd, 'utimensat', path);
}
