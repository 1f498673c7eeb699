/**
 * Runs one suite and turns whatever happens into a SuiteOutcome: results,
 * a skip with its reason, or a crash with its stack. A suite can never take
 * the others down. Also decides whether a run may rewrite RESULTS.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { SuiteOutcome, evaluate } from './report';
import { unmetRequirement } from './requirements';
import { SkipError, Suite } from './suite';
import { secondsSince } from './timing';

export interface RunOptions {
  smoke: boolean;
  reps: number;
  seed: number;
  repoRoot: string;
  ferryBin: string;
  /** Page cache policy (default: cold unless smoke). */
  cache?: 'cold' | 'warm';
  scaleFiles?: number;
  /** Where suites get their scratch dirs (default os.tmpdir()). */
  tmpParent?: string;
  /** Progress output (default stderr). */
  write?: (line: string) => void;
}

export async function runSuite(suite: Suite, opts: RunOptions): Promise<SuiteOutcome> {
  const write = opts.write ?? ((l: string) => process.stderr.write(l + '\n'));
  const base = { suite: suite.name, title: suite.title };
  if (suite.pending) return { ...base, status: 'skipped', kind: 'not-implemented', reason: suite.pending };
  const unmet = unmetRequirement(suite.requires);
  if (unmet) return { ...base, status: 'skipped', kind: 'environment', reason: unmet };
  const tmpDir = mkdtempSync(join(opts.tmpParent ?? os.tmpdir(), `ferry-bench-${suite.name}-`));
  const cleanup = registerCleanup(`remove ${tmpDir}`, () => rmSync(tmpDir, { recursive: true, force: true }));
  const t0 = process.hrtime.bigint();
  try {
    const cases = await suite.run({
      smoke: opts.smoke,
      reps: opts.reps,
      seed: opts.seed,
      tmpDir,
      repoRoot: opts.repoRoot,
      ferryBin: opts.ferryBin,
      cache: opts.cache ?? (opts.smoke ? 'warm' : 'cold'),
      scaleFiles: opts.scaleFiles,
      log: (m) => write(`  [${suite.name}] ${m}`),
    });
    return { ...base, status: 'ok', seconds: secondsSince(t0), cases: cases.map(evaluate) };
  } catch (e) {
    if (e instanceof SkipError) return { ...base, status: 'skipped', kind: e.kind, reason: e.message };
    const err = e as Error;
    return { ...base, status: 'crashed', seconds: secondsSince(t0), error: err?.stack ?? String(e) };
  } finally {
    cleanup();
  }
}

/**
 * RESULTS.md and report.svg describe one complete run: not smoke, every
 * registered suite requested, none crashed, none skipped for lack of root or
 * tools (placeholders that are not implemented yet do not block). Returns
 * undefined when they may be rewritten, else the reason they are not.
 */
export function resultsBlocker(smoke: boolean, registered: readonly string[], outcomes: readonly SuiteOutcome[]): string | undefined {
  if (smoke) return 'this is a --smoke run';
  const ran = new Set(outcomes.map((o) => o.suite));
  const missing = registered.filter((s) => !ran.has(s));
  if (missing.length) return `the run did not include ${missing.join(', ')}`;
  const crashed = outcomes.filter((o) => o.status === 'crashed').map((o) => o.suite);
  if (crashed.length) return `${crashed.join(', ')} crashed`;
  const env = outcomes.filter((o) => o.status === 'skipped' && o.kind === 'environment').map((o) => o.suite);
  if (env.length) return `${env.join(', ')} could not run on this machine`;
  return undefined;
}
