/**
 * `snapshot: onchange`: has the volume's live tree changed since its newest
 * snapshot?
 *
 * Owns: the cheap answer. It walks the tree (lstat and xattrs only, no file
 * data read) and merge-joins the walk against the newest snapshot's index
 * on inode number, with the same change key the snapshot code uses
 * (src/diff/generations.ts: ino, birth, type, size, mtime, ctime, mode,
 * uid, gid, nlink; plus names, xattrs, symlink target and rdev). Any
 * difference, a new or a vanished inode is a change. This costs one walk,
 * about what taking a snapshot of an unchanged tree costs on an `index`
 * volume, and it never builds a reflink copy or writes an index only to
 * throw it away. Never: writes anything.
 *
 * Why it is sound: every namespace change (create, unlink, rename, link)
 * changes the parent directory's mtime and ctime, and every data or
 * metadata change changes the inode's ctime, which no user can set back.
 */
import { FerryError } from '../errors';
import { namesOrMetaDiffer, sameKey } from '../diff/generations';
import { openIndex } from '../diff/index-file';
import { walkVolume } from '../diff/walker';
import { SnapshotInfo, Volume } from '../volume/volume';

export interface ChangeCheck {
  changed: boolean;
  /** Why: the first difference found, for `--dry-run` and the log. */
  reason: string;
}

export async function changedSince(vol: Volume, newest: SnapshotInfo): Promise<ChangeCheck> {
  let index;
  try {
    index = await openIndex(newest.indexPath);
  } catch (e) {
    if (e instanceof FerryError) return { changed: true, reason: `the index of ${newest.meta.name} is unreadable (${e.code})` };
    throw e;
  }
  const walked = walkVolume(vol.dir, { prefetch: true }).entries();
  let e = walked.next();
  let reason: string | undefined;
  try {
    for (const p of index.scan()) {
      if (e.done || e.value.rec.ino > p.ino) {
        reason = `inode ${p.ino} was removed`;
        break;
      }
      const { rec, rel } = e.value;
      if (rec.ino < p.ino) {
        reason = `new inode ${rec.ino} (${rel.toString() || '/'})`;
        break;
      }
      if (!sameKey(p, rec) || namesOrMetaDiffer(p, rec)) {
        reason = `${rel.toString() || '/'} changed`;
        break;
      }
      e = walked.next();
    }
  } finally {
    await index.close();
  }
  if (!reason && !e.done) reason = `new inode ${e.value.rec.ino} (${e.value.rel.toString() || '/'})`;
  return reason ? { changed: true, reason: `${reason} since ${newest.meta.name}` } : { changed: false, reason: `nothing changed since ${newest.meta.name}` };
}
