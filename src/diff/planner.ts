/**
 * The planner: turns two snapshot indexes (or one, for a full send) into btrfs
 * send commands in an order a receiver can apply one at a time (DESIGN.md
 * "From a diff to a stream"; the algorithm is written up in docs/planner.md).
 *
 * Owns: the receiver-tree model (where every inode is right now on the
 * receiving side), orphan names, the order of name operations, and which
 * data/metadata commands an inode needs. Never touches the filesystem: file
 * content comes through the caller's DataSource, and only `splitWrite` and
 * the WRITE size limit are taken from src/stream/.
 *
 * Invariants:
 *  - every path in an emitted command is valid in the modelled receiver tree
 *    at the moment the command is applied (checked as the model is updated;
 *    a violation is an INTERNAL error, never a bad stream);
 *  - the output is a pure function of the inputs: same records and data,
 *    same commands, byte for byte (iteration follows ino and name order only);
 *  - a surviving inode is never deleted and recreated: moves are RENAMEs,
 *    extra names are LINKs;
 *  - data: a changed block is sent as the 4 KiB slices whose sub-block
 *    digests differ from the parent's block at that offset (whole block when
 *    either side has none, or the digests disagree with the block hash), or
 *    as a CLONE of a block with the same 16-byte hash that the receiver
 *    already has: in the parent snapshot, or earlier in this stream. A CLONE
 *    is 4 KiB-aligned, never overlaps its source in one file, ends at both
 *    files' EOF when its length is not aligned, and is emitted only where it
 *    is smaller than the WRITEs it replaces (docs/planner.md "Data").
 */
import { FerryError } from '../errors';
import { Cmd, Command, CommandAttrs, Timespec } from '../model/command';
import { Extent, InodeRecord, InodeType, SUB_BLOCK_SIZE, SUB_DIGEST_BYTES } from '../model/inode';
import { maxWriteBytes } from '../stream/constants';
import { splitWrite } from '../stream/encoder';
import { BlockTable } from './block-table';
import { blockHash } from './generations';
import { SubDigester } from './sub-digests';
import { KeptBytes } from './kept-bytes';
import { addWantedBlocks, CLONE_ALIGN, cloneableExtent as cloneable, extentAt, findRootIno, sameInode } from './select';

export interface PlanSnapshot {
  uuid: Buffer;
  ctransid: bigint;
  rootIno: bigint;
  /** Sorted by ino. */
  records: InodeRecord[];
  /**
   * Names in the root (latin1) of inodes left out of `records` (see
   * ./select.ts): orphan names must not take them either.
   */
  rootNames?: string[];
  /**
   * Identifies the key of the records' sub-block digests (IndexHeader.subKey).
   * Digests of two snapshots are compared only when both have the same one.
   */
  subKey?: string;
}

/**
 * A snapshot for a full send, read in passes rather than held: `records`
 * may be a function that starts a fresh pass over the same records (sorted
 * by ino) each time it is called. planFull makes two passes and keeps only
 * the directories (and clone sources, bounded) between them.
 */
export interface FullSnapshot {
  uuid: Buffer;
  ctransid: bigint;
  /** Found in the first pass (the directory without names) when absent. */
  rootIno?: bigint;
  records: Iterable<InodeRecord> | (() => Iterable<InodeRecord>);
  subKey?: string;
}

/** Reads file content of the CHILD snapshot (by the child-snapshot-relative path, raw bytes), chunked by the caller. */
export interface DataSource {
  /** `rec` is the sent snapshot's record of the file, so a live source can check that the file still matches it. */
  read(path: Buffer, offset: bigint, length: number, rec?: InodeRecord): Buffer;
}

export interface PlanOptions {
  version: 1 | 2;
  /** Snapshot name for SUBVOL/SNAPSHOT PATH. */
  name: Buffer;
  /** Send blocks the receiver already has as CLONE (default true). */
  clone?: boolean;
  /**
   * The caller already emitted the SUBVOL/SNAPSHOT command (see
   * `subvolCommand`/`snapshotCommand`), so a receiver could start on it
   * before the plan was made; the planner then does not repeat it.
   */
  headSent?: boolean;
}

/** The SUBVOL command that opens a full stream. */
export function subvolCommand(name: Buffer, snap: { uuid: Buffer; ctransid: bigint }): Command {
  return { cmd: Cmd.SUBVOL, attrs: { path: name, uuid: snap.uuid, ctransid: snap.ctransid } };
}

/** The SNAPSHOT command that opens an incremental stream. */
export function snapshotCommand(name: Buffer, snap: { uuid: Buffer; ctransid: bigint }, parent: { uuid: Buffer; ctransid: bigint }): Command {
  return { cmd: Cmd.SNAPSHOT, attrs: { path: name, uuid: snap.uuid, ctransid: snap.ctransid, cloneUuid: parent.uuid, cloneCtransid: parent.ctransid } };
}

const CAPABILITY = 'security.capability';
/** Bytes read from the DataSource at once: a multiple of both WRITE sizes (48 KiB v1, 128 KiB v2). */
const READ_CHUNK = 384 * 1024;
const ZEROS = Buffer.alloc(READ_CHUNK);
const SLASH = Buffer.from('/');
const EMPTY = Buffer.alloc(0);
const FALLOC_PUNCH_KEEP_SIZE = 3;

const TYPE_BITS: Record<InodeType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chr: 0o020000,
  blk: 0o060000,
  fifo: 0o010000,
  sock: 0o140000,
};

interface Edge {
  parent: Node;
  name: Buffer;
  /** Name as a map key (latin1 is a byte-exact bijection). */
  key: string;
}

interface Node {
  /** Unique per plan: an old and a new inode may share an ino. */
  id: number;
  /** Light plans: what a directory's record is still needed for once its content is sent (orphan name, UTIMES). */
  kept?: Pick<InodeRecord, 'generation' | 'atimeNs' | 'mtimeNs' | 'ctimeNs'>;
  ino: bigint;
  /** Record in the parent snapshot (absent for new inodes). */
  old?: InodeRecord;
  /** Record in the sent snapshot (absent for deleted inodes). */
  neu?: InodeRecord;
  isDir: boolean;
  /** Names on the receiver right now, in the order they were made. */
  cur: Edge[];
  /** Names in the sent snapshot. */
  tgt: Edge[];
  tgtKeys: Set<string>;
  exists: boolean;
  /** Directories: entries on the receiver right now. */
  children: Map<string, Node>;
  /** Directories: entries in the sent snapshot, sorted by name. */
  tgtChildren: Array<[Buffer, Node]>;
  orphan?: Buffer;
  isRoot: boolean;
}

const edgeKey = (parent: Node, key: string) => `${parent.id}:${key}`;

function ts(ns: bigint): Timespec {
  let sec = ns / 1_000_000_000n;
  let nsec = ns - sec * 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return { sec, nsec: Number(nsec) };
}

function internal(msg: string): FerryError {
  return new FerryError('INTERNAL', `planner: ${msg}`);
}

/** An empty POSIX ACL value would fail on the receiver; the kernel sends the 4-byte header instead. */
function xattrValue(name: Buffer, value: Buffer): Buffer {
  if (value.length === 0 && name.toString('latin1').startsWith('system.posix_acl_')) return Buffer.from([2, 0, 0, 0]);
  return value;
}

/**
 * The receiver-tree model and the command helpers that keep it current.
 * Each helper checks its precondition against the model and emits one command.
 */
class Plan {
  readonly out: Command[] = [];
  readonly root: Node;
  /** Directories whose entries changed on the receiver (they need UTIMES). */
  readonly touched = new Set<Node>();
  private readonly reservedRootNames = new Set<string>();
  private readonly childPaths = new Map<Node, Buffer>();
  private readonly oldPaths = new Map<Node, Buffer | null>();
  /** Names and paths that outlive the record they came from. */
  readonly kept = new KeptBytes();
  /** Incremental sends: the parent snapshot's inodes by number, and its root's. */
  parentIndex?: { byIno: Map<bigint, Node>; rootIno: bigint };

  constructor(
    rootIno: bigint,
    readonly opts: PlanOptions,
    /**
     * Full sends streamed in ino order: entries are tracked (and checked
     * for collisions) in the root only, where orphan names live, and only
     * directories' paths are cached, so a file's node can be dropped once
     * it is sent. Every name is made exactly once, from an index whose
     * names are unique per directory (its checksum was verified).
     */
    readonly light = false,
  ) {
    this.root = newNode(rootIno, true);
    this.root.isRoot = true;
    this.root.exists = true;
  }

  reserveRootName(key: string): void {
    this.reservedRootNames.add(key);
  }

  /** `o<ino>-<gen>-<idx>`, unique among root names of both snapshots and the receiver's root now. */
  orphanName(n: Node): Buffer {
    if (n.orphan) return n.orphan;
    const gen = (n.neu ?? n.old ?? n.kept)!.generation;
    for (let idx = 0; ; idx++) {
      const name = Buffer.from(`o${n.ino}-${gen}-${idx}`);
      const key = name.toString('latin1');
      if (!this.reservedRootNames.has(key) && !this.root.children.has(key)) {
        // A full send has one node per ino, so no other node can make this
        // name: reserving it would only keep a string per inode sent.
        if (!this.light) this.reservedRootNames.add(key);
        n.orphan = n.isDir ? this.kept.copy(name) : name;
        return n.orphan;
      }
    }
  }

  path(n: Node): Buffer {
    if (n.isRoot) return EMPTY;
    const e = n.cur[0];
    if (!e) throw internal(`inode ${n.ino} has no name on the receiver`);
    return this.join(e.parent, e.name);
  }

  join(parent: Node, name: Buffer): Buffer {
    const pp = this.path(parent);
    return pp.length ? Buffer.concat([pp, SLASH, name]) : name;
  }

  /**
   * Path of an inode in the parent snapshot (a CLONE source there), or
   * undefined when its names there do not lead to the root.
   */
  oldPath(n: Node, depth = 0): Buffer | undefined {
    const known = this.oldPaths.get(n);
    if (known !== undefined) return known ?? undefined;
    let p: Buffer | null = null;
    const l = n.old?.links[0];
    const idx = this.parentIndex;
    if (l && idx && depth < 4096) {
      if (l.parent === idx.rootIno) p = l.name;
      else {
        const d = idx.byIno.get(l.parent);
        const up = d && d.isDir ? this.oldPath(d, depth + 1) : undefined;
        if (up) p = this.kept.copy(Buffer.concat([up, SLASH, l.name]));
      }
    }
    this.oldPaths.set(n, p);
    return p ?? undefined;
  }

  /** Path in the sent snapshot (for reading data). */
  childPath(n: Node): Buffer {
    if (n.isRoot) return EMPTY;
    let p = this.childPaths.get(n);
    if (!p) {
      const e = n.tgt[0];
      if (!e) throw internal(`inode ${n.ino} has no name in the sent snapshot`);
      const pp = this.childPath(e.parent);
      p = pp.length ? Buffer.concat([pp, SLASH, e.name]) : e.name;
      if (n.isDir || !this.light) this.childPaths.set(n, (p = this.kept.copy(p)));
    }
    return p;
  }

  isTarget(n: Node, e: Edge): boolean {
    return n.tgtKeys.has(edgeKey(e.parent, e.key));
  }

  /** True when `a` is `d` or one of its ancestors on the receiver now. */
  isAncestorOrSelf(a: Node, d: Node): boolean {
    for (let x: Node | undefined = d; x; x = x.isRoot ? undefined : x.cur[0]?.parent) if (x === a) return true;
    return false;
  }

  /** Whether the model keeps this directory's entries (always, except in light plans). */
  private tracks(dir: Node): boolean {
    return !this.light || dir.isRoot;
  }

  private addEdge(n: Node, parent: Node, name: Buffer): Edge {
    const key = name.toString('latin1');
    if (!parent.exists || !parent.isDir) throw internal(`parent ${parent.ino} of ${name.toString()} does not exist`);
    const e = { parent, name, key };
    if (this.tracks(parent)) {
      if (parent.children.has(key)) throw internal(`name ${this.join(parent, name).toString()} is taken`);
      parent.children.set(key, n);
    }
    // A first name gets an array of its own size: V8 gives an empty array
    // room for 16 on its first push, 150 bytes a node held by a full send.
    if (n.cur.length === 0) n.cur = [e];
    else n.cur.push(e);
    this.touched.add(parent);
    return e;
  }

  private dropEdge(n: Node, e: Edge): void {
    const i = n.cur.indexOf(e);
    const tracked = this.tracks(e.parent);
    if (i < 0 || (tracked && e.parent.children.get(e.key) !== n)) throw internal(`inode ${n.ino} is not at ${e.name.toString()}`);
    n.cur.splice(i, 1);
    if (tracked) e.parent.children.delete(e.key);
    this.touched.add(e.parent);
  }

  emit(cmd: Command['cmd'], attrs: CommandAttrs): void {
    this.out.push({ cmd, attrs });
  }

  create(n: Node, parent: Node, name: Buffer): void {
    if (n.exists) throw internal(`inode ${n.ino} created twice`);
    const path = this.join(parent, name);
    const r = n.neu;
    if (!r) {
      // A light plan's directory made (under its orphan name) before its record's turn.
      if (!n.isDir) throw internal(`inode ${n.ino} has no record to create it from`);
      this.emit(Cmd.MKDIR, { path, ino: n.ino });
      n.exists = true;
      this.addEdge(n, parent, name);
      return;
    }
    const ino = r.ino;
    const mode = BigInt(TYPE_BITS[r.type] | (r.mode & 0o7777));
    switch (r.type) {
      case 'file':
        this.emit(Cmd.MKFILE, { path, ino });
        break;
      case 'dir':
        this.emit(Cmd.MKDIR, { path, ino });
        break;
      case 'symlink':
        this.emit(Cmd.SYMLINK, { path, ino, pathLink: r.target ?? EMPTY });
        break;
      case 'chr':
      case 'blk':
        this.emit(Cmd.MKNOD, { path, ino, rdev: r.rdev, mode });
        break;
      case 'fifo':
        this.emit(Cmd.MKFIFO, { path, ino, rdev: r.rdev, mode });
        break;
      case 'sock':
        this.emit(Cmd.MKSOCK, { path, ino, rdev: r.rdev, mode });
        break;
    }
    n.exists = true;
    this.addEdge(n, parent, name);
  }

  rename(n: Node, from: Edge, parent: Node, name: Buffer): void {
    const path = this.join(from.parent, from.name);
    if (n.isDir && this.isAncestorOrSelf(n, parent)) throw internal(`rename of ${path.toString()} into itself`);
    const pathTo = this.join(parent, name);
    this.emit(Cmd.RENAME, { path, pathTo });
    const i = n.cur.indexOf(from);
    this.dropEdge(n, from);
    const e = this.addEdge(n, parent, name);
    // Keep the position: the first name stays the one paths are built from.
    n.cur.pop();
    n.cur.splice(i, 0, e);
  }

  link(n: Node, parent: Node, name: Buffer): void {
    if (n.isDir) throw internal(`link of directory ${n.ino}`);
    const pathLink = this.path(n);
    this.emit(Cmd.LINK, { path: this.join(parent, name), pathLink });
    this.addEdge(n, parent, name);
  }

  unlink(n: Node, e: Edge): void {
    if (n.isDir) throw internal(`unlink of directory ${n.ino}`);
    this.emit(Cmd.UNLINK, { path: this.join(e.parent, e.name) });
    this.dropEdge(n, e);
    if (n.cur.length === 0) n.exists = false;
  }

  rmdir(n: Node): void {
    if (n.children.size) throw internal(`rmdir of non-empty directory ${this.path(n).toString()}`);
    this.emit(Cmd.RMDIR, { path: this.path(n) });
    this.dropEdge(n, n.cur[0]!);
    n.exists = false;
  }

  /** UTIMES with the sent snapshot's times (OTIME is never applied by receivers and is left out). */
  utimes(n: Node): void {
    const r = n.neu ?? n.kept!;
    const attrs: CommandAttrs = { path: this.path(n), atime: ts(r.atimeNs), mtime: ts(r.mtimeNs), ctime: ts(r.ctimeNs) };
    this.emit(Cmd.UTIMES, attrs);
  }
}

/** What a light plan keeps of a directory's record after its turn. */
const keep = (r: InodeRecord): NonNullable<Node['kept']> => ({ generation: r.generation, atimeNs: r.atimeNs, mtimeNs: r.mtimeNs, ctimeNs: r.ctimeNs });

let nextId = 0;
/** A shared empty entry map that refuses to be written (a file's, or a light directory's). */
class NoChildren extends Map<string, Node> {
  override set(key: string): this {
    throw internal(`entry ${key} added to a node that keeps none`);
  }
}
/** Shared by every non-directory and every light node: never written (Plan.tracks, and only directories have entries). */
const NO_CHILDREN: Map<string, Node> = new NoChildren();
const NO_KEYS: Set<string> = new Set();
const NO_ENTRIES: Array<[Buffer, Node]> = Object.freeze([]) as unknown as Array<[Buffer, Node]>;

function newNode(ino: bigint, isDir: boolean): Node {
  // Only directories hold entries: a file's node shares the empty ones (an incremental
  // plan can hold 100k unchanged neighbours of changed files).
  const children = isDir ? new Map<string, Node>() : NO_CHILDREN;
  const tgtChildren = isDir ? [] : NO_ENTRIES;
  return { id: nextId++, ino, isDir, cur: [], tgt: [], tgtKeys: new Set(), exists: false, children, tgtChildren, isRoot: false };
}
function newLightNode(ino: bigint, isDir: boolean): Node {
  return { id: nextId++, ino, isDir, cur: [], tgt: [], tgtKeys: NO_KEYS, exists: false, children: NO_CHILDREN, tgtChildren: NO_ENTRIES, isRoot: false };
}

/** Attach the sent snapshot's names to the nodes (target edges and per-directory target entries). */
function attachTargets(plan: Plan, byIno: Map<bigint, Node>, records: InodeRecord[]): void {
  for (const r of records) {
    if (r.ino === plan.root.ino) continue;
    const n = byIno.get(r.ino)!;
    for (const l of r.links) {
      const parent = l.parent === plan.root.ino ? plan.root : byIno.get(l.parent);
      if (!parent || !parent.isDir) {
        throw new FerryError('DIFF_INDEX_CORRUPT', `index names a missing parent directory`, { context: { ino: r.ino, parent: l.parent } });
      }
      const key = l.name.toString('latin1');
      n.tgt.push({ parent, name: l.name, key });
      n.tgtKeys.add(edgeKey(parent, key));
      parent.tgtChildren.push([l.name, n]);
      if (parent.isRoot) plan.reserveRootName(key);
    }
  }
  for (const n of [plan.root, ...byIno.values()]) if (n.isDir) n.tgtChildren.sort((a, b) => Buffer.compare(a[0], b[0]));
}

function checkSorted(records: InodeRecord[], what: string): void {
  for (let i = 1; i < records.length; i++) {
    if (records[i - 1]!.ino >= records[i]!.ino) {
      throw new FerryError('DIFF_INDEX_CORRUPT', `${what} index is not sorted by inode`, { context: { ino: records[i]!.ino } });
    }
  }
}

const reachable = (r: InodeRecord, rootIno: bigint) => r.ino === rootIno || r.links.length > 0;

// ---------------------------------------------------------------------------
// Per-inode content: xattrs, data, truncate, chown, chmod, capability, utimes.

interface ContentCtx {
  plan: Plan;
  data: DataSource;
  version: 1 | 2;
  /** Sub-block digests of the parent and the sent snapshot were made with the same key. */
  subs: boolean;
  /** That key's digest of an all-zero slice: a parent hole reads as zeros. */
  zeroSub?: Buffer;
  /** Where content the receiver already has can be cloned from; undefined when CLONE is off. */
  clones?: Clones;
}

/** Longest single CLONE (the kernel's largest extent, BTRFS_MAX_EXTENT_SIZE). */
const MAX_CLONE_LEN = 128n * 1024n * 1024n;
/** CLONE bytes besides its two paths: header, FILE_OFFSET, CLONE_LEN, CLONE_CTRANSID, CLONE_OFFSET, CLONE_UUID, two TLV headers. */
const CLONE_OVERHEAD = 10 + 4 * 12 + 20 + 2 * 4;
/** WRITE bytes besides its path and data: header, PATH TLV header, FILE_OFFSET, DATA TLV header. */
const WRITE_OVERHEAD = 10 + 4 + 12 + 4;

/** Moves a node's record and names into kept memory (see KeptBytes). */
function keepNode(kept: KeptBytes, n: Node): void {
  if (n.neu) kept.record(n.neu);
  if (n.old) kept.record(n.old);
  for (const e of n.cur) e.name = kept.copy(e.name);
  for (const e of n.tgt) e.name = kept.copy(e.name);
}

/** A block the receiver holds: of the parent snapshot (root 0, read-only there) or of the snapshot being received (root 1). */
interface CloneLoc {
  node: Node;
  root: 0 | 1;
  block: number;
}

/** How far back a streamed full send remembers clone sources (each one keeps its file's record). */
export interface CloneBounds {
  blocks: number;
  files: number;
}

/** Full sends: 512 Ki blocks (64 GiB of 128 KiB blocks, about 40 MB of table) in at most 64 Ki files. */
export const FULL_CLONE_BOUNDS: CloneBounds = { blocks: 512 * 1024, files: 64 * 1024 };

/**
 * Blocks the receiver already has, by content hash. The first location
 * added for a hash wins: the parent's blocks (in ino order) before the
 * sent snapshot's (in the order the stream completes them). With bounds,
 * nothing is added once either is reached, so memory stays bounded and
 * the choice stays a pure function of the input.
 */
class Clones {
  private readonly table = new BlockTable();
  private readonly locs: CloneLoc[] = [];
  private files = 0;
  private lastNode: Node | undefined;

  constructor(
    readonly sent: { uuid: Buffer; ctransid: bigint },
    readonly parent: { uuid: Buffer; ctransid: bigint } | undefined,
    /** Only hashes the stream will need (incremental sends); undefined: every block (full sends). */
    private readonly wanted: BlockTable | undefined,
    private readonly bounds?: CloneBounds,
    /** Full sends: a source file's node outlives its turn, so its buffers move out of shared slabs. */
    private readonly kept?: KeptBytes,
  ) {}

  add(node: Node, root: 0 | 1, block: number, x: Extent): void {
    if (!x.hash || (this.wanted && !this.wanted.has(x.hash))) return;
    const b = this.bounds;
    if (b && (this.table.size >= b.blocks || (node !== this.lastNode && this.files >= b.files))) return;
    if (this.table.add(x.hash, this.locs.length)) {
      this.locs.push({ node, root, block });
      if (node !== this.lastNode) {
        this.lastNode = node;
        this.files++;
        if (this.kept) keepNode(this.kept, node);
      }
    }
  }

  find(hash: Buffer): CloneLoc | undefined {
    const i = this.table.get(hash);
    return i < 0 ? undefined : this.locs[i];
  }
}

/**
 * The byte ranges of a changed block the receiver does not have: the
 * SUB_BLOCK_SIZE slices whose digests differ from the parent's block at the
 * same offset. The whole block when either side has no digests, or when no
 * digest differs although the hash does (64 bits never outvote 128).
 */
function changedSlices(ctx: ContentCtx, x: Extent, ox: Extent | undefined, src: Buffer, rec: InodeRecord): Array<[bigint, bigint]> {
  const whole: Array<[bigint, bigint]> = [[x.offset, x.offset + BigInt(x.length)]];
  // The block the parent's version ended in, now longer (an append): when the
  // parent's bytes are all still there (its block hash covers exactly them),
  // only what follows is new. Reading them costs no more than sending them.
  if (ox?.hash && ox.offset === x.offset && ox.length < x.length) {
    if (blockHash(ctx.data.read(src, x.offset, ox.length, rec)).equals(ox.hash)) return [[x.offset + BigInt(ox.length), x.offset + BigInt(x.length)]];
  }
  if (!ctx.subs || !x.sub || !ox) return whole;
  // A write into a hole of the parent (a sparse image): the receiver's copy
  // reads zeros there, so only slices that are not all zeros are new.
  const hole = ox.hash === null && ctx.zeroSub !== undefined;
  if (!hole && (!ox.hash || !ox.sub)) return whole;
  const out: Array<[bigint, bigint]> = [];
  const n = Math.ceil(x.length / SUB_BLOCK_SIZE);
  const d = SUB_DIGEST_BYTES;
  for (let k = 0; k < n; k++) {
    const at = k * SUB_BLOCK_SIZE;
    const len = Math.min(SUB_BLOCK_SIZE, x.length - at);
    const oldLen = Math.min(SUB_BLOCK_SIZE, ox.length - at);
    const same = hole
      ? oldLen === len && len === SUB_BLOCK_SIZE && x.sub.compare(ctx.zeroSub!, 0, d, k * d, k * d + d) === 0
      : oldLen === len && x.sub.compare(ox.sub!, k * d, k * d + d, k * d, k * d + d) === 0;
    if (same) continue;
    const s = x.offset + BigInt(at);
    const e = s + BigInt(len);
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out.length ? out : whole;
}

/** The shared key's digest of a zero slice, when both snapshots share a key. */
function subsZero(a: string | undefined, b: string | undefined): Buffer | undefined {
  if (a === undefined || a !== b) return undefined;
  const key = Buffer.from(a, 'hex');
  try {
    return new SubDigester(key).digest(Buffer.alloc(SUB_BLOCK_SIZE));
  } catch {
    return undefined; // a key of the wrong size: digests are not compared at all
  }
}

/** One CLONE being planned: it grows while the next blocks continue the same source. */
interface CloneRun {
  loc: CloneLoc;
  src: InodeRecord;
  srcPath: Buffer;
  srcStart: bigint;
  dstStart: bigint;
  len: bigint;
  /** Source block that would extend the run. */
  next: number;
}

function* readWrites(ctx: ContentCtx, dst: Buffer, src: Buffer, rec: InodeRecord, start: bigint, end: bigint): Generator<Command> {
  for (let at = start; at < end; ) {
    const len = Number(end - at < BigInt(READ_CHUNK) ? end - at : BigInt(READ_CHUNK));
    const buf = ctx.data.read(src, at, len, rec);
    if (buf.length === 0) return;
    yield* splitWrite(dst, at, buf, ctx.version);
    at += BigInt(buf.length);
  }
}

function* zeroWrites(ctx: ContentCtx, dst: Buffer, start: bigint, end: bigint): Generator<Command> {
  for (let at = start; at < end; ) {
    const len = end - at < BigInt(READ_CHUNK) ? Number(end - at) : READ_CHUNK;
    yield* splitWrite(dst, at, ZEROS.subarray(0, len), ctx.version);
    at += BigInt(len);
  }
}

/** Merge [start, end) ranges that touch. Input sorted by start. */
function mergeRanges(rs: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  for (const [s, e] of rs) {
    const last = out[out.length - 1];
    if (last && last[1] >= s) last[1] = e > last[1] ? e : last[1];
    else out.push([s, e]);
  }
  return out;
}

/**
 * Data commands for a file. `since` undefined: everything (new inode).
 * Returns the end offset of the last byte written or cloned (0n when none),
 * and whether any command changed data (which drops file capabilities).
 */
function* fileData(ctx: ContentCtx, n: Node, since: bigint | undefined): Generator<Command, { end: bigint; touched: boolean }> {
  const { plan, clones } = ctx;
  const r = n.neu!;
  const dst = plan.path(n);
  const src = plan.childPath(n);
  const old = since !== undefined ? n.old : undefined;
  /** The file's size on the receiver before its data commands (they grow it only up to the block being planned). */
  const sizeBefore = old ? old.size : 0n;
  const maxWrite = maxWriteBytes(ctx.version);
  const writes: Array<[bigint, bigint]> = [];
  const holes: Array<[bigint, bigint]> = [];
  const runs: CloneRun[] = [];
  let run: CloneRun | undefined;
  /** Block i of this file holds the sent snapshot's data on the receiver once the commands before block i+1 are applied. */
  const done = (i: number, x: Extent) => {
    if (clones && cloneable(x, r.size)) clones.add(n, 1, i, x);
  };
  const extend = (i: number, x: Extent): boolean => {
    if (!run || run.dstStart + run.len !== x.offset || run.len + BigInt(x.length) > MAX_CLONE_LEN) return false;
    const sx = run.src.extents?.[run.next];
    if (!sx?.hash || sx.offset !== run.srcStart + run.len || sx.length !== x.length || !sx.hash.equals(x.hash!)) return false;
    if (!cloneable(sx, run.src.size)) return false;
    // Within this file: only blocks already planned, and the source must end before the destination starts.
    if (run.loc.root === 1 && run.loc.node === n && (run.next >= i || run.srcStart + run.len + BigInt(x.length) > run.dstStart)) return false;
    run.len += BigInt(x.length);
    run.next++;
    return true;
  };
  const start = (i: number, x: Extent, slices: Array<[bigint, bigint]>): CloneRun | undefined => {
    const loc = clones!.find(x.hash!);
    if (!loc) return undefined;
    const srcRec = loc.root === 0 ? loc.node.old! : loc.node.neu!;
    const sx = srcRec.extents?.[loc.block];
    if (!sx || sx.length !== x.length || !cloneable(sx, srcRec.size)) return undefined;
    if (loc.root === 1 && loc.node === n && loc.block >= i) return undefined;
    const srcPath = loc.root === 0 ? plan.oldPath(loc.node) : plan.path(loc.node);
    if (srcPath === undefined) return undefined;
    const cloneCost = CLONE_OVERHEAD + dst.length + srcPath.length;
    let writeCost = 0;
    for (const [s, e] of slices) writeCost += Number(e - s) + Math.ceil(Number(e - s) / maxWrite) * (WRITE_OVERHEAD + dst.length);
    if (cloneCost >= writeCost) return undefined;
    return { loc, src: srcRec, srcPath, srcStart: sx.offset, dstStart: x.offset, len: BigInt(x.length), next: loc.block + 1 };
  };
  const exts = r.extents ?? [];
  for (let i = 0; i < exts.length; i++) {
    const x = exts[i];
    const end = x.offset + BigInt(x.length);
    if (end > r.size) throw new FerryError('DIFF_INDEX_CORRUPT', 'extent beyond end of file', { context: { ino: r.ino, offset: x.offset } });
    if (!x.hash) {
      if (since === undefined || x.generation > since) holes.push([x.offset, end]);
      run = undefined;
      continue;
    }
    const ox = old ? extentAt(old, i, x.offset) : undefined;
    // Unchanged since the parent (by generation, or the very same content back again).
    if ((since !== undefined && x.generation <= since) || (ox?.hash && ox.length === x.length && ox.hash.equals(x.hash))) {
      run = undefined;
      done(i, x);
      continue;
    }
    const slices = changedSlices(ctx, x, ox, src, r);
    // An unaligned tail may only be cloned where it ends at the receiver's EOF.
    if (clones && cloneable(x, r.size) && (x.length % CLONE_ALIGN === 0 || sizeBefore <= end)) {
      if (extend(i, x)) {
        done(i, x);
        continue;
      }
      run = start(i, x, slices);
      if (run) {
        runs.push(run);
        done(i, x);
        continue;
      }
    }
    run = undefined;
    writes.push(...slices);
    done(i, x);
  }
  // Holes that replaced data of the parent's version: punch (v2) or zero (v1).
  const punches: Array<[bigint, bigint]> = [];
  if (since !== undefined && old && holes.length) {
    const oldData = mergeRanges(
      (old.extents ?? []).filter((x) => x.hash).map((x): [bigint, bigint] => [x.offset, x.offset + BigInt(x.length)]),
    ).map(([s, e]): [bigint, bigint] => [s, e < old.size ? e : old.size]);
    for (const [hs, he] of mergeRanges(holes)) {
      for (const [ds, de] of oldData) {
        const s = hs > ds ? hs : ds;
        const e = he < de ? he : de;
        if (s < e) punches.push([s, e]);
      }
    }
  }
  type Op = { s: bigint; e: bigint; kind: 'write' | 'punch' | 'clone'; run?: CloneRun };
  const ops: Op[] = [
    ...mergeRanges(writes).map(([s, e]): Op => ({ s, e, kind: 'write' })),
    ...mergeRanges(punches).map(([s, e]): Op => ({ s, e, kind: 'punch' })),
    ...runs.map((c): Op => ({ s: c.dstStart, e: c.dstStart + c.len, kind: 'clone', run: c })),
  ].sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
  let writeEnd = 0n;
  for (const op of ops) {
    if (op.kind === 'write') {
      yield* readWrites(ctx, dst, src, r, op.s, op.e);
    } else if (op.kind === 'clone') {
      const c = op.run!;
      const from = c.loc.root === 0 ? clones!.parent! : clones!.sent;
      plan.emit(Cmd.CLONE, {
        fileOffset: c.dstStart,
        cloneLen: c.len,
        path: dst,
        cloneUuid: from.uuid,
        cloneCtransid: from.ctransid,
        clonePath: c.srcPath,
        cloneOffset: c.srcStart,
      });
      yield* drain(plan);
    } else if (ctx.version >= 2) {
      plan.emit(Cmd.FALLOCATE, { path: dst, fallocateMode: FALLOC_PUNCH_KEEP_SIZE, fileOffset: op.s, size: op.e - op.s });
      yield* drain(plan);
      continue; // punching keeps the size: not a write end
    } else {
      yield* zeroWrites(ctx, dst, op.s, op.e);
    }
    if (op.e > writeEnd) writeEnd = op.e;
  }
  return { end: writeEnd, touched: ops.length > 0 };
}

function* drain(plan: Plan): Generator<Command> {
  for (const c of plan.out) yield c;
  plan.out.length = 0;
}

/**
 * Everything about one inode except its names: xattrs, data, size, owner,
 * mode, file capabilities, and (non-directories) UTIMES. `since` is the
 * parent's ctransid for an inode that exists on both sides, else undefined.
 */
function* content(ctx: ContentCtx, n: Node, since: bigint | undefined): Generator<Command> {
  const { plan } = ctx;
  const r = n.neu!;
  const o = since === undefined ? undefined : n.old;
  const path = () => plan.path(n);
  let cap: Buffer | undefined;
  let capChanged = false;
  // xattrs: removals first (a capability is removed before anything can drop it), then sets.
  const oldX = new Map((o?.xattrs ?? []).map(([k, v]) => [k.toString('latin1'), v]));
  const newX = new Map(r.xattrs.map(([k, v]) => [k.toString('latin1'), v]));
  for (const [k] of o?.xattrs ?? []) {
    if (!newX.has(k.toString('latin1'))) plan.emit(Cmd.REMOVE_XATTR, { path: path(), xattrName: k });
  }
  for (const [k, v] of r.xattrs) {
    const key = k.toString('latin1');
    const before = oldX.get(key);
    if (key === CAPABILITY) {
      cap = v;
      capChanged = !before || !before.equals(v);
      continue;
    }
    if (!before || !before.equals(v)) plan.emit(Cmd.SET_XATTR, { path: path(), xattrName: k, xattrData: xattrValue(k, v) });
  }
  yield* drain(plan);
  let dropsCap = false;
  if (r.type === 'file') {
    const { end: writeEnd, touched } = yield* fileData(ctx, n, o ? since : undefined);
    if (touched) dropsCap = true;
    const oldSize = o ? o.size : 0n;
    const grownByWrites = r.size > oldSize && writeEnd === r.size;
    if (r.size !== oldSize && !grownByWrites) {
      plan.emit(Cmd.TRUNCATE, { path: path(), size: r.size });
      dropsCap = true;
    }
  }
  let chowned = false;
  if (!o || o.uid !== r.uid || o.gid !== r.gid) {
    plan.emit(Cmd.CHOWN, { path: path(), uid: BigInt(r.uid), gid: BigInt(r.gid) });
    dropsCap = true;
    chowned = true;
  }
  // chown clears setuid/setgid on the receiver: restore them even if the mode did not change.
  const modeLost = chowned && (r.mode & 0o6000) !== 0;
  if (r.type !== 'symlink' && (!o || o.mode !== r.mode || modeLost)) plan.emit(Cmd.CHMOD, { path: path(), mode: BigInt(r.mode & 0o7777) });
  if (cap && (capChanged || dropsCap)) plan.emit(Cmd.SET_XATTR, { path: path(), xattrName: Buffer.from(CAPABILITY), xattrData: cap });
  if (!n.isDir) plan.utimes(n);
  yield* drain(plan);
}

function* dirUtimes(plan: Plan, dirs: Node[]): Generator<Command> {
  const sorted = dirs.filter((d) => !d.isRoot).sort((a, b) => (a.ino < b.ino ? -1 : a.ino > b.ino ? 1 : 0));
  for (const d of sorted) plan.utimes(d);
  if (dirs.includes(plan.root)) plan.utimes(plan.root);
  yield* drain(plan);
}

// ---------------------------------------------------------------------------
// Full send: the kernel's order (ascending ino, orphan then rename).

export function* planFull(snap: FullSnapshot, data: DataSource, opts: PlanOptions, bounds: CloneBounds = FULL_CLONE_BOUNDS): Generator<Command> {
  const scan = typeof snap.records === 'function' ? snap.records : () => snap.records as Iterable<InodeRecord>;
  // Pass 1: every directory (a file's parent may come later in ino order)
  // with what its record is needed for before and after its turn, and
  // every top-level name (orphan names must never take one).
  const rootIno = snap.rootIno ?? findRootIno(scan());
  if (rootIno === undefined) throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index has no root directory');
  const plan = new Plan(rootIno, opts, true);
  const dirs = new Map<bigint, Node>();
  /** Each directory's first name, until its parent's node exists (end of pass 1). */
  const names: Array<[Node, bigint, Buffer]> = [];
  const rootNames: string[] = [];
  let rootRec: InodeRecord | undefined;
  let last = -1n;
  for (const r of scan()) {
    if (r.ino <= last) throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index is not sorted by inode', { context: { ino: r.ino } });
    last = r.ino;
    if (r.ino === rootIno) {
      if (r.type !== 'dir' || r.links.length) throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index has no root directory', { context: { ino: rootIno } });
      rootRec = r;
    } else if (r.type === 'dir' && r.links.length > 0) {
      const n = newLightNode(r.ino, true);
      n.kept = keep(r);
      dirs.set(r.ino, n);
      names.push([n, r.links[0]!.parent, plan.kept.copy(r.links[0]!.name)]);
    }
    for (const l of r.links) if (l.parent === rootIno) rootNames.push(l.name.toString('latin1'));
  }
  if (!rootRec) throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index has no root directory', { context: { ino: rootIno } });
  for (const k of rootNames) plan.reserveRootName(k);
  const dirNode = (ino: bigint, of: bigint): Node => {
    const d = ino === rootIno ? plan.root : dirs.get(ino);
    if (!d) throw new FerryError('DIFF_INDEX_CORRUPT', `index names a missing parent directory`, { context: { ino: of, parent: ino } });
    return d;
  };
  for (const [n, parent, name] of names) n.tgt = [{ parent: dirNode(parent, n.ino), name, key: name.toString('latin1') }];
  names.length = 0;
  const ctx: ContentCtx = {
    plan,
    data,
    version: opts.version,
    subs: false,
    clones: opts.clone === false ? undefined : new Clones({ uuid: snap.uuid, ctransid: snap.ctransid }, undefined, undefined, bounds, plan.kept),
  };

  // Pass 2: the kernel's order, ascending ino; a name whose directory is
  // not made yet goes under an orphan name until that directory's turn.
  if (!opts.headSent) yield subvolCommand(opts.name, snap);
  const ensure = (d: Node) => {
    if (!d.exists) plan.create(d, plan.root, plan.orphanName(d));
  };
  // The root's own metadata first, as in the kernel's stream.
  plan.root.neu = rootRec;
  yield* content(ctx, plan.root, undefined);
  plan.root.neu = undefined;
  plan.root.kept = keep(rootRec);
  rootRec = undefined;
  for (const r of scan()) {
    if (r.ino === rootIno || r.links.length === 0) continue; // the root, or not reachable from it
    const n = r.type === 'dir' ? dirs.get(r.ino)! : newLightNode(r.ino, false);
    n.neu = r;
    if (r.type !== 'dir') {
      n.tgt = r.links.map((l) => ({ parent: dirNode(l.parent, r.ino), name: l.name, key: l.name.toString('latin1') }));
    }
    ensure(n);
    n.tgt.forEach((t, i) => {
      ensure(t.parent);
      if (i === 0) plan.rename(n, n.cur[0]!, t.parent, t.name);
      else plan.link(n, t.parent, t.name);
    });
    yield* drain(plan);
    yield* content(ctx, n, undefined);
    // Its record is needed later only as a clone source (which keeps it through the node).
    if (n.isDir) n.neu = undefined;
  }
  for (const d of dirs.values()) if (!d.exists) throw internal(`directory ${d.ino} was never made`);
  yield* dirUtimes(plan, [...dirs.values(), plan.root]);
  yield { cmd: Cmd.END, attrs: {} };
}

// ---------------------------------------------------------------------------
// Incremental send.

/**
 * Clone sources for an incremental send: the hashes of every block the
 * stream must send, and where the parent snapshot already has them. The
 * sent snapshot's blocks join as the stream completes them. Undefined when
 * nothing could be cloned.
 */
function incrementalClones(nodes: Node[], parent: PlanSnapshot, snap: PlanSnapshot): Clones | undefined {
  const wanted = new BlockTable();
  for (const n of nodes) if (n.neu) addWantedBlocks(wanted, n.neu, n.old, parent.ctransid);
  if (wanted.size === 0) return undefined;
  const clones = new Clones({ uuid: snap.uuid, ctransid: snap.ctransid }, { uuid: parent.uuid, ctransid: parent.ctransid }, wanted);
  for (const n of nodes) {
    const o = n.old;
    if (!o || o.type !== 'file' || !o.extents) continue;
    o.extents.forEach((x, i) => {
      if (cloneable(x, o.size)) clones.add(n, 0, i, x);
    });
  }
  return clones;
}

/**
 * Phases (docs/planner.md):
 *  1. names, breadth-first over the sent snapshot's tree, parents before
 *     children: each name is made (MK*, RENAME or LINK) once its directory is
 *     in its final place; whoever holds the name is moved to a free final
 *     name, to its orphan name, or unlinked/removed when it is leaving anyway;
 *  2. leftover names: UNLINK, then RMDIR deepest first;
 *  3. content of new and changed inodes in ino order;
 *  4. UTIMES of changed or touched directories, the root last.
 */
export function* planIncremental(parent: PlanSnapshot, snap: PlanSnapshot, data: DataSource, opts: PlanOptions): Generator<Command> {
  checkSorted(parent.records, 'parent snapshot');
  checkSorted(snap.records, 'snapshot');
  const plan = new Plan(snap.rootIno, opts);
  const since = parent.ctransid;
  const oldByIno = new Map<bigint, Node>();
  const newByIno = new Map<bigint, Node>();
  const nodes: Node[] = [];
  const oldRecs = parent.records.filter((r) => reachable(r, parent.rootIno));
  const newRecs = snap.records.filter((r) => reachable(r, snap.rootIno));

  // Merge-join by ino: same ino, birth and type is the same inode.
  let i = 0;
  let j = 0;
  while (i < oldRecs.length || j < newRecs.length) {
    const o = oldRecs[i];
    const r = newRecs[j];
    if (o && (!r || o.ino < r.ino)) {
      i++;
      if (o.ino === parent.rootIno) {
        plan.root.old = o; // roots pair by role: a rolled-back volume's root has a new ino
        continue;
      }
      const n = newNode(o.ino, o.type === 'dir');
      n.old = o;
      oldByIno.set(o.ino, n);
      nodes.push(n);
    } else if (r && (!o || r.ino < o.ino)) {
      j++;
      if (r.ino === snap.rootIno) {
        plan.root.neu = r;
        continue;
      }
      const n = newNode(r.ino, r.type === 'dir');
      n.neu = r;
      newByIno.set(r.ino, n);
      nodes.push(n);
    } else if (o && r) {
      i++;
      j++;
      const isRoot = o.ino === parent.rootIno && r.ino === snap.rootIno;
      if (isRoot) {
        plan.root.old = o;
        plan.root.neu = r;
        continue;
      }
      if (o.ino === parent.rootIno || r.ino === snap.rootIno) {
        // One side's root shares its ino with an ordinary inode of the other (after a rollback).
        if (o.ino === parent.rootIno) plan.root.old = o;
        else {
          const n = newNode(o.ino, o.type === 'dir');
          n.old = o;
          oldByIno.set(o.ino, n);
          nodes.push(n);
        }
        if (r.ino === snap.rootIno) plan.root.neu = r;
        else {
          const n = newNode(r.ino, r.type === 'dir');
          n.neu = r;
          newByIno.set(r.ino, n);
          nodes.push(n);
        }
        continue;
      }
      if (sameInode(o, r)) {
        const n = newNode(o.ino, o.type === 'dir');
        n.old = o;
        n.neu = r;
        oldByIno.set(o.ino, n);
        newByIno.set(r.ino, n);
        nodes.push(n);
      } else {
        const a = newNode(o.ino, o.type === 'dir');
        a.old = o;
        oldByIno.set(o.ino, a);
        const b = newNode(r.ino, r.type === 'dir');
        b.neu = r;
        newByIno.set(r.ino, b);
        nodes.push(a, b);
      }
    }
  }
  if (!plan.root.old || !plan.root.neu) {
    throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index has no root directory', { context: { ino: snap.rootIno } });
  }
  // Current names (the parent snapshot's), then target names.
  for (const n of nodes) {
    if (!n.old) continue;
    n.exists = true;
    for (const l of n.old.links) {
      const p = l.parent === parent.rootIno ? plan.root : oldByIno.get(l.parent);
      if (!p || !p.isDir) {
        throw new FerryError('DIFF_INDEX_CORRUPT', 'parent index names a missing parent directory', { context: { ino: n.ino, parent: l.parent } });
      }
      const key = l.name.toString('latin1');
      if (p.children.has(key)) throw new FerryError('DIFF_INDEX_CORRUPT', 'parent index has a name twice', { context: { ino: n.ino } });
      p.children.set(key, n);
      n.cur.push({ parent: p, name: l.name, key });
      if (p.isRoot) plan.reserveRootName(key);
    }
  }
  attachTargets(plan, newByIno, newRecs);
  for (const k of [...(parent.rootNames ?? []), ...(snap.rootNames ?? [])]) plan.reserveRootName(k);
  plan.parentIndex = { byIno: oldByIno, rootIno: parent.rootIno };
  const ctx: ContentCtx = {
    plan,
    data,
    version: opts.version,
    subs: parent.subKey !== undefined && parent.subKey === snap.subKey,
    zeroSub: subsZero(parent.subKey, snap.subKey),
    clones: opts.clone === false ? undefined : incrementalClones(nodes, parent, snap),
  };

  if (!opts.headSent) yield snapshotCommand(opts.name, snap, parent);

  // Phase 1: names, parents before children.
  const tryFinal = (y: Node, from: Edge): boolean => {
    for (const t of y.tgt) {
      if (y.cur.some((e) => e.parent === t.parent && e.key === t.key)) continue;
      if (!t.parent.exists || t.parent.children.has(t.key)) continue;
      if (y.isDir && plan.isAncestorOrSelf(y, t.parent)) continue;
      plan.rename(y, from, t.parent, t.name);
      return true;
    }
    return false;
  };
  const evict = (y: Node, d: Node, key: string) => {
    const e = y.cur.find((x) => x.parent === d && x.key === key)!;
    if (!y.isDir) {
      if (y.cur.length > 1 || !y.neu) plan.unlink(y, e);
      else if (!tryFinal(y, e)) plan.rename(y, e, plan.root, plan.orphanName(y));
    } else if (!y.neu && y.children.size === 0) {
      plan.rmdir(y);
    } else if (!y.neu || !tryFinal(y, e)) {
      plan.rename(y, e, plan.root, plan.orphanName(y));
    }
  };
  const queue: Node[] = [plan.root];
  for (let q = 0; q < queue.length; q++) {
    const d = queue[q]!;
    for (const [name, x] of d.tgtChildren) {
      const key = name.toString('latin1');
      const holder = d.children.get(key);
      if (holder !== x) {
        if (holder) evict(holder, d, key);
        if (!x.exists) plan.create(x, d, name);
        else if (x.isDir) plan.rename(x, x.cur[0]!, d, name);
        else {
          const spare = x.cur.find((e) => !plan.isTarget(x, e));
          if (spare) plan.rename(x, spare, d, name);
          else plan.link(x, d, name);
        }
      }
      if (x.isDir) queue.push(x);
      yield* drain(plan);
    }
  }

  // Phase 2: names that are left over. Survivors keep at least one (target) name.
  for (const n of nodes) {
    if (n.isDir || !n.exists) continue;
    for (const e of [...n.cur]) if (!plan.isTarget(n, e)) plan.unlink(n, e);
  }
  const depth = (n: Node) => {
    let k = 0;
    for (let x = n; !x.isRoot; x = x.cur[0]!.parent) k++;
    return k;
  };
  const doomed = nodes
    .filter((n) => n.isDir && !n.neu && n.exists)
    .map((n) => [depth(n), n] as const)
    .sort((a, b) => b[0] - a[0] || (a[1].ino < b[1].ino ? -1 : a[1].ino > b[1].ino ? 1 : 0));
  for (const [, n] of doomed) plan.rmdir(n);
  yield* drain(plan);
  for (const n of nodes) {
    if (n.neu && !n.tgt.every((t) => n.cur.some((e) => e.parent === t.parent && e.key === t.key))) throw internal(`inode ${n.ino} not in place`);
    if (n.neu && n.cur.length !== n.tgt.length) throw internal(`inode ${n.ino} has stray names`);
  }

  // Phase 3: content of new and changed inodes.
  const changed = (n: Node) => !n.old || n.neu!.generation > since;
  if (changed(plan.root)) yield* content(ctx, plan.root, since);
  const dirs: Node[] = [];
  for (const n of nodes) {
    if (!n.neu) continue;
    if (changed(n)) yield* content(ctx, n, n.old ? since : undefined);
    if (n.isDir && (changed(n) || plan.touched.has(n))) dirs.push(n);
  }
  // Phase 4: directory times, after their last entry changed.
  if (changed(plan.root) || plan.touched.has(plan.root)) dirs.push(plan.root);
  yield* dirUtimes(plan, dirs);
  yield { cmd: Cmd.END, attrs: {} };
}
