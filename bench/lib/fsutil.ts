/**
 * Small filesystem chores for suites: removing trees that ferry or btrfs
 * made read-only, finding a mount's block device, and counting the bytes
 * read from it.
 *
 * Never touches anything outside the paths it is given.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * rm -rf that also works on trees with immutable directories (ferry's
 * reflink snapshot copies and received snapshot roots are made immutable):
 * when removal fails, clear the flag recursively with chattr and try again.
 */
export function forceRemove(path: string): void {
  if (!existsSync(path)) return;
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch {
    // EPERM from an immutable directory (Node's rimraf may report it as ENOTDIR).
  }
  spawnSync('chattr', ['-R', '-f', '-i', path], { stdio: 'ignore' });
  rmSync(path, { recursive: true, force: true });
}

/** The block device a mount point is on, e.g. /dev/loop3; undefined if unknown. */
export function deviceOf(mountPoint: string): string | undefined {
  const r = spawnSync('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', mountPoint], { encoding: 'utf8' });
  const dev = (r.stdout ?? '').trim().split('\n')[0];
  return dev && dev.startsWith('/dev/') ? dev : undefined;
}

/** Bytes read from a block device since boot (/sys/block/NAME/stat, sectors of 512 bytes). */
export function deviceReadBytes(device: string): number {
  const name = basename(realpathSync(device));
  const fields = readFileSync(`/sys/block/${name}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return fields[2] * 512;
}

/** Bytes written to a block device since boot. */
export function deviceWriteBytes(device: string): number {
  const name = basename(realpathSync(device));
  const fields = readFileSync(`/sys/block/${name}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return fields[6] * 512;
}

/** Disk usage of a tree in bytes (du -sb), or NaN. */
export function duBytes(path: string): number {
  const r = spawnSync('du', ['-sb', path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : NaN;
}

export const MB = 1e6;
export const MiB = 1 << 20;
export const GiB = 1 << 30;
