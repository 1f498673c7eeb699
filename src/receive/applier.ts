/**
 * Applies decoded stream commands to a staging tree with btrfs receive's
 * semantics (docs/send-stream.md 2.1 and 4.4), one command at a time.
 *
 * Owns: the meaning of each command and the policy checks that are not about
 * paths: device nodes, setuid/setgid bits and file capabilities, clone
 * sources, encoded data. Never: decides where the tree lives, commits, or
 * touches the catalog (receiver.ts does). SUBVOL, SNAPSHOT and END are the
 * receiver's, not ours.
 *
 * Resume: `apply(item, true)` re-applies the command a killed receive may
 * have been in the middle of. The commands that cannot simply run twice
 * (NON_IDEMPOTENT: creations, renames, links, removals) are skipped when
 * their effect is already on disk. Their paths are still checked; the policy
 * checks ran when the command first ran, and a resume under a stricter
 * policy is refused by the receiver.
 */
import * as fs from 'node:fs';
import { FerryError } from '../errors';
import { Cmd } from '../model/command';
import { Limits } from '../model/limits';
import { CMD_SPECS } from '../stream/constants';
import { CommandItem } from '../stream/decoder';
import { decodeExtent } from './decompress';
import { checkStreamPath, showPath } from './safe-path';
import { OpContext, StagingTree, joinParts } from './staging-tree';

const { S_IFMT, S_IFSOCK, S_IFBLK, S_IFCHR, S_IFIFO } = fs.constants;
/** Not in fs.constants. */
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const FALLOC_FL_PUNCH_HOLE = 0x2;
/** Largest decompressed extent we accept (btrfs extents are at most 128 KiB). */
const MAX_UNENCODED = 1024 * 1024;
const CAPABILITY = Buffer.from('security.capability');

/** Btrfs inode flags (FILEATTR) → FS_*_FL, for the flags that have one. */
const FILEATTR_MAP: Array<[bigint, number, string]> = [
  [0x20n, 0x8, 'sync'],
  [0x100n, 0x40, 'nodump'],
  [0x200n, 0x80, 'noatime'],
  [0x400n, 0x10000, 'dirsync'],
  [0x8n, 0x400, 'nocompress'],
  [0x800n, 0x4, 'compress'],
  [0x2n, 0x800000, 'nocow'],
];
const FILEATTR_DEFERRED: Array<[bigint, string]> = [
  [0x40n, 'immutable'],
  [0x80n, 'append'],
];

/**
 * Commands that fail or do something else when run a second time. Every other
 * command sets state to values taken from the command alone (data at an
 * offset, a size, a mode, times, an xattr), so running it again after it ran
 * changes nothing. CLONE is idempotent only until its source changes again.
 */
export const NON_IDEMPOTENT: ReadonlySet<number> = new Set<number>([
  Cmd.MKFILE,
  Cmd.MKDIR,
  Cmd.MKNOD,
  Cmd.MKFIFO,
  Cmd.MKSOCK,
  Cmd.SYMLINK,
  Cmd.RENAME,
  Cmd.LINK,
  Cmd.UNLINK,
  Cmd.RMDIR,
  Cmd.REMOVE_XATTR,
]);

export interface ApplyPolicy {
  allowDevices: boolean;
  allowSetuid: boolean;
  limits: Limits;
}

/** Finds clone sources outside the snapshot being received. */
export interface CloneSourceResolver {
  /** The root of the received snapshot whose received uuid or uuid is `uuid`, or undefined. */
  snapshotRoot(uuid: Buffer): StagingTree | undefined;
}

export class Applier {
  readonly warnings: string[] = [];

  constructor(
    private readonly tree: StagingTree,
    private readonly policy: ApplyPolicy,
    private readonly clones: CloneSourceResolver,
    /** UUID of the snapshot being received: CLONE from it reads the staging tree. */
    private readonly streamUuid: Buffer,
  ) {}

  private paths(item: CommandItem, p: Buffer | undefined, what: string, allowRoot: boolean): Buffer[] {
    return checkStreamPath(p!, { ...this.ctx(item), what }, this.policy.limits, allowRoot);
  }

  private ctx(item: CommandItem): OpContext {
    return { command: item.index, offset: item.offset, cmd: CMD_SPECS[item.cmd]!.name };
  }

  private refuse(
    code: 'RECV_DEVICE_REFUSED' | 'RECV_SETUID_REFUSED' | 'RECV_CLONE_SOURCE' | 'RECV_LIMIT',
    why: string,
    item: CommandItem,
    hint: string,
  ): never {
    const c = this.ctx(item);
    throw new FerryError(code, `receive refused: ${why}`, {
      context: { path: showPath(item.attrs.path ?? Buffer.alloc(0)), command: c.command, cmd: c.cmd, offset: c.offset },
      hint,
    });
  }

  /** True when the command's effect is already on disk (resume only; see NON_IDEMPOTENT). */
  private alreadyApplied(item: CommandItem): boolean {
    const a = item.attrs;
    const t = this.tree;
    const ctx = this.ctx(item);
    switch (item.cmd) {
      case Cmd.MKFILE:
      case Cmd.MKDIR:
      case Cmd.MKNOD:
      case Cmd.MKFIFO:
      case Cmd.MKSOCK:
      case Cmd.SYMLINK:
      case Cmd.LINK:
        return t.exists(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.RENAME:
      case Cmd.UNLINK:
      case Cmd.RMDIR:
        return !t.exists(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.REMOVE_XATTR:
        return !t.hasXattr(this.paths(item, a.path, 'path', true), a.xattrName!, ctx);
      default:
        return false;
    }
  }

  /** Apply one command; `again` when it may already have been applied by a killed run. */
  apply(item: CommandItem, again = false): void {
    if (again && NON_IDEMPOTENT.has(item.cmd) && this.alreadyApplied(item)) return;
    const a = item.attrs;
    const t = this.tree;
    const ctx = this.ctx(item);
    switch (item.cmd) {
      case Cmd.MKFILE:
        return t.mkfile(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.MKDIR:
        return t.mkdir(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.MKNOD: {
        const parts = this.paths(item, a.path, 'path', false);
        const type = Number(a.mode! & BigInt(S_IFMT));
        if (type === S_IFCHR || type === S_IFBLK) {
          if (!this.policy.allowDevices) {
            this.refuse('RECV_DEVICE_REFUSED', 'device node in stream', item, 'pass --allow-devices to receive device nodes; nothing was committed');
          }
        } else if (type !== S_IFIFO && type !== S_IFSOCK) {
          this.refuse('RECV_DEVICE_REFUSED', `mknod of unexpected file type 0${type.toString(8)}`, item, 'nothing was committed');
        }
        return t.mknod(parts, type | 0o600, a.rdev!, ctx);
      }
      case Cmd.MKFIFO:
        return t.mknod(this.paths(item, a.path, 'path', false), S_IFIFO | 0o600, 0n, ctx);
      case Cmd.MKSOCK:
        return t.mknod(this.paths(item, a.path, 'path', false), S_IFSOCK | 0o600, 0n, ctx);
      case Cmd.SYMLINK:
        if (a.pathLink!.indexOf(0) >= 0 || a.pathLink!.length === 0) {
          this.refuse('RECV_LIMIT', 'symlink target is empty or contains NUL', item, 'nothing was committed');
        }
        return t.symlink(this.paths(item, a.path, 'path', false), a.pathLink!, ctx);
      case Cmd.RENAME:
        return t.rename(this.paths(item, a.path, 'path', false), this.paths(item, a.pathTo, 'dest', false), ctx);
      case Cmd.LINK:
        return t.link(this.paths(item, a.path, 'path', false), this.paths(item, a.pathLink, 'link source', false), ctx);
      case Cmd.UNLINK:
        return t.unlink(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.RMDIR:
        return t.rmdir(this.paths(item, a.path, 'path', false), ctx);
      case Cmd.SET_XATTR: {
        const parts = this.paths(item, a.path, 'path', true);
        this.checkXattrName(item, a.xattrName!);
        if (a.xattrData!.length > this.policy.limits.maxXattrValueBytes) {
          this.refuse('RECV_LIMIT', `xattr value of ${a.xattrData!.length} bytes is too large`, item, 'nothing was committed');
        }
        if (a.xattrName!.equals(CAPABILITY) && !this.policy.allowSetuid) {
          this.refuse('RECV_SETUID_REFUSED', 'file capabilities (security.capability) in stream', item, 'pass --allow-setuid to receive setuid files and file capabilities; nothing was committed');
        }
        if (!t.setXattr(parts, a.xattrName!, a.xattrData!, ctx)) {
          this.warnings.push(`btrfs property ${a.xattrName!.toString('utf8')} not applied to ${showPath(joinParts(parts)) || '/'} (not a btrfs target)`);
        }
        return;
      }
      case Cmd.REMOVE_XATTR: {
        const parts = this.paths(item, a.path, 'path', true);
        this.checkXattrName(item, a.xattrName!);
        return t.removeXattr(parts, a.xattrName!, ctx);
      }
      case Cmd.WRITE: {
        const parts = this.paths(item, a.path, 'path', false);
        const fd = t.writeFdFor(parts, ctx);
        return this.pwrite(fd, a.data!, a.fileOffset!, parts, item);
      }
      case Cmd.CLONE:
        return this.clone(item);
      case Cmd.TRUNCATE: {
        const parts = this.paths(item, a.path, 'path', false);
        const fd = t.writeFdFor(parts, ctx);
        const size = this.safeNumber(a.size!, 'size', item);
        try {
          fs.ftruncateSync(fd, size);
        } catch (e) {
          throw t.applyError(e, 'truncate', parts, ctx);
        }
        return;
      }
      case Cmd.CHMOD: {
        const parts = this.paths(item, a.path, 'path', true);
        const mode = Number(a.mode! & 0o7777n);
        if (mode & (S_ISUID | S_ISGID) && !this.policy.allowSetuid) {
          const st = t.lstat(parts, ctx);
          // setgid on a directory only sets group inheritance; it is harmless.
          if (mode & S_ISUID || !st.isDirectory()) {
            this.refuse('RECV_SETUID_REFUSED', `setuid/setgid mode 0${mode.toString(8)} in stream`, item, 'pass --allow-setuid to receive setuid files and file capabilities; nothing was committed');
          }
        }
        return t.chmod(parts, mode, ctx);
      }
      case Cmd.CHOWN: {
        const parts = this.paths(item, a.path, 'path', true);
        return t.chown(parts, this.safeNumber(a.uid!, 'uid', item), this.safeNumber(a.gid!, 'gid', item), ctx);
      }
      case Cmd.UTIMES:
        return t.utimes(this.paths(item, a.path, 'path', true), a.atime!, a.mtime!, ctx);
      case Cmd.UPDATE_EXTENT: {
        // --no-data streams: metadata only. The path must still be sane.
        const parts = this.paths(item, a.path, 'path', false);
        t.lstat(parts, ctx);
        return;
      }
      case Cmd.FALLOCATE:
        return this.fallocate(item);
      case Cmd.FILEATTR:
        return this.fileattr(item);
      case Cmd.ENCODED_WRITE:
        return this.encodedWrite(item);
      case Cmd.ENABLE_VERITY: {
        const parts = this.paths(item, a.path, 'path', false);
        t.lstat(parts, ctx);
        this.warnings.push(`fs-verity not enabled on ${showPath(joinParts(parts))} (not supported by ferry receive)`);
        return;
      }
      default:
        throw new FerryError('INTERNAL', `applier got ${CMD_SPECS[item.cmd]?.name ?? item.cmd}`);
    }
  }

  private checkXattrName(item: CommandItem, name: Buffer): void {
    if (name.length === 0 || name.indexOf(0) >= 0 || name.length > this.policy.limits.maxXattrNameBytes) {
      this.refuse('RECV_LIMIT', 'xattr name is empty, too long or contains NUL', item, 'nothing was committed');
    }
  }

  private safeNumber(v: bigint, what: string, item: CommandItem): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.refuse('RECV_LIMIT', `${what} ${v} is out of range`, item, 'nothing was committed');
    }
    return Number(v);
  }

  private pwrite(fd: number, data: Buffer, offset: bigint, parts: Buffer[], item: CommandItem): void {
    let pos = this.safeNumber(offset, 'offset', item);
    if (pos + data.length > Number.MAX_SAFE_INTEGER) this.refuse('RECV_LIMIT', 'write past the largest file size', item, 'nothing was committed');
    let off = 0;
    try {
      while (off < data.length) {
        const n = fs.writeSync(fd, data, off, data.length - off, pos);
        off += n;
        pos += n;
      }
    } catch (e) {
      throw this.tree.applyError(e, 'write', parts, this.ctx(item));
    }
  }

  private clone(item: CommandItem): void {
    const a = item.attrs;
    const ctx = this.ctx(item);
    const dst = this.paths(item, a.path, 'path', false);
    const src = this.paths(item, a.clonePath, 'clone source', false);
    let srcTree: StagingTree | undefined;
    if (a.cloneUuid!.equals(this.streamUuid)) srcTree = this.tree;
    else srcTree = this.clones.snapshotRoot(a.cloneUuid!);
    if (!srcTree) {
      this.refuse('RECV_CLONE_SOURCE', 'clone source is not in this target\'s catalog', item, 'receive the snapshot the stream clones from first; nothing was committed');
    }
    const dstFd = this.tree.writeFdFor(dst, ctx);
    const len = a.cloneLen!;
    const srcOff = a.cloneOffset!;
    const dstOff = a.fileOffset!;
    this.safeNumber(srcOff + len, 'clone range', item);
    this.safeNumber(dstOff + len, 'clone range', item);
    const sameFile = srcTree === this.tree && joinParts(src).equals(joinParts(dst));
    const srcFd = sameFile ? dstFd : srcTree.openRead(src, ctx);
    try {
      if (!this.tree.sys.cloneRange(srcFd, srcOff, len, dstFd, dstOff)) {
        const n = this.tree.sys.copyRange(srcFd, srcOff, dstFd, dstOff, len);
        if (n !== len) {
          throw new FerryError('RECV_APPLY_FAILED', `receive failed: clone source is shorter than the clone (${n} of ${len} bytes)`, {
            context: { path: showPath(joinParts(dst)), command: ctx.command, offset: ctx.offset },
          });
        }
      }
    } catch (e) {
      throw this.tree.applyError(e, 'clone', dst, ctx);
    } finally {
      if (!sameFile) fs.closeSync(srcFd);
    }
  }

  private fallocate(item: CommandItem): void {
    const a = item.attrs;
    const ctx = this.ctx(item);
    const parts = this.paths(item, a.path, 'path', false);
    const fd = this.tree.writeFdFor(parts, ctx);
    const mode = a.fallocateMode!;
    const off = this.safeNumber(a.fileOffset!, 'offset', item);
    const len = this.safeNumber(a.size!, 'size', item);
    try {
      this.tree.sys.fallocate(fd, mode, a.fileOffset!, a.size!);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'EOPNOTSUPP' || code === 'ENOSYS') && mode & FALLOC_FL_PUNCH_HOLE) {
        // No hole punching here: zeros give the same content, not the sparseness.
        const size = fs.fstatSync(fd).size;
        const end = Math.min(off + len, size);
        const zeros = Buffer.alloc(Math.min(1 << 20, Math.max(0, end - off)));
        for (let p = off; p < end; p += zeros.length) this.pwrite(fd, zeros.subarray(0, Math.min(zeros.length, end - p)), BigInt(p), parts, item);
        return;
      }
      if (code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        this.warnings.push(`fallocate mode ${mode} not supported on ${showPath(joinParts(parts))}; skipped (content unaffected)`);
        return;
      }
      throw this.tree.applyError(e, 'fallocate', parts, ctx);
    }
  }

  private fileattr(item: CommandItem): void {
    const a = item.attrs;
    const ctx = this.ctx(item);
    const parts = this.paths(item, a.path, 'path', true);
    const flags = a.fileattr!;
    const st = this.tree.lstat(parts, ctx);
    let fsFlags = 0;
    const missed: string[] = [];
    for (const [b, f] of FILEATTR_MAP) if (flags & b) fsFlags |= f;
    for (const [b, name] of FILEATTR_DEFERRED) if (flags & b) missed.push(name);
    if (fsFlags && !st.isSymbolicLink()) {
      const p = this.tree.abs(parts);
      let ok = false;
      try {
        const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
        try {
          const cur = this.tree.sys.getFlags(fd);
          ok = cur !== undefined && this.tree.sys.setFlags(fd, cur | fsFlags);
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        ok = false;
      }
      if (!ok) missed.push(`0x${fsFlags.toString(16)}`);
    }
    if (missed.length) {
      this.warnings.push(`file attributes ${missed.join(',')} not applied to ${showPath(joinParts(parts)) || '/'}`);
    }
  }

  private encodedWrite(item: CommandItem): void {
    const a = item.attrs;
    const ctx = this.ctx(item);
    const parts = this.paths(item, a.path, 'path', false);
    if ((a.encryption ?? 0) !== 0) {
      throw new FerryError('RECV_UNSUPPORTED', `receive failed: encrypted extent (encryption ${a.encryption})`, {
        context: { path: showPath(joinParts(parts)), command: ctx.command, offset: ctx.offset },
      });
    }
    const ulen = a.unencodedLen!;
    const uoff = a.unencodedOffset!;
    const flen = a.unencodedFileLen!;
    if (ulen > BigInt(MAX_UNENCODED) || uoff + flen > ulen) {
      this.refuse('RECV_LIMIT', `encoded extent sizes out of range (unencoded_len ${ulen}, offset ${uoff}, file_len ${flen})`, item, 'nothing was committed');
    }
    let plain: Buffer;
    try {
      plain = decodeExtent(a.data!, a.compression ?? 0, Number(ulen));
    } catch (e) {
      throw new FerryError('RECV_UNSUPPORTED', `receive failed: cannot decode extent: ${(e as Error).message}`, {
        context: { path: showPath(joinParts(parts)), command: ctx.command, offset: ctx.offset, compression: a.compression ?? 0 },
        cause: e,
      });
    }
    const fd = this.tree.writeFdFor(parts, ctx);
    this.pwrite(fd, plain.subarray(Number(uoff), Number(uoff + flen)), a.fileOffset!, parts, item);
  }
}
