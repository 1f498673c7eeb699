/**
 * The peer: btrfs-progs commands as a user runs them (`btrfs subvolume
 * snapshot -r`, `btrfs send [-p]`, `btrfs receive`), and the untimed chores
 * around them (creating the source subvolume, deleting snapshots and waiting
 * for the cleaner, so a deletion never runs in the background of the next
 * timed run).
 */
import { existsSync } from 'node:fs';
import { run, shellJoin } from './exec';

export async function createSubvolume(path: string): Promise<void> {
  await run(['btrfs', 'subvolume', 'create', path], { tool: 'btrfs' });
}

/** `btrfs subvolume snapshot -r SRC DST` */
export function snapshotArgv(src: string, dst: string): string[] {
  return ['btrfs', 'subvolume', 'snapshot', '-r', src, dst];
}

export async function snapshotRo(src: string, dst: string): Promise<void> {
  await run(snapshotArgv(src, dst), { tool: 'btrfs' });
}

/** `btrfs send [-p PARENT] SNAP` as a shell fragment (stream on stdout). */
export function sendSh(snap: string, parent?: string): string {
  return shellJoin(['btrfs', 'send', '-q', ...(parent ? ['-p', parent] : []), snap]);
}

/** `btrfs receive DIR` as a shell fragment (stream on stdin, or -f FILE). */
export function receiveSh(dir: string, file?: string): string {
  return shellJoin(['btrfs', 'receive', '-q', ...(file ? ['-f', file] : []), dir]);
}

/**
 * Delete subvolumes that exist (received ones are read-only; that is fine
 * for delete), commit, and wait until the cleaner has really freed them.
 */
export async function deleteSubvolumes(mountPoint: string, paths: readonly string[]): Promise<void> {
  const there = paths.filter((p) => existsSync(p));
  if (!there.length) return;
  await run(['btrfs', 'subvolume', 'delete', '-c', ...there], { tool: 'btrfs' });
  await run(['btrfs', 'subvolume', 'sync', mountPoint], { tool: 'btrfs' });
}
