/**
 * The page-cache policy of timed runs: both sides of a comparison start from
 * the same cache state, and the report says which.
 *
 * - cold (default for full runs): before every timed run of either side,
 *   `sync` and then `echo 3 > /proc/sys/vm/drop_caches`, so each side reads
 *   its source and metadata from the (loop) disk;
 * - warm (default for --smoke): nothing is dropped; every side runs on
 *   whatever the previous one left in the cache.
 *
 * Never drops anything in warm mode. If dropping fails (not root, read-only
 * /proc), the run degrades to warm and says so once, in `describe()`.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export type CacheMode = 'cold' | 'warm';

const DROP = '/proc/sys/vm/drop_caches';

/** sync, then drop page cache, dentries and inodes. Throws when /proc refuses. */
export function dropCaches(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
  writeFileSync(DROP, '3\n');
}

export class CachePolicy {
  private failure: string | undefined;
  private drops = 0;

  constructor(readonly mode: CacheMode) {}

  /** Call right before each timed run (in the untimed `before` hook), for every side alike. */
  prepare(): void {
    if (this.mode !== 'cold' || this.failure) return;
    try {
      dropCaches();
      this.drops++;
    } catch (e) {
      this.failure = `could not drop caches (${(e as Error).message}); ran warm`;
    }
  }

  /** For a measurement that is only meaningful on a cold cache (bytes read from disk): drop whatever the mode. */
  prepareCold(): boolean {
    try {
      dropCaches();
      this.drops++;
      return true;
    } catch {
      return false;
    }
  }

  describe(): string {
    if (this.failure) return this.failure;
    return this.mode === 'cold'
      ? `cold: sync + echo 3 > ${DROP} before every timed run, same for ferry and peers (${this.drops} drops)`
      : 'warm: caches not dropped (--cache warm, the --smoke default); sides run on whatever the previous run left cached';
  }
}
