/**
 * The btrfs send-stream command, as every layer sees it.
 *
 * Owns: command numbers and the typed attribute bag. Wire details (attribute
 * numbers, TLV framing, CRC) live in src/stream/. Invariants: paths, names and
 * symlink targets are raw bytes (Buffer), never JS strings, because btrfs
 * names need not be UTF-8; every u64 is a bigint.
 */

/** Command numbers (send.h `btrfs_send_cmd`). */
export const Cmd = {
  SUBVOL: 1,
  SNAPSHOT: 2,
  MKFILE: 3,
  MKDIR: 4,
  MKNOD: 5,
  MKFIFO: 6,
  MKSOCK: 7,
  SYMLINK: 8,
  RENAME: 9,
  LINK: 10,
  UNLINK: 11,
  RMDIR: 12,
  SET_XATTR: 13,
  REMOVE_XATTR: 14,
  WRITE: 15,
  CLONE: 16,
  TRUNCATE: 17,
  CHMOD: 18,
  CHOWN: 19,
  UTIMES: 20,
  END: 21,
  UPDATE_EXTENT: 22,
  FALLOCATE: 23,
  FILEATTR: 24,
  ENCODED_WRITE: 25,
  ENABLE_VERITY: 26,
} as const;
export type CmdNum = (typeof Cmd)[keyof typeof Cmd];

/** btrfs_timespec: signed 64-bit seconds plus nanoseconds. */
export interface Timespec {
  sec: bigint;
  nsec: number;
}

/**
 * Attribute values by meaning. A command carries the subset its number calls
 * for (see CMD_SPECS in src/stream/constants.ts).
 */
export interface CommandAttrs {
  uuid?: Buffer;
  ctransid?: bigint;
  ino?: bigint;
  size?: bigint;
  mode?: bigint;
  uid?: bigint;
  gid?: bigint;
  rdev?: bigint;
  ctime?: Timespec;
  mtime?: Timespec;
  atime?: Timespec;
  otime?: Timespec;
  xattrName?: Buffer;
  xattrData?: Buffer;
  path?: Buffer;
  pathTo?: Buffer;
  pathLink?: Buffer;
  fileOffset?: bigint;
  data?: Buffer;
  cloneUuid?: Buffer;
  cloneCtransid?: bigint;
  clonePath?: Buffer;
  cloneOffset?: bigint;
  cloneLen?: bigint;
  fallocateMode?: number;
  fileattr?: bigint;
  unencodedFileLen?: bigint;
  unencodedLen?: bigint;
  unencodedOffset?: bigint;
  compression?: number;
  encryption?: number;
  verityAlgorithm?: number;
  verityBlockSize?: number;
  veritySaltData?: Buffer;
  veritySigData?: Buffer;
}

export interface Command {
  cmd: CmdNum;
  attrs: CommandAttrs;
}

/** ENCODED_WRITE compression values (BTRFS_ENCODED_IO_COMPRESSION_*). */
export const Compression = {
  NONE: 0,
  ZLIB: 1,
  ZSTD: 2,
  LZO_4K: 3,
  LZO_64K: 7,
} as const;
