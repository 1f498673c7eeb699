/**
 * `ferry rollback VOLUME@NAME`: make the volume's live tree equal to a
 * snapshot (DESIGN.md "Jobs", issue 6 requirement 6).
 *
 * Owns: building the writable clone beside the volume, the swap, moving the
 * volume's metadata (DIR/.ferry belongs to the volume, not to a snapshot)
 * into the new tree, removing or keeping the old tree, the rollback journal,
 * and the recovery of a rollback that was killed.
 *
 * Never: leaves DIR missing (except inside the documented window of the
 * two-rename fallback, which recovery closes); loses or duplicates DIR/.ferry;
 * deletes anything but the clone, the old tree, and its own journal.
 *
 * Procedure (all under the volume lock; fault points in brackets):
 *
 *  0. finish or undo an earlier rollback that was killed (its journal).
 *  1. --keep-old: take snapshot `pre-rollback-<time>` of the live tree
 *     (reflink, btrfs); an index volume keeps the old tree as the directory
 *     `DIR@pre-rollback-<time>` beside DIR instead (it has no frozen data).
 *  2. journal `phase: build` in DIR/.ferry/rollback.json       [after-journal]
 *  3. the clone C = PARENT/.BASE.ferry-rollback-<id>:
 *       reflink  a reflink copy of the snapshot's frozen tree;
 *       btrfs    a writable subvolume snapshot of the snapshot;
 *       --from   a copy (reflink where the filesystem can) of the received
 *                snapshot in TARGET whose received uuid is the snapshot's
 *                (the only way for `index` volumes, which keep no data);
 *     plus C/.ferry: an empty placeholder (a subvolume on btrfs, so it can be
 *     exchanged with the real one) holding a copy of the lock file, so the
 *     volume reads as locked whichever tree holds the real metadata. C's
 *     root gets the snapshot's times back; syncfs.            [after-clone]
 *  4. journal `phase: ready`                                 [before-exchange]
 *  5. renameat2(C, DIR, RENAME_EXCHANGE): the commit point. DIR is the new
 *     tree; the old one (with the real .ferry) is at C.      [after-exchange]
 *  6. journal `phase: swapped` (in C/.ferry)                 [after-swapped]
 *  7. exchange C/.ferry with DIR/.ferry: the metadata is home, the
 *     placeholder is in the old tree.                        [after-ferry-move]
 *  8. DIR's root times, `rolledBackTo` in volume.json, then remove the old
 *     tree (or rename it to DIR@pre-rollback-<time>)         [after-remove-old]
 *  9. remove the journal.
 *
 * Where the journal is (DIR/.ferry, or in the tree beside DIR) and its phase
 * say exactly how far a killed run got: real metadata in DIR with phase
 * build/ready = not swapped (undo: delete C); in the tree beside DIR = swapped
 * (redo from 6); in DIR with phase swapped = finish 8-9. `ferry rollback`
 * does this first; openVolume() does it when DIR/.ferry is not there.
 *
 * Without RENAME_EXCHANGE (no native bindings, or a filesystem that refuses
 * it) step 5 is two renames, DIR → C.old and C → DIR, and DIR does not exist
 * between them (a crash there is repaired by recovery: C is renamed to DIR);
 * step 7 removes the placeholder, then renames the metadata into place.
 *
 * After a rollback of a reflink or index volume the live tree has new inode
 * numbers, so the next snapshot reads and hashes every file and its
 * incremental stream from the rolled-back snapshot carries all data again (a
 * full send's worth). btrfs volumes keep inode numbers (the clone is a
 * subvolume snapshot); nothing extra is sent. Generations stay correct
 * because the next snapshot still assigns them against the newest snapshot:
 * every inode that differs from it (new inodes, or versions put back by the
 * rollback, whose ctime differs) takes the new transid, so an incremental
 * send from any older snapshot, on either branch, carries every difference.
 * The next snapshot records the snapshot rolled back to as its parent.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { faultPoint } from '../model/fault';
import { walkTree } from '../diff/walker';
import { sys, Timespec } from '../sys/linux';
import { fsyncDir, writeFileAtomic } from './atomic';
import { createSubvolume, deleteSubvolume, isSubvolume, snapshotSubvolume } from './btrfs';
import { Catalog } from './catalog';
import { Lock } from './lock';
import { buildReflinkCopy } from './reflink-copy';
import {
  defaultSnapshotName,
  getSnapshot,
  openVolume,
  snapshot,
  SnapshotMethod,
  Volume,
  VolumeMeta,
  volumeFile,
} from './volume';

export const ROLLBACK_INFIX = '.ferry-rollback-';
const FERRY = '.ferry';
const JOURNAL = 'rollback.json';
const LOCK = 'lock';

export interface RollbackJournal {
  format: 1;
  id: string;
  volumeUuid: string;
  snapshot: { name: string; uuid: string };
  method: SnapshotMethod;
  /** Where the data came from (a frozen tree, a btrfs snapshot, or TARGET/NAME). */
  source: string;
  /** Basename of the clone beside DIR. */
  clone: string;
  /** Basename where the old tree lands: the clone's (exchange) or `<clone>.old` (two renames). */
  old: string;
  mode: 'exchange' | 'renames';
  phase: 'build' | 'ready' | 'swapped';
  /** --keep-old: the snapshot taken first, or the directory (beside DIR) the old tree becomes. */
  keepOld: { snapshot: string } | { dir: string } | null;
  /** The snapshot root's times, put back on DIR at the end. */
  rootTimes: { atimeNs: string; mtimeNs: string };
  /** The old tree's root times, put back on it when it is kept as a directory. */
  oldRootTimes: { atimeNs: string; mtimeNs: string };
  startedAt: string;
}

export interface RollbackOptions {
  keepOld?: boolean;
  /** A target holding the snapshot (required for index volumes). */
  from?: string;
  onWarning?: (m: string) => void;
  now?: Date;
}

export interface RollbackResult {
  volume: string;
  snapshot: string;
  method: SnapshotMethod;
  source: string;
  /** --keep-old: `DIR@pre-rollback-…` (a snapshot) or the directory the old tree was kept as. */
  kept: { snapshot: string } | { dir: string } | null;
  /** Swap without RENAME_EXCHANGE (two renames). */
  mode: 'exchange' | 'renames';
  /** An earlier, killed rollback that this run finished or undid first. */
  recovered: RecoveryResult | null;
  warnings: string[];
}

export interface RecoveryResult {
  snapshot: string;
  outcome: 'completed' | 'undone';
}

function failed(summary: string, context: Record<string, string>, hint?: string, cause?: unknown): FerryError {
  return new FerryError('ROLLBACK_FAILED', `rollback failed: ${summary}`, { context, hint, cause });
}

const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

function ts(ns: bigint): Timespec {
  let sec = ns / 1_000_000_000n;
  let nsec = Number(ns - sec * 1_000_000_000n);
  if (nsec < 0) {
    nsec += 1_000_000_000;
    sec -= 1n;
  }
  return { sec, nsec };
}

function readJournal(ferryDir: string): RollbackJournal | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(ferryDir, JOURNAL), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as RollbackJournal;
  } catch (e) {
    throw failed('the rollback journal is unreadable', { file: path.join(ferryDir, JOURNAL) }, 'inspect it by hand; nothing was changed', e);
  }
}

function writeJournal(ferryDir: string, j: RollbackJournal): void {
  writeFileAtomic(path.join(ferryDir, JOURNAL), JSON.stringify(j, null, 2) + '\n');
}

function removeJournal(ferryDir: string): void {
  fs.rmSync(path.join(ferryDir, JOURNAL), { force: true });
  fsyncDir(ferryDir);
}

/** Refuse to delete a .ferry that holds the volume's real metadata (a bug, never a user error). */
function guard(ferry: string): void {
  if (exists(path.join(ferry, 'volume.json'))) throw new FerryError('INTERNAL', 'rollback: refusing to delete volume metadata', { context: { dir: ferry } });
}

/** Remove a tree ferry built or replaced: a subvolume (with a nested .ferry placeholder) or a directory. */
function removeTree(p: string): void {
  if (!exists(p)) return;
  guard(path.join(p, FERRY));
  if (isSubvolume(p)) {
    const ph = path.join(p, FERRY);
    if (isSubvolume(ph)) deleteSubvolume(ph);
    deleteSubvolume(p);
    return;
  }
  fs.rmSync(p, { recursive: true, force: true });
}

/** Remove a .ferry placeholder (an empty subvolume or directory holding a lock copy). */
function removePlaceholder(p: string): void {
  if (!exists(p)) return;
  guard(p);
  if (isSubvolume(p)) deleteSubvolume(p);
  else fs.rmSync(p, { recursive: true, force: true });
}

/** The real metadata of the volume at `abs` and the journal of a rollback in progress, if any. */
interface Located {
  /** The directory holding the volume's real volume.json. */
  ferryDir: string;
  /** 'dir': DIR/.ferry; 'beside': in a tree beside DIR (swapped, metadata not moved back yet). */
  at: 'dir' | 'beside';
  journal: RollbackJournal;
}

function locate(abs: string): Located | undefined {
  const own = path.join(abs, FERRY);
  if (exists(volumeFile(abs))) {
    const journal = readJournal(own);
    return journal ? { ferryDir: own, at: 'dir', journal } : undefined;
  }
  const parent = path.dirname(abs);
  const prefix = `.${path.basename(abs)}${ROLLBACK_INFIX}`;
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return undefined;
  }
  const found: Located[] = [];
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const ferryDir = path.join(parent, n, FERRY);
    if (!exists(path.join(ferryDir, 'volume.json'))) continue;
    const journal = readJournal(ferryDir);
    if (journal && journal.old === n) found.push({ ferryDir, at: 'beside', journal });
  }
  if (found.length > 1) {
    throw failed('more than one interrupted rollback holds metadata for this volume', { dir: abs, found: found.map((f) => f.ferryDir).join(', ') }, 'keep the newest by hand and move its .ferry into DIR');
  }
  return found[0];
}

/** Lock a .ferry directory; returns the token written (the release check). */
function lockAt(ferryDir: string, purpose: string): { lock: Lock; token: string } {
  const file = path.join(ferryDir, LOCK);
  const lock = Lock.acquire(file, purpose);
  return { lock, token: fs.readFileSync(file, 'utf8') };
}

/** Release a lock by its token wherever its .ferry now is. */
function releaseAt(ferryDir: string, token: string): void {
  const file = path.join(ferryDir, LOCK);
  try {
    if (fs.readFileSync(file, 'utf8') === token) fs.rmSync(file, { force: true });
  } catch {
    /* gone */
  }
}

/** Step 7: the real metadata from the old tree (beside DIR) into DIR, the placeholder out. */
function moveMetadataHome(abs: string, oldTree: string): void {
  const real = path.join(oldTree, FERRY);
  const home = path.join(abs, FERRY);
  if (!exists(real)) return;
  if (exists(home)) {
    try {
      sys().exchange(real, home);
      fsyncDir(abs);
      fsyncDir(oldTree);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOSYS' && code !== 'EINVAL') throw e;
    }
    removePlaceholder(home);
  }
  fs.renameSync(real, home);
  fsyncDir(abs);
  fsyncDir(oldTree);
}

/** Steps 8-9. The metadata is in DIR/.ferry; the journal says what is left. */
function finish(abs: string, j: RollbackJournal, warn: (m: string) => void): void {
  const ferryDir = path.join(abs, FERRY);
  const parent = path.dirname(abs);
  const r = j.rootTimes;
  try {
    sys().lutimens(abs, ts(BigInt(r.atimeNs)), ts(BigInt(r.mtimeNs)));
  } catch (e) {
    warn(`could not restore the root directory's times: ${(e as Error).message}`);
  }
  const meta = JSON.parse(fs.readFileSync(volumeFile(abs), 'utf8')) as VolumeMeta;
  if (meta.rolledBackTo?.uuid !== j.snapshot.uuid) {
    meta.rolledBackTo = { ...j.snapshot };
    writeFileAtomic(volumeFile(abs), JSON.stringify(meta, null, 2) + '\n');
  }
  const oldTree = path.join(parent, j.old);
  if (exists(oldTree)) {
    removePlaceholder(path.join(oldTree, FERRY));
    faultPoint('rollback:before-remove-old');
    const keep = j.keepOld && 'dir' in j.keepOld ? path.join(parent, j.keepOld.dir) : undefined;
    try {
      if (keep) {
        sys().renameNoReplace(oldTree, keep);
        const o = j.oldRootTimes;
        sys().lutimens(keep, ts(BigInt(o.atimeNs)), ts(BigInt(o.mtimeNs)));
      } else removeTree(oldTree);
      fsyncDir(parent);
    } catch (e) {
      warn(`the old tree could not be ${keep ? `kept as ${keep}` : 'removed'} and is left at ${oldTree}: ${(e as Error).message}`);
    }
  }
  faultPoint('rollback:after-remove-old');
  // A two-rename swap killed before its second rename left no clone behind;
  // an exchange leaves the old tree at the clone's name (removed above).
  removeJournal(ferryDir);
}

/**
 * Finish or undo the rollback whose journal `loc` found. The caller holds the
 * lock at loc.ferryDir (or recovery takes it).
 */
function recover(abs: string, loc: Located, warn: (m: string) => void): RecoveryResult {
  const j = loc.journal;
  const parent = path.dirname(abs);
  const clone = path.join(parent, j.clone);
  const oldTree = path.join(parent, j.old);
  if (loc.at === 'dir' && j.phase !== 'swapped') {
    // Never swapped: DIR is the old tree. Undo.
    removeTree(clone);
    fsyncDir(parent);
    removeJournal(loc.ferryDir);
    return { snapshot: j.snapshot.name, outcome: 'undone' };
  }
  if (loc.at === 'beside') {
    // Swapped (or half of a two-rename swap): complete it.
    if (!exists(abs)) {
      fs.renameSync(clone, abs);
      fsyncDir(parent);
    }
    if (j.phase !== 'swapped') writeJournal(loc.ferryDir, { ...j, phase: 'swapped' });
    moveMetadataHome(abs, oldTree);
  }
  finish(abs, j, warn);
  return { snapshot: j.snapshot.name, outcome: 'completed' };
}

/** True when a killed rollback left the volume's metadata in a tree beside DIR (openVolume finishes it). */
export function rollbackMetadataBeside(abs: string): boolean {
  try {
    return locate(abs)?.at === 'beside';
  } catch {
    return true; // unreadable journal or two candidates: let openVolume report it
  }
}

/**
 * Called by openVolume() when DIR/.ferry/volume.json is missing: if a killed
 * rollback left the metadata in a tree beside DIR, take its lock (a live
 * rollback makes this VOLUME_LOCKED), complete the rollback, and return true.
 */
export function recoverInterruptedRollback(abs: string): boolean {
  const loc = locate(abs);
  if (!loc || loc.at !== 'beside') return false;
  const { token } = lockAt(loc.ferryDir, `recover rollback to ${loc.journal.snapshot.name}`);
  try {
    const now = locate(abs);
    // Warnings (an old tree that could not be removed stays beside DIR under
    // its .ferry-rollback- name) have no reader here; the tree says it itself.
    if (now) recover(abs, now, () => undefined);
  } finally {
    releaseAt(path.join(abs, FERRY), token);
    releaseAt(loc.ferryDir, token);
  }
  return true;
}

interface Source {
  kind: 'reflink' | 'btrfs' | 'copy';
  /** The tree to copy (a frozen tree, a btrfs snapshot, a received snapshot). */
  root: string;
}

function sourceFor(vol: Volume, name: string, uuid: string, dataRoot: string, from: string | undefined): Source {
  if (from) {
    const target = path.resolve(from);
    const cat = new Catalog(target);
    const entry = cat.list().find((e) => e.receivedUuid === uuid);
    if (!entry) {
      throw new FerryError('SNAPSHOT_NOT_FOUND', 'the target holds no copy of this snapshot', {
        context: { target, snapshot: name, uuid },
        hint: 'give a target that received this snapshot (ferry list TARGET shows received uuids)',
      });
    }
    return { kind: 'copy', root: path.join(target, entry.name) };
  }
  switch (vol.meta.method) {
    case 'reflink':
      return { kind: 'reflink', root: dataRoot };
    case 'btrfs':
      return { kind: 'btrfs', root: dataRoot };
    case 'index':
      throw new FerryError('USAGE', 'an index volume keeps no copy of its snapshots: give --from TARGET, a target that received this snapshot', {
        context: { volume: vol.dir, snapshot: name },
        hint: `ferry rollback ${vol.dir}@${name} --from /backup/data`,
      });
  }
}

/** Step 3: build the clone at `clone` from `src`. Returns the snapshot root's times. */
function buildClone(src: Source, clone: string, token: string, expect: { files: number; bytes: string }, warn: (m: string) => void): { atimeNs: bigint; mtimeNs: bigint } {
  const st = fs.lstatSync(src.root, { bigint: true });
  const times = { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs };
  const ph = path.join(clone, FERRY);
  if (src.kind === 'btrfs') {
    snapshotSubvolume(src.root, clone, { readonly: false });
    // The snapshot shows DIR/.ferry (a subvolume of its own) as an empty stub.
    if (exists(ph)) fs.rmdirSync(ph);
    createSubvolume(ph);
    fs.chmodSync(ph, 0o700);
  } else {
    const entries = walkTree(src.root, { onWarning: warn });
    if (src.kind === 'copy') {
      // A cheap check that TARGET's copy is this snapshot: as many files and bytes as its index.
      const files = entries.filter((e) => e.rec.type === 'file');
      const bytes = files.reduce((n, e) => n + e.rec.size, 0n).toString();
      if (files.length !== expect.files || bytes !== expect.bytes) {
        throw failed('the copy in the target does not match the snapshot', {
          copy: src.root,
          files: `${files.length} (snapshot: ${expect.files})`,
          bytes: `${bytes} (snapshot: ${expect.bytes})`,
        }, 'nothing was changed; the target\'s copy was modified or is not this snapshot');
      }
    }
    buildReflinkCopy(entries, clone, warn, { copyWhereNoClone: src.kind === 'copy' });
    fs.mkdirSync(ph, { mode: 0o700 });
  }
  fs.writeFileSync(path.join(ph, LOCK), token, { mode: 0o600 });
  sys().lutimens(clone, ts(times.atimeNs), ts(times.mtimeNs));
  const fd = fs.openSync(clone, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    sys().syncfs(fd);
  } finally {
    fs.closeSync(fd);
  }
  return times;
}

/** Step 5. Returns the mode used (falls back to two renames where RENAME_EXCHANGE is refused). */
function swap(abs: string, clone: string, ferryDir: string, j: RollbackJournal): RollbackJournal {
  const parent = path.dirname(abs);
  try {
    sys().exchange(clone, abs);
    fsyncDir(parent);
    return j;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSYS' && code !== 'EINVAL') {
      throw failed(`could not swap the trees: ${(e as Error).message}`, { dir: abs, clone }, 'nothing was changed; run ferry rollback again to clean up', e);
    }
  }
  const r: RollbackJournal = { ...j, mode: 'renames', old: `${j.clone}.old` };
  writeJournal(ferryDir, r);
  fs.renameSync(abs, path.join(parent, r.old));
  faultPoint('rollback:between-renames');
  fs.renameSync(clone, abs);
  fsyncDir(parent);
  return r;
}

/** `ferry rollback DIR@NAME`. */
export async function rollback(dir: string, name: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
  const abs = path.resolve(dir);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  let vol = openVolume(abs); // completes a rollback killed while the metadata was beside DIR
  const { token } = lockAt(vol.ferryDir, `rollback to ${name}`);
  const ferryDir = vol.ferryDir;
  /** Where the real metadata is while the trees are swapped but it is not home yet. */
  let away: string | undefined;
  try {
    let recovered: RecoveryResult | null = null;
    const earlier = locate(abs);
    if (earlier) {
      recovered = recover(abs, earlier, warn);
      vol = openVolume(abs);
      if (recovered.outcome === 'completed' && recovered.snapshot === name && !opts.keepOld) {
        return { volume: abs, snapshot: name, method: vol.meta.method, source: earlier.journal.source, kept: earlier.journal.keepOld, mode: earlier.journal.mode, recovered, warnings };
      }
    }
    const snap = getSnapshot(vol, name);
    const src = sourceFor(vol, name, snap.meta.uuid, snap.dataRoot, opts.from);
    const parent = path.dirname(abs);
    if (src.kind !== 'btrfs' && fs.statSync(parent).dev !== fs.statSync(abs).dev) {
      throw failed('the volume is a mount point', { dir: abs }, 'rollback swaps DIR with a clone beside it in the same filesystem; keep volumes in a directory below the mount point');
    }
    if (!fs.existsSync(src.root)) {
      throw failed('the snapshot\'s data is missing', { dir: src.root }, 'use --from TARGET with a target that received this snapshot');
    }

    const stamp = defaultSnapshotName(opts.now);
    let keepOld: RollbackJournal['keepOld'] = null;
    if (opts.keepOld) {
      if (vol.meta.method === 'index') keepOld = { dir: `${path.basename(abs)}@pre-rollback-${stamp}` };
      else {
        const pre = await snapshot(vol, { name: `pre-rollback-${stamp}`, lockHeld: true, onWarning: warn });
        keepOld = { snapshot: pre.meta.name };
      }
    }
    const id = randomUUID();
    const cloneName = `.${path.basename(abs)}${ROLLBACK_INFIX}${id}`;
    const clone = path.join(parent, cloneName);
    let j: RollbackJournal = {
      format: 1,
      id,
      volumeUuid: vol.meta.uuid,
      snapshot: { name, uuid: snap.meta.uuid },
      method: vol.meta.method,
      source: src.root,
      clone: cloneName,
      old: cloneName,
      mode: 'exchange',
      phase: 'build',
      keepOld,
      rootTimes: { atimeNs: '0', mtimeNs: '0' },
      oldRootTimes: (({ atimeNs, mtimeNs }) => ({ atimeNs: atimeNs.toString(), mtimeNs: mtimeNs.toString() }))(fs.lstatSync(abs, { bigint: true })),
      startedAt: new Date().toISOString(),
    };
    writeJournal(ferryDir, j);
    faultPoint('rollback:after-journal');
    let times: { atimeNs: bigint; mtimeNs: bigint };
    try {
      times = buildClone(src, clone, token, { files: snap.meta.counts.files, bytes: snap.meta.counts.bytes }, warn);
    } catch (e) {
      // Nothing was swapped: undo now rather than leave it to the next run.
      try {
        removeTree(clone);
        removeJournal(ferryDir);
      } catch {
        /* the next run undoes it */
      }
      if (e instanceof FerryError) throw e;
      throw failed(`could not build the clone: ${(e as Error).message}`, { clone }, 'nothing was changed', e);
    }
    faultPoint('rollback:after-clone');
    j = { ...j, phase: 'ready', rootTimes: { atimeNs: times.atimeNs.toString(), mtimeNs: times.mtimeNs.toString() } };
    writeJournal(ferryDir, j);
    faultPoint('rollback:before-exchange');
    j = swap(abs, clone, ferryDir, j);
    const oldTree = path.join(parent, j.old);
    const oldFerry = path.join(oldTree, FERRY);
    away = oldFerry;
    faultPoint('rollback:after-exchange');
    j = { ...j, phase: 'swapped' };
    writeJournal(oldFerry, j);
    faultPoint('rollback:after-swapped');
    moveMetadataHome(abs, oldTree);
    faultPoint('rollback:after-ferry-move');
    finish(abs, j, warn);
    return { volume: abs, snapshot: name, method: vol.meta.method, source: src.root, kept: keepOld, mode: j.mode, recovered, warnings };
  } finally {
    releaseAt(ferryDir, token);
    if (away) releaseAt(away, token);
  }
}
