/**
 * The benchmark report: what a run found, as JSON, and the flat rows that
 * the text table, the markdown table and the SVG chart are drawn from.
 *
 * Owns: the report's shape (versioned, for scripts) and the pass/miss
 * verdict. Pure: no I/O, so rendering is testable without running anything.
 */
import { CaseResult, SkipKind, Unit } from './suite';
import { MachineInfo } from './machine';

export type Verdict = 'pass' | 'miss' | 'info' | 'unavailable';

export interface EvaluatedCase extends CaseResult {
  verdict: Verdict;
}

export type SuiteOutcome =
  | { suite: string; title: string; status: 'ok'; seconds: number; cases: EvaluatedCase[] }
  | { suite: string; title: string; status: 'skipped'; kind: SkipKind; reason: string }
  | { suite: string; title: string; status: 'crashed'; seconds: number; error: string };

export interface Report {
  format: 'ferry-bench-report';
  version: 1;
  startedAt: string;
  finishedAt: string;
  mode: 'smoke' | 'full';
  /** Page cache policy of the timed runs (bench/lib/cache.ts). */
  cache?: 'cold' | 'warm';
  reps: number;
  seed: number;
  /** Suites asked for on the command line (all registered ones when none was named). */
  requested: string[];
  machine: MachineInfo;
  suites: SuiteOutcome[];
  /** Suites taken from an earlier run (--merge): suite name -> that run's start time. */
  mergedFrom?: Record<string, string>;
}

/**
 * Fill in the suites a run did not run from an earlier report of the same
 * kind (mode, reps, cache, seed). Returns the outcomes in registry order and
 * which suites came from where; throws when the reports are not comparable.
 */
export function mergeOutcomes(
  order: readonly string[],
  now: SuiteOutcome[],
  earlier: Report,
  same: { mode: Report['mode']; reps: number; cache?: Report['cache']; seed: number },
): { suites: SuiteOutcome[]; mergedFrom: Record<string, string> } {
  const diff = (['mode', 'reps', 'cache', 'seed'] as const).filter((k) => earlier[k] !== same[k]);
  if (diff.length) throw new Error(`--merge: the earlier report differs in ${diff.join(', ')}; rerun instead`);
  const mergedFrom: Record<string, string> = {};
  const suites: SuiteOutcome[] = [];
  for (const name of order) {
    const fresh = now.find((o) => o.suite === name);
    if (fresh) suites.push(fresh);
    else {
      const old = earlier.suites.find((o) => o.suite === name);
      if (old) {
        suites.push(old);
        mergedFrom[name] = earlier.mergedFrom?.[name] ?? earlier.startedAt;
      }
    }
  }
  return { suites, mergedFrom };
}

export function verdictOf(c: CaseResult): Verdict {
  if (c.invalid !== undefined) return 'miss';
  if (c.unavailable !== undefined) return 'unavailable';
  if (!c.budget) return 'info';
  if (!Number.isFinite(c.value)) return 'miss';
  return (c.budget.op === '<=' ? c.value <= c.budget.value : c.value >= c.budget.value) ? 'pass' : 'miss';
}

export function evaluate(c: CaseResult): EvaluatedCase {
  return { ...c, verdict: verdictOf(c) };
}

/** One line of the results table; every cell already formatted. */
export interface Row {
  suite: string;
  case: string;
  ferry: string;
  peer: string;
  value: string;
  budget: string;
  result: string;
}

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return 'n/a';
  switch (unit) {
    case 'ratio':
      return `${value.toFixed(2)}×`;
    case 'GB/s':
      return `${value.toFixed(2)} GB/s`;
    case 'MB':
      return `${value.toFixed(1)} MB`;
    case 's':
      return formatSeconds(value);
    case '%':
      return `${value < 1 ? value.toFixed(2) : value.toFixed(1)}%`;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(s < 10 ? 3 : 1)} s`;
}

export function formatBudget(c: CaseResult): string {
  if (!c.budget) return '—';
  return `${c.budget.op === '<=' ? '≤' : '≥'} ${formatValue(c.budget.value, c.unit)}`;
}

/** An invalid case's reason in the table is cut short; the notes carry all of it. */
const RESULT_CHARS = 90;

export function resultText(c: EvaluatedCase): string {
  if (c.invalid !== undefined) return `miss: ${c.invalid.length > RESULT_CHARS ? `${c.invalid.slice(0, RESULT_CHARS - 1)}…` : c.invalid}`;
  return c.verdict === 'unavailable' ? `skipped: ${c.unavailable}` : c.verdict;
}

export function reportRows(report: Pick<Report, 'suites'>): Row[] {
  const rows: Row[] = [];
  for (const s of report.suites) {
    if (s.status === 'ok') {
      for (const c of s.cases) {
        rows.push({
          suite: s.suite,
          case: c.name,
          ferry: c.ferry ? formatSeconds(c.ferry.median) : '—',
          peer: c.peer ? `${formatSeconds(c.peer.median)} (${c.peer.tool})` : '—',
          value: formatValue(c.value, c.unit),
          budget: formatBudget(c),
          result: resultText(c),
        });
      }
      if (s.cases.length === 0) rows.push(blankRow(s.suite, 'no cases'));
    } else if (s.status === 'skipped') {
      rows.push(blankRow(s.suite, `skipped: ${s.reason}`));
    } else {
      rows.push(blankRow(s.suite, `CRASHED: ${firstLine(s.error)}`));
    }
  }
  return rows;
}

function blankRow(suite: string, result: string): Row {
  return { suite, case: '—', ferry: '—', peer: '—', value: '—', budget: '—', result };
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/** Notes attached to cases, as "suite/case: note" lines. */
export function reportNotes(report: Pick<Report, 'suites'>): string[] {
  const notes: string[] = [];
  for (const s of report.suites) {
    if (s.status !== 'ok') continue;
    for (const c of s.cases) {
      if (c.invalid) notes.push(`${s.suite}/${c.name}: INVALID: ${c.invalid}`);
      if (c.note) notes.push(`${s.suite}/${c.name}: ${c.note}`);
    }
  }
  return notes;
}

export function countVerdicts(report: Pick<Report, 'suites'>): Record<Verdict | 'skipped' | 'crashed', number> {
  const n = { pass: 0, miss: 0, info: 0, unavailable: 0, skipped: 0, crashed: 0 };
  for (const s of report.suites) {
    if (s.status === 'ok') for (const c of s.cases) n[c.verdict]++;
    else n[s.status]++;
  }
  return n;
}
