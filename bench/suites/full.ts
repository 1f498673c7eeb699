/**
 * Suite `full`: a full send of a real tree, end to end, against btrfs.
 *
 * Dataset `usr` (/usr/share + /usr/include copied once onto each source
 * filesystem; a seeded synthetic stand-in under --smoke). Five loop
 * filesystems: ext4 (ferry `index` volume), XFS reflink=1 (ferry `reflink`
 * volume), btrfs (the peer's subvolume), and the receivers: ext4 for ferry,
 * btrfs for the peer. Timed in alternation, every rep from scratch:
 *
 * - ferry index:   ferry init --method index + ferry snapshot + ferry send | ferry receive (onto ext4)
 * - ferry reflink: the same from the XFS volume with --method reflink
 * - btrfs:         btrfs subvolume snapshot -r + btrfs send | btrfs receive (btrfs to btrfs)
 *
 * then receive alone: the kernel's full stream (saved to a file once) through
 * `ferry receive` onto ext4 against `btrfs receive` onto btrfs.
 *
 * Budgets: ferry/btrfs ≤ 1.25 for both volumes (DESIGN.md, issue #4) and for
 * receive alone (issue #3). Every received tree is compared with its source
 * once (treecmp.py). Where the time goes: each timed step is recorded, and
 * one extra untimed run per variant is profiled (bench/lib/profile.ts).
 * Untimed chores (removing the previous rep's snapshots, dropping caches)
 * happen before each timed run, for every side alike.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, receiveSh, sendSh, snapshotArgv } from '../lib/btrfs';
import { CachePolicy } from '../lib/cache';
import { bash, run } from '../lib/exec';
import { FerryCli, forgetVolume, receivedOne } from '../lib/ferry-cli';
import { forceRemove } from '../lib/fsutil';
import {
  Verification,
  copyTree,
  describeSteps,
  describeTree,
  errorSummary,
  fmtMB,
  isToolFailure,
  makeUsrDataset,
  ratioCase,
  stepMedians,
  usrBytesEstimate,
  verifyTree,
} from '../lib/kit';
import { LoopFs, withLoopFilesystems } from '../lib/loopfs';
import { PhaseProfile, describeProfiles, foldProfiles, roundProfiles } from '../lib/profile';
import { CaseResult, Suite, SuiteContext } from '../lib/suite';
import { NamedSide, StepClock, alternate, secondsSince } from '../lib/timing';

const BUDGET = { op: '<=' as const, value: 1.25, source: 'DESIGN.md; issue #4' };
const RECV_BUDGET = { op: '<=' as const, value: 1.25, source: 'issue #3' };
const SNAP = 'full';

interface FerryVariant {
  key: 'index' | 'reflink';
  label: string;
  fs: LoopFs;
  vol: string;
  target: string;
  streamBytes?: number;
}

/** Time a global `sync` (untimed in the ratio): what a side left unwritten. */
async function flush(clock: StepClock): Promise<void> {
  const t0 = process.hrtime.bigint();
  await run(['sync'], { tool: 'sync' });
  clock.record('flush after (untimed)', secondsSince(t0));
}

async function ferryFull(ferry: FerryCli, v: FerryVariant, clock: StepClock | undefined, prof?: string): Promise<void> {
  const step = <T>(name: string, fn: () => Promise<T>) => (clock ? clock.step(name, fn) : fn());
  await step('init', () => ferry.run(['init', v.vol, '--method', v.key], { profileDir: prof && join(prof, 'init') }));
  await step('snapshot', () => ferry.run(['snapshot', v.vol, '--name', SNAP], { profileDir: prof && join(prof, 'snapshot') }));
  const r = await step('send|receive', () =>
    bash(`${ferry.sh(['send', `${v.vol}@${SNAP}`], prof && join(prof, 'send'))} | ${ferry.sh(['receive', v.target, '--json'], prof && join(prof, 'receive'))}`, {
      tool: 'ferry',
    }),
  );
  v.streamBytes = receivedOne(r.stdout).streamBytes;
}

async function run_(ctx: SuiteContext): Promise<CaseResult[]> {
  const ferry = new FerryCli(ctx.ferryBin);
  const cache = new CachePolicy(ctx.cache);
  const data = usrBytesEstimate(ctx);
  const size = (copies: number) => Math.ceil(data * copies * 1.3) + (512 << 20);
  const parentDir = ctx.tmpDir;
  ctx.log(`dataset ~${fmtMB(data)}; making loop filesystems`);
  return withLoopFilesystems(
    {
      ext4Src: { type: 'ext4', sizeBytes: size(1.5), parentDir, mkfsExtra: ['-i', '8192'] },
      xfsSrc: { type: 'xfs', sizeBytes: size(1.5), parentDir },
      btrfsSrc: { type: 'btrfs', sizeBytes: size(2), parentDir },
      ext4Dst: { type: 'ext4', sizeBytes: size(2.5), parentDir, mkfsExtra: ['-i', '8192'] },
      btrfsDst: { type: 'btrfs', sizeBytes: size(2), parentDir },
    },
    async (fss) => {
      // The dataset, once per source filesystem.
      const t0 = process.hrtime.bigint();
      const ext4Vol = join(fss.ext4Src.mountPoint, 'vol');
      const stats = makeUsrDataset(ctx, ext4Vol);
      const xfsVol = join(fss.xfsSrc.mountPoint, 'vol');
      await copyTree(ext4Vol, xfsVol);
      const btrfsVol = join(fss.btrfsSrc.mountPoint, 'vol');
      await createSubvolume(btrfsVol);
      await copyTree(ext4Vol, btrfsVol);
      const snaps = join(fss.btrfsSrc.mountPoint, 'snaps');
      const recv = join(fss.btrfsDst.mountPoint, 'recv');
      await run(['mkdir', '-p', snaps, recv]);
      ctx.log(`dataset ${stats.source}: ${describeTree(stats)}, copied to ext4, XFS and btrfs in ${secondsSince(t0).toFixed(1)} s`);

      const variants: FerryVariant[] = [
        { key: 'index', label: 'index (ext4) volume', fs: fss.ext4Src, vol: ext4Vol, target: join(fss.ext4Dst.mountPoint, 't-index') },
        { key: 'reflink', label: 'reflink (XFS) volume', fs: fss.xfsSrc, vol: xfsVol, target: join(fss.ext4Dst.mountPoint, 't-reflink') },
      ];
      const reset = (v: FerryVariant) => {
        forgetVolume(v.vol);
        forceRemove(v.target);
      };
      const sides: NamedSide[] = variants.map((v) => ({
        name: `ferry-${v.key}`,
        before: () => {
          reset(v);
          cache.prepare();
        },
        run: (clock) => ferryFull(ferry, v, clock),
        after: flush,
      }));
      const btrfsSnap = join(snaps, SNAP);
      const btrfsRecv = join(recv, SNAP);
      sides.push({
        name: 'btrfs',
        before: async () => {
          await deleteSubvolumes(fss.btrfsSrc.mountPoint, [btrfsSnap]);
          await deleteSubvolumes(fss.btrfsDst.mountPoint, [btrfsRecv]);
          cache.prepare();
        },
        run: async (clock) => {
          await clock.step('snapshot', () => run(snapshotArgv(btrfsVol, btrfsSnap), { tool: 'btrfs' }));
          await clock.step('send|receive', () => bash(`${sendSh(btrfsSnap)} | ${receiveSh(recv)}`, { tool: 'btrfs' }));
        },
        after: flush,
      });
      const timings = await alternate({
        sides,
        reps: ctx.reps,
        sideFailure: isToolFailure,
        onSample: (side, rep, s) => ctx.log(`rep ${rep + 1}/${ctx.reps} ${side}: ${s.toFixed(2)} s`),
        onFailure: (side, rep, e) => ctx.log(`rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
      });

      // Untimed: compare what was received, then profile one run of each variant.
      const verified: Record<string, Verification> = {};
      const profiles: Record<string, Record<string, PhaseProfile>> = {};
      for (const v of variants) {
        if (timings[`ferry-${v.key}`].error !== undefined) continue;
        verified[v.key] = verifyTree(v.vol, join(v.target, SNAP));
        ctx.log(`${v.key}: received tree vs source: ${verified[v.key].ok ? 'equal' : 'DIFFERENT'} (${verified[v.key].text})`);
        const prof = join(ctx.tmpDir, 'prof', v.key);
        try {
          reset(v);
          cache.prepare();
          await ferryFull(ferry, v, undefined, prof);
          profiles[v.key] = roundProfiles(foldProfiles({ snapshot: join(prof, 'snapshot'), send: join(prof, 'send'), receive: join(prof, 'receive') }));
          ctx.log(`${v.key} profile: ${describeProfiles(profiles[v.key])}`);
        } catch (e) {
          if (!isToolFailure(e)) throw e;
          ctx.log(`${v.key} profile run failed: ${errorSummary(e)}`);
        }
        reset(v);
      }

      // Receive alone: the kernel's full stream, from a file, onto ext4 and onto btrfs.
      const streamFile = join(ctx.tmpDir, 'kernel-full.stream');
      let kernelBytes = NaN;
      const recvCases: CaseResult[] = [];
      if (timings.btrfs.error === undefined) {
        await deleteSubvolumes(fss.btrfsSrc.mountPoint, [btrfsSnap]);
        await run(snapshotArgv(btrfsVol, btrfsSnap), { tool: 'btrfs' });
        await bash(`${sendSh(btrfsSnap)} > ${streamFile}`, { tool: 'btrfs' });
        kernelBytes = statSync(streamFile).size;
        const kTarget = join(fss.ext4Dst.mountPoint, 't-kernel');
        const rt = await alternate({
          sides: [
            {
              name: 'ferry-receive',
              before: () => {
                forceRemove(kTarget);
                cache.prepare();
              },
              run: (clock) => clock.step('receive', () => ferry.run(['receive', '-f', streamFile, kTarget, '--json'])).then(() => undefined),
              after: flush,
            },
            {
              name: 'btrfs-receive',
              before: async () => {
                await deleteSubvolumes(fss.btrfsDst.mountPoint, [btrfsRecv]);
                cache.prepare();
              },
              run: (clock) => clock.step('receive', () => bash(receiveSh(recv, streamFile), { tool: 'btrfs' })).then(() => undefined),
              after: flush,
            },
          ],
          reps: ctx.reps,
          sideFailure: isToolFailure,
          onSample: (side, rep, s) => ctx.log(`receive-only rep ${rep + 1}/${ctx.reps} ${side}: ${s.toFixed(2)} s`),
          onFailure: (side, rep, e) => ctx.log(`receive-only rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
        });
        let ver: Verification | undefined;
        let prof: Record<string, PhaseProfile> = {};
        if (rt['ferry-receive'].error === undefined) {
          ver = verifyTree(btrfsSnap, join(kTarget, SNAP));
          ctx.log(`kernel stream received by ferry vs source: ${ver.ok ? 'equal' : 'DIFFERENT'} (${ver.text})`);
          const pdir = join(ctx.tmpDir, 'prof', 'receive-kernel');
          forceRemove(kTarget);
          cache.prepare();
          try {
            await ferry.run(['receive', '-f', streamFile, kTarget, '--json'], { profileDir: pdir });
            prof = roundProfiles(foldProfiles({ receive: pdir }));
          } catch (e) {
            if (!isToolFailure(e)) throw e;
          }
          forceRemove(kTarget);
        }
        recvCases.push(
          ratioCase({
            name: "receive only: kernel's full stream → ext4",
            ferry: rt['ferry-receive'],
            peer: rt['btrfs-receive'],
            peerTool: 'btrfs receive onto btrfs',
            budget: RECV_BUDGET,
            budgetId: 'full-receive',
            verification: ver,
            note: `${fmtMB(kernelBytes)} kernel stream from a file; flush after: ferry ${rt['ferry-receive'].steps['flush after (untimed)']?.median.toFixed(2) ?? '?'} s, btrfs ${rt['btrfs-receive'].steps['flush after (untimed)']?.median.toFixed(2) ?? '?'} s${Object.keys(prof).length ? `; profile: ${describeProfiles(prof)}` : ''}`,
            detail: { streamBytes: kernelBytes, profile: prof, cache: cache.describe() },
          }),
        );
      } else {
        recvCases.push({
          name: "receive only: kernel's full stream → ext4",
          value: NaN,
          unit: 'ratio',
          budget: RECV_BUDGET,
          budgetId: 'full-receive',
          unavailable: `btrfs send failed: ${errorSummary(timings.btrfs.error)}`,
        });
      }

      const peer = timings.btrfs;
      const cases: CaseResult[] = variants.map((v) => {
        const t = timings[`ferry-${v.key}`];
        const prof = profiles[v.key];
        const flushF = t.steps['flush after (untimed)']?.median;
        const flushP = peer.steps['flush after (untimed)']?.median;
        return ratioCase({
          name: `usr, ${v.label} → ext4`,
          ferry: t,
          peer,
          peerTool: 'btrfs snapshot -r + send | receive',
          budget: BUDGET,
          budgetId: 'full-send',
          verification: verified[v.key],
          note:
            `${describeTree(stats)}; ferry steps: ${describeSteps({ ...t, steps: withoutFlush(t.steps) })}; ` +
            `btrfs: ${describeSteps({ ...peer, steps: withoutFlush(peer.steps) })}; ` +
            `left to flush after: ferry ${flushF?.toFixed(2) ?? '?'} s, btrfs ${flushP?.toFixed(2) ?? '?'} s` +
            (prof ? `; profile: ${describeProfiles(prof)}` : ''),
          detail: {
            dataset: stats,
            method: v.key,
            ferrySteps: stepMedians(t),
            peerSteps: stepMedians(peer),
            streamBytes: v.streamBytes,
            profile: prof,
            cache: cache.describe(),
          },
        });
      });
      const fb = variants[0].streamBytes;
      cases.push(...recvCases, {
        name: 'full stream bytes, ferry / kernel',
        value: fb !== undefined && Number.isFinite(kernelBytes) ? fb / kernelBytes : NaN,
        unit: 'ratio',
        ...(fb === undefined || !Number.isFinite(kernelBytes) ? { unavailable: 'no ferry or kernel full stream' } : {}),
        note: fb !== undefined ? `ferry ${fmtMB(fb)} (protocol 1) vs kernel ${fmtMB(kernelBytes)}` : undefined,
        detail: { ferryBytes: fb, kernelBytes },
      });
      return cases;
    },
  );
}

function withoutFlush<T>(steps: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(steps).filter(([k]) => !k.startsWith('flush')));
}

export const fullSuite: Suite = {
  name: 'full',
  title: 'full send of /usr/share + /usr/include from ext4 (index) and XFS (reflink) onto ext4 vs btrfs send | btrfs receive (≤ 1.25×); receive alone (≤ 1.25×)',
  requires: { root: true, loopDevices: true, tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs', 'mkfs.ext4', 'cp', 'sync'] },
  run: run_,
};
