/**
 * What a job run reports: the events streamed while it runs (NDJSON with
 * --json, lines or bars otherwise) and the outcome objects the summary is
 * made of, plus the rule that turns outcomes into one exit code.
 *
 * Owns: the shapes scripts read (`ferry run --json`; extend, don't rename)
 * and the exit-code rule. Pure. Never: prints (src/cli renders).
 *
 * Exit rule (docs/jobs.md): 0 when everything succeeded; 3 when it
 * succeeded with warnings; otherwise the exit code of the first failure in
 * config order (job, then its steps, then its targets), where a specific
 * code beats 1 (a bug). A PARTIAL failure (some targets or jobs succeeded,
 * some failed) exits with that same code, and the summary's `result` is
 * `partial`, not `failed`.
 */
import { Exit, isFerryError } from '../errors';
import type { HookOutcome } from './hooks';

export type JobResult = 'ok' | 'warning' | 'partial' | 'failed';
export type TargetResult = 'ok' | 'warning' | 'up-to-date' | 'failed' | 'would-send' | 'not-run';

export interface ErrorInfo {
  code: string;
  exitCode: number;
  message: string;
  hint: string | null;
}

export function errorInfo(e: unknown): ErrorInfo {
  if (isFerryError(e)) return { code: e.code, exitCode: e.exitCode, message: e.message, hint: e.hint ?? null };
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'INTERNAL', exitCode: Exit.INTERNAL, message: `internal error: ${err.message}`, hint: 'this is a bug in ferry; please report it with the log' };
}

export interface PruneDecisionOut {
  name: string;
  time: string;
  action: 'keep' | 'remove';
  reasons: string[];
}

export interface PruneOutcome {
  side: 'source' | 'target';
  /** The volume or the target. */
  where: string;
  policy: string;
  dryRun: boolean;
  decisions: PruneDecisionOut[];
  /** Removed (or, in a dry run, to be removed). */
  removed: string[];
  /** Why nothing was pruned, when nothing was even considered. */
  note: string | null;
  error: ErrorInfo | null;
}

export interface SnapshotOutcome {
  name: string | null;
  action: 'created' | 'skipped' | 'would-create' | 'would-skip' | 'failed';
  reason: string;
  warnings: string[];
}

export interface TargetOutcome {
  target: string;
  result: TargetResult;
  snapshot: string | null;
  parent: string | null;
  streamBytes: number;
  wireBytes: number;
  resumedFromByte: number;
  seconds: number;
  warnings: string[];
  error: ErrorInfo | null;
  prune: PruneOutcome | null;
}

export interface JobOutcome {
  job: string;
  volume: string;
  result: JobResult;
  exitCode: number;
  dryRun: boolean;
  startedAt: string;
  seconds: number;
  snapshot: SnapshotOutcome | null;
  hooks: HookOutcome[];
  targets: TargetOutcome[];
  prune: PruneOutcome | null;
  warnings: string[];
  /** The failure that stopped the job as a whole (lock, hook, volume, snapshot); target failures are in targets. */
  error: ErrorInfo | null;
}

export interface RunSummary {
  event: 'summary';
  result: JobResult;
  exitCode: number;
  dryRun: boolean;
  config: string;
  startedAt: string;
  seconds: number;
  jobs: JobOutcome[];
}

export type JobEvent =
  | { event: 'job-start'; job: string; volume: string; dryRun: boolean }
  | { event: 'hook'; job: string; outcome: HookOutcome }
  | { event: 'snapshot'; job: string; volume: string; outcome: SnapshotOutcome }
  | { event: 'target-start'; job: string; target: string; snapshot: string | null }
  | { event: 'progress'; job: string; target: string; bytes: number; total: number | null }
  | { event: 'target-done'; job: string; outcome: Omit<TargetOutcome, 'prune'> }
  | { event: 'prune'; job: string; side: 'source' | 'target'; where: string; dryRun: boolean; decision: PruneDecisionOut }
  | { event: 'prune-done'; job: string; outcome: Omit<PruneOutcome, 'decisions'> }
  | { event: 'decision'; job: string; what: string; reason: string }
  | { event: 'warning'; job: string; target: string | null; message: string }
  | { event: 'error'; job: string; target: string | null; error: ErrorInfo }
  | { event: 'job-done'; job: string; result: JobResult; exitCode: number; seconds: number };

/** The code of the first failure, preferring any specific code over 1 (a bug). */
export function firstFailureCode(codes: number[]): number {
  const failing = codes.filter((c) => c !== Exit.OK && c !== Exit.WARNINGS);
  return failing.find((c) => c !== Exit.INTERNAL) ?? failing[0] ?? Exit.OK;
}

/** A job's result and exit code from its parts. */
export function judgeJob(j: Pick<JobOutcome, 'error' | 'targets' | 'warnings' | 'snapshot' | 'prune' | 'hooks'>): { result: JobResult; exitCode: number } {
  if (j.error) return { result: 'failed', exitCode: j.error.exitCode };
  const failed = j.targets.filter((t) => t.result === 'failed');
  const succeeded = j.targets.filter((t) => t.result !== 'failed' && t.result !== 'not-run');
  if (failed.length) {
    const exitCode = firstFailureCode(failed.map((t) => t.error?.exitCode ?? Exit.INTERNAL));
    return { result: succeeded.length ? 'partial' : 'failed', exitCode };
  }
  const warned =
    j.warnings.length > 0 ||
    j.targets.some((t) => t.result === 'warning' || t.warnings.length > 0 || t.prune?.error) ||
    (j.snapshot?.warnings.length ?? 0) > 0 ||
    !!j.prune?.error ||
    j.hooks.some((h) => !h.ok);
  return warned ? { result: 'warning', exitCode: Exit.WARNINGS } : { result: 'ok', exitCode: Exit.OK };
}

/** The whole run's result and exit code from its jobs. */
export function judgeRun(jobs: Array<Pick<JobOutcome, 'result' | 'exitCode'>>): { result: JobResult; exitCode: number } {
  if (jobs.length === 0) return { result: 'ok', exitCode: Exit.OK };
  const bad = jobs.filter((j) => j.result === 'failed' || j.result === 'partial');
  if (bad.length) {
    const someOk = jobs.some((j) => j.result === 'ok' || j.result === 'warning' || j.result === 'partial');
    return { result: someOk ? 'partial' : 'failed', exitCode: firstFailureCode(bad.map((j) => j.exitCode)) };
  }
  return jobs.some((j) => j.result === 'warning') ? { result: 'warning', exitCode: Exit.WARNINGS } : { result: 'ok', exitCode: Exit.OK };
}
