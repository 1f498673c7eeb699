/**
 * Suite `ssh`: replication of large files over ssh on loopback, against
 * `btrfs send | ssh localhost btrfs receive`.
 *
 * A private sshd on 127.0.0.1 (bench/lib/sshd.ts, key login as root). Data:
 * 4 files of 256 MiB (4 × 4 MiB under --smoke), half incompressible and half
 * text-like, fixed seed, on an ext4 `index` volume and in a btrfs subvolume.
 * Receivers: ext4 (ferry, through ssh) and btrfs (the peer, through ssh).
 * Each rep is a full transfer to an empty receiver, in alternation:
 *
 * - ferry sync: `ferry sync VOL user@127.0.0.1:PORT:/target` (takes the
 *   snapshot itself; ssh2 client, `ferry serve` on the far side);
 * - ferry sync --compress zstd (informational);
 * - ferry pipe: ferry snapshot + `ferry send | ssh ... ferry receive` (OpenSSH);
 * - btrfs: btrfs subvolume snapshot -r + `btrfs send | ssh ... btrfs receive`.
 *
 * Budget (issue #5): ferry sync's throughput ≥ 80% of the peer's, i.e.
 * time ratio ≤ 1.25. When `ferry sync` is not in this build the sync cases
 * say "not available: <reason>" and the pipe case still runs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, receiveSh, sendSh, snapshotArgv } from '../lib/btrfs';
import { CachePolicy } from '../lib/cache';
import { makeLargeFiles } from '../lib/datasets';
import { bash, commandErrorOf, run, shellJoin } from '../lib/exec';
import { FerryCli, forgetVolume } from '../lib/ferry-cli';
import { MiB, forceRemove } from '../lib/fsutil';
import { Verification, describeSteps, errorSummary, fmtMB, isToolFailure, ratioCase, stepMedians, verifyTree } from '../lib/kit';
import { withLoopFilesystems } from '../lib/loopfs';
import { Sshd, startSshd } from '../lib/sshd';
import { CaseResult, Suite, SuiteContext } from '../lib/suite';
import { NamedSide, SideTiming, alternate } from '../lib/timing';

const BUDGET = { op: '<=' as const, value: 1.25, source: 'issue #5 (throughput ≥ 80% of the peer)' };
const SNAP = 'x';

interface SyncSummary {
  streamBytes?: number;
  wireBytes?: number;
  seconds?: number;
  snapshot?: string;
}

/** The summary object `ferry sync --json` prints last. */
function parseSummary(stdout: string): SyncSummary {
  let last: SyncSummary = {};
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      const o = JSON.parse(t) as SyncSummary & { event?: string };
      if (o.streamBytes !== undefined || o.event === 'summary') last = o;
    } catch {
      /* a progress line */
    }
  }
  return last;
}

/** Why `ferry sync` can't be benchmarked in this build, or undefined. */
async function syncUnavailable(ferry: FerryCli, repoRoot: string): Promise<string | undefined> {
  for (const f of ['dist/src/cli/commands/sync.js', 'dist/src/replicate/sync.js', 'dist/src/transport/ssh.js']) {
    if (!existsSync(join(repoRoot, f))) return `${f} is not built (ferry sync is not in this build)`;
  }
  try {
    const r = await ferry.run(['sync', '--help']);
    if (!/--remote-command/.test(r.stdout)) return 'ferry sync has no --remote-command option';
  } catch (e) {
    return `ferry sync --help failed: ${errorSummary(e)}`;
  }
  return undefined;
}

/** A failure that means "this build cannot sync" rather than "sync is broken". */
function looksUnbuilt(e: unknown): boolean {
  const c = commandErrorOf(e);
  return !!c && /Cannot find module|is not a function|unknown command/.test(c.stderrTail);
}

async function run_(ctx: SuiteContext): Promise<CaseResult[]> {
  const ferry = new FerryCli(ctx.ferryBin);
  const cache = new CachePolicy(ctx.cache);
  const files = 4;
  const fileBytes = ctx.smoke ? 4 * MiB : 256 * MiB;
  const total = files * fileBytes;
  const parentDir = ctx.tmpDir;
  const size = total * 3 + (512 << 20);
  const syncWhy = await syncUnavailable(ferry, ctx.repoRoot);
  const sshd = await startSshd(ctx.tmpDir);
  try {
    return await withLoopFilesystems(
      {
        ext4Src: { type: 'ext4', sizeBytes: size, parentDir },
        ext4Dst: { type: 'ext4', sizeBytes: size, parentDir },
        btrfsSrc: { type: 'btrfs', sizeBytes: size, parentDir },
        btrfsDst: { type: 'btrfs', sizeBytes: size, parentDir },
      },
      async (fss) => {
        const vol = join(fss.ext4Src.mountPoint, 'vol');
        const btrfsVol = join(fss.btrfsSrc.mountPoint, 'vol');
        const snaps = join(fss.btrfsSrc.mountPoint, 'snaps');
        const recv = join(fss.btrfsDst.mountPoint, 'recv');
        await run(['mkdir', '-p', vol, snaps, recv]);
        await createSubvolume(btrfsVol);
        makeLargeFiles(vol, files, fileBytes, ctx.seed);
        makeLargeFiles(btrfsVol, files, fileBytes, ctx.seed);
        ctx.log(`${files} × ${fmtMB(fileBytes)} files on ext4 and btrfs; sshd on 127.0.0.1:${sshd.port}`);

        const remoteFerry = shellJoin([ferry.node, ctx.ferryBin]);
        const ssh = shellJoin(sshd.sshArgv());
        const targets = {
          sync: join(fss.ext4Dst.mountPoint, 't-sync'),
          zstd: join(fss.ext4Dst.mountPoint, 't-zstd'),
          pipe: join(fss.ext4Dst.mountPoint, 't-pipe'),
        };
        const summaries: Record<string, SyncSummary[]> = { sync: [], zstd: [] };
        const freshVolume = async () => {
          forgetVolume(vol);
          await ferry.run(['init', vol, '--method', 'index']);
        };
        const syncArgv = (target: string, extra: string[]) => [
          'sync',
          vol,
          sshd.dest(target),
          '--name',
          SNAP,
          '--ssh-identity',
          sshd.clientKey,
          '--ssh-known-hosts',
          sshd.knownHostsFile,
          '--remote-command',
          `${remoteFerry} serve`,
          '--json',
          ...extra,
        ];
        const syncSide = (key: 'sync' | 'zstd', extra: string[]): NamedSide => ({
          name: `ferry ${key}`,
          before: async () => {
            await freshVolume();
            forceRemove(targets[key]);
            cache.prepare();
          },
          run: async (clock) => {
            const r = await clock.step('sync', () => ferry.run(syncArgv(targets[key], extra), { env: { ...process.env, SSH_AUTH_SOCK: '' } }));
            summaries[key].push(parseSummary(r.stdout));
          },
        });
        const sides: NamedSide[] = [];
        if (!syncWhy) sides.push(syncSide('sync', []), syncSide('zstd', ['--compress', 'zstd']));
        sides.push(
          {
            name: 'ferry pipe',
            before: async () => {
              await freshVolume();
              forceRemove(targets.pipe);
              cache.prepare();
            },
            run: async (clock) => {
              await clock.step('snapshot', () => ferry.run(['snapshot', vol, '--name', SNAP]));
              await clock.step('send|ssh|receive', () =>
                bash(`${ferry.sh(['send', `${vol}@${SNAP}`])} | ${ssh} ${shellJoin([`${remoteFerry} receive ${shellJoin([targets.pipe])} > /dev/null`])}`, { tool: 'ferry' }),
              );
            },
          },
          {
            name: 'btrfs',
            before: async () => {
              await deleteSubvolumes(fss.btrfsSrc.mountPoint, [join(snaps, SNAP)]);
              await deleteSubvolumes(fss.btrfsDst.mountPoint, [join(recv, SNAP)]);
              cache.prepare();
            },
            run: async (clock) => {
              await clock.step('snapshot', () => run(snapshotArgv(btrfsVol, join(snaps, SNAP)), { tool: 'btrfs' }));
              await clock.step('send|ssh|receive', () => bash(`${sendSh(join(snaps, SNAP))} | ${ssh} ${shellJoin([receiveSh(recv)])}`, { tool: 'btrfs' }));
            },
          },
        );
        const t = await alternate({
          sides,
          reps: ctx.reps,
          sideFailure: isToolFailure,
          onSample: (side, rep, s) => ctx.log(`rep ${rep + 1}/${ctx.reps} ${side}: ${s.toFixed(2)} s (${(total / s / 1e6).toFixed(0)} MB/s)`),
          onFailure: (side, rep, e) => ctx.log(`rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
        });
        const why: Record<'sync' | 'zstd', string | undefined> = { sync: syncWhy, zstd: syncWhy };
        for (const key of ['sync', 'zstd'] as const) {
          const side = t[`ferry ${key}`];
          if (side?.error !== undefined && looksUnbuilt(side.error)) why[key] = `ferry sync${key === 'zstd' ? ' --compress zstd' : ''} does not run in this build: ${errorSummary(side.error)}`;
        }

        const verified: Record<string, Verification> = {};
        for (const key of ['sync', 'zstd', 'pipe'] as const) {
          const side = t[`ferry ${key}`];
          if (side && side.error === undefined) {
            verified[key] = verifyTree(vol, join(targets[key], SNAP));
            ctx.log(`${key}: received tree vs source: ${verified[key].ok ? 'equal' : 'DIFFERENT'} (${verified[key].text})`);
          }
        }
        const rate = (s: SideTiming | undefined) => (s && s.samples.length ? `${(total / s.median / 1e6).toFixed(0)} MB/s` : '?');
        const peer = t.btrfs;
        const peerTool = 'btrfs snapshot -r + send | ssh | btrfs receive';
        const cases: CaseResult[] = [];
        const syncCase = (key: 'sync' | 'zstd', name: string, budgeted: boolean): CaseResult => {
          if (why[key]) {
            return { name, value: NaN, unit: 'ratio', ...(budgeted ? { budget: BUDGET, budgetId: 'ssh-throughput' } : {}), unavailable: `not available: ${why[key]}` };
          }
          const side = t[`ferry ${key}`];
          const s = summaries[key];
          const last = s[s.length - 1];
          return ratioCase({
            name,
            ferry: side,
            peer,
            peerTool,
            ...(budgeted ? { budget: BUDGET, budgetId: 'ssh-throughput' } : {}),
            verification: verified[key],
            note: `${fmtMB(total)} in ${files} files: ferry ${rate(side)}, btrfs ${rate(peer)}${last?.wireBytes !== undefined ? `; wire ${fmtMB(last.wireBytes)} for a ${fmtMB(last.streamBytes ?? NaN)} stream` : ''}; btrfs steps: ${describeSteps(peer)}`,
            detail: { bytes: total, summaries: s, peerSteps: stepMedians(peer), cache: cache.describe() },
          });
        };
        cases.push(syncCase('sync', 'ferry sync over ssh vs btrfs send | ssh | receive', true));
        cases.push(syncCase('zstd', 'ferry sync --compress zstd over ssh vs btrfs (info)', false));
        cases.push(
          ratioCase({
            name: 'ferry send | ssh | ferry receive vs btrfs (info)',
            ferry: t['ferry pipe'],
            peer,
            peerTool,
            verification: verified.pipe,
            note: `OpenSSH on both; ferry ${rate(t['ferry pipe'])}, btrfs ${rate(peer)}; ferry steps: ${describeSteps(t['ferry pipe'])}`,
            detail: { bytes: total, ferrySteps: stepMedians(t['ferry pipe']), peerSteps: stepMedians(peer) },
          }),
        );
        return cases;
      },
    );
  } finally {
    await stopQuietly(sshd);
  }
}

async function stopQuietly(s: Sshd): Promise<void> {
  try {
    await s.stop();
  } catch {
    /* best effort */
  }
}

export const sshSuite: Suite = {
  name: 'ssh',
  title: 'ferry sync over ssh on loopback vs btrfs send | ssh | btrfs receive, large files (throughput ≥ 80%, i.e. ≤ 1.25×)',
  requires: { root: true, loopDevices: true, tools: ['btrfs', 'mkfs.btrfs', 'mkfs.ext4', 'ssh', 'sshd', 'ssh-keygen'] },
  run: run_,
};
