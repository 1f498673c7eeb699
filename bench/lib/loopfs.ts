/**
 * Loop-mounted scratch filesystems for suites that compare against btrfs,
 * XFS (reflink=1) or ext4: an image file under a temp dir, mkfs, mount.
 *
 * Owns: creating and always removing them. Every step registers its undo
 * with bench/lib/cleanup.ts before the next step runs, so an exception,
 * SIGINT or SIGTERM at any point unmounts, detaches and deletes what exists.
 * Needs root; when it cannot work here it throws SkipError with the reason,
 * so the suite is reported as skipped instead of crashing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { deviceOf } from './fsutil';
import { findTool, unmetRequirement } from './requirements';
import { SkipError } from './suite';

export type LoopFsType = 'btrfs' | 'xfs' | 'ext4';

export interface LoopFsOptions {
  type: LoopFsType;
  /** Image size in bytes (a sparse file); raised to what mkfs accepts (btrfs 128 MiB, XFS 300 MiB). */
  sizeBytes: number;
  /** Where to create the temp dir holding image and mount point (default: os.tmpdir()). */
  parentDir?: string;
  /** Extra mount options, e.g. ["noatime"] or ["compress=zstd"]. */
  mountOptions?: string[];
  /** Extra mkfs arguments before the image, e.g. ["-N", "1200000"] for ext4 inodes. */
  mkfsExtra?: string[];
}

export interface LoopFs {
  type: LoopFsType;
  /** The mounted filesystem's root. */
  mountPoint: string;
  image: string;
  /** The loop device it is mounted from (for /sys/block/NAME/stat), when found. */
  device?: string;
}

/** mkfs per type. -K / nodiscard: discarding a sparse loop image is slow and pointless. */
const MKFS: Record<LoopFsType, { tool: string; minBytes: number; args: (img: string) => string[] }> = {
  btrfs: { tool: 'mkfs.btrfs', minBytes: 128 << 20, args: (img) => ['-q', '-f', '-K', img] },
  xfs: { tool: 'mkfs.xfs', minBytes: 300 << 20, args: (img) => ['-q', '-f', '-K', '-m', 'reflink=1', img] },
  // Initialise inode tables and journal now: otherwise ext4lazyinit writes them
  // in the background and disturbs the timings.
  ext4: {
    tool: 'mkfs.ext4',
    minBytes: 16 << 20,
    args: (img) => ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=0,lazy_journal_init=0', img],
  },
};

/** Why loop filesystems of this type cannot be made here, or undefined. */
export function loopFsUnavailable(type: LoopFsType): string | undefined {
  return unmetRequirement({ root: true, loopDevices: true, tools: [MKFS[type].tool, 'mount', 'umount', 'losetup'] });
}

function run(cmd: string, args: string[]): void {
  execFileSync(findTool(cmd) ?? cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function errText(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  const stderr = err.stderr ? err.stderr.toString().trim() : '';
  return stderr || err.message || String(e);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Unmount, retrying while busy, then lazily; detach any loop device left on the image. */
function unmount(mountPoint: string, image: string): void {
  let ok = false;
  for (let i = 0; i < 5 && !ok; i++) {
    ok = spawnSync(findTool('umount') ?? 'umount', [mountPoint], { stdio: 'ignore' }).status === 0;
    if (!ok) sleepSync(200 * (i + 1));
  }
  if (!ok) spawnSync(findTool('umount') ?? 'umount', ['-l', mountPoint], { stdio: 'ignore' });
  // mount -o loop sets autoclear, so this normally finds nothing.
  const r = spawnSync(findTool('losetup') ?? 'losetup', ['-j', image], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const dev = line.split(':')[0];
    if (dev.startsWith('/dev/loop')) spawnSync(findTool('losetup') ?? 'losetup', ['-d', dev], { stdio: 'ignore' });
  }
}

/**
 * Create a loop filesystem, run `fn` on it, and remove it afterwards whatever
 * happens. Throws SkipError when it cannot be created here.
 */
export async function withLoopFs<T>(opts: LoopFsOptions, fn: (fs: LoopFs) => Promise<T>): Promise<T> {
  const why = loopFsUnavailable(opts.type);
  if (why) throw new SkipError(`${opts.type} loop filesystem: ${why}`);
  const dir = mkdtempSync(join(opts.parentDir ?? os.tmpdir(), `ferry-bench-${opts.type}-`));
  const undo: Array<() => void> = [];
  undo.push(registerCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true })));
  try {
    const image = join(dir, `${opts.type}.img`);
    const mountPoint = join(dir, 'mnt');
    mkdirSync(mountPoint);
    const fd = openSync(image, 'w');
    try {
      ftruncateSync(fd, Math.max(opts.sizeBytes, MKFS[opts.type].minBytes));
    } finally {
      closeSync(fd);
    }
    const mkfs = MKFS[opts.type];
    try {
      const args = mkfs.args(image);
      run(mkfs.tool, [...args.slice(0, -1), ...(opts.mkfsExtra ?? []), image]);
    } catch (e) {
      throw new SkipError(`${mkfs.tool} failed: ${errText(e)}`);
    }
    const mountArgs = ['-t', opts.type, '-o', ['loop', ...(opts.mountOptions ?? [])].join(','), image, mountPoint];
    try {
      run('mount', mountArgs);
    } catch (e) {
      throw new SkipError(`cannot mount a ${opts.type} loop image: ${errText(e)}`);
    }
    undo.push(registerCleanup(`unmount ${mountPoint}`, () => unmount(mountPoint, image)));
    return await fn({ type: opts.type, mountPoint, image, device: deviceOf(mountPoint) });
  } finally {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch (e) {
        process.stderr.write(`bench: loop filesystem cleanup failed: ${errText(e)}\n`);
      }
    }
  }
}

/**
 * Several loop filesystems at once, e.g. { src: ext4, dst: ext4, peer: btrfs }:
 * created in key order, all removed afterwards whatever happens.
 */
export async function withLoopFilesystems<K extends string, T>(
  specs: Record<K, LoopFsOptions>,
  fn: (fss: Record<K, LoopFs>) => Promise<T>,
): Promise<T> {
  const keys = Object.keys(specs) as K[];
  const made = {} as Record<K, LoopFs>;
  const step = async (i: number): Promise<T> => {
    if (i === keys.length) return fn(made);
    return withLoopFs(specs[keys[i]], async (fs) => {
      made[keys[i]] = fs;
      return step(i + 1);
    });
  };
  return step(0);
}
