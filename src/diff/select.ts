/**
 * Which records an incremental plan needs, read from two snapshot indexes in
 * passes instead of held whole (DESIGN.md "The index": a diff is a
 * merge-join of two sorted sequences; no full in-memory map of the tree).
 *
 * Owns: choosing the subset. Never: plans anything. planIncremental on the
 * subset emits exactly the commands it emits on the whole indexes (a test
 * holds every scenario to byte equality), because everything it leaves out
 * is an inode the planner would not touch:
 *  - an inode is *changed* when it is on one side only, is another inode
 *    under the same number, or has a generation above the parent's transid.
 *    Anything else has the same names, metadata and data on both sides (a
 *    generation moves whenever any of them changes);
 *  - an unchanged inode is inert even in a changed directory: every name it
 *    has stays where it is, so no name the plan makes, moves or removes can
 *    be one of its names (a name that goes away or is taken over belongs to
 *    a changed inode), and it gets no content or times. Its directory's
 *    entry map on the receiver lacks it, which nothing reads: occupants the
 *    plan evicts, and the entries of a directory it removes, are changed.
 *
 * Kept: changed inodes; the parent's files that hold a block the stream
 * wants to clone; and every directory on the way from those to either root.
 * Memory: the directory skeleton (inode to parent, both sides) plus the kept
 * records, so a 1% change of a large tree keeps about 1% of its records.
 *
 * Passes: 1. classify and build the skeleton; 2. keep the changed and the
 * clone sources; 3. (only when needed) the directories above the clone
 * sources pass 2 found.
 */
import { Extent, InodeRecord } from '../model/inode';
import { BlockTable } from './block-table';
import { KeptBytes } from './kept-bytes';

export interface IndexScans {
  /** A fresh pass over the records, sorted by ino, each time it is called. */
  scan(): Iterable<InodeRecord>;
  rootIno: bigint;
}

export interface Selection {
  parent: InodeRecord[];
  snap: InodeRecord[];
  /**
   * Every name in either root (latin1), kept or not: orphan names are made
   * in the root and must never take one (PlanSnapshot.rootNames).
   */
  rootNames: string[];
}

export interface SelectOptions {
  /** The parent's transid: generations above it are changes. */
  since: bigint;
  /** Keep the parent's files that hold blocks the stream could clone (default true). */
  clone?: boolean;
}

/** A pair of records under one inode number, as a merge-join yields them. */
export type Pair = [InodeRecord | undefined, InodeRecord | undefined];

/** Merge-join two record passes in ino order: one pair per inode number on either side. */
export function* mergeJoin(a: Iterable<InodeRecord>, b: Iterable<InodeRecord>): Generator<Pair> {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  let x = ia.next();
  let y = ib.next();
  while (!x.done || !y.done) {
    if (!x.done && (y.done || x.value.ino < y.value.ino)) {
      yield [x.value, undefined];
      x = ia.next();
    } else if (!y.done && (x.done || y.value.ino < x.value.ino)) {
      yield [undefined, y.value];
      y = ib.next();
    } else {
      yield [x.value, y.value];
      x = ia.next();
      y = ib.next();
    }
  }
}

/** The same inode on both sides (not a reused number): birth and type, and a symlink target or device number, which cannot change in place. */
export function sameInode(o: InodeRecord, r: InodeRecord): boolean {
  return (
    o.birth === r.birth &&
    o.type === r.type &&
    (o.type !== 'symlink' || (o.target ?? Buffer.alloc(0)).equals(r.target ?? Buffer.alloc(0))) &&
    ((o.type !== 'chr' && o.type !== 'blk') || o.rdev === r.rdev)
  );
}

/** The snapshot's root: the first directory without names (indexes that do not say which it is). */
export function findRootIno(records: Iterable<InodeRecord>): bigint | undefined {
  for (const r of records) if (r.type === 'dir' && r.links.length === 0) return r.ino;
  return undefined;
}

/** CLONE offsets and lengths are multiples of this, except a range that ends at both files' EOF. */
export const CLONE_ALIGN = 4096;

/**
 * Whether a block can be a CLONE source or destination at all: 4 KiB
 * aligned, a whole number of sectors unless it ends at EOF, and never a
 * single sector at offset 0 (that may be an inline extent on a btrfs
 * receiver; the kernel never clones it either).
 */
export function cloneableExtent(x: Extent, size: bigint): boolean {
  if (!x.hash || x.offset % BigInt(CLONE_ALIGN) !== 0n) return false;
  if (x.length % CLONE_ALIGN !== 0 && x.offset + BigInt(x.length) !== size) return false;
  return !(x.offset === 0n && x.length <= CLONE_ALIGN);
}

/** The parent's extent at `offset` (block `i` in ferry's fixed-size layout). */
export function extentAt(r: InodeRecord, i: number, offset: bigint): Extent | undefined {
  const xs = r.extents;
  if (!xs) return undefined;
  if (xs[i]?.offset === offset) return xs[i];
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid].offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return xs[lo]?.offset === offset ? xs[lo] : undefined;
}

/**
 * Add to `wanted` the hashes of the blocks an incremental stream must send
 * for this inode (`old` is its parent record when it is the same inode).
 */
export function addWantedBlocks(wanted: BlockTable, r: InodeRecord, old: InodeRecord | undefined, since: bigint): void {
  if (r.type !== 'file' || !r.extents || (old && r.generation <= since)) return;
  r.extents.forEach((x, i) => {
    if ((old && x.generation <= since) || !cloneableExtent(x, r.size)) return;
    const ox = old ? extentAt(old, i, x.offset) : undefined;
    if (ox?.hash && ox.length === x.length && ox.hash.equals(x.hash!)) return;
    wanted.add(x.hash!, 0);
  });
}

/** Whether the parent's file `o` holds a block in `wanted`. */
function holdsWanted(o: InodeRecord, wanted: BlockTable): boolean {
  if (o.type !== 'file' || !o.extents) return false;
  return o.extents.some((x) => cloneableExtent(x, o.size) && wanted.has(x.hash!));
}

export function selectIncremental(parent: IndexScans, snap: IndexScans, opts: SelectOptions): Selection {
  const { since } = opts;
  const oldRoot = parent.rootIno;
  const newRoot = snap.rootIno;
  /** Directory -> its parent directory, per side (the root has none). */
  const oldUp = new Map<bigint, bigint>();
  const newUp = new Map<bigint, bigint>();
  const changed = new Set<bigint>();
  const changedDirs = new Set<bigint>();
  /** Directories holding a name of a changed inode. */
  const homes = new Set<bigint>();
  const wanted = new BlockTable();
  const rootNames = new Set<string>();
  const isChanged = (o: InodeRecord | undefined, r: InodeRecord | undefined): boolean => {
    if (!o || !r) return true;
    // The roots pair by role: an inode that is the root on one side only is a change.
    if ((o.ino === oldRoot) !== (r.ino === newRoot)) return true;
    return !sameInode(o, r) || r.generation > since;
  };

  // Pass 1: the skeleton, the changed inodes and the blocks the stream wants.
  for (const [o, r] of mergeJoin(parent.scan(), snap.scan())) {
    for (const l of o?.links ?? []) if (l.parent === oldRoot) rootNames.add(l.name.toString('latin1'));
    for (const l of r?.links ?? []) if (l.parent === newRoot) rootNames.add(l.name.toString('latin1'));
    if (o?.type === 'dir' && o.links.length) oldUp.set(o.ino, o.links[0]!.parent);
    if (r?.type === 'dir' && r.links.length) newUp.set(r.ino, r.links[0]!.parent);
    if (!isChanged(o, r)) continue;
    const ino = (o ?? r)!.ino;
    changed.add(ino);
    if (o?.type === 'dir' || r?.type === 'dir') changedDirs.add(ino);
    for (const l of o?.links ?? []) homes.add(l.parent);
    for (const l of r?.links ?? []) homes.add(l.parent);
    if (r && opts.clone !== false) addWantedBlocks(wanted, r, o && sameInode(o, r) && o.ino !== oldRoot ? o : undefined, since);
  }

  /** Every directory from these up to either root. */
  const above = (dirs: Iterable<bigint>, into: Set<bigint>): void => {
    for (const d of dirs) {
      for (const up of [oldUp, newUp]) {
        let x: bigint | undefined = d;
        for (let depth = 0; x !== undefined && depth < 1 << 16 && !into.has(x); depth++) {
          into.add(x);
          x = up.get(x);
        }
      }
    }
  };
  const keep = new Set<bigint>(changed);
  keep.add(oldRoot);
  keep.add(newRoot);
  above(homes, keep);
  above(changedDirs, keep);

  // Pass 2: what pass 1 kept, the entries of changed directories, and clone sources.
  const out: Selection = { parent: [], snap: [], rootNames: [...rootNames] };
  const later = new Set<bigint>();
  const kept = new KeptBytes();
  /** Keep a pair (each record only where it is reachable from its root), its buffers out of shared slabs. */
  const take = (into: Selection, o: InodeRecord | undefined, r: InodeRecord | undefined) => {
    if (o && (o.links.length || o.ino === oldRoot)) into.parent.push(kept.record(o));
    if (r && (r.links.length || r.ino === newRoot)) into.snap.push(kept.record(r));
  };
  const found: bigint[] = [];
  for (const [o, r] of mergeJoin(parent.scan(), snap.scan())) {
    const ino = (o ?? r)!.ino;
    let want = keep.has(ino);
    if (!want) {
      want = o !== undefined && wanted.size > 0 && holdsWanted(o, wanted);
      if (want) {
        for (const l of o?.links ?? []) if (!keep.has(l.parent)) found.push(l.parent);
        for (const l of r?.links ?? []) if (!keep.has(l.parent)) found.push(l.parent);
      }
    }
    if (want) take(out, o, r);
  }
  above(found, later);
  for (const d of keep) later.delete(d);
  if (later.size === 0) return out;

  // Pass 3: directories above entries pass 2 found, merged in ino order.
  const extra: Selection = { parent: [], snap: [], rootNames: [] };
  for (const [o, r] of mergeJoin(parent.scan(), snap.scan())) {
    if (later.has((o ?? r)!.ino)) take(extra, o, r);
  }
  // Pass 3 brings only inodes pass 2 did not keep, but a number that is a
  // directory on one side can be a clone-source file pass 2 took on the
  // other (a reused ino): keep one copy of the pair (both are the same records).
  const merge = (a: InodeRecord[], b: InodeRecord[]) =>
    [...a, ...b].sort((x, y) => (x.ino < y.ino ? -1 : x.ino > y.ino ? 1 : 0)).filter((r, i, all) => i === 0 || all[i - 1].ino !== r.ino);
  return { parent: merge(out.parent, extra.parent), snap: merge(out.snap, extra.snap), rootNames: out.rootNames };
}
