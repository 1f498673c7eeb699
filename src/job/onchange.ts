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
import { walkTree } from '../diff/walker';
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
  const entries = walkTree(vol.dir);
  let i = 0;
  let reason: string | undefined;
  try {
    for await (const batch of index.batches) {
      for (const p of batch) {
        const e = entries[i];
        if (!e || e.rec.ino > p.ino) {
          reason = `inode ${p.ino} was removed`;
          break;
        }
        if (e.rec.ino < p.ino) {
          reason = `new inode ${e.rec.ino} (${e.rel.toString() || '/'})`;
          break;
        }
        if (!sameKey(p, e.rec) || namesOrMetaDiffer(p, e.rec)) {
          reason = `${e.rel.toString() || '/'} changed`;
          break;
        }
        i++;
      }
      if (reason) break;
    }
  } finally {
    await index.close();
  }
  if (!reason && i < entries.length) reason = `new inode ${entries[i].rec.ino} (${entries[i].rel.toString() || '/'})`;
  return reason ? { changed: true, reason: `${reason} since ${newest.meta.name}` } : { changed: false, reason: `nothing changed since ${newest.meta.name}` };
}
