import { existsSync } from 'node:fs';
import { UsageError, parseBenchArgs } from '../../../bench/lib/args';
import { BUDGETS } from '../../../bench/lib/budgets';
import { resultsBlocker, runSuite } from '../../../bench/lib/harness';
import { SuiteOutcome } from '../../../bench/lib/report';
import { SkipError, Suite } from '../../../bench/lib/suite';
import { median, timeIt } from '../../../bench/lib/timing';
import { SUITES } from '../../../bench/suites';

const KNOWN = ['codec', 'full', 'incremental'];

describe('parseBenchArgs', () => {
  it('defaults to every suite, 3 reps, seed 1', () => {
    expect(parseBenchArgs([], KNOWN)).toEqual({
      suites: [],
      json: undefined,
      smoke: false,
      reps: 3,
      seed: 1,
      list: false,
      help: false,
      cache: 'cold',
      scaleFiles: undefined,
    });
  });

  it('drops caches unless told --cache warm; smoke runs warm by default', () => {
    expect(parseBenchArgs(['--smoke'], KNOWN).cache).toBe('warm');
    expect(parseBenchArgs(['--smoke', '--cache', 'cold'], KNOWN).cache).toBe('cold');
    expect(parseBenchArgs(['--cache', 'warm'], KNOWN).cache).toBe('warm');
    expect(() => parseBenchArgs(['--cache', 'tepid'], KNOWN)).toThrow(/--cache must be cold or warm/);
  });

  it('takes --scale-files N (at least 100)', () => {
    expect(parseBenchArgs(['--scale-files', '20000'], KNOWN).scaleFiles).toBe(20000);
    expect(() => parseBenchArgs(['--scale-files', '5'], KNOWN)).toThrow(/--scale-files needs an integer >= 100/);
  });

  it('takes 1 rep in smoke mode unless told otherwise', () => {
    expect(parseBenchArgs(['--smoke'], KNOWN).reps).toBe(1);
    expect(parseBenchArgs(['--smoke', '--reps', '2'], KNOWN).reps).toBe(2);
  });

  it('accepts repeated and comma-separated suites, in registry order', () => {
    expect(parseBenchArgs(['--suite', 'incremental,codec', '--suite', 'codec'], KNOWN).suites).toEqual(['codec', 'incremental']);
  });

  it('rejects unknown suites, options and bad numbers', () => {
    expect(() => parseBenchArgs(['--suite', 'nope'], KNOWN)).toThrow(UsageError);
    expect(() => parseBenchArgs(['--fast'], KNOWN)).toThrow(UsageError);
    expect(() => parseBenchArgs(['--reps', '0'], KNOWN)).toThrow(/--reps needs an integer >= 1/);
    expect(() => parseBenchArgs(['--reps', 'x'], KNOWN)).toThrow(UsageError);
    expect(() => parseBenchArgs(['positional'], KNOWN)).toThrow(UsageError);
  });
});

const opts = { smoke: true, reps: 1, seed: 1, repoRoot: '/', ferryBin: '/bin/false', write: () => undefined };
const suite = (over: Partial<Suite>): Suite => ({ name: 't', title: 'test', run: async () => [], ...over });

describe('runSuite', () => {
  it('skips placeholders as not implemented, before checking requirements', async () => {
    const o = await runSuite(suite({ pending: 'not yet', requires: { tools: ['no-such-tool-ferry'] } }), opts);
    expect(o).toMatchObject({ status: 'skipped', kind: 'not-implemented', reason: 'not yet' });
  });

  it('skips with the reason when a requirement is missing', async () => {
    const o = await runSuite(suite({ requires: { tools: ['no-such-tool-ferry'] } }), opts);
    expect(o).toMatchObject({ status: 'skipped', kind: 'environment', reason: 'missing tool: no-such-tool-ferry' });
  });

  it('turns SkipError into a skip and any other error into a crash', async () => {
    expect(await runSuite(suite({ run: async () => Promise.reject(new SkipError('no xfs')) }), opts)).toMatchObject({
      status: 'skipped',
      kind: 'environment',
      reason: 'no xfs',
    });
    const crashed = await runSuite(suite({ run: async () => Promise.reject(new Error('boom')) }), opts);
    expect(crashed.status).toBe('crashed');
    expect(crashed.status === 'crashed' && crashed.error).toMatch(/^Error: boom/);
  });

  it('gives the suite a scratch dir and removes it afterwards, even after a crash', async () => {
    let seen = '';
    await runSuite(
      suite({
        run: async (ctx) => {
          seen = ctx.tmpDir;
          expect(existsSync(ctx.tmpDir)).toBe(true);
          throw new Error('boom');
        },
      }),
      opts,
    );
    expect(seen).not.toBe('');
    expect(existsSync(seen)).toBe(false);
  });

  it('evaluates the cases a suite returns', async () => {
    const o = await runSuite(
      suite({ run: async () => [{ name: 'c', value: 2, unit: 'GB/s', budget: { op: '>=', value: 1, source: 's' } }] }),
      opts,
    );
    expect(o.status === 'ok' && o.cases[0].verdict).toBe('pass');
  });
});

describe('resultsBlocker', () => {
  const ok = (s: string): SuiteOutcome => ({ suite: s, title: s, status: 'ok', seconds: 1, cases: [] });
  const skip = (s: string, kind: 'environment' | 'not-implemented'): SuiteOutcome => ({ suite: s, title: s, status: 'skipped', kind, reason: 'r' });
  const all = ['a', 'b', 'c'];

  it('allows a complete run whose only skips are placeholders', () => {
    expect(resultsBlocker(false, all, [ok('a'), ok('b'), skip('c', 'not-implemented')])).toBeUndefined();
  });

  it('refuses smoke runs, partial runs, crashes and environment skips', () => {
    expect(resultsBlocker(true, all, [ok('a'), ok('b'), ok('c')])).toMatch(/smoke/);
    expect(resultsBlocker(false, all, [ok('a')])).toMatch(/did not include b, c/);
    expect(resultsBlocker(false, all, [ok('a'), ok('b'), { suite: 'c', title: 'c', status: 'crashed', seconds: 0, error: 'e' }])).toMatch(
      /c crashed/,
    );
    expect(resultsBlocker(false, all, [ok('a'), ok('b'), skip('c', 'environment')])).toMatch(/could not run/);
  });
});

describe('timing', () => {
  it('takes medians', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('runs ferry and peer alternately and excludes before/after from the time', async () => {
    const order: string[] = [];
    const r = await timeIt({
      reps: 3,
      ferry: { run: () => void order.push('F'), before: () => void order.push('f') },
      peer: async () => {
        order.push('P');
        await new Promise((res) => setTimeout(res, 20));
      },
    });
    expect(order.join('')).toBe('fFPfFPfFP');
    expect(r.ferry.samples).toHaveLength(3);
    expect(r.peer.median).toBeGreaterThan(r.ferry.median);
    expect(r.ratio).toBeLessThan(1);
  });
});

describe('registry', () => {
  it('has every suite the benchmark issue asks for, none of them a placeholder', () => {
    expect(SUITES.map((s) => s.name)).toEqual(['codec', 'full', 'incremental', 'image', 'scale', 'ssh']);
    expect(new Set(SUITES.map((s) => s.name)).size).toBe(SUITES.length);
    for (const s of SUITES) expect(s.pending).toBeUndefined();
  });

  it('has a suite for every budget the benchmark measures', () => {
    const names = new Set(SUITES.map((s) => s.name));
    for (const b of BUDGETS) {
      if (b.suite) expect(names.has(b.suite)).toBe(true);
      else expect(b.notMeasured).toBeTruthy();
    }
  });
});

describe('mergeOutcomes (--merge)', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { mergeOutcomes } = require('../../../bench/lib/report') as typeof import('../../../bench/lib/report');
  const ok = (suite: string) => ({ suite, title: suite, status: 'ok' as const, seconds: 1, cases: [] });
  const earlier = {
    format: 'ferry-bench-report' as const,
    version: 1 as const,
    startedAt: '2026-11-21T18:00:00.000Z',
    finishedAt: '2026-11-21T19:00:00.000Z',
    mode: 'full' as const,
    cache: 'cold' as const,
    reps: 3,
    seed: 1,
    requested: ['a', 'b', 'c'],
    machine: {} as never,
    suites: [ok('a'), { suite: 'b', title: 'b', status: 'crashed' as const, seconds: 2, error: 'ENOSPC' }, ok('c')],
  };

  it('keeps fresh suites, fills the rest from the earlier run in registry order, and says where each came from', () => {
    const m = mergeOutcomes(['a', 'b', 'c'], [ok('b')], earlier, { mode: 'full', reps: 3, cache: 'cold', seed: 1 });
    expect(m.suites.map((s) => [s.suite, s.status])).toEqual([
      ['a', 'ok'],
      ['b', 'ok'],
      ['c', 'ok'],
    ]);
    expect(m.mergedFrom).toEqual({ a: earlier.startedAt, c: earlier.startedAt });
  });

  it('refuses a report made with other settings', () => {
    expect(() => mergeOutcomes(['a'], [], earlier, { mode: 'full', reps: 5, cache: 'cold', seed: 1 })).toThrow(/reps/);
  });
});
