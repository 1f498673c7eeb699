/**
 * The tree walker: lstat every entry of a volume and produce one InodeRecord
 * per inode (without generations or extents; see ./generations.ts).
 *
 * Owns: what an inode looks like in the index (type, permission bits, ids,
 * times, xattrs, symlink target, every (parent ino, name) link) and which
 * entries are part of the volume.
 *
 * Never: descends into ROOT/.ferry; follows a symlink; crosses into another
 * filesystem (an entry whose st_dev differs from the root's is skipped with a
 * warning); reads file data.
 *
 * Invariants: one record per inode however many names it has; the root has
 * no links and is the parent of top-level names; output is sorted by ino.
 * Walking is synchronous (readdirSync + lstatSync measured ~4x faster than
 * fs.promises here). With the native binding each directory is opened once
 * and its entries are stat'ed relative to it (statx), so the kernel does not
 * resolve every path from the root again; elsewhere each path is lstat'ed.
 * Given the parent snapshot's inodes (WalkOptions.known), an inode with the
 * parent's ino, birth and ctime keeps its xattrs and symlink target unread
 * until generations() takes them from the parent's record. Memory: records are held encoded (./record-spool.ts,
 * about 130 bytes a file, not over 1 KB of JS objects), in sorted runs that
 * go to a spill file when the caller gives one; directories' records and
 * relative paths stay in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InodeRecord, InodeType, Link } from '../model/inode';
import { STATX_BTIME, STATX_BYTES, STATX_OFFSET, statxTimeNs, Sys, sys } from '../sys/linux';
import { startTreePrefetch } from '../sys/tree-prefetch';
import { KnownInodes } from './known-inodes';
import { RecordArena, RecordSpool } from './record-spool';

export const FERRY_DIR_NAME = '.ferry';
const FERRY_NAME = Buffer.from(FERRY_DIR_NAME);
const SLASH = Buffer.from('/');

/** XFS lists these as mirrors of the POSIX ACL xattrs; the system.* names are the real ones. */
const SKIPPED_XATTRS = new Set(['trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT']);

export interface WalkEntry {
  readonly rec: InodeRecord;
  /** Absolute path (raw bytes) of the inode's first link (links are sorted); the root's own path for the root. */
  readonly path: Buffer;
  /** Path relative to the root (raw bytes, no leading slash); empty for the root. */
  readonly rel: Buffer;
}

export interface WalkOptions {
  onWarning?: (message: string) => void;
  /** Read xattrs (default true). */
  xattrs?: boolean;
  /**
   * Warm the inode cache from a second thread that walks the same tree in
   * the same order just ahead (sys/tree-prefetch.ts). For big trees: it costs
   * a thread start and an idle core.
   */
  prefetch?: boolean;
  /**
   * A file (which must not exist) to spill the sorted runs of records to,
   * so memory stays bounded whatever the tree's size; removed by dispose().
   */
  spillTo?: string;
  /**
   * The parent snapshot's inodes. An inode found there with the same ino,
   * birth and ctime keeps its xattrs and symlink target unread: the record
   * is marked (isUnread) and generations() takes them from the parent's
   * record, or reads them if that does not match after all. Only for walks
   * whose records go through generations() before anything reads xattrs.
   */
  known?: KnownInodes;
  /** The syscalls to use (tests compare the native walk with the fallback's). */
  sys?: Sys;
}

const EMPTY = Buffer.alloc(0);

/** Mark a record's xattrs and symlink target as not read (an xattr's name is never empty, so the marker cannot be real). */
export function markUnread(rec: InodeRecord): void {
  rec.xattrs = [[EMPTY, EMPTY]];
  if (rec.type === 'symlink') rec.target = EMPTY;
}

/** True when the walk left the record's xattrs and symlink target unread (WalkOptions.known). */
export function isUnread(rec: InodeRecord): boolean {
  return rec.xattrs.length === 1 && rec.xattrs[0][0].length === 0;
}

/** Read what the walk left unread, from the inode's path. */
export function readUnread(rec: InodeRecord, p: Buffer): void {
  rec.xattrs = readXattrs(p);
  if (rec.type === 'symlink') rec.target = fs.readlinkSync(p, { encoding: 'buffer' });
}

export function typeOf(mode: number): InodeType {
  switch (mode & fs.constants.S_IFMT) {
    case fs.constants.S_IFREG:
      return 'file';
    case fs.constants.S_IFDIR:
      return 'dir';
    case fs.constants.S_IFLNK:
      return 'symlink';
    case fs.constants.S_IFCHR:
      return 'chr';
    case fs.constants.S_IFBLK:
      return 'blk';
    case fs.constants.S_IFIFO:
      return 'fifo';
    default:
      return 'sock';
  }
}

/** Sorted xattrs of a path (never follows a symlink); [] where the fs has none. */
export function readXattrs(p: Buffer, s: Sys = sys()): Array<[Buffer, Buffer]> {
  let names: Buffer[];
  try {
    names = s.llistxattr(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS') return [];
    throw e;
  }
  if (names.length === 0) return [];
  const out: Array<[Buffer, Buffer]> = [];
  for (const n of names) {
    if (SKIPPED_XATTRS.has(n.toString('latin1'))) continue;
    const v = s.lgetxattr(p, n);
    if (v !== undefined) out.push([n, v]);
  }
  out.sort((a, b) => Buffer.compare(a[0], b[0]));
  return out;
}

export function compareLinks(a: Link, b: Link): number {
  return a.parent < b.parent ? -1 : a.parent > b.parent ? 1 : Buffer.compare(a.name, b.name);
}

type Birth = (p: Buffer, st: fs.BigIntStats, type: InodeType) => bigint;

interface BirthSource {
  /** The filesystem reports birth times (statx btime): statx walks read them from stx_btime. */
  btime: boolean;
  /** For lstat walks. */
  of: Birth;
}

/** An inode's generation through an fd (files and dirs), else 0: the birth where there is no birth time. */
function generationBirth(s: Sys, p: Buffer, type: InodeType): bigint {
  if (type !== 'file' && type !== 'dir') return 0n;
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return 0n;
  }
  try {
    return s.inodeGeneration(fd) ?? 0n;
  } catch {
    return 0n;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * How to learn an inode's birth: lstat's birthtime when it is the real
 * statx btime (checked once against sys().btimeNs), else sys().btimeNs per
 * path, else the inode generation through an fd (files and dirs), else 0.
 */
function birthSource(s: Sys, root: Buffer, rootSt: fs.BigIntStats): BirthSource {
  let bt: bigint | undefined;
  try {
    bt = s.btimeNs(root);
  } catch {
    bt = undefined;
  }
  if (bt !== undefined && bt !== 0n) {
    if (rootSt.birthtimeNs === bt) return { btime: true, of: (_p, st) => st.birthtimeNs };
    return {
      btime: true,
      of: (p, st) => {
        try {
          return s.btimeNs(p) ?? 0n;
        } catch {
          return st.birthtimeNs;
        }
      },
    };
  }
  return { btime: false, of: (p, _st, type) => generationBirth(s, p, type) };
}

function makeRecord(st: fs.BigIntStats, type: InodeType, birth: bigint): InodeRecord {
  return {
    ino: st.ino,
    birth,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    // Directory sizes are filesystem-specific and carry no content; they are 0 in the index.
    size: type === 'file' || type === 'symlink' ? st.size : 0n,
    rdev: type === 'chr' || type === 'blk' ? st.rdev : 0n,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    nlink: Number(st.nlink),
    xattrs: [],
    links: [],
    generation: 0n,
  };
}

interface DirFrame {
  ino: bigint;
  path: Buffer;
  /** Path relative to the root, as latin1 (one char per byte, lossless). */
  rel: string;
  top: boolean;
}

/**
 * A finished walk: every inode's record, held compactly (./record-spool.ts)
 * and read back one entry at a time in ino order. Holds per directory its
 * relative path (to spell any entry's path) and per multi-link inode the
 * names seen after the first.
 */
export class Walk {
  /** Directory relative paths (latin1) by ino. */
  private readonly dirRel = new Map<bigint, string>();
  /** The directories' records in the order found: parents before children. */
  private readonly dirRecords = new RecordArena();
  /** Inodes (not dirs) with nlink > 1: the names found after the first, or null while there are none. */
  readonly moreNames = new Map<bigint, Link[] | null>();

  constructor(
    readonly rootPath: Buffer,
    readonly rootIno: bigint,
    readonly records: RecordSpool,
  ) {}

  get length(): number {
    return this.records.length;
  }

  /** Record an inode (walker only). */
  add(rec: InodeRecord, dirRel?: string): void {
    this.records.add(rec);
    if (dirRel === undefined) return;
    this.dirRel.set(rec.ino, dirRel);
    this.dirRecords.add(rec);
  }

  /** Relative path of an inode's first link (empty for the root). */
  relOf(rec: InodeRecord): Buffer {
    const l = rec.links[0];
    if (!l) return Buffer.alloc(0);
    const up = this.dirRel.get(l.parent);
    if (up === undefined) throw new Error(`walk: no directory ${l.parent} for inode ${rec.ino}`);
    return up ? Buffer.concat([Buffer.from(up, 'latin1'), SLASH, l.name]) : l.name;
  }

  /** Absolute path of a directory found by the walk, or undefined. */
  dirPath(ino: bigint): Buffer | undefined {
    const rel = this.dirRel.get(ino);
    if (rel === undefined) return undefined;
    return rel ? Buffer.concat([this.rootPath, SLASH, Buffer.from(rel, 'latin1')]) : this.rootPath;
  }

  /** Every inode in ino order, each a fresh record. Once only: the spool is read as it is merged. */
  *entries(): Generator<WalkEntry> {
    for (const rec of this.records.sorted()) {
      if (rec.type !== 'dir' && rec.nlink > 1) {
        const more = this.moreNames.get(rec.ino);
        if (more) {
          rec.links.push(...more);
          rec.links.sort(compareLinks);
        }
      }
      yield new SpooledEntry(rec, this);
    }
  }

  /** The directories, parents before children (`reverse`: children first). */
  *dirs(reverse = false): Generator<WalkEntry> {
    const n = this.dirRecords.length;
    for (let k = 0; k < n; k++) yield new SpooledEntry(this.dirRecords.get(reverse ? n - 1 - k : k), this);
  }

  /** Remove the spill file, if any. */
  dispose(): void {
    this.records.dispose();
  }
}

/** A walk entry whose paths are spelled when first asked for. */
class SpooledEntry implements WalkEntry {
  private relB: Buffer | undefined;
  private pathB: Buffer | undefined;

  constructor(
    readonly rec: InodeRecord,
    private readonly walk: Walk,
  ) {}

  get rel(): Buffer {
    return (this.relB ??= this.walk.relOf(this.rec));
  }

  get path(): Buffer {
    if (!this.pathB) this.pathB = this.rel.length ? Buffer.concat([this.walk.rootPath, SLASH, this.rel]) : this.walk.rootPath;
    return this.pathB;
  }
}

/**
 * Walk `root`, keeping every inode's record in a compact spool. Generations
 * are 0 and extents unset; ./generations.ts fills them in as the entries
 * are read back in ino order.
 */
export function walkVolume(root: string, opts: WalkOptions = {}): Walk {
  const warn = opts.onWarning ?? (() => undefined);
  const s = opts.sys ?? sys();
  const rootPath = Buffer.from(path.resolve(root));
  const rootSt = fs.lstatSync(rootPath, { bigint: true });
  if (!rootSt.isDirectory()) throw Object.assign(new Error(`not a directory: ${root}`), { code: 'ENOTDIR' });
  const birth = birthSource(s, rootPath, rootSt);
  const rootRec = makeRecord(rootSt, 'dir', birth.of(rootPath, rootSt, 'dir'));
  const withXattrs = opts.xattrs ?? true;
  if (withXattrs) rootRec.xattrs = readXattrs(rootPath, s);
  const walk = new Walk(rootPath, rootRec.ino, new RecordSpool({ spillTo: opts.spillTo }));
  walk.add(rootRec, '');
  const stopPrefetch = opts.prefetch ? startTreePrefetch(rootPath, { skip: FERRY_NAME, order: 'stack' }) : () => undefined;
  try {
    walkFrom(walk, { dev: rootSt.dev, birth, withXattrs, warn, s, known: withXattrs ? opts.known : undefined });
  } catch (e) {
    walk.dispose();
    throw e;
  } finally {
    stopPrefetch();
  }
  return walk;
}

interface WalkContext {
  dev: bigint;
  birth: BirthSource;
  withXattrs: boolean;
  warn: (m: string) => void;
  s: Sys;
  known: KnownInodes | undefined;
}

const DOT = Buffer.from('.');
const O_DIR = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;

/** glibc's makedev(major, minor): the dev_t Node reports as rdev. */
function makedev(major: number, minor: number): bigint {
  const M = BigInt(major >>> 0);
  const m = BigInt(minor >>> 0);
  return ((M & 0xfffn) << 8n) | ((M & 0xfffff000n) << 32n) | (m & 0xffn) | ((m & 0xffffff00n) << 12n);
}

/** The record of a statx result (the same fields makeRecord takes from lstat). */
function recordOfStatx(b: Buffer, type: InodeType, birth: bigint): InodeRecord {
  const O = STATX_OFFSET;
  return {
    ino: b.readBigUInt64LE(O.ino),
    birth,
    type,
    mode: b.readUInt16LE(O.mode) & 0o7777,
    uid: b.readUInt32LE(O.uid),
    gid: b.readUInt32LE(O.gid),
    size: type === 'file' || type === 'symlink' ? b.readBigUInt64LE(O.size) : 0n,
    rdev: type === 'chr' || type === 'blk' ? makedev(b.readUInt32LE(O.rdevMajor), b.readUInt32LE(O.rdevMinor)) : 0n,
    atimeNs: statxTimeNs(b, O.atime),
    mtimeNs: statxTimeNs(b, O.mtime),
    ctimeNs: statxTimeNs(b, O.ctime),
    nlink: b.readUInt32LE(O.nlink),
    xattrs: [],
    links: [],
    generation: 0n,
  };
}

const vanished = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * The walk proper. Where the native statx binding is there, each directory
 * is opened once and its entries are stat'ed relative to it (the kernel
 * does not resolve the whole path again per entry); elsewhere each entry's
 * path is lstat'ed. Both give the same records.
 */
function walkFrom(walk: Walk, c: WalkContext): void {
  const { warn, s, known, withXattrs } = c;
  const statxAt = s.statxAt;
  const stx = Buffer.alloc(STATX_BYTES);
  let devMajor = 0;
  let devMinor = 0;
  if (statxAt) {
    const fd = fs.openSync(walk.rootPath, O_DIR);
    try {
      statxAt(fd, DOT, stx);
    } finally {
      fs.closeSync(fd);
    }
    devMajor = stx.readUInt32LE(STATX_OFFSET.devMajor);
    devMinor = stx.readUInt32LE(STATX_OFFSET.devMinor);
  }
  const stack: DirFrame[] = [{ ino: walk.rootIno, path: walk.rootPath, rel: '', top: true }];
  while (stack.length) {
    const dir = stack.pop()!;
    let dirents: fs.Dirent<Buffer>[];
    let dirFd = -1;
    try {
      if (statxAt) dirFd = fs.openSync(dir.path, O_DIR);
      dirents = fs.readdirSync(dir.path, { withFileTypes: true, encoding: 'buffer' });
    } catch (e) {
      if (dirFd >= 0) fs.closeSync(dirFd);
      if (vanished(e) || (e as NodeJS.ErrnoException).code === 'ELOOP') {
        warn(`directory vanished during the walk: ${dir.path.toString()}`);
        continue;
      }
      throw e;
    }
    try {
      for (const d of dirents) {
        const name = d.name as Buffer;
        if (dir.top && name.equals(FERRY_NAME)) continue;
        let p: Buffer | undefined;
        const pathOf = () => (p ??= Buffer.concat([dir.path, SLASH, name]));
        let st: fs.BigIntStats | undefined;
        let type: InodeType;
        let ino: bigint;
        let nlink: number;
        try {
          if (dirFd >= 0) {
            statxAt!(dirFd, name, stx);
            if (stx.readUInt32LE(STATX_OFFSET.devMajor) !== devMajor || stx.readUInt32LE(STATX_OFFSET.devMinor) !== devMinor) {
              warn(`skipped a mount point (another filesystem): ${pathOf().toString()}`);
              continue;
            }
            type = typeOf(stx.readUInt16LE(STATX_OFFSET.mode));
            ino = stx.readBigUInt64LE(STATX_OFFSET.ino);
            nlink = stx.readUInt32LE(STATX_OFFSET.nlink);
          } else {
            st = fs.lstatSync(pathOf(), { bigint: true });
            if (st.dev !== c.dev) {
              warn(`skipped a mount point (another filesystem): ${pathOf().toString()}`);
              continue;
            }
            type = typeOf(Number(st.mode));
            ino = st.ino;
            nlink = Number(st.nlink);
          }
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
            warn(`file vanished during the walk: ${pathOf().toString()}`);
            continue;
          }
          throw e;
        }
        const link: Link = { parent: dir.ino, name };
        const multi = type !== 'dir' && nlink > 1;
        if (multi && walk.moreNames.has(ino)) {
          const more = walk.moreNames.get(ino);
          if (more) more.push(link);
          else walk.moreNames.set(ino, [link]);
          continue;
        }
        let rec: InodeRecord;
        if (st) rec = makeRecord(st, type, c.birth.of(pathOf(), st, type));
        else {
          const mask = stx.readUInt32LE(STATX_OFFSET.mask);
          const birth = !c.birth.btime ? generationBirth(s, pathOf(), type) : mask & STATX_BTIME ? statxTimeNs(stx, STATX_OFFSET.btime) : 0n;
          rec = recordOfStatx(stx, type, birth);
        }
        rec.links.push(link);
        if (withXattrs && known?.has(rec.ino, rec.birth, rec.ctimeNs)) markUnread(rec);
        else {
          try {
            if (withXattrs) rec.xattrs = readXattrs(pathOf(), s);
            if (type === 'symlink') rec.target = fs.readlinkSync(pathOf(), { encoding: 'buffer' });
          } catch (e) {
            if (!vanished(e)) throw e;
            warn(`file vanished during the walk: ${pathOf().toString()}`);
            continue;
          }
        }
        if (type === 'dir') {
          const rel = dir.rel ? `${dir.rel}/${name.toString('latin1')}` : name.toString('latin1');
          walk.add(rec, rel);
          stack.push({ ino: rec.ino, path: pathOf(), rel, top: false });
        } else {
          walk.add(rec);
          if (multi) walk.moreNames.set(rec.ino, null);
        }
      }
    } finally {
      if (dirFd >= 0) fs.closeSync(dirFd);
    }
  }
}

/**
 * Walk `root` and return one entry per inode, sorted by ino, all in memory
 * (small trees and tests; snapshots read a Walk one entry at a time).
 */
export function walkTree(root: string, opts: WalkOptions = {}): WalkEntry[] {
  return [...walkVolume(root, opts).entries()];
}
