/**
 * Limits that bound what a stream may make ferry allocate or create.
 *
 * Decoders and the receiver check every length against these before they
 * allocate or touch the disk. Defaults are generous for real streams (the
 * kernel never sends a command above 192 KiB) and tight enough that a hostile
 * length field cannot make ferry allocate gigabytes.
 */
export interface Limits {
  /** Largest command payload accepted, in bytes (header excluded). */
  maxCommandBytes: number;
  /** Longest path, in bytes (PATH_MAX). */
  maxPathBytes: number;
  /** Deepest path, in components. */
  maxPathDepth: number;
  /** Longest xattr name, in bytes (XATTR_NAME_MAX). */
  maxXattrNameBytes: number;
  /** Largest xattr value, in bytes (XATTR_SIZE_MAX). */
  maxXattrValueBytes: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxCommandBytes: 16 * 1024 * 1024,
  maxPathBytes: 4096,
  maxPathDepth: 512,
  maxXattrNameBytes: 255,
  maxXattrValueBytes: 65536,
});
