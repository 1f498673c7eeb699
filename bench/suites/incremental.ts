/**
 * Suite `incremental`: after about 1% of the files change, how long ferry
 * takes to bring a receiver up to date, and how big its stream is, against
 * `btrfs send -p | btrfs receive` and `rsync -aHAX --delete`.
 *
 * Dataset `usr` on ext4 (ferry `index` volume), XFS (ferry `reflink`
 * volume) and btrfs (the peer's subvolume); receivers on ext4 (ferry's
 * targets and rsync's copy) and btrfs. All start equal: one full send each,
 * rsync's copy made with cp -a (untimed).
 *
 * Then, for 1 and for 10 snapshots behind, each rep (untimed) mutates every
 * source the same way with a fresh seed (bench/lib/datasets.ts: appends,
 * deletes, renames, chmods, new files, directory renames). With 10 behind,
 * the 1% is spread over 10 steps with a snapshot after each of the first 9,
 * so the receiver is 10 snapshots behind. Timed in alternation:
 *
 * - ferry index / ferry reflink: ferry snapshot + ferry send -p LAST NEW | ferry receive
 * - btrfs: btrfs subvolume snapshot -r + btrfs send -p LAST NEW | btrfs receive
 * - rsync: rsync -aHAX --delete --exclude=/.ferry (ext4 volume → ext4 copy holding the previous state)
 * - receive alone: ferry receive of ferry's saved incremental stream onto ext4
 *   (the target holds the parent; hard-link farm) vs btrfs receive of the
 *   kernel's saved stream onto btrfs.
 *
 * Budgets: ferry ≤ 1/3 of rsync's time, stream ≤ 1.1× the kernel's bytes
 * (DESIGN.md), incremental receive < 2 s (issue #3). Received trees are
 * compared with their sources after the last rep of each phase; one extra
 * untimed rep at 1 behind is profiled. --smoke runs 1 and 3 behind, without
 * the profiled rep.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, receiveSh, sendSh, snapshotArgv } from '../lib/btrfs';
import { CachePolicy } from '../lib/cache';
import { applyMutation, listTree, mutationSeed, planMutation, planSummary } from '../lib/datasets';
import { bash, run } from '../lib/exec';
import { FerryCli, receivedOne, removeReceived } from '../lib/ferry-cli';
import { forceRemove } from '../lib/fsutil';
import {
  Verification,
  copyTree,
  describeSteps,
  describeTree,
  errorSummary,
  ferrySetupFailure,
  fmtMB,
  isToolFailure,
  makeUsrDataset,
  ratioCase,
  stepMedians,
  timingOnly,
  usrBytesEstimate,
  verifyTree,
} from '../lib/kit';
import { withLoopFilesystems } from '../lib/loopfs';
import { PhaseProfile, describeProfiles, foldProfiles, roundProfiles } from '../lib/profile';
import { CaseResult, Suite, SuiteContext } from '../lib/suite';
import { NamedSide, SideTiming, StepClock, alternate, median, secondsSince } from '../lib/timing';

const TIME_BUDGET = { op: '<=' as const, value: 1 / 3, source: 'DESIGN.md; issue #4' };
const BYTES_BUDGET = { op: '<=' as const, value: 1.1, source: 'DESIGN.md; issue #4' };
const RECV_BUDGET = { op: '<=' as const, value: 2, source: 'issue #3 (< 2 s)' };
const FRACTION = 0.01;
const FLUSH = 'flush after (untimed)';

interface Vol {
  key: 'index' | 'reflink';
  label: string;
  dir: string;
  target: string;
}

async function flush(clock: StepClock): Promise<void> {
  const t0 = process.hrtime.bigint();
  await run(['sync'], { tool: 'sync' });
  clock.record(FLUSH, secondsSince(t0));
}

async function run_(ctx: SuiteContext): Promise<CaseResult[]> {
  const ferry = new FerryCli(ctx.ferryBin);
  const cache = new CachePolicy(ctx.cache);
  const data = usrBytesEstimate(ctx);
  const size = (copies: number) => Math.ceil(data * copies * 1.3) + (512 << 20);
  const parentDir = ctx.tmpDir;
  const ext4Opts = ['-i', '8192'];
  return withLoopFilesystems(
    {
      ext4Src: { type: 'ext4', sizeBytes: size(3), parentDir, mkfsExtra: ext4Opts },
      xfsSrc: { type: 'xfs', sizeBytes: size(8), parentDir },
      btrfsSrc: { type: 'btrfs', sizeBytes: size(2.5), parentDir },
      ext4Dst: { type: 'ext4', sizeBytes: size(3), parentDir, mkfsExtra: ext4Opts },
      btrfsDst: { type: 'btrfs', sizeBytes: size(2.5), parentDir },
    },
    async (fss) => {
      const t0 = process.hrtime.bigint();
      const ext4Vol = join(fss.ext4Src.mountPoint, 'vol');
      const stats = makeUsrDataset(ctx, ext4Vol);
      const xfsVol = join(fss.xfsSrc.mountPoint, 'vol');
      await copyTree(ext4Vol, xfsVol);
      const btrfsVol = join(fss.btrfsSrc.mountPoint, 'vol');
      await createSubvolume(btrfsVol);
      await copyTree(ext4Vol, btrfsVol);
      const rsyncCopy = join(fss.ext4Dst.mountPoint, 'rsync');
      await copyTree(ext4Vol, rsyncCopy);
      const snaps = join(fss.btrfsSrc.mountPoint, 'snaps');
      const recv = join(fss.btrfsDst.mountPoint, 'recv');
      await run(['mkdir', '-p', snaps, recv]);
      ctx.log(`dataset ${stats.source}: ${describeTree(stats)} on ext4, XFS, btrfs and rsync's copy (${secondsSince(t0).toFixed(1)} s)`);

      // The common starting point: full sends, untimed.
      const vols: Vol[] = [
        { key: 'index', label: 'index (ext4)', dir: ext4Vol, target: join(fss.ext4Dst.mountPoint, 't-index') },
        { key: 'reflink', label: 'reflink (XFS)', dir: xfsVol, target: join(fss.ext4Dst.mountPoint, 't-reflink') },
      ];
      let last = 'b0';
      const t1 = process.hrtime.bigint();
      try {
        for (const v of vols) {
          await ferry.run(['init', v.dir, '--method', v.key]);
          await ferry.run(['snapshot', v.dir, '--name', last]);
          await bash(`${ferry.sh(['send', `${v.dir}@${last}`])} | ${ferry.sh(['receive', v.target])} > /dev/null`, { tool: 'ferry' });
        }
      } catch (e) {
        return ferrySetupFailure(e, 'the initial full send', [
          { name: 'index and reflink vs rsync', budgetId: 'incremental-time', budget: TIME_BUDGET, unit: 'ratio' },
          { name: 'stream bytes / btrfs send -p', budgetId: 'incremental-bytes', budget: BYTES_BUDGET, unit: 'ratio' },
          { name: 'ferry receive onto ext4', budgetId: 'incremental-receive', budget: RECV_BUDGET, unit: 's' },
        ]);
      }
      await run(snapshotArgv(btrfsVol, join(snaps, last)), { tool: 'btrfs' });
      await bash(`${sendSh(join(snaps, last))} | ${receiveSh(recv)}`, { tool: 'btrfs' });
      ctx.log(`initial full sends done (${secondsSince(t1).toFixed(1)} s)`);

      let serial = 0;
      const streamDir = join(ctx.tmpDir, 'streams');
      await run(['mkdir', '-p', streamDir]);

      /** One phase: `reps` reps at `behind` snapshots behind; with `prof`, ferry runs under the profiler. */
      const phase = async (behind: number, reps: number, prof?: string) => {
        let next = '';
        const bytes: Record<string, number[]> = { index: [], reflink: [], kernel: [] };
        const plans: Record<string, number>[] = [];
        const mutate = async () => {
          if (next) last = next; // the previous rep's snapshot is now the common parent
          for (let step = 1; step <= behind; step++) {
            const k = ++serial;
            const plan = planMutation(listTree(ext4Vol, ['.ferry']), mutationSeed(ctx.seed, k), {
              fraction: FRACTION / behind,
              dirRenames: behind === 1 ? 2 : step <= 2 ? 1 : 0,
            });
            for (const root of [ext4Vol, xfsVol, btrfsVol]) applyMutation(root, plan);
            plans.push(planSummary(plan));
            const name = `s${k}`;
            if (step < behind) {
              // Intermediate snapshots, untimed. A failure breaks only that side (its run rethrows it).
              for (const v of vols) {
                if (!broken.has(v.key)) await ferry.run(['snapshot', v.dir, '--name', name]).catch((e: unknown) => void broken.set(v.key, toolError(e)));
              }
              if (!broken.has('btrfs')) await run(snapshotArgv(btrfsVol, join(snaps, name)), { tool: 'btrfs' }).catch((e: unknown) => void broken.set('btrfs', toolError(e)));
            } else {
              next = name;
            }
          }
        };
        const pdir = (v: Vol, what: string) => (prof ? join(prof, v.key, what) : undefined);
        const broken = new Map<string, unknown>();
        const toolError = (e: unknown) => {
          if (!isToolFailure(e)) throw e;
          return e;
        };
        const unlessBroken = (key: string) => {
          if (broken.has(key)) throw broken.get(key);
        };
        const sides: NamedSide[] = vols.map((v) => ({
          name: `ferry-${v.key}`,
          before: () => cache.prepare(),
          run: async (clock) => {
            unlessBroken(v.key);
            await clock.step('snapshot', () => ferry.run(['snapshot', v.dir, '--name', next], { profileDir: pdir(v, 'snapshot') }));
            const r = await clock.step('send|receive', () =>
              bash(
                `${ferry.sh(['send', '-p', `${v.dir}@${last}`, `${v.dir}@${next}`], pdir(v, 'send'))} | ${ferry.sh(['receive', v.target, '--json'], pdir(v, 'receive'))}`,
                { tool: 'ferry' },
              ),
            );
            bytes[v.key].push(receivedOne(r.stdout).streamBytes);
          },
          after: flush,
        }));
        sides.push(
          {
            name: 'btrfs',
            before: () => cache.prepare(),
            run: async (clock) => {
              unlessBroken('btrfs');
              await clock.step('snapshot', () => run(snapshotArgv(btrfsVol, join(snaps, next)), { tool: 'btrfs' }));
              await clock.step('send|receive', () => bash(`${sendSh(join(snaps, next), join(snaps, last))} | ${receiveSh(recv)}`, { tool: 'btrfs' }));
            },
            after: flush,
          },
          {
            name: 'rsync',
            before: () => cache.prepare(),
            run: async (clock) => {
              await clock.step('rsync', () => run(['rsync', '-aHAX', '--delete', '--exclude=/.ferry', `${ext4Vol}/`, `${rsyncCopy}/`], { tool: 'rsync' }));
            },
            after: flush,
          },
        );
        if (!prof) {
          // Receive alone, from saved streams, onto targets that hold the parent.
          const ferryStream = join(streamDir, 'ferry-incr.stream');
          const kernelStream = join(streamDir, 'kernel-incr.stream');
          const tIndex = vols[0].target;
          sides.push(
            {
              name: 'ferry-receive',
              before: async () => {
                forceRemove(ferryStream);
                await ferry.run(['send', '-p', `${ext4Vol}@${last}`, `${ext4Vol}@${next}`, '-f', ferryStream]);
                removeReceived(tIndex, next);
                cache.prepare();
              },
              run: (clock) => clock.step('receive', () => ferry.run(['receive', '-f', ferryStream, tIndex, '--json'])).then(() => undefined),
              after: flush,
            },
            {
              name: 'btrfs-receive',
              before: async () => {
                forceRemove(kernelStream);
                await bash(`${sendSh(join(snaps, next), join(snaps, last))} > ${kernelStream}`, { tool: 'btrfs' });
                bytes.kernel.push(statSync(kernelStream).size);
                await deleteSubvolumes(fss.btrfsDst.mountPoint, [join(recv, next)]);
                cache.prepare();
              },
              run: (clock) => clock.step('receive', () => bash(receiveSh(recv, kernelStream), { tool: 'btrfs' })).then(() => undefined),
              after: flush,
            },
          );
        }
        const timings = await alternate({
          sides,
          reps,
          beforeRep: mutate,
          sideFailure: isToolFailure,
          onSample: (side, rep, s) => ctx.log(`${behind} behind${prof ? ' (profiled)' : ''}, rep ${rep + 1}/${reps} ${side}: ${s.toFixed(2)} s`),
          onFailure: (side, rep, e) => ctx.log(`${behind} behind, rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
        });
        last = next;
        return { timings, bytes, plans };
      };

      const cases: CaseResult[] = [];
      // --smoke: 3 behind instead of 10 (the same code, fewer intermediate snapshots), no profiled rep.
      for (const behind of [1, ctx.smoke ? 3 : 10]) {
        const { timings, bytes, plans } = await phase(behind, ctx.reps);
        const verified: Record<string, Verification> = {};
        for (const v of vols) {
          if (timings[`ferry-${v.key}`].error !== undefined) continue;
          verified[v.key] = verifyTree(v.dir, join(v.target, last));
          ctx.log(`${behind} behind, ${v.key}: received tree vs source: ${verified[v.key].ok ? 'equal' : 'DIFFERENT'} (${verified[v.key].text})`);
        }
        let profile: Record<string, Record<string, PhaseProfile>> | undefined;
        if (behind === 1 && !ctx.smoke) {
          const prof = join(ctx.tmpDir, 'prof');
          const p = await phase(1, 1, prof);
          if (vols.every((v) => p.timings[`ferry-${v.key}`].error === undefined)) {
            profile = {};
            for (const v of vols) {
              profile[v.key] = roundProfiles(
                foldProfiles({ snapshot: join(prof, v.key, 'snapshot'), send: join(prof, v.key, 'send'), receive: join(prof, v.key, 'receive') }),
              );
              ctx.log(`${v.key} profile: ${describeProfiles(profile[v.key])}`);
            }
          }
        }
        cases.push(...phaseCases(behind, timings, bytes, plans, verified, profile, cache, describeTree(stats)));
      }
      return cases;
    },
  );
}

function perRepRatios(a: number[], b: number[]): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(a[i] / b[i]);
  return out;
}

function phaseCases(
  behind: number,
  t: Record<string, SideTiming>,
  bytes: Record<string, number[]>,
  plans: Record<string, number>[],
  verified: Record<string, Verification>,
  profile: Record<string, Record<string, PhaseProfile>> | undefined,
  cache: CachePolicy,
  tree: string,
): CaseResult[] {
  const ops: Record<string, number> = {};
  for (const p of plans) for (const [k, n] of Object.entries(p)) ops[k] = (ops[k] ?? 0) + n;
  const perRep = Object.entries(ops)
    .map(([k, n]) => `${Math.round(n / Math.max(1, plans.length / behind))} ${k}`)
    .join(', ');
  const tag = `${behind} behind`;
  const out: CaseResult[] = [];
  for (const key of ['index', 'reflink'] as const) {
    const f = t[`ferry-${key}`];
    const prof = profile?.[key];
    const common = {
      dataset: tree,
      changePerRep: perRep,
      ferrySteps: stepMedians(f),
      cache: cache.describe(),
      ...(prof ? { profile: prof } : {}),
    };
    const steps = describeSteps({ ...f, steps: Object.fromEntries(Object.entries(f.steps).filter(([k]) => k !== FLUSH)) });
    out.push(
      ratioCase({
        name: `${tag}: ${key} vs rsync`,
        ferry: f,
        peer: t.rsync,
        peerTool: 'rsync -aHAX --delete',
        budget: TIME_BUDGET,
        budgetId: 'incremental-time',
        verification: verified[key],
        note: `change per rep: ${perRep}; ferry steps: ${steps}${prof ? `; profile: ${describeProfiles(prof)}` : ''}`,
        detail: { ...common, peerSteps: stepMedians(t.rsync) },
      }),
      ratioCase({
        name: `${tag}: ${key} vs btrfs send -p`,
        ferry: f,
        peer: t.btrfs,
        peerTool: 'btrfs snapshot -r + send -p | receive',
        note: `btrfs steps: ${describeSteps({ ...t.btrfs, steps: Object.fromEntries(Object.entries(t.btrfs.steps).filter(([k]) => k !== FLUSH)) })}`,
        detail: { ...common, peerSteps: stepMedians(t.btrfs) },
      }),
    );
    const ratios = perRepRatios(bytes[key], bytes.kernel);
    out.push({
      name: `${tag}: ${key} stream bytes / btrfs send -p`,
      value: ratios.length ? median(ratios) : NaN,
      unit: 'ratio',
      budget: BYTES_BUDGET,
      budgetId: 'incremental-bytes',
      ...(ratios.length
        ? {}
        : f.error !== undefined
          ? { invalid: `ferry failed: ${errorSummary(f.error)}` }
          : { unavailable: 'no kernel stream to compare with' }),
      note: ratios.length ? `median of per-rep ratios; ferry ${bytes[key].map(fmtMB).join(', ')} vs kernel ${bytes.kernel.map(fmtMB).join(', ')}` : undefined,
      detail: { ferryBytes: bytes[key], kernelBytes: bytes.kernel, ratios },
    });
  }
  const fr = t['ferry-receive'];
  const br = t['btrfs-receive'];
  if (fr) {
    out.push({
      name: `${tag}: ferry receive onto ext4 (stream from a file)`,
      ...(fr.samples.length ? { ferry: timingOnly(fr) } : {}),
      ...(br && br.samples.length ? { peer: { ...timingOnly(br), tool: "btrfs receive of the kernel's stream" } } : {}),
      value: fr.samples.length ? fr.median : NaN,
      unit: 's',
      budget: RECV_BUDGET,
      budgetId: 'incremental-receive',
      ...(fr.error !== undefined ? { invalid: `ferry failed: ${errorSummary(fr.error)}` } : {}),
      note: 'target holds the parent (hard-link farm seed); includes syncfs',
      detail: { steps: stepMedians(fr), cache: cache.describe() },
    });
  }
  return out;
}

export const incrementalSuite: Suite = {
  name: 'incremental',
  title: '~1% change, 1 and 10 snapshots behind: time vs rsync -aHAX --delete (≤ 1/3), bytes vs btrfs send -p (≤ 1.1×), receive < 2 s',
  requires: { root: true, loopDevices: true, tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs', 'mkfs.ext4', 'rsync', 'cp', 'sync'] },
  run: run_,
};
