/**
 * What a received snapshot's tree is on disk, and how one is made, sealed
 * and removed: a plain directory, or (on a btrfs target, as root, with
 * btrfs-progs) a btrfs subvolume, as `btrfs receive` makes it.
 *
 * Owns:
 *   - the choice of kind for a target (`chooseKind`);
 *   - making a staging tree: an empty subvolume for a full stream, a
 *     writable snapshot of the parent subvolume for an incremental one (O(1),
 *     nothing copied or linked), or a directory;
 *   - marking a finished subvolume with the sender's uuid and ctransid
 *     before its commit (BTRFS_IOC_SET_RECEIVED_SUBVOL, so `btrfs receive`
 *     and other btrfs tooling find it by the sender's uuid), and protecting
 *     a committed tree: read-only for a subvolume, the immutable flag on a
 *     directory's root (best effort);
 *   - removing a tree that may be, or hold, a subvolume (a staging tree, a
 *     snapshot being pruned), which `rm -r` cannot do once it is read-only,
 *     and the one sequence that removes a committed snapshot from a target.
 *
 * Never: touches anything but the path it is given and the subvolumes
 * directly under it; makes a committed subvolume writable.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { Sys } from '../sys/linux';
import { fsyncDir } from '../volume/atomic';
import { Catalog, CatalogEntry, FERRY_DIR } from '../volume/catalog';
import { createSubvolume, deleteSubvolume, haveBtrfsProgs, isSubvolume, onBtrfs, snapshotSubvolume } from '../volume/btrfs';
import { setImmutable } from '../volume/reflink-copy';

export type TreeKind = 'dir' | 'subvolume';

/**
 * Subvolumes where the target is on btrfs and ferry may make, seal and
 * delete them (root: deleting a read-only subvolume needs CAP_SYS_ADMIN,
 * and so does setting a received uuid on one it does not own). `want`
 * 'never' forces directories, 'always' fails where subvolumes cannot be used.
 */
export function chooseKind(target: string, want: 'auto' | 'always' | 'never'): TreeKind {
  if (want === 'never') return 'dir';
  const why = !onBtrfs(target) ? 'the target is not on btrfs' : process.getuid?.() !== 0 ? 'it needs root' : !haveBtrfsProgs() ? 'btrfs-progs is not installed' : undefined;
  if (!why) return 'subvolume';
  if (want === 'always') {
    throw new FerryError('USAGE', `--seed snapshot cannot be used here: ${why}`, {
      context: { target },
      hint: 'use --seed auto, which picks reflink or a hard-link farm where subvolumes cannot be used',
    });
  }
  return 'dir';
}

/** Make an empty staging tree at `p` (which must not exist). */
export function makeTree(p: string, kind: TreeKind): void {
  if (kind === 'subvolume') createSubvolume(p);
  else fs.mkdirSync(p, { mode: 0o700 });
}

/**
 * Make `p` a writable snapshot of the committed snapshot `parent` when both
 * can be subvolumes; false (nothing made) when `parent` is not a subvolume,
 * for example when it was received before the target held subvolumes.
 */
export function snapshotTree(parent: string, p: string, kind: TreeKind): boolean {
  if (kind !== 'subvolume' || !isSubvolume(parent)) return false;
  snapshotSubvolume(parent, p, { readonly: false });
  return true;
}

/** Run `f` on an O_DIRECTORY, no-follow descriptor of `p`. */
function withDir<T>(p: string, f: (fd: number) => T): T {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  try {
    return f(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Before the commit: a staging subvolume records the sender's uuid and
 * ctransid, as btrfs receive records them. A directory is left as it is.
 * (Read-only comes after the rename into place: the kernel refuses to move
 * a read-only subvolume to another directory, EROFS.)
 */
export function markReceived(sys: Sys, p: string, receivedUuid: Buffer, ctransid: bigint): void {
  if (!isSubvolume(p)) return;
  if (!withDir(p, (fd) => sys.setReceivedSubvol(fd, receivedUuid, ctransid))) {
    throw new FerryError('VOLUME_BTRFS_FAILED', 'commit failed: btrfs did not record the received uuid (BTRFS_IOC_SET_RECEIVED_SUBVOL unsupported)', {
      context: { path: p },
      hint: 'nothing was committed; receive with --seed reflink to make plain directories',
    });
  }
}

/**
 * After the commit: a subvolume becomes read-only; a directory's root gets
 * the immutable flag where the filesystem allows (best effort). Returns
 * whether the tree is protected. Also mends a snapshot whose commit was
 * killed between its rename and this step (Receiver's sweep).
 */
export function protectTree(sys: Sys, p: string): boolean {
  if (isSubvolume(p)) return withDir(p, (fd) => sys.subvolReadonly(fd) === true || sys.setSubvolReadonly(fd, true));
  return setImmutable(p, true, sys);
}

/** Whether `p` is a subvolume that is still writable (a commit killed before protectTree). */
export function writableSubvolume(sys: Sys, p: string): boolean {
  return isSubvolume(p) && withDir(p, (fd) => sys.subvolReadonly(fd) === false);
}

/** Make a committed directory snapshot removable: clear its root's immutable flag. */
export function unprotectTree(sys: Sys, p: string): boolean {
  if (isSubvolume(p)) return true; // deleted as it is, read-only or not
  return setImmutable(p, false, sys);
}

/**
 * Remove `p` whatever it is: a subvolume (read-only or not) is deleted with
 * `btrfs subvolume delete`; a directory loses the subvolumes directly under
 * it (a partial's staging tree), then everything else. Missing is fine.
 */
export function removeTree(p: string): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) {
    if (isSubvolume(p)) {
      deleteSubvolume(p);
      return;
    }
    if (onBtrfs(p)) {
      for (const n of fs.readdirSync(p)) {
        const c = path.join(p, n);
        if (isSubvolume(c)) deleteSubvolume(c);
      }
    }
  }
  fs.rmSync(p, { recursive: true, force: true });
}

/** Where a snapshot being removed waits, out of sight, for its files to go: TARGET/.ferry/removing-<uuid>. */
const REMOVING = 'removing-';

/**
 * Remove a committed snapshot from a target. It leaves the target by one
 * rename into TARGET/.ferry/removing-<uuid>, or for a subvolume by its
 * deletion (from that instant it is not a snapshot: Catalog.list() needs
 * the directory), then its catalog entry and manifest go, then its files.
 * A kill at any point leaves the snapshot whole, or an entry without a
 * directory (swept by the next receive) plus, for a directory, a leftover
 * tree that `sweepRemoved` deletes. The caller holds the target's receive
 * lock and has checked that no interrupted transfer needs it.
 */
export function removeCommitted(sys: Sys, target: string, catalog: Catalog, e: CatalogEntry): void {
  const dir = path.join(target, e.name);
  let gone: string | undefined;
  if (isSubvolume(dir)) {
    // One ioctl unlinks it (a read-only subvolume cannot be moved out first);
    // the kernel frees its blocks in the background.
    deleteSubvolume(dir);
    withDir(target, (fd) => sys.syncfs(fd));
  } else {
    gone = path.join(target, FERRY_DIR, `${REMOVING}${e.uuid}`);
    unprotectTree(sys, dir);
    fs.renameSync(dir, gone);
    fsyncDir(target);
  }
  catalog.remove(e.uuid);
  fs.rmSync(path.join(catalog.dir, `${e.uuid}.manifest`), { force: true });
  fsyncDir(catalog.dir);
  if (gone) removeTree(gone);
}

/** Delete what killed removals left in TARGET/.ferry (under the receive lock). */
export function sweepRemoved(target: string): void {
  const ferryDir = path.join(target, FERRY_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(ferryDir).filter((n) => n.startsWith(REMOVING));
  } catch {
    return;
  }
  for (const n of names) removeTree(path.join(ferryDir, n));
}
