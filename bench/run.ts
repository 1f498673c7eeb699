/**
 * `npm run bench`: the benchmark harness entry point (see bench/lib/args.ts
 * for the options).
 *
 * Runs the requested suites one after the other, prints the results table,
 * writes the JSON report, and after a complete non-smoke run rewrites
 * bench/RESULTS.md and bench/report.svg. Exit status: 0 when no suite
 * crashed (a missed budget is a result, not a failure), 1 when one crashed,
 * 2 on bad usage. This is the only bench module that reads argv or sets the
 * exit code.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BenchOptions, USAGE, UsageError, parseBenchArgs } from './lib/args';
import { budgetRows, renderBudgetLines } from './lib/budgets';
import { resultsBlocker, runSuite } from './lib/harness';
import { busyWarning, machineInfo } from './lib/machine';
import { Report, SuiteOutcome, countVerdicts, mergeOutcomes, reportNotes, reportRows } from './lib/report';
import { renderResultsMd } from './lib/results-md';
import { renderSvg } from './lib/svg';
import { renderTextTable } from './lib/table';
import { SUITES } from './suites';

/** The directory holding ferry's package.json, from src (bench/) or build (dist/bench/). */
function findRepoRoot(start: string): string {
  for (let d = start; ; d = dirname(d)) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ferry') return d;
    if (dirname(d) === d) throw new Error(`cannot find ferry's package.json above ${start}`);
  }
}

function writeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

const toJson = (report: Report) =>
  JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n';

async function main(argv: string[]): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(argv, SUITES.map((s) => s.name));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`bench: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts.list) {
    for (const s of SUITES) process.stdout.write(`${s.name.padEnd(12)} ${s.title}${s.pending ? `  [${s.pending}]` : ''}\n`);
    return 0;
  }
  const repoRoot = findRepoRoot(__dirname);
  const selected = opts.suites.length ? SUITES.filter((s) => opts.suites.includes(s.name)) : [...SUITES];
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const busy = busyWarning(machine);
  if (busy) process.stderr.write(`bench: warning: ${busy}\n`);
  process.stderr.write(
    `bench: ${opts.smoke ? 'smoke' : 'full'} run of ${selected.map((s) => s.name).join(', ')}; ` +
      `${opts.reps} rep(s), seed ${opts.seed}, ${opts.cache} cache\n`,
  );

  const outcomes: SuiteOutcome[] = [];
  for (const suite of selected) {
    process.stderr.write(`\n== ${suite.name}: ${suite.title}\n`);
    const o = await runSuite(suite, {
      smoke: opts.smoke,
      reps: opts.reps,
      seed: opts.seed,
      repoRoot,
      ferryBin: join(repoRoot, 'bin', 'ferry'),
      cache: opts.cache,
      scaleFiles: opts.scaleFiles,
    });
    if (o.status === 'skipped') process.stderr.write(`  skipped: ${o.reason}\n`);
    else if (o.status === 'crashed') process.stderr.write(`  CRASHED after ${o.seconds.toFixed(1)} s:\n${o.error}\n`);
    else process.stderr.write(`  done in ${o.seconds.toFixed(1)} s\n`);
    outcomes.push(o);
  }

  const report: Report = {
    format: 'ferry-bench-report',
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: opts.smoke ? 'smoke' : 'full',
    cache: opts.cache,
    reps: opts.reps,
    seed: opts.seed,
    requested: selected.map((s) => s.name),
    machine,
    suites: outcomes,
  };
  if (opts.merge) {
    const earlier = JSON.parse(readFileSync(resolve(opts.merge), 'utf8')) as Report;
    const m = mergeOutcomes(SUITES.map((s) => s.name), outcomes, earlier, report);
    report.suites = m.suites;
    report.mergedFrom = m.mergedFrom;
    outcomes.splice(0, outcomes.length, ...m.suites);
    for (const [name, at] of Object.entries(m.mergedFrom)) process.stderr.write(`bench: ${name} taken from the run of ${at}\n`);
  }

  const n = countVerdicts(report);
  const notes = reportNotes(report);
  process.stdout.write('\n' + renderTextTable(reportRows(report)));
  if (notes.length) process.stdout.write('\n' + notes.map((l) => `  ${l}`).join('\n') + '\n');
  process.stdout.write('\nbudgets (DESIGN.md and issues):\n' + renderBudgetLines(budgetRows(report)));
  if (busy) process.stdout.write(`\nwarning: ${busy}\n`);
  process.stdout.write(
    `\n${n.pass} passed, ${n.miss} missed, ${n.info} informational; ${n.skipped} suites skipped, ${n.crashed} crashed\n`,
  );

  const jsonPath = opts.json ? resolve(opts.json) : join(repoRoot, 'bench', 'out', 'report.json');
  writeFile(jsonPath, toJson(report));
  process.stderr.write(`bench: JSON report written to ${jsonPath}\n`);

  const blocker = resultsBlocker(opts.smoke, SUITES.map((s) => s.name), outcomes);
  if (blocker) {
    process.stderr.write(`bench: bench/RESULTS.md and bench/report.svg left as they were: ${blocker}\n`);
  } else {
    writeFile(join(repoRoot, 'bench', 'report.svg'), renderSvg(report));
    writeFile(join(repoRoot, 'bench', 'RESULTS.md'), renderResultsMd(report));
    process.stderr.write('bench: bench/RESULTS.md and bench/report.svg rewritten\n');
  }

  if (n.crashed) return 1;
  const envSkips = outcomes.filter((o) => o.status === 'skipped' && o.kind === 'environment');
  if (process.env.FERRY_REQUIRE_REAL_FS === '1' && envSkips.length) {
    process.stderr.write(`bench: FERRY_REQUIRE_REAL_FS=1 and ${envSkips.map((o) => o.suite).join(', ')} could not run\n`);
    return 1;
  }
  return 0;
}

// A promise that never settles would let the event loop empty and Node exit 0
// with no report; make that an error instead.
let finished = false;
process.on('exit', () => {
  if (!finished) {
    process.stderr.write('bench: internal error: the run stopped before it finished (a promise never settled)\n');
    process.exitCode = 1;
  }
});

main(process.argv.slice(2)).then(
  (code) => {
    finished = true;
    process.exitCode = code;
  },
  (e: unknown) => {
    finished = true;
    process.stderr.write(`bench: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
