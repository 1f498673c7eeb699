/**
 * Command-line options of `npm run bench` (node:util parseArgs, no deps).
 * Pure: takes argv, returns options or throws UsageError.
 */
import { parseArgs } from 'node:util';

export interface BenchOptions {
  /** Suites to run, in registry order; empty means all. */
  suites: string[];
  /** Where to write the JSON report (default bench/out/report.json). */
  json?: string;
  /** An earlier JSON report whose suites stand in for the ones not run now. */
  merge?: string;
  smoke: boolean;
  reps: number;
  seed: number;
  list: boolean;
  help: boolean;
  /** Page cache before timed runs: cold (drop caches; default) or warm (the --smoke default). */
  cache: 'cold' | 'warm';
  /** Files in the scale suite's `many` tree (default 1,000,000; smoke 3,000). */
  scaleFiles?: number;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const DEFAULT_SEED = 1;

export const USAGE = `usage: npm run bench [-- [--suite NAME[,NAME...]]... [--smoke] [--reps N] [--seed N] [--json FILE]
                         [--cache cold|warm] [--scale-files N] [--list]]

  --suite NAME   run only these suites (repeatable or comma-separated; default: all)
  --smoke        small data and 1 repetition; writes bench/out/ only, never RESULTS.md or report.svg
  --reps N       repetitions per timed case, medians reported (default 3, smoke 1)
  --seed N       seed for every synthetic dataset (default ${DEFAULT_SEED})
  --json FILE    where to write the JSON report (default bench/out/report.json)
  --merge FILE   take every suite not run now from this earlier JSON report (same mode, reps
                 and cache); RESULTS.md then names the run each suite came from
  --cache MODE   cold: sync and drop the page cache before every timed run of either side
                 (default); warm: never drop it (the --smoke default)
  --scale-files N  files in the scale suite's tree (default 1000000; --smoke 3000); the RSS
                 budget is judged only at 1000000 or more
  --list         list the suites and exit

bench/RESULTS.md and bench/report.svg are rewritten only by a run that is not --smoke,
covers every registered suite, and in which no suite crashed or was skipped for lack of
root or tools. A missed budget is reported and does not fail the run; a crashed suite
exits 1. With FERRY_REQUIRE_REAL_FS=1 a suite skipped for lack of root or tools also exits 1.
`;

function positiveInt(name: string, s: string, min: number): number {
  if (!/^\d+$/.test(s) || Number(s) < min || !Number.isSafeInteger(Number(s))) {
    throw new UsageError(`--${name} needs an integer >= ${min}, got "${s}"`);
  }
  return Number(s);
}

export function parseBenchArgs(argv: readonly string[], known: readonly string[]): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        suite: { type: 'string', multiple: true },
        json: { type: 'string' },
        merge: { type: 'string' },
        smoke: { type: 'boolean', default: false },
        reps: { type: 'string' },
        seed: { type: 'string' },
        cache: { type: 'string' },
        'scale-files': { type: 'string' },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const asked = (v.suite ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const unknown = asked.filter((s) => !known.includes(s));
  if (unknown.length) throw new UsageError(`unknown suite ${unknown.map((s) => `"${s}"`).join(', ')} (known: ${known.join(', ')})`);
  const smoke = v.smoke ?? false;
  const cache = v.cache ?? (smoke ? 'warm' : 'cold');
  if (cache !== 'cold' && cache !== 'warm') throw new UsageError(`--cache must be cold or warm, got "${cache}"`);
  return {
    suites: known.filter((k) => asked.includes(k)),
    json: v.json,
    merge: v.merge,
    smoke,
    reps: v.reps !== undefined ? positiveInt('reps', v.reps, 1) : smoke ? 1 : 3,
    seed: v.seed !== undefined ? positiveInt('seed', v.seed, 0) : DEFAULT_SEED,
    list: v.list ?? false,
    help: v.help ?? false,
    cache,
    scaleFiles: v['scale-files'] !== undefined ? positiveInt('scale-files', v['scale-files'], 100) : undefined,
  };
}
