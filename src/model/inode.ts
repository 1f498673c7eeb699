/**
 * The index record of one inode in a snapshot (DESIGN.md "The index").
 *
 * Shared by the walker and index writer (src/diff/, src/volume/) and the
 * planner that turns two indexes into stream commands. Records are kept
 * sorted by `ino`, so a diff is a merge-join of two sorted sequences.
 * Names, symlink targets and xattr names/values are raw bytes.
 */

export type InodeType = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

export interface Link {
  /** Inode number of the directory holding this name (the volume root's own ino for top-level names). */
  parent: bigint;
  name: Buffer;
}

export interface Extent {
  /** Byte offset in the file; extents are contiguous, sorted and cover [0, size). */
  offset: bigint;
  length: number;
  /** Transid at which this block last changed. */
  generation: bigint;
  /** SHA-256 (truncated to 16 bytes) of the block's content, or null for a hole. */
  hash: Buffer | null;
  /**
   * Sub-block digests: SUB_DIGEST_BYTES per SUB_BLOCK_SIZE slice of the
   * block (the last slice may be short), each the first bytes of SHA-256 over
   * the index's secret sub-digest key followed by the slice. They only say
   * *where* inside a block whose `hash` changed the change is; `hash` stays
   * the evidence that it changed. Absent for holes, for files below
   * SUB_DIGEST_MIN_FILE, and in indexes written before format 2.
   */
  sub?: Buffer;
}

/** Granularity of change localisation inside a block (the usual filesystem sector). */
export const SUB_BLOCK_SIZE = 4096;
/** Bytes kept of each keyed sub-block digest (64 bits; never the only evidence of a change). */
export const SUB_DIGEST_BYTES = 8;
/** Files smaller than this get no sub-block digests (a change re-sends at most this much). */
export const SUB_DIGEST_MIN_FILE = 64 * 1024;

export interface InodeRecord {
  ino: bigint;
  /**
   * Tells a reused inode number from the same file: birth time in ns where
   * the filesystem reports it, else the inode generation (FS_IOC_GETVERSION),
   * else 0.
   */
  birth: bigint;
  type: InodeType;
  /** Permission bits only (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  rdev: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  nlink: number;
  /** Sorted by name. */
  xattrs: Array<[Buffer, Buffer]>;
  /** Symlink target. */
  target?: Buffer;
  /** Every (parent, name) of this inode in the snapshot, sorted. */
  links: Link[];
  /** Transid at which this inode (metadata, names or data) last changed. */
  generation: bigint;
  /** Regular files only: fixed-size blocks (the last may be short). */
  extents?: Extent[];
}
