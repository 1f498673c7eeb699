/**
 * Wire constants of the btrfs send stream (docs/send-stream.md, sections 1-2).
 *
 * Owns: magic, versions, size limits per version, attribute numbers and
 * types, and for each command the attributes in kernel emission order. The
 * encoder writes in that order and the decoder checks required attributes
 * against it. No I/O here.
 */
import { Cmd, CmdNum, CommandAttrs } from '../model/command';

/** "btrfs-stream" plus its NUL terminator: 13 bytes. */
export const MAGIC = Buffer.from('btrfs-stream\0', 'latin1');
export const STREAM_HEADER_BYTES = 17;
export const CMD_HEADER_BYTES = 10;
export const MIN_VERSION = 1;
/** Highest version we decode (v3 adds only ENABLE_VERITY). */
export const MAX_DECODE_VERSION = 3;
/** Highest version we write. */
export const MAX_ENCODE_VERSION = 2;

/** Largest file bytes per WRITE the kernel sends, by version. */
export function maxWriteBytes(version: number): number {
  return version >= 2 ? 128 * 1024 : 48 * 1024;
}

/** Attribute numbers (send.h `BTRFS_SEND_A_*`). */
export const Attr = {
  UUID: 1,
  CTRANSID: 2,
  INO: 3,
  SIZE: 4,
  MODE: 5,
  UID: 6,
  GID: 7,
  RDEV: 8,
  CTIME: 9,
  MTIME: 10,
  ATIME: 11,
  OTIME: 12,
  XATTR_NAME: 13,
  XATTR_DATA: 14,
  PATH: 15,
  PATH_TO: 16,
  PATH_LINK: 17,
  FILE_OFFSET: 18,
  DATA: 19,
  CLONE_UUID: 20,
  CLONE_CTRANSID: 21,
  CLONE_PATH: 22,
  CLONE_OFFSET: 23,
  CLONE_LEN: 24,
  FALLOCATE_MODE: 25,
  FILEATTR: 26,
  UNENCODED_FILE_LEN: 27,
  UNENCODED_LEN: 28,
  UNENCODED_OFFSET: 29,
  COMPRESSION: 30,
  ENCRYPTION: 31,
  VERITY_ALGORITHM: 32,
  VERITY_BLOCK_SIZE: 33,
  VERITY_SALT_DATA: 34,
  VERITY_SIG_DATA: 35,
} as const;
export const MAX_ATTR = 35;

export type AttrKind = 'u8' | 'u32' | 'u64' | 'uuid' | 'timespec' | 'bytes';

export interface AttrSpec {
  num: number;
  name: string;
  key: keyof CommandAttrs;
  kind: AttrKind;
}

const A = (num: number, name: string, key: keyof CommandAttrs, kind: AttrKind): AttrSpec => ({ num, name, key, kind });

/** Indexed by attribute number; index 0 is invalid. */
export const ATTR_SPECS: ReadonlyArray<AttrSpec | undefined> = (() => {
  const list: AttrSpec[] = [
    A(Attr.UUID, 'UUID', 'uuid', 'uuid'),
    A(Attr.CTRANSID, 'CTRANSID', 'ctransid', 'u64'),
    A(Attr.INO, 'INO', 'ino', 'u64'),
    A(Attr.SIZE, 'SIZE', 'size', 'u64'),
    A(Attr.MODE, 'MODE', 'mode', 'u64'),
    A(Attr.UID, 'UID', 'uid', 'u64'),
    A(Attr.GID, 'GID', 'gid', 'u64'),
    A(Attr.RDEV, 'RDEV', 'rdev', 'u64'),
    A(Attr.CTIME, 'CTIME', 'ctime', 'timespec'),
    A(Attr.MTIME, 'MTIME', 'mtime', 'timespec'),
    A(Attr.ATIME, 'ATIME', 'atime', 'timespec'),
    A(Attr.OTIME, 'OTIME', 'otime', 'timespec'),
    A(Attr.XATTR_NAME, 'XATTR_NAME', 'xattrName', 'bytes'),
    A(Attr.XATTR_DATA, 'XATTR_DATA', 'xattrData', 'bytes'),
    A(Attr.PATH, 'PATH', 'path', 'bytes'),
    A(Attr.PATH_TO, 'PATH_TO', 'pathTo', 'bytes'),
    A(Attr.PATH_LINK, 'PATH_LINK', 'pathLink', 'bytes'),
    A(Attr.FILE_OFFSET, 'FILE_OFFSET', 'fileOffset', 'u64'),
    A(Attr.DATA, 'DATA', 'data', 'bytes'),
    A(Attr.CLONE_UUID, 'CLONE_UUID', 'cloneUuid', 'uuid'),
    A(Attr.CLONE_CTRANSID, 'CLONE_CTRANSID', 'cloneCtransid', 'u64'),
    A(Attr.CLONE_PATH, 'CLONE_PATH', 'clonePath', 'bytes'),
    A(Attr.CLONE_OFFSET, 'CLONE_OFFSET', 'cloneOffset', 'u64'),
    A(Attr.CLONE_LEN, 'CLONE_LEN', 'cloneLen', 'u64'),
    A(Attr.FALLOCATE_MODE, 'FALLOCATE_MODE', 'fallocateMode', 'u32'),
    A(Attr.FILEATTR, 'FILEATTR', 'fileattr', 'u64'),
    A(Attr.UNENCODED_FILE_LEN, 'UNENCODED_FILE_LEN', 'unencodedFileLen', 'u64'),
    A(Attr.UNENCODED_LEN, 'UNENCODED_LEN', 'unencodedLen', 'u64'),
    A(Attr.UNENCODED_OFFSET, 'UNENCODED_OFFSET', 'unencodedOffset', 'u64'),
    A(Attr.COMPRESSION, 'COMPRESSION', 'compression', 'u32'),
    A(Attr.ENCRYPTION, 'ENCRYPTION', 'encryption', 'u32'),
    A(Attr.VERITY_ALGORITHM, 'VERITY_ALGORITHM', 'verityAlgorithm', 'u8'),
    A(Attr.VERITY_BLOCK_SIZE, 'VERITY_BLOCK_SIZE', 'verityBlockSize', 'u32'),
    A(Attr.VERITY_SALT_DATA, 'VERITY_SALT_DATA', 'veritySaltData', 'bytes'),
    A(Attr.VERITY_SIG_DATA, 'VERITY_SIG_DATA', 'veritySigData', 'bytes'),
  ];
  const table: Array<AttrSpec | undefined> = new Array(MAX_ATTR + 1).fill(undefined);
  for (const s of list) table[s.num] = s;
  return table;
})();

/** Fixed value sizes; undefined means variable length. */
export const FIXED_SIZE: Record<AttrKind, number | undefined> = {
  u8: 1,
  u32: 4,
  u64: 8,
  uuid: 16,
  timespec: 12,
  bytes: undefined,
};

export interface CmdSpec {
  num: CmdNum;
  /** Lower-case name as `btrfs receive --dump` prints it. */
  name: string;
  /** Version that introduced the command. */
  version: number;
  /** Attributes in kernel emission order. */
  attrs: readonly number[];
  /** Attributes btrfs receive insists on. */
  required: readonly number[];
}

const C = (num: CmdNum, name: string, version: number, attrs: number[], optional: number[] = []): CmdSpec => ({
  num,
  name,
  version,
  attrs,
  required: attrs.filter((a) => !optional.includes(a)),
});

const { PATH, INO, RDEV, MODE } = Attr;

/** Indexed by command number; undefined entries are unknown commands. */
export const CMD_SPECS: ReadonlyArray<CmdSpec | undefined> = (() => {
  const list: CmdSpec[] = [
    C(Cmd.SUBVOL, 'subvol', 1, [PATH, Attr.UUID, Attr.CTRANSID]),
    C(Cmd.SNAPSHOT, 'snapshot', 1, [PATH, Attr.UUID, Attr.CTRANSID, Attr.CLONE_UUID, Attr.CLONE_CTRANSID]),
    C(Cmd.MKFILE, 'mkfile', 1, [PATH, INO], [INO]),
    C(Cmd.MKDIR, 'mkdir', 1, [PATH, INO], [INO]),
    C(Cmd.MKNOD, 'mknod', 1, [PATH, INO, RDEV, MODE], [INO]),
    C(Cmd.MKFIFO, 'mkfifo', 1, [PATH, INO, RDEV, MODE], [INO, RDEV, MODE]),
    C(Cmd.MKSOCK, 'mksock', 1, [PATH, INO, RDEV, MODE], [INO, RDEV, MODE]),
    C(Cmd.SYMLINK, 'symlink', 1, [PATH, INO, Attr.PATH_LINK], [INO]),
    C(Cmd.RENAME, 'rename', 1, [PATH, Attr.PATH_TO]),
    C(Cmd.LINK, 'link', 1, [PATH, Attr.PATH_LINK]),
    C(Cmd.UNLINK, 'unlink', 1, [PATH]),
    C(Cmd.RMDIR, 'rmdir', 1, [PATH]),
    C(Cmd.SET_XATTR, 'set_xattr', 1, [PATH, Attr.XATTR_NAME, Attr.XATTR_DATA]),
    C(Cmd.REMOVE_XATTR, 'remove_xattr', 1, [PATH, Attr.XATTR_NAME]),
    C(Cmd.WRITE, 'write', 1, [PATH, Attr.FILE_OFFSET, Attr.DATA]),
    C(Cmd.CLONE, 'clone', 1, [
      Attr.FILE_OFFSET,
      Attr.CLONE_LEN,
      PATH,
      Attr.CLONE_UUID,
      Attr.CLONE_CTRANSID,
      Attr.CLONE_PATH,
      Attr.CLONE_OFFSET,
    ]),
    C(Cmd.TRUNCATE, 'truncate', 1, [PATH, Attr.SIZE]),
    C(Cmd.CHMOD, 'chmod', 1, [PATH, MODE]),
    C(Cmd.CHOWN, 'chown', 1, [PATH, Attr.UID, Attr.GID]),
    C(Cmd.UTIMES, 'utimes', 1, [PATH, Attr.ATIME, Attr.MTIME, Attr.CTIME, Attr.OTIME], [Attr.OTIME]),
    C(Cmd.END, 'end', 1, []),
    C(Cmd.UPDATE_EXTENT, 'update_extent', 1, [PATH, Attr.FILE_OFFSET, Attr.SIZE]),
    C(Cmd.FALLOCATE, 'fallocate', 2, [PATH, Attr.FALLOCATE_MODE, Attr.FILE_OFFSET, Attr.SIZE]),
    C(Cmd.FILEATTR, 'fileattr', 2, [PATH, Attr.FILEATTR]),
    C(
      Cmd.ENCODED_WRITE,
      'encoded_write',
      2,
      [
        PATH,
        Attr.FILE_OFFSET,
        Attr.UNENCODED_FILE_LEN,
        Attr.UNENCODED_LEN,
        Attr.UNENCODED_OFFSET,
        Attr.COMPRESSION,
        Attr.ENCRYPTION,
        Attr.DATA,
      ],
      [Attr.COMPRESSION, Attr.ENCRYPTION],
    ),
    C(
      Cmd.ENABLE_VERITY,
      'enable_verity',
      3,
      [PATH, Attr.VERITY_ALGORITHM, Attr.VERITY_BLOCK_SIZE, Attr.VERITY_SALT_DATA, Attr.VERITY_SIG_DATA],
      [Attr.VERITY_SALT_DATA, Attr.VERITY_SIG_DATA],
    ),
  ];
  const table: Array<CmdSpec | undefined> = [];
  for (const s of list) table[s.num] = s;
  return table;
})();

export function cmdName(num: number): string {
  return CMD_SPECS[num]?.name ?? `unknown(${num})`;
}
