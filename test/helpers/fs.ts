/** Filesystem helpers for tests. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { isSubvolume, onBtrfs } from '../../src/volume/btrfs';

/**
 * Remove a tree that may hold committed snapshots: on most filesystems their
 * roots are immutable (chattr +i), cleared first; on btrfs, as root, they
 * are read-only subvolumes, which `rm -r` cannot empty, so every subvolume
 * in the tree is deleted first.
 */
export function rmTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  spawnSync('chattr', ['-R', '-f', '-i', dir], { stdio: 'ignore' });
  if (fs.lstatSync(dir).isDirectory() && onBtrfs(dir)) {
    for (const sv of subvolumesBelow(dir)) spawnSync('btrfs', ['subvolume', 'delete', sv], { stdio: 'ignore' });
    // `dir` itself may be one (a received snapshot); the filesystem's top level refuses, harmlessly.
    if (isSubvolume(dir)) spawnSync('btrfs', ['subvolume', 'delete', dir], { stdio: 'ignore' });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Subvolume roots below `dir`, not looking inside them (ferry never nests them). */
function subvolumesBelow(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = `${d}/${e.name}`;
      if (isSubvolume(p)) out.push(p);
      else stack.push(p);
    }
  }
  return out;
}
