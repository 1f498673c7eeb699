/**
 * Every Sys function, natively (koffi) and through the portable fallback:
 * generic behaviour on a directory under os.tmpdir(), filesystem-specific
 * behaviour (reflink, FIEMAP sharing, inode generation, big xattrs) on loop
 * mounts of XFS, btrfs, ext4 and tmpfs.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  FIEMAP_BATCH,
  FIEMAP_EXTENT_LAST,
  FIEMAP_EXTENT_SHARED,
  FS_IMMUTABLE_FL,
  FS_NODUMP_FL,
  IOCTL,
  Sys,
  Timespec,
  createSys,
  ioc,
  sys,
} from '../../../src/sys/linux';
import {
  devMajorMinor,
  makeDev,
  quoteAttrName,
  splitPath,
  sysError,
  touchDate,
  unquoteAttrName,
} from '../../../src/sys/fallback';
import { spawnSync } from 'node:child_process';
import { describeLoopFs, loopFsTest, realFsRequired, withLoopFs } from '../../helpers/loopfs';

const native = createSys({ native: true });
const fallback = createSys({ native: false });
const isRoot = process.getuid?.() === 0;
/** Root-only tests skip (saying so) when not root, and fail instead under FERRY_REQUIRE_REAL_FS=1. */
const rootTest = (name: string, fn: () => void): void => {
  if (isRoot) test(name, fn);
  else if (!realFsRequired()) test.skip(`${name} [skipped: needs root]`, fn);
  else {
    test(name, () => {
      throw new Error('needs root (FERRY_REQUIRE_REAL_FS=1 makes this a failure)');
    });
  }
};

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFREG = 0o100000;
const S_IFSOCK = 0o140000;
const S_IFDIR = 0o040000;

const b = (s: string) => Buffer.from(s);
const ts = (sec: bigint, nsec: number): Timespec => ({ sec, nsec });
const ns = (t: Timespec) => t.sec * 1_000_000_000n + BigInt(t.nsec);
const lstatBig = (p: fs.PathLike) => fs.lstatSync(p, { bigint: true });
/** A raw-byte path under `dir`: `name-<0xff>.suffix`, not valid UTF-8. */
const rawPath = (dir: string, suffix: string) => Buffer.concat([b(`${dir}/raw-`), Buffer.from([0xff, 0xfe]), b(suffix)]);

function expectSysError(fn: () => unknown, code: string, syscall?: string, p?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(Error);
  const err = caught as NodeJS.ErrnoException;
  expect(err.code).toBe(code);
  expect(err.errno).toBe(-(os.constants.errno as Record<string, number>)[code]);
  expect(err.message.startsWith(`${code}: `)).toBe(true);
  if (syscall) expect(err.syscall).toBe(syscall);
  if (p !== undefined) expect(err.path).toBe(p);
}

function withFd<T>(p: fs.PathLike, flags: string | number, fn: (fd: number) => T): T {
  const fd = fs.openSync(p, flags);
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

let tmp = '';
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sys-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('module', () => {
  test('native bindings load here, the fallback is a separate implementation', () => {
    expect(native.native).toBe(true);
    expect(fallback.native).toBe(false);
  });

  test('sys() is created once and FERRY_NO_NATIVE=1 forces the fallback', () => {
    expect(sys()).toBe(sys());
    const saved = process.env.FERRY_NO_NATIVE;
    try {
      process.env.FERRY_NO_NATIVE = '1';
      jest.isolateModules(() => {
        const fresh = require('../../../src/sys/linux') as typeof import('../../../src/sys/linux');
        expect(fresh.sys().native).toBe(false);
      });
      delete process.env.FERRY_NO_NATIVE;
      jest.isolateModules(() => {
        const fresh = require('../../../src/sys/linux') as typeof import('../../../src/sys/linux');
        expect(fresh.sys().native).toBe(true);
      });
    } finally {
      if (saved === undefined) delete process.env.FERRY_NO_NATIVE;
      else process.env.FERRY_NO_NATIVE = saved;
    }
  });

  test('without koffi: createSys() falls back, createSys({native: true}) throws, the reason is kept', () => {
    jest.isolateModules(() => {
      jest.doMock('koffi', () => {
        throw new Error('no prebuilt binary for this platform');
      });
      try {
        const fresh = require('../../../src/sys/linux') as typeof import('../../../src/sys/linux');
        expect(fresh.createSys().native).toBe(false);
        expect(() => fresh.createSys({ native: true })).toThrow(/native syscall bindings unavailable: no prebuilt binary/);
        expect(String(fresh.nativeLoadError())).toMatch(/no prebuilt binary/);
      } finally {
        jest.dontMock('koffi');
      }
    });
  });

  test('errors look like Node fs errors, aliases included', () => {
    const missing = path.join(tmp, 'missing');
    let nodeErr: NodeJS.ErrnoException | undefined;
    try {
      fs.lstatSync(missing);
    } catch (e) {
      nodeErr = e as NodeJS.ErrnoException;
    }
    const err = sysError(2, 'lstat', missing);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe(nodeErr!.message);
    expect({ code: err.code, errno: err.errno, syscall: err.syscall, path: err.path }).toEqual({
      code: nodeErr!.code,
      errno: nodeErr!.errno,
      syscall: nodeErr!.syscall,
      path: nodeErr!.path,
    });
    // 95 carries the name the syscalls' man pages use (Node's fs says ENOTSUP).
    expect(sysError('ENOTSUP', 'fallocate').code).toBe('EOPNOTSUPP');
    expect(sysError(-95, 'fallocate').message).toBe('EOPNOTSUPP: operation not supported, fallocate');
    expect(sysError('EWOULDBLOCK', 'flock').code).toBe('EAGAIN');
    expect(sysError('EXDEV', 'renameat2', 'a', Buffer.from('b')).message).toBe(
      "EXDEV: cross-device link not permitted, renameat2 'a' -> 'b'",
    );
  });

  test('ioctl numbers match the kernel _IOC encoding', () => {
    expect(IOCTL.FICLONE).toBe(ioc('w', 0x94, 9, 4));
    expect(IOCTL.FICLONERANGE).toBe(ioc('w', 0x94, 13, 32));
    expect(IOCTL.FS_IOC_FIEMAP).toBe(ioc('rw', 0x66, 11, 32));
    expect(IOCTL.FS_IOC_GETFLAGS).toBe(ioc('r', 0x66, 1, 8));
    expect(IOCTL.FS_IOC_SETFLAGS).toBe(ioc('w', 0x66, 2, 8));
    expect(IOCTL.FS_IOC_GETVERSION).toBe(ioc('r', 0x76, 1, 8));
    expect(IOCTL.BTRFS_IOC_SET_RECEIVED_SUBVOL).toBe(ioc('rw', 0x94, 37, 200));
    expect(IOCTL.BTRFS_IOC_SUBVOL_GETFLAGS).toBe(ioc('r', 0x94, 25, 8));
    expect(IOCTL.BTRFS_IOC_SUBVOL_SETFLAGS).toBe(ioc('w', 0x94, 26, 8));
  });

  test('fallback helpers: touch dates, attr quoting, dev_t, raw path split', () => {
    expect(touchDate(ts(1234567890n, 5))).toBe('@1234567890.000000005');
    expect(touchDate(ts(-2n, 500_000_000))).toBe('@-1.500000000');
    expect(touchDate(ts(-1n, 1))).toBe('@-0.999999999');
    expect(touchDate(ts(-3n, 0))).toBe('@-3.000000000');
    const every = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
    expect(unquoteAttrName(b(quoteAttrName(every)))).toEqual(every);
    expect(quoteAttrName(b('user.a=b\\c d'))).toBe('user.a\\075b\\134c\\040d');
    for (const [ma, mi] of [[1, 3], [7, 0], [300, 70000], [4095, 1048575], [0x12345, 0xabcdef01]]) {
      const dev = makeDev(ma, mi);
      expect(devMajorMinor(dev)).toEqual({ major: BigInt(ma), minor: BigInt(mi) });
    }
    expect(makeDev(8, 1)).toBe(0x801n);
    expect(splitPath('/a/b/c')).toEqual({ dir: '/a/b', base: 'c' });
    expect(splitPath('c')).toEqual({ dir: '.', base: 'c' });
    expect(splitPath('/c/')).toEqual({ dir: '/', base: 'c' });
    const raw = Buffer.from([0x2f, 0x78, 0x2f, 0xff, 0x2f]);
    expect(splitPath(raw)).toEqual({ dir: Buffer.from([0x2f, 0x78]), base: Buffer.from([0xff]) });
  });
});

describe.each([
  ['native', native],
  ['fallback', fallback],
] as Array<[string, Sys]>)('%s', (mode, s) => {
  const isNative = mode === 'native';

  describe('xattrs', () => {
    test('set, get, list and remove binary values, empty values included', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      s.lsetxattr(f, b('user.bin'), all);
      s.lsetxattr(f, b('user.empty'), Buffer.alloc(0));
      s.lsetxattr(f, b('user.text'), b('hello'));
      expect(s.lgetxattr(f, b('user.bin'))).toEqual(all);
      expect(s.lgetxattr(f, b('user.empty'))).toEqual(Buffer.alloc(0));
      expect(s.lgetxattr(f, b('user.text'))).toEqual(b('hello'));
      s.lsetxattr(f, b('user.text'), b('replaced'));
      expect(s.lgetxattr(f, b('user.text'))).toEqual(b('replaced'));
      const names = s.llistxattr(f).map((n) => n.toString('latin1'));
      expect(names).toEqual(expect.arrayContaining(['user.bin', 'user.empty', 'user.text']));
      s.lremovexattr(f, b('user.bin'));
      expect(s.lgetxattr(f, b('user.bin'))).toBeUndefined();
      expect(s.llistxattr(f).map(String)).not.toContain('user.bin');
    });

    test('names with any byte survive (and agree with the other implementation)', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      const name = Buffer.concat([b('user.'), Buffer.from(Array.from({ length: 200 }, (_, i) => (i % 255) + 1))]);
      const value = randomBytes(100);
      s.lsetxattr(f, name, value);
      expect(s.llistxattr(f)).toContainEqual(name);
      expect(s.lgetxattr(f, name)).toEqual(value);
      const other = isNative ? fallback : native;
      expect(other.lgetxattr(f, name)).toEqual(value);
      s.lremovexattr(f, name);
      expect(other.llistxattr(f)).not.toContainEqual(name);
      // Valid UTF-8 with the characters the attr tools quote: `\`, `=`, newline, space.
      const utf8 = b('user.a\\b=c\nd é');
      s.lsetxattr(f, utf8, b('u'));
      expect(s.lgetxattr(f, utf8)).toEqual(b('u'));
      expect(other.lgetxattr(f, utf8)).toEqual(b('u'));
      expect(s.llistxattr(f)).toEqual([utf8]);
      s.lremovexattr(f, utf8);
      expect(other.llistxattr(f)).toEqual([]);
    });

    test('a value of 3000 bytes and a raw (non-UTF-8) path', () => {
      const p = rawPath(tmp, '.x');
      fs.writeFileSync(p, 'x');
      const v = randomBytes(3000);
      s.lsetxattr(p, b('user.big'), v);
      expect(s.lgetxattr(p, b('user.big'))).toEqual(v);
      expect(s.llistxattr(p)).toContainEqual(b('user.big'));
      s.lremovexattr(p, b('user.big'));
      expect(s.llistxattr(p)).toEqual([]);
    });

    test('missing names and files: undefined, ENODATA, ENOENT', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      expect(s.lgetxattr(f, b('user.none'))).toBeUndefined();
      expect(s.llistxattr(f)).toEqual([]);
      expectSysError(() => s.lremovexattr(f, b('user.none')), 'ENODATA', 'lremovexattr', f);
      const missing = path.join(tmp, 'missing');
      expectSysError(() => s.lgetxattr(missing, b('user.a')), 'ENOENT', 'lgetxattr', missing);
      expectSysError(() => s.lsetxattr(missing, b('user.a'), b('v')), 'ENOENT', 'lsetxattr', missing);
      expectSysError(() => s.llistxattr(missing), 'ENOENT', 'llistxattr', missing);
      expectSysError(() => s.lremovexattr(missing, b('user.a')), 'ENOENT', 'lremovexattr', missing);
    });

    test('a symlink is never followed', () => {
      const target = path.join(tmp, 'target');
      const link = path.join(tmp, 'link');
      fs.writeFileSync(target, 'x');
      fs.symlinkSync('target', link);
      // user.* xattrs are not allowed on symlinks: proof the link itself was addressed.
      expectSysError(() => s.lsetxattr(link, b('user.a'), b('v')), 'EPERM', 'lsetxattr', link);
      expect(s.llistxattr(target)).toEqual([]);
      if (!isRoot) return;
      s.lsetxattr(link, b('trusted.on-link'), b('L'));
      expect(s.lgetxattr(link, b('trusted.on-link'))).toEqual(b('L'));
      expect(s.lgetxattr(target, b('trusted.on-link'))).toBeUndefined();
      expect(s.llistxattr(link)).toContainEqual(b('trusted.on-link'));
      s.lremovexattr(link, b('trusted.on-link'));
      expect(s.llistxattr(link)).not.toContainEqual(b('trusted.on-link'));
    });

    test('a NUL inside a path or name is refused, never truncated', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      expect(() => s.lsetxattr(`${f}\0junk`, b('user.a'), b('v'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      expect(() => s.lsetxattr(f, b('user.a\0b'), b('v'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      expect(() => s.lutimens(Buffer.concat([b(f), Buffer.from([0])]), ts(0n, 0), ts(0n, 0))).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
      );
    });
  });

  describe('times', () => {
    test('lutimens keeps nanoseconds and sets atime and mtime separately', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      const atime = ts(1_234_567_890n, 123_456_789);
      const mtime = ts(1_600_000_000n, 987_654_321);
      s.lutimens(f, atime, mtime);
      const st = lstatBig(f);
      expect(st.atimeNs).toBe(ns(atime));
      expect(st.mtimeNs).toBe(ns(mtime));
      s.lutimens(f, mtime, mtime);
      expect(lstatBig(f).atimeNs).toBe(ns(mtime));
    });

    test('lutimens on a symlink changes the link, not its target', () => {
      const target = path.join(tmp, 'target');
      const link = path.join(tmp, 'link');
      fs.writeFileSync(target, 'x');
      fs.symlinkSync('target', link);
      const before = lstatBig(target);
      const t = ts(1_000_000_000n, 1);
      s.lutimens(link, ts(1_000_000_001n, 2), t);
      expect(lstatBig(link).mtimeNs).toBe(ns(t));
      expect(lstatBig(link).atimeNs).toBe(1_000_000_001_000_000_002n);
      const after = lstatBig(target);
      expect(after.mtimeNs).toBe(before.mtimeNs);
      expect(after.atimeNs).toBe(before.atimeNs);
      const dangling = path.join(tmp, 'dangling');
      fs.symlinkSync('nowhere', dangling);
      s.lutimens(dangling, t, t);
      expect(lstatBig(dangling).mtimeNs).toBe(ns(t));
      expect(fs.existsSync(path.join(tmp, 'nowhere'))).toBe(false);
    });

    test('lutimens before 1970 and on a raw path', () => {
      const p = rawPath(tmp, '.t');
      fs.writeFileSync(p, 'x');
      const t = ts(-2n, 500_000_000); // -1.5 s
      s.lutimens(p, t, t);
      expect(lstatBig(p).mtimeNs).toBe(-1_500_000_000n);
      expect(lstatBig(p).atimeNs).toBe(-1_500_000_000n);
    });

    test('lutimens errors: ENOENT, and EINVAL for nanoseconds out of range', () => {
      const missing = path.join(tmp, 'missing');
      expectSysError(() => s.lutimens(missing, ts(0n, 0), ts(0n, 0)), 'ENOENT', 'utimensat', missing);
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      expectSysError(() => s.lutimens(f, ts(0n, 1_000_000_000), ts(0n, 0)), 'EINVAL');
      expectSysError(() => s.lutimens(f, ts(0n, -1), ts(0n, 0)), 'EINVAL');
    });

    test('futimens keeps nanoseconds; EBADF on a closed descriptor', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      const atime = ts(1_700_000_000n, 111_111_111);
      const mtime = ts(1_700_000_001n, 999_999_999);
      withFd(f, 'r+', (fd) => s.futimens(fd, atime, mtime));
      expect(lstatBig(f).atimeNs).toBe(ns(atime));
      expect(lstatBig(f).mtimeNs).toBe(ns(mtime));
      const fd = fs.openSync(f, 'r');
      fs.closeSync(fd);
      expectSysError(() => s.futimens(fd, atime, mtime), 'EBADF', 'futimens');
    });
  });

  describe('mknod', () => {
    test('fifo, regular file and socket, with permissions; EEXIST', () => {
      const fifo = path.join(tmp, 'fifo');
      s.mknod(fifo, S_IFIFO | 0o640, 0n);
      expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
      // The syscall applies the umask; the fallback sets the bits exactly.
      expect(fs.lstatSync(fifo).mode & 0o777).toBe(isNative ? 0o640 & ~currentUmask() : 0o640);
      const reg = path.join(tmp, 'reg');
      s.mknod(reg, S_IFREG | 0o600, 0n);
      expect(fs.lstatSync(reg).isFile()).toBe(true);
      const sock = path.join(tmp, 'sock');
      s.mknod(sock, S_IFSOCK | 0o600, 0n);
      expect(fs.lstatSync(sock).isSocket()).toBe(true);
      expect(fs.lstatSync(sock).mode & 0o777).toBe(0o600);
      expectSysError(() => s.mknod(fifo, S_IFIFO | 0o600, 0n), 'EEXIST', 'mknod', fifo);
      expectSysError(() => s.mknod(path.join(tmp, 'nodir', 'x'), S_IFIFO | 0o600, 0n), 'ENOENT', 'mknod');
      expectSysError(() => s.mknod(path.join(tmp, 'd'), S_IFDIR | 0o700, 0n), 'EPERM', 'mknod');
    });

    test('through a symlinked parent directory, never replacing a final symlink', () => {
      fs.mkdirSync(path.join(tmp, 'real'));
      fs.symlinkSync('real', path.join(tmp, 'via'));
      s.mknod(path.join(tmp, 'via', 'fifo'), S_IFIFO | 0o600, 0n);
      expect(fs.lstatSync(path.join(tmp, 'real', 'fifo')).isFIFO()).toBe(true);
      fs.symlinkSync('nowhere', path.join(tmp, 'dangling'));
      expectSysError(() => s.mknod(path.join(tmp, 'dangling'), S_IFIFO | 0o600, 0n), 'EEXIST', 'mknod');
      expect(fs.existsSync(path.join(tmp, 'nowhere'))).toBe(false);
    });

    test('a fifo at a raw path', () => {
      const p = rawPath(tmp, '.fifo');
      s.mknod(p, S_IFIFO | 0o600, 0n);
      expect(fs.lstatSync(p).isFIFO()).toBe(true);
      expect(fs.readdirSync(tmp, { encoding: 'buffer' })).toEqual([p.subarray(tmp.length + 1)]);
    });

    rootTest('character and block devices keep their rdev', () => {
      const cases: Array<[string, number, bigint]> = [
        ['null', S_IFCHR | 0o666, makeDev(1, 3)],
        ['big', S_IFCHR | 0o600, makeDev(300, 70000)],
        ['loop', S_IFBLK | 0o660, makeDev(7, 0)],
      ];
      for (const [name, mode, rdev] of cases) {
        const p = path.join(tmp, name);
        s.mknod(p, mode, rdev);
        const st = lstatBig(p);
        expect(Number(st.mode) & 0o170000).toBe(mode & 0o170000);
        expect(st.rdev).toBe(rdev);
      }
    });
  });

  describe('data', () => {
    test('fallocate punch (mode 3) zeroes the range and keeps the size; mode 0 extends', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, Buffer.alloc(1 << 20, 0x55));
      withFd(f, 'r+', (fd) => {
        s.fallocate(fd, 3, 256n * 1024n, 512n * 1024n);
        s.fallocate(fd, 3, 1n << 20n, 4096n); // past EOF: nothing, size kept
      });
      const data = fs.readFileSync(f);
      expect(data.length).toBe(1 << 20);
      expect(data.subarray(0, 256 * 1024).every((x) => x === 0x55)).toBe(true);
      expect(data.subarray(256 * 1024, 768 * 1024).every((x) => x === 0)).toBe(true);
      expect(data.subarray(768 * 1024).every((x) => x === 0x55)).toBe(true);
      withFd(f, 'r+', (fd) => s.fallocate(fd, 0, 0n, 2n << 20n));
      expect(fs.statSync(f).size).toBe(2 << 20);
      withFd(f, 'r', (fd) => expectSysError(() => s.fallocate(fd, 3, 0n, 4096n), 'EBADF'));
      withFd(f, 'r+', (fd) => expectSysError(() => s.fallocate(fd, 3, 0n, 0n), 'EINVAL', 'fallocate'));
    });

    test('copyRange copies between offsets and stops at EOF', () => {
      const src = path.join(tmp, 'src');
      const dst = path.join(tmp, 'dst');
      const data = randomBytes(3 * 1024 * 1024 + 123);
      fs.writeFileSync(src, data);
      fs.writeFileSync(dst, Buffer.alloc(10, 0xaa));
      withFd(src, 'r', (sfd) =>
        withFd(dst, 'r+', (dfd) => {
          expect(s.copyRange(sfd, 1000n, dfd, 5000n, 2_500_000n)).toBe(2_500_000n);
          expect(s.copyRange(sfd, BigInt(data.length - 10), dfd, 0n, 100n)).toBe(10n);
          expect(s.copyRange(sfd, BigInt(data.length), dfd, 0n, 100n)).toBe(0n);
          expect(s.copyRange(sfd, 0n, dfd, 0n, 0n)).toBe(0n);
        }),
      );
      const out = fs.readFileSync(dst);
      expect(out.length).toBe(5000 + 2_500_000);
      expect(out.subarray(0, 10)).toEqual(data.subarray(data.length - 10));
      expect(out.subarray(5000).equals(data.subarray(1000, 1000 + 2_500_000))).toBe(true);
      withFd(dst, 'r+', (dfd) => {
        const closed = fs.openSync(src, 'r');
        fs.closeSync(closed);
        expectSysError(() => s.copyRange(closed, 0n, dfd, 0n, 10n), 'EBADF');
      });
    });

    test('cloneFile and cloneRange answer with a boolean (the fallback never clones)', () => {
      const src = path.join(tmp, 'src');
      const dst = path.join(tmp, 'dst');
      fs.writeFileSync(src, randomBytes(8192));
      withFd(src, 'r', (sfd) =>
        withFd(dst, 'w+', (dfd) => {
          const whole = s.cloneFile(sfd, dfd);
          const range = s.cloneRange(sfd, 0n, 4096n, dfd, 0n);
          expect(typeof whole).toBe('boolean');
          expect(typeof range).toBe('boolean');
          if (!isNative) expect([whole, range]).toEqual([false, false]);
          if (whole) expect(fs.readFileSync(dst)).toEqual(fs.readFileSync(src));
        }),
      );
    });

    test('syncfs succeeds on an open file and throws EBADF on a closed one', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      withFd(f, 'r', (fd) => s.syncfs(fd));
      const fd = fs.openSync(f, 'r');
      fs.closeSync(fd);
      expectSysError(() => s.syncfs(fd), 'EBADF', 'syncfs');
    });
  });

  describe('renames', () => {
    test('exchange swaps a file and a directory atomically, or throws ENOSYS without touching them', () => {
      const a = path.join(tmp, 'a');
      const d = path.join(tmp, 'd');
      fs.writeFileSync(a, 'A');
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'inside'), 'I');
      if (isNative) {
        s.exchange(a, d);
        expect(fs.readFileSync(path.join(a, 'inside'), 'utf8')).toBe('I');
        expect(fs.readFileSync(d, 'utf8')).toBe('A');
        expectSysError(() => s.exchange(a, path.join(tmp, 'missing')), 'ENOENT', 'renameat2', a);
      } else {
        expectSysError(() => s.exchange(a, d), 'ENOSYS', 'renameat2', a);
        expect(fs.readFileSync(a, 'utf8')).toBe('A');
        expect(fs.lstatSync(d).isDirectory()).toBe(true);
      }
    });

    test('renameNoReplace moves files, links and directories but never replaces', () => {
      const a = path.join(tmp, 'a');
      const b2 = path.join(tmp, 'b');
      fs.writeFileSync(a, 'A');
      fs.writeFileSync(b2, 'B');
      expectSysError(() => s.renameNoReplace(a, b2), 'EEXIST', undefined, a);
      expect(fs.readFileSync(a, 'utf8')).toBe('A');
      expect(fs.readFileSync(b2, 'utf8')).toBe('B');
      const c = path.join(tmp, 'c');
      s.renameNoReplace(a, c);
      expect(fs.existsSync(a)).toBe(false);
      expect(fs.readFileSync(c, 'utf8')).toBe('A');
      expect(fs.statSync(c).nlink).toBe(1);

      fs.symlinkSync('dangling-target', path.join(tmp, 'l'));
      s.renameNoReplace(path.join(tmp, 'l'), path.join(tmp, 'l2'));
      expect(fs.readlinkSync(path.join(tmp, 'l2'))).toBe('dangling-target');

      fs.mkdirSync(path.join(tmp, 'dir'));
      fs.mkdirSync(path.join(tmp, 'taken'));
      expectSysError(() => s.renameNoReplace(path.join(tmp, 'dir'), path.join(tmp, 'taken')), 'EEXIST');
      s.renameNoReplace(path.join(tmp, 'dir'), path.join(tmp, 'dir2'));
      expect(fs.lstatSync(path.join(tmp, 'dir2')).isDirectory()).toBe(true);

      const raw = rawPath(tmp, '.moved');
      s.renameNoReplace(c, raw);
      expect(fs.readFileSync(raw, 'utf8')).toBe('A');
      expectSysError(() => s.renameNoReplace(path.join(tmp, 'missing'), path.join(tmp, 'x')), 'ENOENT');
    });
  });

  describe('metadata', () => {
    test('fiemap maps written data (native, where the fs supports it) or is undefined', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, randomBytes(64 * 1024));
      const extents = withFd(f, 'r', (fd) => s.fiemap(fd, 0n, 1n << 30n));
      if (!isNative) {
        expect(extents).toBeUndefined();
        return;
      }
      if (extents === undefined) return; // os.tmpdir() on a filesystem without FIEMAP
      expect(extents.length).toBeGreaterThan(0);
      const covered = extents.reduce((n, e) => n + e.length, 0n);
      expect(covered).toBeGreaterThanOrEqual(64n * 1024n);
      expect(extents[extents.length - 1].flags & FIEMAP_EXTENT_LAST).toBe(FIEMAP_EXTENT_LAST);
      expect(withFd(f, 'r', (fd) => s.fiemap(fd, 0n, 0n))).toEqual([]);
    });

    test('getFlags/setFlags round-trip FS_NODUMP_FL (native) or report unsupported', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      withFd(f, 'r', (fd) => {
        const flags = s.getFlags(fd);
        if (!isNative) {
          expect(flags).toBeUndefined();
          expect(s.setFlags(fd, FS_NODUMP_FL)).toBe(false);
          return;
        }
        if (flags === undefined) return;
        expect(s.setFlags(fd, flags | FS_NODUMP_FL)).toBe(true);
        expect(s.getFlags(fd)).toBe(flags | FS_NODUMP_FL);
        expect(s.setFlags(fd, flags)).toBe(true);
        expect(s.getFlags(fd)).toBe(flags);
      });
    });

    test('btrfs subvolume calls report unsupported off btrfs', () => {
      const fd = fs.openSync(tmp, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      try {
        if (isNative && fs.statfsSync(tmp).type === 0x9123683e) return; // /tmp on btrfs: covered below
        expect(s.subvolReadonly(fd)).toBeUndefined();
        expect(s.setSubvolReadonly(fd, true)).toBe(false);
        expect(s.setReceivedSubvol(fd, Buffer.alloc(16, 1), 1n)).toBe(false);
      } finally {
        fs.closeSync(fd);
      }
    });

    test('btimeNs agrees with statx as Node reports it, for the link itself', () => {
      const target = path.join(tmp, 'target');
      fs.writeFileSync(target, 'x');
      const link = path.join(tmp, 'link');
      fs.symlinkSync('target', link);
      for (const p of [target, link]) {
        const bt = s.btimeNs(p);
        if (!isNative) {
          expect(bt).toBeUndefined();
          continue;
        }
        const nodeBirth = lstatBig(p).birthtimeNs;
        if (nodeBirth > 0n) expect(bt).toBe(nodeBirth);
      }
      if (isNative) expectSysError(() => s.btimeNs(path.join(tmp, 'missing')), 'ENOENT', 'statx');
    });

    test('inodeGeneration is a bigint where supported, else undefined', () => {
      const f = path.join(tmp, 'f');
      fs.writeFileSync(f, 'x');
      const g = withFd(f, 'r', (fd) => s.inodeGeneration(fd));
      if (!isNative) expect(g).toBeUndefined();
      else if (g !== undefined) expect(withFd(f, 'r', (fd) => s.inodeGeneration(fd))).toBe(g);
    });

    test('freeBytes agrees with statfs; ENOENT for a missing path', () => {
      const st = fs.statfsSync(tmp, { bigint: true });
      const free = s.freeBytes(tmp);
      expect(free.total).toBe(st.blocks * st.bsize);
      expect(free.available).toBeLessThanOrEqual(free.total);
      expect(free.available).toBeGreaterThan(0n);
      expectSysError(() => s.freeBytes(path.join(tmp, 'missing')), 'ENOENT', 'statfs');
    });
  });
});

/** The process umask, read without changing it for longer than this call. */
function currentUmask(): number {
  const m = process.umask(0o022);
  process.umask(m);
  return m;
}

// ---------------------------------------------------------------------------
// Filesystem-specific behaviour on loop mounts

function writeFile(p: string, data: Buffer): void {
  fs.writeFileSync(p, data);
}

describeLoopFs(
  'xfs',
  'on XFS with reflink',
  (mounted) => {
    test('cloneFile shares extents (FIEMAP_EXTENT_SHARED on both files) and data', () => {
      const dir = mounted().dir;
      const src = path.join(dir, 'clone-src');
      const dst = path.join(dir, 'clone-dst');
      const data = randomBytes(256 * 1024);
      writeFile(src, data);
      withFd(src, 'r', (sfd) => withFd(dst, 'w+', (dfd) => expect(native.cloneFile(sfd, dfd)).toBe(true)));
      expect(fs.readFileSync(dst).equals(data)).toBe(true);
      for (const p of [src, dst]) {
        const ext = withFd(p, 'r', (fd) => native.fiemap(fd, 0n, BigInt(data.length)));
        expect(ext).toBeDefined();
        expect(ext!.length).toBeGreaterThan(0);
        for (const e of ext!) expect(e.flags & FIEMAP_EXTENT_SHARED).toBe(FIEMAP_EXTENT_SHARED);
      }
    });

    test('cloneRange clones aligned ranges, refuses unaligned and cross-filesystem pairs with false', () => {
      const dir = mounted().dir;
      const src = path.join(dir, 'range-src');
      const dst = path.join(dir, 'range-dst');
      const data = randomBytes(64 * 1024);
      writeFile(src, data);
      writeFile(dst, Buffer.alloc(16 * 1024));
      withFd(src, 'r', (sfd) =>
        withFd(dst, 'r+', (dfd) => {
          expect(native.cloneRange(sfd, 8192n, 16384n, dfd, 4096n)).toBe(true);
          expect(native.cloneRange(sfd, 1n, 4096n, dfd, 0n)).toBe(false); // EINVAL: unaligned
          expect(fallback.cloneRange(sfd, 0n, 4096n, dfd, 0n)).toBe(false);
          expect(fallback.cloneFile(sfd, dfd)).toBe(false);
        }),
      );
      // A destination not open for writing: EBADF from open descriptors is "can't clone".
      withFd(src, 'r', (sfd) => withFd(dst, 'r', (dfd) => expect(native.cloneFile(sfd, dfd)).toBe(false)));
      const out = fs.readFileSync(dst);
      expect(out.subarray(4096, 4096 + 16384).equals(data.subarray(8192, 8192 + 16384))).toBe(true);
      expect(out.subarray(0, 4096).every((x) => x === 0)).toBe(true);
      const elsewhere = path.join(tmp, 'other-fs');
      withFd(src, 'r', (sfd) =>
        withFd(elsewhere, 'w+', (dfd) => {
          expect(native.cloneFile(sfd, dfd)).toBe(false); // EXDEV
          expect(native.cloneRange(sfd, 0n, 4096n, dfd, 0n)).toBe(false);
        }),
      );
      withFd(dst, 'r+', (dfd) => {
        const closed = fs.openSync(src, 'r');
        fs.closeSync(closed);
        expectSysError(() => native.cloneFile(closed, dfd), 'EBADF', 'ioctl(FICLONE)');
      });
    });

    test(`fiemap walks files with more than ${FIEMAP_BATCH} extents in batches`, () => {
      const f = path.join(mounted().dir, 'fragmented');
      const count = FIEMAP_BATCH * 2 + 44;
      // Data, hole, data, ...: punched after writing, so XFS's speculative
      // preallocation can't fill the holes with unwritten extents.
      writeFile(f, randomBytes(count * 8192));
      withFd(f, 'r+', (fd) => {
        fs.fsyncSync(fd);
        for (let i = 0; i < count; i++) native.fallocate(fd, 3, BigInt(i * 8192 + 4096), 4096n);
      });
      const ext = withFd(f, 'r', (fd) => native.fiemap(fd, 0n, BigInt(count * 8192)));
      expect(ext).toBeDefined();
      expect(ext!.map((e) => e.logical)).toEqual(Array.from({ length: count }, (_, i) => BigInt(i * 8192)));
      expect(ext!.every((e) => e.length === 4096n)).toBe(true);
      expect(ext![count - 1].flags & FIEMAP_EXTENT_LAST).toBe(FIEMAP_EXTENT_LAST);
      const part = withFd(f, 'r', (fd) => native.fiemap(fd, 8192n * 10n, 8192n * 5n));
      expect(part!.map((e) => e.logical)).toEqual([10, 11, 12, 13, 14].map((i) => BigInt(i * 8192)));
      expect(fallback.fiemap(0, 0n, 1n)).toBeUndefined();
    });

    test('copyRange within XFS and across filesystems', () => {
      const src = path.join(mounted().dir, 'copy-src');
      const data = randomBytes(1024 * 1024 + 7);
      writeFile(src, data);
      for (const dst of [path.join(mounted().dir, 'copy-dst'), path.join(tmp, 'copy-dst')]) {
        for (const s of [native, fallback]) {
          withFd(src, 'r', (sfd) =>
            withFd(dst, 'w+', (dfd) => expect(s.copyRange(sfd, 0n, dfd, 0n, 1n << 30n)).toBe(BigInt(data.length))),
          );
          expect(fs.readFileSync(dst).equals(data)).toBe(true);
        }
      }
    });

    test.each([
      ['native', native],
      ['fallback', fallback],
    ] as Array<[string, Sys]>)('%s: 60 KB xattr values and name lists longer than 4 KiB', (_m, s) => {
      const f = path.join(mounted().dir, `xattr-${_m}`);
      writeFile(f, b('x'));
      const big = randomBytes(60000);
      s.lsetxattr(f, b('user.big'), big);
      expect(s.lgetxattr(f, b('user.big'))).toEqual(big);
      const names = Array.from({ length: 120 }, (_, i) => b(`user.${'n'.repeat(40)}-${i}`));
      for (const n of names) s.lsetxattr(f, n, b('v'));
      const listed = s.llistxattr(f).map(String).sort();
      expect(listed).toEqual(['user.big', ...names.map(String)].sort());
    });

    test('inodeGeneration is reported', () => {
      const f = path.join(mounted().dir, 'gen');
      writeFile(f, b('x'));
      const g = withFd(f, 'r', (fd) => native.inodeGeneration(fd));
      expect(typeof g).toBe('bigint');
      expect(withFd(f, 'r', (fd) => native.inodeGeneration(fd))).toBe(g);
    });
  },
  320,
  { reflink: true },
);

describeLoopFs('btrfs', 'on btrfs', (mounted) => {
  test('cloneFile shares extents; exchange works; generation and birth time are reported', () => {
    const dir = mounted().dir;
    const src = path.join(dir, 'src');
    const dst = path.join(dir, 'dst');
    const data = randomBytes(128 * 1024);
    writeFile(src, data);
    withFd(src, 'r', (sfd) => withFd(dst, 'w+', (dfd) => expect(native.cloneFile(sfd, dfd)).toBe(true)));
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    const ext = withFd(dst, 'r', (fd) => native.fiemap(fd, 0n, BigInt(data.length)));
    expect(ext!.length).toBeGreaterThan(0);
    expect(ext!.every((e) => (e.flags & FIEMAP_EXTENT_SHARED) !== 0)).toBe(true);
    withFd(src, 'r', (sfd) =>
      withFd(dst, 'r+', (dfd) => expect(native.cloneRange(sfd, 0n, 65536n, dfd, 65536n)).toBe(true)),
    );
    writeFile(path.join(dir, 'other'), b('other'));
    native.exchange(src, path.join(dir, 'other'));
    expect(fs.readFileSync(src, 'utf8')).toBe('other');
    expect(typeof withFd(dst, 'r', (fd) => native.inodeGeneration(fd))).toBe('bigint');
    expect(typeof native.btimeNs(dst)).toBe('bigint');
  });

  test('subvolume flags and the received uuid; a plain directory or file is not a subvolume', () => {
    const sv = path.join(mounted().dir, 'sv');
    expect(spawnSync('btrfs', ['subvolume', 'create', sv]).status).toBe(0);
    const uuid = randomBytes(16);
    const dirFd = (p: string) => fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    const fd = dirFd(sv);
    try {
      expect(native.subvolReadonly(fd)).toBe(false);
      expect(() => native.setReceivedSubvol(fd, uuid.subarray(0, 15), 7n)).toThrow(/EINVAL/);
      expect(native.setReceivedSubvol(fd, uuid, 4242n)).toBe(true);
      expect(native.setSubvolReadonly(fd, true)).toBe(true);
      expect(native.subvolReadonly(fd)).toBe(true);
      // The kernel refuses a received uuid on a read-only subvolume.
      expect(() => native.setReceivedSubvol(fd, uuid, 1n)).toThrow(/EROFS/);
      expect(fallback.subvolReadonly(fd)).toBeUndefined();
      expect(fallback.setReceivedSubvol(fd, uuid, 1n)).toBe(false);
    } finally {
      fs.closeSync(fd);
    }
    const show = spawnSync('btrfs', ['subvolume', 'show', sv], { encoding: 'utf8' }).stdout;
    const dashed = uuid.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
    expect(show).toMatch(new RegExp(`Received UUID:\\s+${dashed}`));
    expect(show).toMatch(/Flags:\s+readonly/);
    const rw = dirFd(sv);
    try {
      expect(native.setSubvolReadonly(rw, false)).toBe(true);
      expect(native.subvolReadonly(rw)).toBe(false);
    } finally {
      fs.closeSync(rw);
    }
    const plain = path.join(mounted().dir, 'plain');
    fs.mkdirSync(plain);
    const pfd = dirFd(plain);
    try {
      expect(native.subvolReadonly(pfd)).toBeUndefined();
      expect(native.setSubvolReadonly(pfd, true)).toBe(false);
    } finally {
      fs.closeSync(pfd);
    }
  });
});

describeLoopFs('ext4', 'on ext4', (mounted) => {
  test('inodeGeneration is stable per inode; no reflink; punching frees blocks natively but not in the fallback', () => {
    const dir = mounted().dir;
    const f = path.join(dir, 'f');
    writeFile(f, randomBytes(1 << 20));
    const g = withFd(f, 'r', (fd) => native.inodeGeneration(fd));
    expect(typeof g).toBe('bigint');
    expect(withFd(f, 'r', (fd) => native.inodeGeneration(fd))).toBe(g);
    withFd(f, 'r', (sfd) => withFd(path.join(dir, 'copy'), 'w+', (dfd) => expect(native.cloneFile(sfd, dfd)).toBe(false)));

    const blocks = (p: string) => fs.statSync(p).blocks;
    const punched = path.join(dir, 'punched');
    writeFile(punched, randomBytes(1 << 20));
    withFd(punched, 'r+', (fd) => fs.fsyncSync(fd));
    const before = blocks(punched);
    withFd(punched, 'r+', (fd) => native.fallocate(fd, 3, 0n, 512n * 1024n));
    expect(blocks(punched)).toBeLessThan(before);
    const zeroed = path.join(dir, 'zeroed');
    writeFile(zeroed, randomBytes(1 << 20));
    withFd(zeroed, 'r+', (fd) => fallback.fallocate(fd, 3, 0n, 512n * 1024n));
    expect(blocks(zeroed)).toBe(before);
    expect(fs.readFileSync(zeroed).subarray(0, 512 * 1024).every((x) => x === 0)).toBe(true);
  });

  rootTest('FS_IMMUTABLE_FL can be set and cleared', () => {
    const f = path.join(mounted().dir, 'immutable');
    writeFile(f, b('x'));
    withFd(f, 'r', (fd) => {
      const flags = native.getFlags(fd)!;
      expect(native.setFlags(fd, flags | FS_IMMUTABLE_FL)).toBe(true);
      try {
        expect(native.getFlags(fd)! & FS_IMMUTABLE_FL).toBe(FS_IMMUTABLE_FL);
        expectSysError(() => native.lsetxattr(f, b('user.a'), b('v')), 'EPERM', 'lsetxattr');
      } finally {
        expect(native.setFlags(fd, flags)).toBe(true);
      }
    });
    fs.unlinkSync(f);
  });
});

describeLoopFs('tmpfs', 'on tmpfs', (mounted) => {
  test('no FIEMAP, no generation, no reflink; exchange and xattrs work', () => {
    const dir = mounted().dir;
    const a = path.join(dir, 'a');
    const c = path.join(dir, 'c');
    writeFile(a, randomBytes(8192));
    writeFile(c, b('c'));
    withFd(a, 'r', (fd) => {
      expect(native.fiemap(fd, 0n, 8192n)).toBeUndefined();
      expect(native.inodeGeneration(fd)).toBeUndefined();
      withFd(path.join(dir, 'b'), 'w+', (dfd) => {
        expect(native.cloneFile(fd, dfd)).toBe(false);
        expect(native.cloneRange(fd, 0n, 4096n, dfd, 0n)).toBe(false);
      });
    });
    // FALLOC_FL_COLLAPSE_RANGE: not on tmpfs, never in the fallback.
    withFd(a, 'r+', (fd) => {
      for (const s of [native, fallback]) expectSysError(() => s.fallocate(fd, 0x08, 0n, 4096n), 'EOPNOTSUPP', 'fallocate');
    });
    native.exchange(a, c);
    expect(fs.readFileSync(a, 'utf8')).toBe('c');
    for (const s of [native, fallback]) {
      s.lsetxattr(c, b('user.t'), b('v'));
      expect(s.lgetxattr(c, b('user.t'))).toEqual(b('v'));
      s.lremovexattr(c, b('user.t'));
    }
  });
});

describe('loop filesystem helper', () => {
  const mountedDevice = (dir: string): string | undefined =>
    fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[1] === dir)?.[0];

  loopFsTest('ext4')('withLoopFs takes everything down even when the body throws', async () => {
    let dir = '';
    let device: string | undefined;
    await expect(
      withLoopFs('ext4', 16, (d) => {
        dir = d;
        device = mountedDevice(d);
        fs.writeFileSync(path.join(d, 'f'), 'x');
        throw new Error('body failed');
      }),
    ).rejects.toThrow('body failed');
    expect(device).toMatch(/^\/dev\/loop/);
    expect(mountedDevice(dir)).toBeUndefined();
    expect(fs.existsSync(path.dirname(dir))).toBe(false);
    // The device is free of this image; another test running beside this one may already have taken it for its own.
    const backing = spawnSync('losetup', ['--noheadings', '-O', 'BACK-FILE', device!], { encoding: 'utf8' });
    expect(backing.stdout).not.toContain(path.dirname(dir));
    // Nor is any other loop device backed by it.
    expect(spawnSync('losetup', ['--noheadings', '--list', '-O', 'BACK-FILE'], { encoding: 'utf8' }).stdout).not.toContain(path.dirname(dir));
  });

  loopFsTest('tmpfs')('withLoopFs passes a fresh, empty mount', async () => {
    await withLoopFs('tmpfs', 8, (d) => {
      expect(fs.readdirSync(d)).toEqual([]);
      expect(mountedDevice(d)).toBe('tmpfs');
    });
  });
});

describe('widenPipe', () => {
  /** Run `script` in a child whose stdout is a pipe (made by sh: Node gives children socketpairs); its stderr comes back. */
  const inChild = (script: string): string => {
    const r = spawnSync('sh', ['-c', '"$0" -e "$1" | cat >/dev/null', process.execPath, script], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    return r.stderr.trim();
  };
  const linuxJs = JSON.stringify(path.resolve(__dirname, '../../../dist/src/sys/linux.js'));

  test('grows a pipe to at least the size asked for, natively', () => {
    if (!native.native) throw new Error('native bindings are required here');
    const got = inChild(`const {createSys}=require(${linuxJs}); const s=createSys({native:true});
      process.stderr.write(String(s.widenPipe(1, 1 << 20)) + ' ' + String(s.widenPipe(1, 256 << 20)))`);
    const [ok, tooBig] = got.split(' ');
    expect(Number(ok)).toBeGreaterThanOrEqual(1 << 20);
    // Over /proc/sys/fs/pipe-max-size: root may go beyond it; anyone else is refused, which is not an error.
    if (!isRoot) expect(tooBig).toBe('undefined');
  });

  test('leaves what is not a pipe, and the fallback leaves everything', () => {
    const file = path.join(os.tmpdir(), `ferry-widen-${process.pid}`);
    const fd = fs.openSync(file, 'w');
    try {
      expect(native.widenPipe(fd, 1 << 20)).toBeUndefined();
      expect(fallback.widenPipe(fd, 1 << 20)).toBeUndefined();
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    }
    const got = inChild(`const {createSys}=require(${linuxJs}); process.stderr.write(String(createSys({native:false}).widenPipe(1, 1 << 20)))`);
    expect(got).toBe('undefined');
  });
});

describe('readahead', () => {
  /** Bytes of `file` in the page cache (util-linux fincore). */
  const resident = (file: string): number => {
    const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`fincore failed: ${r.stderr}`);
    return Number(r.stdout.trim());
  };

  loopFsTest('ext4')('starts reading a file into the page cache, natively', async () => {
    if (!native.native) throw new Error('native bindings are required here');
    await withLoopFs('ext4', 64, async (d) => {
      const file = path.join(d, 'data');
      fs.writeFileSync(file, randomBytes(8 << 20));
      // Write back, then drop the file's pages (GNU dd: iflag=nocache with count=0 drops the whole file).
      spawnSync('sync');
      const drop = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { encoding: 'utf8' });
      if (drop.status !== 0) throw new Error(`dd failed: ${drop.stderr}`);
      expect(resident(file)).toBeLessThan(1 << 20);
      const fd = fs.openSync(file, 'r');
      try {
        expect(native.readahead(fd, 0n, 8n << 20n)).toBe(true);
        // The hint returns before the reads finish; they land soon after.
        for (let i = 0; i < 50 && resident(file) < 8 << 20; i++) await new Promise((r) => setTimeout(r, 20));
        expect(resident(file)).toBe(8 << 20);
      } finally {
        fs.closeSync(fd);
      }
    });
  });

  test('gives no hint for a FIFO, and the fallback gives none at all', () => {
    const fifo = path.join(os.tmpdir(), `ferry-readahead-fifo-${process.pid}`);
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status !== 0) throw new Error('mkfifo failed');
    // O_RDWR: Linux opens a FIFO without waiting for a peer.
    const pfd = fs.openSync(fifo, fs.constants.O_RDWR);
    try {
      expect(native.readahead(pfd, 0n, 4096n)).toBe(false);
    } finally {
      fs.closeSync(pfd);
      fs.rmSync(fifo, { force: true });
    }
    const file = path.join(os.tmpdir(), `ferry-readahead-${process.pid}`);
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r');
    try {
      expect(fallback.readahead(fd, 0n, 1n)).toBe(false);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    }
  });
});
