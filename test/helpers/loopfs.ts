/**
 * Real filesystems for tests: small loop images of XFS, btrfs or ext4 (or a
 * tmpfs), mounted under os.tmpdir() and always taken down again.
 *
 * Owns: mkfs arguments, loop device attach/detach, mount/umount, and the
 * skip-or-fail rule for machines that can't mount (not root, no loop
 * devices, no mkfs tool): such tests are skipped with the reason in their
 * name, unless FERRY_REQUIRE_REAL_FS=1 (CI), where they fail instead.
 *
 * Invariants: `cleanup()` is idempotent and runs every step even when an
 * earlier one fails (umount, then `losetup -d`, then remove the image and
 * directories); whatever is still mounted when the process exits is taken
 * down by an exit hook. Nothing here touches a path it did not create.
 *
 * Use:
 *   await withLoopFs('xfs', 320, async (dir) => { ... });          // one test
 *   describeLoopFs('btrfs', 'receive on btrfs', (fs) => {           // a block
 *     test('x', () => { use(fs().dir); });
 *   });
 *   loopFsTest('ext4')('name', async () => { ... });                // skip/fail-aware test()
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type LoopFsKind = 'xfs' | 'btrfs' | 'ext4' | 'tmpfs';

export interface LoopFsOptions {
  /** XFS only: format with reflink=1 (default true) so FICLONE works. */
  reflink?: boolean;
  /** Extra arguments for mkfs, before the image path. */
  mkfsExtra?: string[];
  /** Extra mount options (`-o` list), e.g. ['compress=zstd'] for btrfs. */
  mountOptions?: string[];
}

export interface LoopFs {
  kind: LoopFsKind;
  /** The mount point: an empty directory on the new filesystem. */
  dir: string;
  /** The loop device (undefined for tmpfs). */
  device?: string;
  /** Idempotent; never throws; returns the problems it met, if any. */
  cleanup(): string[];
}

/** Smallest image each mkfs accepts (XFS refuses < 300 MiB, btrfs < 109 MiB). */
export const MIN_SIZE_MB: Record<LoopFsKind, number> = { xfs: 300, btrfs: 128, ext4: 16, tmpfs: 1 };

/** The mkfs command line for an image: argv[0] is the tool. */
export function mkfsArgs(kind: Exclude<LoopFsKind, 'tmpfs'>, image: string, options: LoopFsOptions = {}): string[] {
  const extra = options.mkfsExtra ?? [];
  switch (kind) {
    case 'xfs':
      // -K: skip discard (slow on loop files); reflink for clone tests.
      return ['mkfs.xfs', '-q', '-f', '-K', '-m', `reflink=${options.reflink === false ? 0 : 1}`, ...extra, image];
    case 'btrfs':
      return ['mkfs.btrfs', '-q', '-f', '-K', ...extra, image];
    case 'ext4':
      return ['mkfs.ext4', '-q', '-F', '-E', 'nodiscard', ...extra, image];
  }
}

function run(argv: string[]): { ok: boolean; out: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return { ok: false, out: `${argv[0]}: ${r.error.message}` };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

function must(argv: string[]): string {
  const r = run(argv);
  if (!r.ok) throw new Error(`${argv.join(' ')} failed: ${r.out}`);
  return r.out;
}

const active = new Set<LoopFs>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const m of [...active]) m.cleanup();
  });
}

/** Mount a fresh filesystem now (synchronously). Call `cleanup()` when done. */
export function mountLoopFs(kind: LoopFsKind, sizeMB: number, options: LoopFsOptions = {}): LoopFs {
  installExitHook();
  const size = Math.max(sizeMB, MIN_SIZE_MB[kind]);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `ferry-${kind}-`));
  const image = path.join(base, 'image');
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  let device: string | undefined;
  let mounted = false;
  let done = false;

  const handle: LoopFs = {
    kind,
    dir,
    get device() {
      return device;
    },
    cleanup() {
      if (done) return [];
      done = true;
      active.delete(handle);
      const problems: string[] = [];
      if (mounted) {
        let r = run(['umount', dir]);
        for (let i = 0; !r.ok && i < 5; i++) {
          spawnSync('sleep', ['0.2']);
          r = run(['umount', dir]);
        }
        if (!r.ok) {
          problems.push(`umount ${dir}: ${r.out}`);
          r = run(['umount', '-l', dir]);
          if (!r.ok) problems.push(`umount -l ${dir}: ${r.out}`);
        }
        mounted = !r.ok;
      }
      if (device) {
        const r = run(['losetup', '-d', device]);
        if (!r.ok && !/No such device/.test(r.out)) problems.push(`losetup -d ${device}: ${r.out}`);
      }
      for (const step of [() => fs.rmSync(image, { force: true }), () => !mounted && fs.rmdirSync(dir), () => !mounted && fs.rmdirSync(base)]) {
        try {
          step();
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(String(e));
        }
      }
      return problems;
    },
  };
  active.add(handle);

  try {
    if (kind === 'tmpfs') {
      must(['mount', '-t', 'tmpfs', '-o', [`size=${size}m`, ...(options.mountOptions ?? [])].join(','), 'tmpfs', dir]);
      mounted = true;
    } else {
      fs.closeSync(fs.openSync(image, 'w'));
      fs.truncateSync(image, size * 1024 * 1024);
      must(mkfsArgs(kind, image, options));
      device = must(['losetup', '--find', '--show', image]).split('\n').pop()!.trim();
      const opts = options.mountOptions?.length ? ['-o', options.mountOptions.join(',')] : [];
      must(['mount', '-t', kind, ...opts, device, dir]);
      mounted = true;
    }
  } catch (e) {
    const problems = handle.cleanup();
    if (problems.length) (e as Error).message += `\ncleanup: ${problems.join('; ')}`;
    throw e;
  }
  return handle;
}

/** Mount, run `fn(mountDir)`, and always clean up, even when `fn` throws. */
export async function withLoopFs(
  kind: LoopFsKind,
  sizeMB: number,
  fn: (mountDir: string) => Promise<void> | void,
  options: LoopFsOptions = {},
): Promise<void> {
  const m = mountLoopFs(kind, sizeMB, options);
  let failed = false;
  try {
    await fn(m.dir);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const problems = m.cleanup();
    if (problems.length && !failed) throw new Error(`loop filesystem cleanup failed: ${problems.join('; ')}`);
  }
}

const probes = new Map<LoopFsKind, string | undefined>();

/**
 * Why `kind` can't be mounted here, or undefined when it can. The first call
 * per kind really mounts one (about 0.1 s), so the answer is never a guess.
 */
export function cannotMountReason(kind: LoopFsKind = 'ext4'): string | undefined {
  if (probes.has(kind)) return probes.get(kind);
  let reason: string | undefined;
  if (process.platform !== 'linux') reason = 'not Linux';
  else if (process.getuid?.() !== 0) reason = 'not root';
  else if (kind !== 'tmpfs' && !fs.existsSync('/dev/loop-control')) reason = 'no /dev/loop-control';
  else {
    try {
      const m = mountLoopFs(kind, MIN_SIZE_MB[kind]);
      m.cleanup();
    } catch (e) {
      reason = (e as Error).message.split('\n')[0];
    }
  }
  probes.set(kind, reason);
  return reason;
}

/** True when this process can mount a `kind` filesystem (default: any loop fs, probed with ext4). */
export function canMount(kind: LoopFsKind = 'ext4'): boolean {
  return cannotMountReason(kind) === undefined;
}

/** True when CI demands real filesystems: a test that can't mount must fail, not skip. */
export function realFsRequired(): boolean {
  return process.env.FERRY_REQUIRE_REAL_FS === '1';
}

function unavailableMessage(kind: LoopFsKind, reason: string): string {
  return `cannot mount ${kind}: ${reason} (FERRY_REQUIRE_REAL_FS=1 makes this a failure)`;
}

type TestFn = jest.ProvidesCallback;

/**
 * `test` when `kind` mounts here; otherwise a skipped test whose name says
 * why, or, under FERRY_REQUIRE_REAL_FS=1, a test that fails with the reason.
 * Each test still mounts its own filesystem (use withLoopFs inside).
 */
export function loopFsTest(kind: LoopFsKind): (name: string, fn: TestFn, timeout?: number) => void {
  const reason = cannotMountReason(kind);
  if (reason === undefined) return (name, fn, timeout) => test(name, fn, timeout);
  if (realFsRequired()) {
    return (name) =>
      test(name, () => {
        throw new Error(unavailableMessage(kind, reason));
      });
  }
  return (name, fn, timeout) => test.skip(`${name} [skipped: cannot mount ${kind}: ${reason}]`, fn, timeout);
}

/**
 * A describe block sharing one mounted filesystem (mounted in beforeAll,
 * taken down in afterAll even when tests fail). `mounted()` returns it
 * inside tests. Skips or fails as `loopFsTest` does.
 */
export function describeLoopFs(
  kind: LoopFsKind,
  name: string,
  body: (mounted: () => LoopFs) => void,
  sizeMB = MIN_SIZE_MB[kind],
  options: LoopFsOptions = {},
): void {
  const reason = cannotMountReason(kind);
  if (reason !== undefined) {
    if (realFsRequired()) {
      describe(name, () => {
        test(`mount ${kind}`, () => {
          throw new Error(unavailableMessage(kind, reason));
        });
      });
    } else {
      describe.skip(`${name} [skipped: cannot mount ${kind}: ${reason}]`, () => body(() => {
        throw new Error('skipped');
      }));
    }
    return;
  }
  describe(name, () => {
    let m: LoopFs | undefined;
    beforeAll(() => {
      m = mountLoopFs(kind, sizeMB, options);
    });
    afterAll(() => {
      const problems = m?.cleanup() ?? [];
      if (problems.length) throw new Error(`loop filesystem cleanup failed: ${problems.join('; ')}`);
    });
    body(() => {
      if (!m) throw new Error(`${kind} filesystem was not mounted`);
      return m;
    });
  });
}

/** Take down every filesystem this process still has mounted (for afterAll hooks). */
export function cleanupAllLoopFs(): string[] {
  return [...active].flatMap((m) => m.cleanup());
}
