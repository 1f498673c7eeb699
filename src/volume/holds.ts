/**
 * Holds: snapshots that an interrupted or running transfer still needs, so
 * retention must not remove them (the snapshot being sent and its parent).
 *
 * Owns: VOLUME/.ferry/holds/<id>.json, one file per (volume, destination)
 * transfer, written atomically before a send starts and removed when the
 * destination has committed. Never: decides retention (src/retention does).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './atomic';
import { FERRY_DIR } from './catalog';

export interface Hold {
  format: 1;
  /** The destination as the user wrote it (`/mnt/b`, `nas:/pool/x`). */
  dest: string;
  /** Snapshot names held on this side. */
  snapshots: string[];
  reason: string;
  since: string;
}

const holdsDir = (root: string) => path.join(root, FERRY_DIR, 'holds');
const holdFile = (root: string, dest: string) =>
  path.join(holdsDir(root), `${createHash('sha256').update(dest).digest('hex').slice(0, 16)}.json`);

/** Record (or replace) the hold for transfers from `root` to `dest`. */
export function placeHold(root: string, dest: string, snapshots: string[], reason: string, now = new Date()): Hold {
  fs.mkdirSync(holdsDir(root), { recursive: true, mode: 0o700 });
  const h: Hold = { format: 1, dest, snapshots: [...new Set(snapshots)], reason, since: now.toISOString() };
  writeFileAtomic(holdFile(root, dest), JSON.stringify(h, null, 2) + '\n');
  return h;
}

/** Drop the hold for `dest`, if any. */
export function releaseHold(root: string, dest: string): void {
  fs.rmSync(holdFile(root, dest), { force: true });
}

/** Every hold under `root`. A torn hold file still holds nothing it can't name, so it is skipped. */
export function listHolds(root: string): Hold[] {
  let names: string[];
  try {
    names = fs.readdirSync(holdsDir(root));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: Hold[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const h = JSON.parse(fs.readFileSync(path.join(holdsDir(root), n), 'utf8')) as Hold;
      if (h && Array.isArray(h.snapshots)) out.push(h);
    } catch {
      /* torn write of a temp file that was never renamed in: nothing held */
    }
  }
  return out;
}

/** Names held by any transfer. */
export function heldNames(root: string): Set<string> {
  const s = new Set<string>();
  for (const h of listHolds(root)) for (const n of h.snapshots) s.add(n);
  return s;
}
