/**
 * Every performance budget ferry has promised (DESIGN.md "Performance
 * budgets" and the performance sections of issues #3, #4, #5 and #7), and
 * for a report: what was measured against each, or why nothing was.
 *
 * A case claims a budget with `budgetId`. A budget several cases measure
 * (index and reflink volumes, 1 and 10 snapshots behind, snapshot, send and
 * receive) is met only when all of them are. Pure: no I/O.
 */
import { Report, Verdict, formatValue } from './report';

export interface BudgetSpec {
  id: string;
  /** The promise, in words. */
  text: string;
  source: string;
  /** The suite that measures it, or undefined when the benchmark does not. */
  suite?: string;
  /** Why the benchmark does not measure it (when suite is undefined). */
  notMeasured?: string;
}

export const BUDGETS: readonly BudgetSpec[] = [
  {
    id: 'full-send',
    text: 'full send of /usr/share + /usr/include (~66k entries, 0.8 GB) from an index (ext4) or reflink (XFS) volume, init + snapshot + send | receive onto ext4: ≤ 1.25× btrfs snapshot + send | receive',
    source: 'DESIGN.md; issue #4',
    suite: 'full',
  },
  {
    id: 'full-receive',
    text: "ferry receive of the kernel's full stream of that tree onto ext4: ≤ 1.25× btrfs receive of the same stream onto btrfs",
    source: 'issue #3',
    suite: 'full',
  },
  {
    id: 'incremental-time',
    text: 'incremental snapshot + send | receive after ~1% of files change, 1 and 10 snapshots behind: ≤ 1/3 of rsync -aHAX --delete',
    source: 'DESIGN.md; issue #4',
    suite: 'incremental',
  },
  {
    id: 'incremental-bytes',
    text: 'that incremental stream: ≤ 1.1× the bytes of btrfs send -p for the same change',
    source: 'DESIGN.md; issue #4',
    suite: 'incremental',
  },
  {
    id: 'incremental-receive',
    text: 'incremental receive onto ext4 (hard-link farm) of that tree: < 2 s',
    source: 'issue #3',
    suite: 'incremental',
  },
  {
    id: 'image-bytes',
    text: '4 GiB image, 1,000 scattered 4 KiB writes: stream ≤ 1.1× the bytes of btrfs send -p',
    source: 'DESIGN.md; issue #4',
    suite: 'image',
  },
  {
    id: 'image-reads',
    text: 'the same on a reflink volume: no unchanged data read by snapshot + send',
    source: 'DESIGN.md; issue #4',
    suite: 'image',
  },
  {
    id: 'scale-rss',
    text: 'peak RSS ≤ 300 MB for a 1,000,000-file tree: snapshot, send and receive',
    source: 'DESIGN.md; issue #4',
    suite: 'scale',
  },
  {
    id: 'scale-snapshot',
    text: '1,000,000-file tree, snapshot with no changes: ≤ 1.5× find -printf over the same tree',
    source: 'issue #4',
    suite: 'scale',
  },
  {
    id: 'ssh-throughput',
    text: 'ferry sync over ssh on loopback, large files: ≥ 80% of the throughput of btrfs send | ssh | btrfs receive (time ≤ 1.25×)',
    source: 'issue #5',
    suite: 'ssh',
  },
  {
    id: 'zstd',
    text: '--compress zstd: the compression stage alone ≥ 400 MB/s on 2 cores',
    source: 'issue #5',
    suite: 'codec',
  },
  {
    id: 'codec',
    text: 'send-stream decode and encode ≥ 1 GB/s',
    source: 'benchmark issue (#7)',
    suite: 'codec',
  },
  {
    id: 'resume-overhead',
    text: 'a resumed transfer sends ≤ 5% more than the bytes left',
    source: 'issue #5',
    notMeasured: 'a correctness property of resume, checked by the sync tests (kill mid-transfer, compare resumedFromByte), not a timing',
  },
];

const clip = (s: string, n = 140) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export interface BudgetRow {
  id: string;
  text: string;
  source: string;
  /** "1.12× (index), 1.40× (reflink)" or "not measured: <reason>". */
  measured: string;
  verdict: Verdict | 'not measured';
}

/** One row per budget: the values of the cases that claim it, and the combined verdict. */
export function budgetRows(report: Pick<Report, 'suites' | 'requested'>): BudgetRow[] {
  return BUDGETS.map((b) => {
    const base = { id: b.id, text: b.text, source: b.source };
    if (!b.suite) return { ...base, measured: `not measured: ${b.notMeasured ?? 'no suite'}`, verdict: 'not measured' };
    const outcome = report.suites.find((s) => s.suite === b.suite);
    if (!outcome) return { ...base, measured: `not measured: suite ${b.suite} was not run`, verdict: 'not measured' };
    if (outcome.status === 'skipped') return { ...base, measured: `not measured: ${b.suite} skipped: ${outcome.reason}`, verdict: 'not measured' };
    if (outcome.status === 'crashed') {
      return { ...base, measured: `not measured: ${b.suite} crashed: ${outcome.error.split('\n')[0]}`, verdict: 'not measured' };
    }
    const cases = outcome.cases.filter((c) => c.budgetId === b.id);
    if (!cases.length) return { ...base, measured: `not measured: ${b.suite} reported no case for it`, verdict: 'not measured' };
    const measured = cases.filter((c) => c.verdict !== 'unavailable');
    if (!measured.length) {
      const why = [...new Set(cases.map((c) => c.unavailable))].join('; ');
      return { ...base, measured: `not measured: ${why}`, verdict: 'not measured' };
    }
    const text = cases
      .map((c) =>
        c.verdict === 'unavailable'
          ? `${c.name}: not measured (${c.unavailable})`
          : `${formatValue(c.value, c.unit)}${c.invalid ? ` INVALID (${clip(c.invalid)})` : ''} (${c.name}${c.verdict === 'info' ? ', info only' : ''})`,
      )
      .join('; ');
    const verdicts = measured.map((c) => c.verdict);
    const verdict: BudgetRow['verdict'] = verdicts.includes('miss') ? 'miss' : verdicts.includes('pass') ? 'pass' : 'info';
    return { ...base, measured: text, verdict };
  });
}

/** The budget rows for the terminal: verdict first, then the promise and what was measured. */
export function renderBudgetLines(rows: readonly BudgetRow[]): string {
  const w = Math.max(...rows.map((r) => r.verdict.length));
  return rows.map((r) => `  ${r.verdict.padEnd(w)}  ${r.id}: ${r.measured}\n`).join('');
}
