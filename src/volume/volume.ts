/**
 * Volumes and their snapshots (DESIGN.md "Concepts", "Snapshot methods").
 *
 * Owns: DIR/.ferry/volume.json (format, uuid, method, transid counter), the
 * snapshot directory layout, snapshot names, and the snapshot procedure:
 * lock → transid+1 → walk → (reflink copy) → generations against the parent
 * index → index → meta.json → rename into place.
 *
 *   DIR/.ferry/volume.json
 *   DIR/.ferry/lock
 *   DIR/.ferry/snapshots/<name>/meta.json   SnapshotMeta
 *   DIR/.ferry/snapshots/<name>/index       see src/diff/index-file.ts
 *   DIR/.ferry/snapshots/<name>/tree/       reflink: the frozen copy (root immutable)
 *   DIR/.ferry/snapshots/<name>/tree/<name> btrfs: the read-only subvolume snapshot (named
 *                                           as the snapshot: kernel streams carry that name)
 *   DIR/.ferry/snapshots/.tmp-<uuid>/       a snapshot being built or killed
 *
 * Invariants: a snapshot exists exactly when DIR/.ferry/snapshots/<name>
 * exists; it appears by one rename at the end, so a killed snapshot never
 * appears, and leftovers (.tmp-*) are removed by the next snapshot. Transids
 * only grow. For `index` volumes the snapshot's data is the live tree.
 *
 * Method `btrfs` (DIR is a btrfs subvolume; see ./btrfs.ts): DIR/.ferry is
 * a subvolume of its own, so a snapshot of DIR (and a kernel send of it)
 * holds neither ferry's metadata nor older snapshots. A snapshot is
 * `btrfs subvolume snapshot -r DIR .../tree`; its uuid and transid are the
 * subvolume's uuid and ctransid exactly as `btrfs send` puts them in a
 * stream, so catalogs agree whoever sent it. Its index is built by walking
 * the frozen snapshot (same inode numbers as DIR; only files whose change
 * key moved are read, so the first snapshot reads everything once). Two
 * snapshots with no change between them share a ctransid; snapshots are
 * ordered by transid, then creation time. `volume.json`'s counter is not
 * used by btrfs volumes.
 *
 * A rollback (./rollback.ts) replaces the live tree; `rolledBackTo` in
 * volume.json names the snapshot it now equals, and the next snapshot
 * records that as its parent (generations are still assigned against the
 * newest snapshot: see rollback.ts for why that keeps every incremental
 * send correct).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { faultPoint } from '../model/fault';
import { InodeRecord } from '../model/inode';
import { generations, GenerationStats, newGenerationStats } from '../diff/generations';
import { SUB_KEY_BYTES } from '../diff/sub-digests';
import { IndexFile, openIndex, writeIndex } from '../diff/index-file';
import { KnownInodes } from '../diff/known-inodes';
import { FERRY_DIR_NAME, Walk, walkVolume } from '../diff/walker';
import { sys } from '../sys/linux';
import { fsyncDir, writeFileAtomic } from './atomic';
import { Lock } from './lock';
import { ReflinkCopier, setImmutable } from './reflink-copy';
import { createSubvolume, deleteSubvolume, haveBtrfsProgs, isNestedSubvolumeStub, isSubvolume, snapshotSubvolume, streamIdentity } from './btrfs';

export type SnapshotMethod = 'btrfs' | 'reflink' | 'index';
export type InitMethod = SnapshotMethod | 'auto';

const BTRFS_SUPER_MAGIC = 0x9123683e;
const TMP_PREFIX = '.tmp-';

export interface VolumeMeta {
  format: 1;
  uuid: string;
  method: SnapshotMethod;
  /** Transid of the newest snapshot taken (decimal string); 0 before the first. */
  transid: string;
  created: string;
  /** Set by a rollback: the snapshot the live tree was made equal to (the next snapshot's parent). */
  rolledBackTo?: { uuid: string; name: string };
}

export interface Volume {
  /** Absolute path of the volume's root (the live tree). */
  dir: string;
  /** DIR/.ferry */
  ferryDir: string;
  meta: VolumeMeta;
}

export interface SnapshotCounts {
  inodes: number;
  files: number;
  dirs: number;
  symlinks: number;
  other: number;
  /** Sum of regular file sizes (decimal string). */
  bytes: string;
  /** Inodes new or changed since the parent. */
  changed: number;
  hashedFiles: number;
  hashedBytes: string;
  /** Bytes read from disk to hash changed files (decimal string; absent before format 2 indexes). */
  readBytes?: string;
  /** Bytes of changed files taken from the parent unread, still shared with its frozen copy (reflink). */
  sharedBytes?: string;
}

export interface SnapshotMeta {
  format: 1;
  name: string;
  /** Snapshot uuid (dashed); the stream's UUID. */
  uuid: string;
  /** Decimal string; the stream's CTRANSID. */
  transid: string;
  parentUuid: string | null;
  parentName: string | null;
  parentTransid: string | null;
  volumeUuid: string;
  created: string;
  method: SnapshotMethod;
  counts: SnapshotCounts;
}

export interface SnapshotInfo {
  meta: SnapshotMeta;
  /** DIR/.ferry/snapshots/<name> */
  dir: string;
  /** DIR/.ferry/snapshots/<name>/index */
  indexPath: string;
  /**
   * Where the snapshot's file data is read: the frozen copy
   * (DIR/.ferry/snapshots/<name>/tree) for `reflink`, the live tree DIR for
   * `index`. Data is found by path (built from the index's links); the
   * copy's inode numbers differ from the index's.
   */
  dataRoot: string;
}

export const volumeFile = (dir: string) => path.join(dir, FERRY_DIR_NAME, 'volume.json');
export const snapshotsDir = (vol: Volume) => path.join(vol.ferryDir, 'snapshots');

function notFound(dir: string, why: string): FerryError {
  return new FerryError('VOLUME_NOT_FOUND', `volume not found: ${why}`, {
    context: { dir },
    hint: 'run `ferry init DIR` first',
  });
}

/** True when FICLONE works between two files inside `dir`. */
export function probeReflink(dir: string): boolean {
  const a = path.join(dir, `.ferry-probe-${process.pid}-a`);
  const b = path.join(dir, `.ferry-probe-${process.pid}-b`);
  try {
    fs.writeFileSync(a, Buffer.alloc(4096, 0x5a));
    const fa = fs.openSync(a, 'r');
    try {
      const fb = fs.openSync(b, 'w');
      try {
        return sys().cloneFile(fa, fb);
      } finally {
        fs.closeSync(fb);
      }
    } finally {
      fs.closeSync(fa);
    }
  } catch {
    return false;
  } finally {
    fs.rmSync(a, { force: true });
    fs.rmSync(b, { force: true });
  }
}

/** Is `dir` on btrfs (and the root of a subvolume)? */
export function isBtrfsSubvolume(dir: string): { btrfs: boolean; subvolume: boolean } {
  try {
    const btrfs = fs.statfsSync(dir).type === BTRFS_SUPER_MAGIC;
    return { btrfs, subvolume: btrfs && fs.statSync(dir, { bigint: true }).ino === 256n };
  } catch {
    return { btrfs: false, subvolume: false };
  }
}

/** `ferry init DIR`: make DIR a volume. Returns the volume with the method chosen. */
export function initVolume(dir: string, method: InitMethod = 'auto'): Volume {
  const abs = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw notFound(dir, 'directory does not exist');
  }
  if (!st.isDirectory()) throw notFound(dir, 'not a directory');
  if (fs.existsSync(volumeFile(abs))) {
    throw new FerryError('VOLUME_EXISTS', 'volume already initialized', { context: { dir }, hint: 'use `ferry snapshot DIR`' });
  }
  if (!['auto', 'btrfs', 'reflink', 'index'].includes(method)) {
    throw new FerryError('USAGE', `unknown method ${JSON.stringify(method)}`, { hint: 'use auto, btrfs, reflink or index' });
  }
  const ferryDir = path.join(abs, FERRY_DIR_NAME);
  const where = isBtrfsSubvolume(abs);
  // auto picks btrfs only where it can work: a subvolume, btrfs-progs, and root (btrfs send needs CAP_SYS_ADMIN).
  const btrfsOk = where.subvolume && haveBtrfsProgs() && process.getuid?.() === 0;
  if (method === 'btrfs' && !btrfsOk) {
    throw new FerryError('VOLUME_METHOD', `method btrfs does not work here: ${!where.btrfs ? 'DIR is not on btrfs' : !where.subvolume ? 'DIR is not a btrfs subvolume' : !haveBtrfsProgs() ? 'btrfs-progs is not installed' : 'it needs root'}`, {
      context: { dir },
      hint: where.btrfs && !where.subvolume ? 'make DIR a subvolume (btrfs subvolume create DIR), or use --method reflink' : 'use auto',
    });
  }
  let chosen: SnapshotMethod;
  if (method === 'btrfs' || (method === 'auto' && btrfsOk)) {
    // .ferry is a subvolume of its own, so snapshots of DIR never contain it.
    if (fs.existsSync(ferryDir)) {
      if (!isSubvolume(ferryDir)) {
        try {
          fs.rmdirSync(ferryDir);
        } catch {
          throw new FerryError('VOLUME_METHOD', 'DIR/.ferry exists and is not empty', { context: { dir }, hint: 'move DIR/.ferry away first' });
        }
      }
    }
    if (!fs.existsSync(ferryDir)) createSubvolume(ferryDir);
    fs.chmodSync(ferryDir, 0o700);
    chosen = 'btrfs';
  } else if (method === 'reflink') {
    fs.mkdirSync(ferryDir, { recursive: true, mode: 0o700 });
    if (!probeReflink(ferryDir)) {
      throw new FerryError('VOLUME_METHOD', 'method reflink does not work here: the filesystem cannot clone files (FICLONE)', {
        context: { dir },
        hint: 'use --method index, or auto',
      });
    }
    chosen = 'reflink';
  } else if (method === 'index') {
    fs.mkdirSync(ferryDir, { recursive: true, mode: 0o700 });
    chosen = 'index';
  } else {
    fs.mkdirSync(ferryDir, { recursive: true, mode: 0o700 });
    chosen = probeReflink(ferryDir) ? 'reflink' : 'index';
  }
  fs.mkdirSync(path.join(ferryDir, 'snapshots'), { recursive: true, mode: 0o700 });
  const meta: VolumeMeta = { format: 1, uuid: randomUUID(), method: chosen, transid: '0', created: new Date().toISOString() };
  writeFileAtomic(volumeFile(abs), JSON.stringify(meta, null, 2) + '\n');
  return { dir: abs, ferryDir, meta };
}

export function openVolume(dir: string): Volume {
  const abs = path.resolve(dir);
  let text: string;
  try {
    text = fs.readFileSync(volumeFile(abs), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      // A rollback killed while DIR/.ferry sat in its clone beside DIR: finish it, then open.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { recoverInterruptedRollback } = require('./rollback') as typeof import('./rollback');
      if (recoverInterruptedRollback(abs)) return openVolume(dir);
      throw notFound(dir, 'not a ferry volume (no .ferry/volume.json)');
    }
    throw e;
  }
  let meta: VolumeMeta;
  try {
    meta = JSON.parse(text) as VolumeMeta;
  } catch (e) {
    throw new FerryError('IO_FAILED', `volume metadata is unreadable: ${(e as Error).message}`, { context: { file: volumeFile(abs) } });
  }
  return { dir: abs, ferryDir: path.join(abs, FERRY_DIR_NAME), meta };
}

/** Validate a snapshot name: printable, no '/', no '@', not '.', '..' or '.tmp-*', at most 255 bytes. */
export function validateSnapshotName(name: string): void {
  const bad = (why: string) =>
    new FerryError('SNAPSHOT_NAME_INVALID', `invalid snapshot name: ${why}`, {
      context: { name },
      hint: 'use printable characters without "/" or "@", at most 255 bytes',
    });
  if (name.length === 0) throw bad('empty');
  if (Buffer.byteLength(name) > 255) throw bad('longer than 255 bytes');
  if (name === '.' || name === '..') throw bad('reserved');
  if (name.startsWith(TMP_PREFIX)) throw bad(`names starting with ${TMP_PREFIX} are reserved`);
  if (name.includes('/')) throw bad('contains "/"');
  if (name.includes('@')) throw bad('contains "@" (VOLUME@NAME would be ambiguous)');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name) || name.includes('\ufffd')) throw bad('contains control or invalid characters');
}

/** Default snapshot name: UTC time as YYYYMMDDTHHMMSSZ. */
export function defaultSnapshotName(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function infoFor(vol: Volume, dir: string, meta: SnapshotMeta): SnapshotInfo {
  return {
    meta,
    dir,
    indexPath: path.join(dir, 'index'),
    dataRoot: meta.method === 'index' ? vol.dir : meta.method === 'btrfs' ? path.join(dir, 'tree', meta.name) : path.join(dir, 'tree'),
  };
}

/** Committed snapshots, oldest transid first. */
export function listSnapshots(vol: Volume): SnapshotInfo[] {
  const root = snapshotsDir(vol);
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: SnapshotInfo[] = [];
  for (const n of names) {
    if (n.startsWith(TMP_PREFIX)) continue;
    const dir = path.join(root, n);
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as SnapshotMeta;
    } catch {
      continue; // not a snapshot (never created by ferry)
    }
    out.push(infoFor(vol, dir, meta));
  }
  out.sort((a, b) => {
    const x = BigInt(a.meta.transid);
    const y = BigInt(b.meta.transid);
    // Equal transids (btrfs: no change between two snapshots): creation time, then name.
    return x < y ? -1 : x > y ? 1 : a.meta.created < b.meta.created ? -1 : a.meta.created > b.meta.created ? 1 : a.meta.name < b.meta.name ? -1 : a.meta.name > b.meta.name ? 1 : 0;
  });
  return out;
}

export function getSnapshot(vol: Volume, name: string): SnapshotInfo {
  const s = listSnapshots(vol).find((x) => x.meta.name === name);
  if (!s) {
    throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot not found', { context: { volume: vol.dir, name } });
  }
  return s;
}

/** Remove a directory that may hold an immutable snapshot tree or a btrfs snapshot subvolume. */
export function removeSnapshotDir(dir: string): void {
  const tree = path.join(dir, 'tree');
  let names: string[] = [];
  try {
    names = fs.readdirSync(tree);
  } catch {
    /* no tree */
  }
  for (const n of names) if (isSubvolume(path.join(tree, n))) deleteSubvolume(path.join(tree, n));
  setImmutable(tree, false);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Remove a committed snapshot: it disappears by one rename, then its files are deleted. */
export function removeSnapshot(vol: Volume, name: string): void {
  const lock = Lock.acquire(path.join(vol.ferryDir, 'lock'), `remove ${name}`);
  try {
    const s = getSnapshot(vol, name);
    const tmp = path.join(snapshotsDir(vol), `${TMP_PREFIX}rm-${s.meta.uuid}`);
    fs.renameSync(s.dir, tmp);
    fsyncDir(snapshotsDir(vol));
    removeSnapshotDir(tmp);
  } finally {
    lock.release();
  }
}

function cleanStale(vol: Volume): void {
  const root = snapshotsDir(vol);
  for (const n of fs.readdirSync(root)) if (n.startsWith(TMP_PREFIX)) removeSnapshotDir(path.join(root, n));
}

export interface SnapshotOptions {
  name?: string;
  onWarning?: (message: string) => void;
  /** Clock for the default name (tests). */
  now?: Date;
  /** The caller already holds the volume lock (rollback's --keep-old snapshot). */
  lockHeld?: boolean;
}

export interface SnapshotResult extends SnapshotInfo {
  warnings: string[];
}

/** Counts of a snapshot's inodes, taken as its records go into the index. */
class Tally {
  private readonly c = { inodes: 0, files: 0, dirs: 0, symlinks: 0, other: 0 };
  private bytes = 0n;

  *pass(records: Iterable<InodeRecord>): Generator<InodeRecord> {
    for (const rec of records) {
      this.c.inodes++;
      if (rec.type === 'file') {
        this.c.files++;
        this.bytes += rec.size;
      } else if (rec.type === 'dir') this.c.dirs++;
      else if (rec.type === 'symlink') this.c.symlinks++;
      else this.c.other++;
      yield rec;
    }
  }

  counts(g: GenerationStats): SnapshotCounts {
    return {
      ...this.c,
      bytes: this.bytes.toString(),
      changed: g.changed,
      hashedFiles: g.hashedFiles,
      hashedBytes: g.hashedBytes.toString(),
      readBytes: g.readBytes.toString(),
      sharedBytes: g.sharedBytes.toString(),
    };
  }
}

/**
 * `ferry snapshot DIR`: take a snapshot. Fault points (FERRY_FAULT):
 * snapshot:after-walk, snapshot:after-index, snapshot:before-rename,
 * snapshot:after-rename.
 */
export async function snapshot(vol: Volume, opts: SnapshotOptions = {}): Promise<SnapshotResult> {
  const name = opts.name ?? defaultSnapshotName(opts.now);
  validateSnapshotName(name);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const lock = opts.lockHeld ? undefined : Lock.acquire(path.join(vol.ferryDir, 'lock'), `snapshot ${name}`);
  try {
    const root = snapshotsDir(vol);
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    cleanStale(vol);
    const final = path.join(root, name);
    if (fs.existsSync(final)) {
      throw new FerryError('SNAPSHOT_EXISTS', 'a snapshot with this name already exists', {
        context: { volume: vol.dir, name },
        hint: 'choose another --name',
      });
    }
    // Re-read the counter under the lock; a killed snapshot's transid is never reused.
    const current = openVolume(vol.dir).meta;
    let transid = BigInt(current.transid) + 1n;
    const newMeta: VolumeMeta = { ...current, transid: transid.toString() };
    writeFileAtomic(volumeFile(vol.dir), JSON.stringify(newMeta, null, 2) + '\n');
    vol.meta = newMeta;

    let uuid: string = randomUUID();
    const tmp = path.join(root, `${TMP_PREFIX}${uuid}`);
    fs.mkdirSync(tmp, { mode: 0o700 });

    const method = vol.meta.method;
    const treeDir = path.join(tmp, 'tree');
    // btrfs: the kernel's read-only snapshot is the frozen tree (same inode
    // numbers as DIR), named as the snapshot; its identity is the one kernel
    // streams of it carry.
    const frozen = method === 'btrfs' ? path.join(treeDir, name) : treeDir;
    if (method === 'btrfs') {
      fs.mkdirSync(treeDir, { mode: 0o700 });
      snapshotSubvolume(vol.dir, frozen, { readonly: true });
      const id = await streamIdentity(frozen);
      uuid = id.uuid;
      transid = id.ctransid;
    }
    // Parent: the newest snapshot whose index is intact.
    const snaps = listSnapshots(vol);
    let parent: SnapshotInfo | undefined;
    let parentIndex: IndexFile | undefined;
    let subKey: Buffer | undefined;
    for (let i = snaps.length - 1; i >= 0 && !parent; i--) {
      try {
        parentIndex = await openIndex(snaps[i].indexPath);
        parent = snaps[i];
        // Sub-block digests compare only under one key: inherit the parent's.
        const k = parentIndex.header.subKey ? Buffer.from(parentIndex.header.subKey, 'hex') : undefined;
        if (k?.length === SUB_KEY_BYTES) subKey = k;
      } catch (e) {
        if (!(e instanceof FerryError)) throw e;
        warn(`ignored snapshot ${snaps[i].meta.name} as a parent: ${e.message}`);
      }
    }
    let walk: Walk;
    try {
      walk = walkVolume(method === 'btrfs' ? frozen : vol.dir, {
        prefetch: true,
        spillTo: path.join(tmp, 'walk.spool'),
        onWarning: method === 'btrfs' ? (m) => isNestedSubvolumeStub(m) || warn(m) : warn,
        // Unchanged inodes keep the parent's xattrs unread. Not on reflink
        // volumes: their copier gives directories the xattrs of the walk's
        // own directory list (walk.dirs), which generations() never resolves.
        known: parentIndex && method !== 'reflink' ? KnownInodes.fromIndex(parentIndex) : undefined,
      });
    } catch (e) {
      await parentIndex?.close();
      throw e;
    }
    const g = newGenerationStats();
    const tally = new Tally();
    try {
      faultPoint('snapshot:after-walk');
      // Reflink: directories now; each other inode frozen (cloned, or linked to the
      // parent's copy when unchanged) as generations() merges it with the parent.
      const copier = method === 'reflink' ? new ReflinkCopier(treeDir, warn) : undefined;
      copier?.mkdirs(walk.dirs());

      const treeB = Buffer.from(path.resolve(frozen));
      subKey ??= randomBytes(SUB_KEY_BYTES);
      const records = generations(
        walk.entries(),
        {
          freeze: copier && ((e, parentCopy) => copier.add(e, parentCopy)),
          subKey,
          parentCopy: method === 'reflink' && parent?.meta.method === 'reflink' ? Buffer.from(path.resolve(parent.dir, 'tree')) : undefined,
          transid,
          parent: parentIndex && (() => parentIndex!.scan()),
          onWarning: warn,
          source:
            method !== 'index'
              ? (e) => ({ path: Buffer.concat([treeB, Buffer.from('/'), e.rel]), live: false })
              : (e) => ({ path: e.path, live: true }),
        },
        g,
      );
      const header = {
        uuid,
        transid: transid.toString(),
        parentUuid: parent?.meta.uuid ?? null,
        volumeUuid: vol.meta.uuid,
        subKey: subKey.toString('hex'),
        rootIno: walk.rootIno.toString(),
      };
      try {
        await writeIndex(path.join(tmp, 'index'), header, tally.pass(records));
      } finally {
        await parentIndex?.close();
      }
      copier?.finishDirs(walk.dirs(true));
    } finally {
      walk.dispose();
      await parentIndex?.close();
    }
    faultPoint('snapshot:after-index');
    // After a rollback the live tree descends from the snapshot rolled back to.
    const base = (current.rolledBackTo && snaps.find((x) => x.meta.uuid === current.rolledBackTo!.uuid)) || parent;
    const meta: SnapshotMeta = {
      format: 1,
      name,
      uuid,
      transid: transid.toString(),
      parentUuid: base?.meta.uuid ?? null,
      parentName: base?.meta.name ?? null,
      parentTransid: base?.meta.transid ?? null,
      volumeUuid: vol.meta.uuid,
      created: new Date().toISOString(),
      method,
      counts: tally.counts(g),
    };
    writeFileAtomic(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    if (method === 'reflink') {
      const fd = fs.openSync(treeDir, 'r');
      try {
        sys().syncfs(fd);
      } finally {
        fs.closeSync(fd);
      }
      if (!setImmutable(treeDir, true)) warn('could not make the snapshot tree immutable (needs CAP_LINUX_IMMUTABLE)');
    }
    fsyncDir(tmp);
    faultPoint('snapshot:before-rename');
    try {
      sys().renameNoReplace(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTEMPTY') {
        removeSnapshotDir(tmp);
        throw new FerryError('SNAPSHOT_EXISTS', 'a snapshot with this name already exists', { context: { volume: vol.dir, name } });
      }
      throw e;
    }
    fsyncDir(root);
    faultPoint('snapshot:after-rename');
    if (current.rolledBackTo) {
      const m = openVolume(vol.dir).meta;
      delete m.rolledBackTo;
      writeFileAtomic(volumeFile(vol.dir), JSON.stringify(m, null, 2) + '\n');
      vol.meta = m;
    }
    return { ...infoFor(vol, final, meta), warnings };
  } finally {
    lock?.release();
  }
}
