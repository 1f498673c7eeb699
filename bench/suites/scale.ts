/**
 * Suite `scale`: a tree of 1,000,000 small files (`many`: /usr-like
 * directory shape, symlinks and hard links, fixed seed; --scale-files N to
 * change the count, 3,000 under --smoke) on an ext4 `index` volume, received
 * onto another ext4.
 *
 * Measured:
 * - peak RSS (bench/lib/rss.ts: GNU time's maxrss, or VmHWM polling) of the
 *   first snapshot (walks and hashes everything), of a snapshot with no
 *   changes, of a full send and its receive (run as one pipeline), and of
 *   an incremental send and receive after ~1% of the files change;
 * - a snapshot with no changes against `find DIR -printf '%p %s %T@\n'`
 *   over the same tree, in alternation (both walk and lstat everything).
 *
 * Budgets: snapshot with no changes ≤ 1.5× find (issue #4); peak RSS ≤ 300 MB
 * for snapshot, send and receive (DESIGN.md), judged only with at least
 * 1,000,000 files (below that the RSS cases are informational).
 */
import { join } from 'node:path';
import { CachePolicy } from '../lib/cache';
import { applyMutation, listTree, makeMany, mutationSeed, planMutation, planSummary } from '../lib/datasets';
import { CommandError, bash } from '../lib/exec';
import { FerryCli, receivedOne } from '../lib/ferry-cli';
import { MB } from '../lib/fsutil';
import { describeTree, errorSummary, ferrySetupFailure, isToolFailure, ratioCase, verifyTree } from '../lib/kit';
import { withLoopFilesystems } from '../lib/loopfs';
import { describeProfiles, foldProfiles, roundProfiles } from '../lib/profile';
import { peakRss, peakRssPipe } from '../lib/rss';
import { CaseResult, Suite, SuiteContext } from '../lib/suite';
import { alternate, secondsSince } from '../lib/timing';

const FULL_SCALE = 1_000_000;
const RSS_BUDGET = { op: '<=' as const, value: 300, source: 'DESIGN.md; issue #4' };
const SNAP_BUDGET = { op: '<=' as const, value: 1.5, source: 'issue #4' };

async function run_(ctx: SuiteContext): Promise<CaseResult[]> {
  const ferry = new FerryCli(ctx.ferryBin);
  const cache = new CachePolicy(ctx.cache);
  const n = ctx.scaleFiles ?? (ctx.smoke ? 3000 : FULL_SCALE);
  const judged = n >= FULL_SCALE;
  const inodes = String(Math.ceil(n * 1.3) + 10000);
  const parentDir = ctx.tmpDir;
  return withLoopFilesystems(
    {
      src: { type: 'ext4', sizeBytes: n * 8192 + (512 << 20), parentDir, mkfsExtra: ['-N', inodes] },
      dst: { type: 'ext4', sizeBytes: n * 6144 + (512 << 20), parentDir, mkfsExtra: ['-N', inodes] },
    },
    async (fss) => {
      const vol = join(fss.src.mountPoint, 'many');
      const target = join(fss.dst.mountPoint, 'target');
      await bash(`mkdir -p ${vol}`);
      let t0 = process.hrtime.bigint();
      const stats = makeMany(vol, n, ctx.seed);
      ctx.log(`many: ${describeTree(stats)} made in ${secondsSince(t0).toFixed(1)} s`);
      const tree = describeTree(stats);
      const rssMB = (b: number) => b / MB;
      const cases: CaseResult[] = [];
      const rssCase = (name: string, bytes: number, seconds: number, extra?: string): CaseResult => ({
        name: `peak RSS: ${name}`,
        value: rssMB(bytes),
        unit: 'MB',
        ...(judged ? { budget: RSS_BUDGET } : {}),
        budgetId: 'scale-rss',
        ...(Number.isFinite(bytes) ? {} : { unavailable: 'peak RSS could not be measured' }),
        note: `${seconds.toFixed(2)} s${extra ? `; ${extra}` : ''}${judged ? '' : `; budget judged at ${FULL_SCALE.toLocaleString('en-US')} files, this tree has ${n.toLocaleString('en-US')}`}`,
      });
      const failed = (name: string, e: unknown): CaseResult => ({
        name: `peak RSS: ${name}`,
        value: NaN,
        unit: 'MB',
        ...(judged ? { budget: RSS_BUDGET } : {}),
        budgetId: 'scale-rss',
        invalid: `ferry failed: ${errorSummary(e)}`,
      });

      const snapRss = async (name: string, label: string) => {
        cache.prepare();
        const r = await peakRss(ferry.node, [ctx.ferryBin, 'snapshot', vol, '--name', name]);
        if (r.code !== 0 && r.code !== 3) throw new CommandError('ferry', ['ferry', 'snapshot', vol], r.code, r.signal, r.stderrTail);
        ctx.log(`${label}: ${r.seconds.toFixed(2)} s, peak RSS ${rssMB(r.peakRssBytes).toFixed(0)} MB`);
        return r;
      };
      const pipeRss = async (sendArgs: string[], label: string) => {
        cache.prepare();
        const r = await peakRssPipe(ferry.argv(sendArgs), ferry.argv(['receive', target, '--json']), { tool: 'ferry' });
        ctx.log(`${label}: ${r.seconds.toFixed(2)} s, peak RSS send ${rssMB(r.peakRssBytes[0]).toFixed(0)} MB, receive ${rssMB(r.peakRssBytes[1]).toFixed(0)} MB`);
        return r;
      };

      // First snapshot, then a full send | receive.
      try {
        await ferry.run(['init', vol, '--method', 'index']);
      } catch (e) {
        return ferrySetupFailure(e, 'ferry init', [
          { name: 'snapshot, no changes, vs find -printf', budgetId: 'scale-snapshot', budget: SNAP_BUDGET, unit: 'ratio' },
          { name: 'peak RSS', budgetId: 'scale-rss', budget: RSS_BUDGET, unit: 'MB' },
        ]);
      }
      let fullOk = false;
      try {
        const first = await snapRss('s0', 'first snapshot');
        cases.push(rssCase('first snapshot (walk + hash everything)', first.peakRssBytes, first.seconds));
        const full = await pipeRss(['send', `${vol}@s0`], 'full send | receive');
        const got = receivedOne(full.stdout);
        cases.push(
          rssCase('full send', full.peakRssBytes[0], full.seconds, `send | receive of ${(got.streamBytes / MB).toFixed(0)} MB; ${full.method}`),
          rssCase('full receive', full.peakRssBytes[1], full.seconds, full.method),
        );
        fullOk = true;
      } catch (e) {
        if (!isToolFailure(e)) throw e;
        ctx.log(`full: FAILED: ${errorSummary(e)}`);
        cases.push(failed('first snapshot / full send and receive', e));
      }

      // Snapshot with no changes vs find, in alternation.
      let k = 0;
      let noChangeRss = 0;
      let noChangeSeconds = NaN;
      const t = await alternate({
        sides: [
          {
            name: 'ferry snapshot',
            before: () => cache.prepare(),
            run: async (clock) => {
              const r = await clock.step('snapshot', () => peakRss(ferry.node, [ctx.ferryBin, 'snapshot', vol, '--name', `n${++k}`]));
              if (r.code !== 0 && r.code !== 3) throw new CommandError('ferry', ['ferry', 'snapshot', vol], r.code, r.signal, r.stderrTail);
              noChangeRss = Math.max(noChangeRss, r.peakRssBytes);
              noChangeSeconds = r.seconds;
            },
          },
          {
            name: 'find',
            before: () => cache.prepare(),
            run: async (clock) => {
              await clock.step('find', () => bash(`find ${vol} -printf '%p %s %T@\\n' > /dev/null`, { tool: 'find' }));
            },
          },
        ],
        reps: ctx.reps,
        sideFailure: isToolFailure,
        onSample: (side, rep, s) => ctx.log(`no-change rep ${rep + 1}/${ctx.reps} ${side}: ${s.toFixed(2)} s`),
        onFailure: (side, rep, e) => ctx.log(`no-change rep ${rep + 1} ${side} FAILED: ${errorSummary(e)}`),
      });
      let profile = {};
      if (t['ferry snapshot'].error === undefined) {
        const pdir = join(ctx.tmpDir, 'prof', 'snapshot');
        cache.prepare();
        try {
          await ferry.run(['snapshot', vol, '--name', `n${++k}`], { profileDir: pdir });
          profile = roundProfiles(foldProfiles({ snapshot: pdir }));
        } catch (e) {
          if (!isToolFailure(e)) throw e;
        }
      }
      cases.push(
        ratioCase({
          name: 'snapshot, no changes, vs find -printf',
          ferry: t['ferry snapshot'],
          peer: t.find,
          peerTool: "find -printf '%p %s %T@\\n'",
          budget: SNAP_BUDGET,
          budgetId: 'scale-snapshot',
          note: `${tree}; cache ${ctx.cache}${Object.keys(profile).length ? `; profile: ${describeProfiles(profile)}` : ''}`,
          detail: { files: n, profile, cache: cache.describe() },
        }),
      );
      if (t['ferry snapshot'].error === undefined) cases.push(rssCase('snapshot, no changes', noChangeRss, noChangeSeconds));

      // About 1% changes, then snapshot + incremental send | receive.
      if (fullOk && t['ferry snapshot'].error === undefined) {
        const plan = planMutation(listTree(vol, ['.ferry']), mutationSeed(ctx.seed, 1), { fraction: 0.01 });
        applyMutation(vol, plan);
        const ops = Object.entries(planSummary(plan)).map(([op, c]) => `${c} ${op}`).join(', ');
        try {
          t0 = process.hrtime.bigint();
          const snap = await snapRss('inc', 'incremental snapshot');
          const inc = await pipeRss(['send', '-p', `${vol}@s0`, `${vol}@inc`], 'incremental send | receive');
          const total = secondsSince(t0);
          const got = receivedOne(inc.stdout);
          const ver = verifyTree(vol, join(target, 'inc'));
          ctx.log(`incremental: received tree vs source: ${ver.ok ? 'equal' : 'DIFFERENT'} (${ver.text})`);
          cases.push(
            rssCase('snapshot after 1% change', snap.peakRssBytes, snap.seconds, ops),
            rssCase('incremental send', inc.peakRssBytes[0], inc.seconds, `${(got.streamBytes / MB).toFixed(1)} MB stream`),
            rssCase('incremental receive', inc.peakRssBytes[1], inc.seconds, inc.method),
            {
              name: 'snapshot + incremental send | receive after 1% change',
              value: total,
              unit: 's',
              ...(ver.ok ? {} : { invalid: `received tree differs from the source (${ver.text})` }),
              note: `${ops}; snapshot ${snap.seconds.toFixed(2)} s, send | receive ${inc.seconds.toFixed(2)} s (under GNU time; one run)`,
              detail: { streamBytes: got.streamBytes, verification: ver },
            },
          );
        } catch (e) {
          if (!isToolFailure(e)) throw e;
          ctx.log(`incremental: FAILED: ${errorSummary(e)}`);
          cases.push(failed('incremental snapshot / send / receive', e));
        }
      }
      return cases;
    },
  );
}

export const scaleSuite: Suite = {
  name: 'scale',
  title: '1,000,000 small files: snapshot with no changes vs find -printf (≤ 1.5×); peak RSS of snapshot, send and receive (≤ 300 MB)',
  requires: { root: true, loopDevices: true, tools: ['find', 'mkfs.ext4'] },
  run: run_,
};
