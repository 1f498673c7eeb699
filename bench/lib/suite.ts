/**
 * The contract between the benchmark harness (bench/run.ts) and a suite.
 *
 * A suite measures one thing the design budgets (DESIGN.md "Performance
 * budgets") and returns cases: a measured value, its unit, and optionally a
 * budget and the timings behind it. The harness, not the suite, decides pass
 * or miss, renders tables and charts, and turns failures into report rows:
 *
 * - throw SkipError when the suite cannot run here (not root, tool missing,
 *   loop mount refused); it is reported as "skipped: <reason>";
 * - any other exception is a crash: the other suites still run, and the
 *   harness exits 1.
 *
 * To add a suite: write bench/suites/NAME.ts exporting a Suite, list it in
 * bench/suites/index.ts, and use bench/lib/ for loop filesystems (loopfs),
 * datasets, ABAB timing (timing) and peak RSS of a child (rss).
 */

/** Why a suite did not run. Only environment skips can hide a regression. */
export type SkipKind = 'environment' | 'not-implemented';

export class SkipError extends Error {
  readonly kind: SkipKind;
  constructor(reason: string, kind: SkipKind = 'environment') {
    super(reason);
    this.name = 'SkipError';
    this.kind = kind;
  }
}

/**
 * Units a case can be measured in. `ratio` is ferry/peer (time or bytes);
 * `GB/s` is 10^9 bytes per second; `MB` is 10^6 bytes; `s` is seconds;
 * `%` is a share in percent.
 */
export type Unit = 'ratio' | 'GB/s' | 'MB' | 's' | '%';

export interface Budget {
  /** `<=` for ratios and sizes (lower is better), `>=` for throughput. */
  op: '<=' | '>=';
  value: number;
  /** Where the number comes from, e.g. "DESIGN.md" or "benchmark issue". */
  source: string;
}

/** Wall-clock samples in seconds, in the order they were taken. */
export interface Timing {
  median: number;
  samples: number[];
}

export interface CaseResult {
  /** Short name shown in the table, e.g. "decode + crc". */
  name: string;
  /** ferry's timing for this case, when it is a timed case. */
  ferry?: Timing;
  /** The peer's timing and the command it ran, e.g. "btrfs send | btrfs receive". */
  peer?: Timing & { tool: string };
  /** The compared number: ferry/peer for ratios, or the measured throughput or size. */
  value: number;
  unit: Unit;
  /** Without a budget the case is informational and never passes or misses. */
  budget?: Budget;
  /** Set when this case could not be measured here; the rest of the suite still counts. */
  unavailable?: string;
  /**
   * Set when ferry failed or produced a wrong result (a received tree that
   * differs from its source): the case is a miss whatever its value.
   */
  invalid?: string;
  /** Which DESIGN.md budget this case measures (bench/lib/budgets.ts), for the budget summary. */
  budgetId?: string;
  /** One line for the table's notes. */
  note?: string;
  /** Anything else worth keeping in the JSON report (sizes, counts, settings). */
  detail?: Record<string, unknown>;
}

export interface SuiteContext {
  smoke: boolean;
  /** Repetitions per timed case (ABAB for ferry vs peer); the medians are reported. */
  reps: number;
  seed: number;
  /** A private scratch directory, removed after the suite whatever happens. */
  tmpDir: string;
  /** The repository root (where package.json is). */
  repoRoot: string;
  /** The built ferry CLI (bin/ferry), for suites that run it as a peer would be run. */
  ferryBin: string;
  /** Progress line on stderr, prefixed with the suite name. */
  log(message: string): void;
  /** Page cache before timed runs (see bench/lib/cache.ts). */
  cache: 'cold' | 'warm';
  /** --scale-files: size of the scale suite's tree, when given. */
  scaleFiles?: number;
}

export interface Requirements {
  /** Needs uid 0 (mount, loop devices, chown). */
  root?: boolean;
  /** Executables that must be on PATH (sbin included), e.g. "mkfs.xfs", "rsync". */
  tools?: string[];
  /** Needs /dev/loop-control. */
  loopDevices?: boolean;
}

export interface Suite {
  name: string;
  /** One line: what it measures and against what. */
  title: string;
  requires?: Requirements;
  /**
   * Set while the suite is only a placeholder: it is skipped with this reason
   * before requirements are checked, and never reported as passing.
   */
  pending?: string;
  run(ctx: SuiteContext): Promise<CaseResult[]>;
}
