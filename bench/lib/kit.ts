/**
 * Pieces the comparison suites (full, incremental, image, scale, ssh) share:
 * the `usr` dataset (or its synthetic stand-in for --smoke), copying a tree
 * between filesystems, checking that a received tree equals its source, and
 * turning the outcome of an ABAB comparison into report cases.
 *
 * Invariants: a case built from a failed ferry run is a miss that says why
 * (never a pass, never silently skipped); a case whose peer failed is
 * unavailable with the reason; a received tree that differs from its source
 * makes its case invalid.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { TreeStats, USR_SOURCES, copyUsr, makeMany } from './datasets';
import { commandErrorOf, run } from './exec';
import { duBytes } from './fsutil';
import { Budget, CaseResult, SkipError, SuiteContext, Timing } from './suite';
import { compareTrees } from './treecmp';
import { SideTiming } from './timing';

/** Entries in the synthetic stand-in for `usr` under --smoke. */
export const SMOKE_USR_ENTRIES = 1500;

/** About how many bytes the `usr` dataset will take (for sizing loop images). */
export function usrBytesEstimate(ctx: SuiteContext): number {
  if (ctx.smoke) return 48 << 20;
  const missing = USR_SOURCES.filter((s) => !existsSync(s));
  if (missing.length) throw new SkipError(`the usr dataset needs ${missing.join(' and ')}`);
  return USR_SOURCES.reduce((a, s) => a + (duBytes(s) || 0), 0);
}

/**
 * Fill `dest` (created if missing) with the `usr` dataset: a copy of
 * /usr/share and /usr/include (real names and sizes), or under --smoke a
 * small generated tree with the same size distribution (fixed seed).
 */
export function makeUsrDataset(ctx: SuiteContext, dest: string): TreeStats & { source: string } {
  mkdirSync(dest, { recursive: true });
  if (ctx.smoke) {
    const s = makeMany(dest, SMOKE_USR_ENTRIES, ctx.seed, { sizes: 'usr', maxFileBytes: 1 << 20 });
    return { ...s, source: `synthetic /usr-like tree, ${SMOKE_USR_ENTRIES} entries, seed ${ctx.seed}` };
  }
  const s = copyUsr(dest);
  return { ...s, source: USR_SOURCES.join(' + ') };
}

/** `cp -a SRC/. DST` (DST created): modes, owners, times, hard links, xattrs. */
export async function copyTree(src: string, dst: string): Promise<void> {
  mkdirSync(dst, { recursive: true });
  await run(['cp', '-a', '--', `${src}/.`, dst], { tool: 'cp' });
}

export interface Verification {
  ok: boolean;
  /** Summary line, and the first differences when there are any. */
  text: string;
}

/**
 * Is the received tree `b` equal to the source `a`, on every attribute a
 * replication user cares about (bench/lib/treecmp.ts)? `.ferry` at the top
 * of either tree is ignored. Untimed; reads both trees completely.
 */
export function verifyTree(a: string, b: string): Verification {
  const d = compareTrees(a, b);
  return d.count === 0
    ? { ok: true, text: `${d.entries[0]} entries equal` }
    : { ok: false, text: `${d.count} differences in ${d.entries[0]} vs ${d.entries[1]} entries: ${d.first.slice(0, 5).join('; ')}` };
}

/** Errors that fail one side of a comparison rather than the suite: a tool that exited non-zero. */
export function isToolFailure(e: unknown): boolean {
  return commandErrorOf(e) !== undefined;
}

export function errorSummary(e: unknown): string {
  const c = commandErrorOf(e);
  return c ? c.summary : (e as Error)?.message ?? String(e);
}

export function timingOnly(t: SideTiming): Timing {
  return { median: t.median, samples: t.samples };
}

/** Medians of each step, rounded, e.g. { init: 0.1, snapshot: 2.3, 'send|receive': 5.1 }. */
export function stepMedians(t: SideTiming): Record<string, number> {
  return Object.fromEntries(Object.entries(t.steps).map(([k, v]) => [k, Math.round(v.median * 1000) / 1000]));
}

export function describeSteps(t: SideTiming): string {
  return Object.entries(t.steps)
    .map(([k, v]) => `${k} ${v.median.toFixed(2)} s`)
    .join(', ');
}

export interface RatioCaseInput {
  name: string;
  ferry: SideTiming | undefined;
  peer: SideTiming | undefined;
  peerTool: string;
  budget?: Budget;
  budgetId?: string;
  note?: string;
  detail?: Record<string, unknown>;
  verification?: Verification;
}

/**
 * A ferry/peer time-ratio case from two sides of an alternation. ferry
 * failed: a miss carrying the error. The peer failed: unavailable.
 */
export function ratioCase(c: RatioCaseInput): CaseResult {
  const base: CaseResult = {
    name: c.name,
    value: NaN,
    unit: 'ratio',
    budget: c.budget,
    budgetId: c.budgetId,
    detail: { ...c.detail, ...(c.verification ? { verification: c.verification } : {}) },
  };
  if (c.ferry?.error !== undefined) {
    return { ...base, invalid: `ferry failed: ${errorSummary(c.ferry.error)}`, note: c.note, ferry: c.ferry.samples.length ? timingOnly(c.ferry) : undefined };
  }
  if (!c.ferry || !c.peer || c.peer.error !== undefined || !c.peer.samples.length) {
    return { ...base, unavailable: c.peer?.error !== undefined ? `peer failed: ${errorSummary(c.peer.error)}` : 'no peer timing', note: c.note };
  }
  const out: CaseResult = {
    ...base,
    ferry: timingOnly(c.ferry),
    peer: { ...timingOnly(c.peer), tool: c.peerTool },
    value: c.ferry.median / c.peer.median,
    note: c.note,
  };
  if (c.verification && !c.verification.ok) out.invalid = `received tree differs from the source (${c.verification.text})`;
  return out;
}

/**
 * When ferry fails while a suite sets up (an initial full send), nothing of
 * ferry's can be measured: one invalid case per budget the suite measures,
 * carrying the error. Anything but a ferry failure is rethrown (a crash).
 */
export function ferrySetupFailure(e: unknown, what: string, budgets: ReadonlyArray<{ name: string; budgetId: string; budget: Budget; unit: CaseResult['unit'] }>): CaseResult[] {
  const c = commandErrorOf(e);
  if (!c || c.tool !== 'ferry') throw e;
  return budgets.map((b) => ({ name: b.name, value: NaN, unit: b.unit, budget: b.budget, budgetId: b.budgetId, invalid: `ferry failed during ${what}: ${c.summary}` }));
}

export const fmtMB = (bytes: number) => `${(bytes / 1e6).toFixed(bytes < 10e6 ? 2 : 1)} MB`;
export const fmtGB = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

/** "65,204 entries (56,000 files, 0.80 GB)" */
export function describeTree(s: TreeStats): string {
  return `${(s.files + s.dirs + s.symlinks + s.other).toLocaleString('en-US')} entries (${s.files.toLocaleString('en-US')} files, ${fmtGB(s.bytes)})`;
}

