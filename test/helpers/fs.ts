/** Filesystem helpers for tests. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/**
 * Remove a tree that may hold committed snapshots, whose roots ferry marks
 * immutable (chattr +i); clears the flag first.
 */
export function rmTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  spawnSync('chattr', ['-R', '-f', '-i', dir], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
}
