/**
 * Suite `image`: a VM-style disk image with scattered small writes: how
 * many bytes ferry's incremental stream carries against the kernel's, how
 * long it takes, and (reflink volume) how much unchanged data ferry reads.
 *
 * Dataset: a 4 GiB sparse image with realistic content (bench/lib/datasets
 * makeVmImage: ~40% allocated in runs of binary data, text and written
 * zeros; fixed seed), generated identically on three sources: XFS (ferry
 * `reflink` volume), ext4 (ferry `index` volume) and btrfs (the peer's
 * subvolume). Receivers: XFS (reflink seeds, so a 4 GiB file is not copied
 * per snapshot) for ferry, btrfs for the peer. Each rep (untimed) makes
 * 1,000 random 4 KiB writes, the same on every copy, with a fresh seed; then
 * in alternation, each from a cold cache:
 *
 * - ferry reflink / ferry index: ferry snapshot + ferry send -p | ferry receive
 * - btrfs: btrfs subvolume snapshot -r + btrfs send -p | btrfs receive
 *
 * Bytes read are the sectors read from each source's own loop device
 * (/sys/block/loopN/stat) during the timed run: only that side touches that
 * filesystem, so this is what snapshot + send read, metadata included. The
 * cache is dropped before every run of every side whatever --cache says,
 * since a read satisfied by the cache would not count.
 *
 * Budgets (DESIGN.md): stream ≤ 1.1× the kernel's bytes; on a reflink
 * volume no unchanged data read (judged as ≤ 1% of the unchanged allocated
 * bytes, which leaves room for metadata, the indexes, and readahead around
 * the changed blocks).
 */
import { join } from 'node:path';
import { createSubvolume, receiveSh, sendSh, snapshotArgv } from '../lib/btrfs';
import { CachePolicy } from '../lib/cache';
import { imageAllocated, makeVmImage, mutationSeed, planScatteredWrites, scatterWrites } from '../lib/datasets';
import { bash, run } from '../lib/exec';
import { FerryCli, receivedOne } from '../lib/ferry-cli';
import { GiB, MiB, deviceReadBytes, duBytes } from '../lib/fsutil';
import { describeSteps, errorSummary, ferrySetupFailure, fmtMB, isToolFailure, ratioCase, stepMedians, verifyTree } from '../lib/kit';
import { LoopFs, withLoopFilesystems } from '../lib/loopfs';
import { PhaseProfile, describeProfiles, foldProfiles, roundProfiles } from '../lib/profile';
import { CaseResult, SkipError, Suite, SuiteContext } from '../lib/suite';
import { NamedSide, SideTiming, StepClock, alternate, median, secondsSince } from '../lib/timing';

const BYTES_BUDGET = { op: '<=' as const, value: 1.1, source: 'DESIGN.md; issue #4' };
const READ_BUDGET = { op: '<=' as const, value: 1, source: 'DESIGN.md ("reads no unchanged data"), with 1% for metadata and readahead' };
const BLOCK = 4096;
const FLUSH = 'flush after (untimed)';

interface Vol {
  key: 'reflink' | 'index';
  label: string;
  fs: LoopFs;
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
  const cache = new CachePolicy('cold');
  const imageBytes = ctx.smoke ? 64 * MiB : 4 * GiB;
  const writes = ctx.smoke ? 100 : 1000;
  const parentDir = ctx.tmpDir;
  const src = imageBytes + 768 * MiB;
  return withLoopFilesystems(
    {
      xfsSrc: { type: 'xfs', sizeBytes: src, parentDir },
      ext4Src: { type: 'ext4', sizeBytes: src, parentDir },
      btrfsSrc: { type: 'btrfs', sizeBytes: src * 2, parentDir },
      xfsDst: { type: 'xfs', sizeBytes: imageBytes * 3 + GiB, parentDir },
      btrfsDst: { type: 'btrfs', sizeBytes: imageBytes * 2 + GiB, parentDir },
    },
    async (fss) => {
      for (const f of [fss.xfsSrc, fss.ext4Src, fss.btrfsSrc]) {
        if (!f.device) throw new SkipError(`cannot find the loop device of ${f.mountPoint} (needed to count bytes read)`);
      }
      const vols: Vol[] = [
        { key: 'reflink', label: 'reflink (XFS)', fs: fss.xfsSrc, dir: join(fss.xfsSrc.mountPoint, 'vol'), target: join(fss.xfsDst.mountPoint, 't-reflink') },
        { key: 'index', label: 'index (ext4)', fs: fss.ext4Src, dir: join(fss.ext4Src.mountPoint, 'vol'), target: join(fss.xfsDst.mountPoint, 't-index') },
      ];
      const btrfsVol = join(fss.btrfsSrc.mountPoint, 'vol');
      const snaps = join(fss.btrfsSrc.mountPoint, 'snaps');
      const recv = join(fss.btrfsDst.mountPoint, 'recv');
      await createSubvolume(btrfsVol);
      await run(['mkdir', '-p', vols[0].dir, vols[1].dir, snaps, recv]);
      const t0 = process.hrtime.bigint();
      const allocated = imageAllocated(makeVmImage(join(vols[0].dir, 'disk.img'), imageBytes, ctx.seed));
      makeVmImage(join(vols[1].dir, 'disk.img'), imageBytes, ctx.seed);
      makeVmImage(join(btrfsVol, 'disk.img'), imageBytes, ctx.seed);
      ctx.log(`${fmtMB(imageBytes)} image, ${fmtMB(allocated)} allocated, written to XFS, ext4 and btrfs in ${secondsSince(t0).toFixed(1)} s`);

      let last = 'i0';
      const t1 = process.hrtime.bigint();
      try {
        for (const v of vols) {
          await ferry.run(['init', v.dir, '--method', v.key]);
          await ferry.run(['snapshot', v.dir, '--name', last]);
          await bash(`${ferry.sh(['send', `${v.dir}@${last}`])} | ${ferry.sh(['receive', v.target])} > /dev/null`, { tool: 'ferry' });
        }
      } catch (e) {
        return ferrySetupFailure(e, 'the initial full send', [
          { name: 'stream bytes / btrfs send -p', budgetId: 'image-bytes', budget: BYTES_BUDGET, unit: 'ratio' },
          { name: 'reflink: unchanged data read by snapshot + send', budgetId: 'image-reads', budget: READ_BUDGET, unit: '%' },
        ]);
      }
      await run(snapshotArgv(btrfsVol, join(snaps, last)), { tool: 'btrfs' });
      await bash(`${sendSh(join(snaps, last))} | ${receiveSh(recv)}`, { tool: 'btrfs' });
      ctx.log(`initial full sends done (${secondsSince(t1).toFixed(1)} s)`);

      let serial = 0;
      const phase = async (reps: number, prof?: string) => {
        let next = '';
        const bytes: Record<string, number[]> = { reflink: [], index: [], kernel: [] };
        const reads: Record<string, number[]> = { reflink: [], index: [], btrfs: [] };
        const pdir = (v: Vol, what: string) => (prof ? join(prof, v.key, what) : undefined);
        const mark = new Map<string, number>();
        const sides: NamedSide[] = vols.map((v) => ({
          name: `ferry-${v.key}`,
          before: () => {
            cache.prepareCold();
            mark.set(v.key, deviceReadBytes(v.fs.device!));
          },
          run: async (clock) => {
            await clock.step('snapshot', () => ferry.run(['snapshot', v.dir, '--name', next], { profileDir: pdir(v, 'snapshot') }));
            const r = await clock.step('send|receive', () =>
              bash(
                `${ferry.sh(['send', '-p', `${v.dir}@${last}`, `${v.dir}@${next}`], pdir(v, 'send'))} | ${ferry.sh(['receive', v.target, '--json'], pdir(v, 'receive'))}`,
                { tool: 'ferry' },
              ),
            );
            bytes[v.key].push(receivedOne(r.stdout).streamBytes);
          },
          after: async (clock) => {
            reads[v.key].push(deviceReadBytes(v.fs.device!) - mark.get(v.key)!);
            await flush(clock);
          },
        }));
        sides.push({
          name: 'btrfs',
          before: () => {
            cache.prepareCold();
            mark.set('btrfs', deviceReadBytes(fss.btrfsSrc.device!));
          },
          run: async (clock) => {
            await clock.step('snapshot', () => run(snapshotArgv(btrfsVol, join(snaps, next)), { tool: 'btrfs' }));
            await clock.step('send|receive', () => bash(`${sendSh(join(snaps, next), join(snaps, last))} | ${receiveSh(recv)}`, { tool: 'btrfs' }));
          },
          after: async (clock) => {
            reads.btrfs.push(deviceReadBytes(fss.btrfsSrc.device!) - mark.get('btrfs')!);
            await flush(clock);
            const r = await bash(`${sendSh(join(snaps, next), join(snaps, last))} | wc -c`, { tool: 'btrfs' });
            bytes.kernel.push(Number(r.stdout.trim()));
          },
        });
        const timings = await alternate({
          sides,
          reps,
          beforeRep: () => {
            if (next) last = next;
            const k = ++serial;
            const seed = mutationSeed(ctx.seed, k);
            const offsets = planScatteredWrites(imageBytes, writes, seed, BLOCK);
            for (const dir of [vols[0].dir, vols[1].dir, btrfsVol]) scatterWrites(join(dir, 'disk.img'), offsets, seed, BLOCK);
            next = `i${k}`;
          },
          sideFailure: isToolFailure,
          onSample: (side, rep, s) => ctx.log(`${prof ? 'profiled ' : ''}rep ${rep + 1}/${reps} ${side}: ${s.toFixed(2)} s`),
          onFailure: (side, rep, e) => ctx.log(`rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
        });
        last = next;
        return { timings, bytes, reads };
      };

      const { timings, bytes, reads } = await phase(ctx.reps);
      const verified: Record<string, ReturnType<typeof verifyTree>> = {};
      for (const v of vols) {
        if (timings[`ferry-${v.key}`].error === undefined) {
          verified[v.key] = verifyTree(v.dir, join(v.target, last));
          ctx.log(`${v.key}: received image vs source: ${verified[v.key].ok ? 'equal' : 'DIFFERENT'} (${verified[v.key].text})`);
        }
      }
      const profiles: Record<string, Record<string, PhaseProfile>> = {};
      if (!ctx.smoke) {
        const prof = join(ctx.tmpDir, 'prof');
        const p = await phase(1, prof);
        for (const v of vols) {
          if (p.timings[`ferry-${v.key}`].error !== undefined) continue;
          profiles[v.key] = roundProfiles(foldProfiles({ snapshot: join(prof, v.key, 'snapshot'), send: join(prof, v.key, 'send'), receive: join(prof, v.key, 'receive') }));
          ctx.log(`${v.key} profile: ${describeProfiles(profiles[v.key])}`);
        }
      }
      const changed = writes * BLOCK;
      const onDisk = duBytes(join(vols[0].dir, 'disk.img'));
      return cases(timings, bytes, reads, verified, profiles, { imageBytes, allocated, onDisk, changed, writes, cache: cache.describe() });
    },
  );
}

interface Facts {
  imageBytes: number;
  allocated: number;
  onDisk: number;
  changed: number;
  writes: number;
  cache: string;
}

function cases(
  t: Record<string, SideTiming>,
  bytes: Record<string, number[]>,
  reads: Record<string, number[]>,
  verified: Record<string, { ok: boolean; text: string }>,
  profiles: Record<string, Record<string, PhaseProfile>>,
  f: Facts,
): CaseResult[] {
  const out: CaseResult[] = [];
  const kernelRead = reads.btrfs.length ? median(reads.btrfs) : NaN;
  const facts = `${fmtMB(f.imageBytes)} image (${fmtMB(f.allocated)} allocated), ${f.writes} × 4 KiB writes per rep`;
  for (const key of ['reflink', 'index'] as const) {
    const ft = t[`ferry-${key}`];
    const prof = profiles[key];
    const noFlush = (s: SideTiming) => ({ ...s, steps: Object.fromEntries(Object.entries(s.steps).filter(([k]) => k !== FLUSH)) });
    out.push(
      ratioCase({
        name: `${key}: snapshot + send -p | receive vs btrfs`,
        ferry: ft,
        peer: t.btrfs,
        peerTool: 'btrfs snapshot -r + send -p | receive',
        verification: verified[key],
        note: `${facts}; ferry steps: ${describeSteps(noFlush(ft))}; btrfs: ${describeSteps(noFlush(t.btrfs))}${prof ? `; profile: ${describeProfiles(prof)}` : ''}`,
        detail: { ...f, ferrySteps: stepMedians(ft), peerSteps: stepMedians(t.btrfs), ...(prof ? { profile: prof } : {}) },
      }),
    );
    const n = Math.min(bytes[key].length, bytes.kernel.length);
    const ratios = Array.from({ length: n }, (_, i) => bytes[key][i] / bytes.kernel[i]);
    out.push({
      name: `${key}: stream bytes / btrfs send -p`,
      value: n ? median(ratios) : NaN,
      unit: 'ratio',
      budget: BYTES_BUDGET,
      budgetId: 'image-bytes',
      ...(n ? {} : ft.error !== undefined ? { invalid: `ferry failed: ${errorSummary(ft.error)}` } : { unavailable: 'no kernel stream to compare with' }),
      note: n ? `ferry ${bytes[key].map(fmtMB).join(', ')} vs kernel ${bytes.kernel.map(fmtMB).join(', ')}; ${fmtMB(f.changed)} changed` : undefined,
      detail: { ferryBytes: bytes[key], kernelBytes: bytes.kernel, changedBytes: f.changed },
    });
  }
  // Reads on the reflink volume, against what was unchanged.
  const rr = reads.reflink;
  const unchanged = Math.max(1, f.allocated - f.changed);
  const readMed = rr.length ? median(rr) : NaN;
  const unchangedRead = Math.max(0, readMed - f.changed);
  out.push({
    name: 'reflink: unchanged data read by snapshot + send',
    value: rr.length ? (unchangedRead / unchanged) * 100 : NaN,
    unit: '%',
    budget: READ_BUDGET,
    budgetId: 'image-reads',
    ...(rr.length ? {} : t['ferry-reflink'].error !== undefined ? { invalid: `ferry failed: ${errorSummary(t['ferry-reflink'].error)}` } : { unavailable: 'no reads measured' }),
    note: rr.length
      ? `read ${fmtMB(readMed)} from the XFS device during snapshot + send (${fmtMB(f.changed)} changed, ${fmtMB(unchanged)} unchanged allocated); ` +
        `ferry index (ext4) read ${reads.index.length ? fmtMB(median(reads.index)) : '?'}; btrfs send read ${Number.isFinite(kernelRead) ? fmtMB(kernelRead) : '?'}`
      : undefined,
    detail: { readBytes: rr, indexReadBytes: reads.index, btrfsReadBytes: reads.btrfs, changedBytes: f.changed, unchangedAllocatedBytes: unchanged, imageOnDiskBytes: f.onDisk, cache: 'cold: dropped before every run of every side (bytes read are only meaningful cold)' },
  });
  return out;
}

export const imageSuite: Suite = {
  name: 'image',
  title: '4 GiB VM image, 1,000 scattered 4 KiB writes: stream bytes vs btrfs send -p (≤ 1.1×); reflink volume reads no unchanged data',
  requires: { root: true, loopDevices: true, tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs', 'mkfs.ext4', 'wc', 'sync'] },
  run: run_,
};
