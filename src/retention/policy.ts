/**
 * Retention as a pure function (restic's `forget --keep-*`, btrbk's
 * schedule): given snapshots with their times, the current time, a policy
 * and the snapshots that must not go (with why), decide keep or remove for
 * each one, with every reason.
 *
 * Owns: the rules below. Never: reads a clock, the filesystem or a
 * catalog, and never removes anything (src/job/ applies the decisions).
 *
 * Rules (btrbk semantics; docs/jobs.md says the same in prose):
 * - `keep_min <duration>` keeps every snapshot younger than the duration
 *   (now - time < duration); `all` keeps everything; `latest` only the newest.
 * - Buckets keep the FIRST (oldest) snapshot of a period, for the newest N
 *   calendar periods counted back from now, the current one included:
 *   `daily: 7` is today and the 6 days before it. A period without a
 *   snapshot still counts (btrbk: "how many days back").
 *   - hourly: first snapshot of each wall-clock hour;
 *   - daily: first snapshot of each day; a day begins at `dayStart`;
 *   - weekly: first snapshot of each week; a week begins on `weekStart`;
 *   - monthly: the first weekly snapshot whose day lies in the month;
 *   - yearly: the first monthly snapshot of the year.
 *   So weekly, monthly and yearly snapshots coincide rather than pile up.
 * - Always kept: the latest snapshot (highest time, then order), and every
 *   snapshot in `protect` (the parent a target still needs, holds of
 *   interrupted transfers) with the reasons given there.
 * - A snapshot dated after `now` (clock skew) is kept and says so.
 *
 * Invariant: every input snapshot gets exactly one decision; a kept one has
 * at least one reason, a removed one exactly one explaining why.
 */
import { FerryError } from '../errors';
import { formatDuration } from '../config/units';
import { Anchors, WEEKDAYS, Weekday, dayText, hourText, monthText, periodsOf } from './calendar';

export type KeepMin = { kind: 'none' } | { kind: 'all' } | { kind: 'latest' } | { kind: 'age'; ms: number };

export interface RetentionPolicy extends Anchors {
  keepMin: KeepMin;
  /** Numbers of periods; Infinity means every period (`all`). */
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export const BUCKETS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Bucket = (typeof BUCKETS)[number];

/** What ferry does without a retention section: keep everything (btrbk's default). */
export const KEEP_ALL: RetentionPolicy = {
  keepMin: { kind: 'all' },
  hourly: 0,
  daily: 0,
  weekly: 0,
  monthly: 0,
  yearly: 0,
  weekStart: 1,
  dayStart: 0,
  timezone: 'local',
};

export interface RetentionSnapshot {
  name: string;
  time: Date;
  /** Tie-break for equal times (transid / ctransid); higher is newer. */
  order?: bigint;
}

/** Snapshot name → reasons it must be kept whatever the policy says. */
export type Protections = ReadonlyMap<string, readonly string[]>;

export interface RetentionDecision {
  name: string;
  time: Date;
  action: 'keep' | 'remove';
  reasons: string[];
}

export interface RetentionResult {
  /** Oldest first. */
  decisions: RetentionDecision[];
  keep: string[];
  remove: string[];
}

export function keepsEverything(p: RetentionPolicy): boolean {
  return p.keepMin.kind === 'all';
}

/** `keep_min 1d, daily 7, weekly 4 (weeks from monday, days from 00:00 local)`. */
export function describePolicy(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.keepMin.kind === 'all') parts.push('keep_min all');
  else if (p.keepMin.kind === 'latest') parts.push('keep_min latest');
  else if (p.keepMin.kind === 'age') parts.push(`keep_min ${formatDuration(p.keepMin.ms)}`);
  for (const b of BUCKETS) if (p[b] > 0) parts.push(`${b} ${p[b] === Infinity ? 'all' : p[b]}`);
  if (parts.length === 0) parts.push('latest only');
  return parts.join(', ');
}

/** Throws RETENTION_INVALID when a policy built by code (not the config loader) is out of range. */
export function checkPolicy(p: RetentionPolicy): void {
  const bad: string[] = [];
  for (const b of BUCKETS) {
    const n = p[b];
    if (!(n === Infinity || (Number.isInteger(n) && n >= 0))) bad.push(`${b} must be a whole number >= 0 or all, got ${n}`);
  }
  if (!Number.isInteger(p.dayStart) || p.dayStart < 0 || p.dayStart > 23) bad.push(`day_start must be an hour 0-23, got ${p.dayStart}`);
  if (!WEEKDAYS[p.weekStart]) bad.push(`week_start must be a weekday, got ${p.weekStart}`);
  if (p.keepMin.kind === 'age' && !(p.keepMin.ms > 0)) bad.push('keep_min must be longer than zero');
  if (bad.length) throw new FerryError('RETENTION_INVALID', `invalid retention policy: ${bad.join('; ')}`);
}

function newerFirst(a: RetentionSnapshot, b: RetentionSnapshot): number {
  const d = a.time.getTime() - b.time.getTime();
  if (d !== 0) return d;
  const x = a.order ?? 0n;
  const y = b.order ?? 0n;
  if (x !== y) return x < y ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Decide keep or remove for every snapshot. Pure. */
export function applyRetention(
  snapshots: readonly RetentionSnapshot[],
  now: Date,
  policy: RetentionPolicy,
  protect: Protections = new Map(),
): RetentionResult {
  const sorted = [...snapshots].sort(newerFirst); // oldest first
  const names = new Set<string>();
  for (const s of sorted) {
    if (names.has(s.name)) throw new FerryError('INTERNAL', `retention: duplicate snapshot name ${JSON.stringify(s.name)}`);
    names.add(s.name);
  }
  const reasons = new Map<string, string[]>(sorted.map((s) => [s.name, []]));
  const add = (name: string, why: string) => reasons.get(name)!.push(why);
  const nowMs = now.getTime();
  const at = periodsOf(now, policy);

  for (const s of sorted) {
    const age = nowMs - s.time.getTime();
    if (age < 0) add(s.name, 'dated after now (clock skew)');
    if (policy.keepMin.kind === 'all') add(s.name, 'keep_min all');
    else if (policy.keepMin.kind === 'age' && age < policy.keepMin.ms) add(s.name, `keep_min ${formatDuration(policy.keepMin.ms)}`);
  }

  // Representatives: the first snapshot of each period, oldest first.
  const per = sorted.map((s) => ({ s, p: periodsOf(s.time, policy), past: s.time.getTime() <= nowMs }));
  const firstOf = <T>(items: T[], key: (x: T) => number): T[] => {
    const seen = new Set<number>();
    const out: T[] = [];
    for (const x of items) {
      const k = key(x);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(x);
      }
    }
    return out;
  };
  const past = per.filter((x) => x.past);
  const hourReps = firstOf(past, (x) => x.p.hour);
  const dayReps = firstOf(past, (x) => x.p.day);
  const weekReps = firstOf(past, (x) => x.p.week);
  const monthReps = firstOf(weekReps, (x) => x.p.month);
  const yearReps = firstOf(monthReps, (x) => x.p.year);

  for (const x of hourReps) if (at.hour - x.p.hour < policy.hourly) add(x.s.name, `hourly ${hourText(x.p.hour)}`);
  for (const x of dayReps) if (at.day - x.p.day < policy.daily) add(x.s.name, `daily ${dayText(x.p.day)}`);
  for (const x of weekReps) if ((at.week - x.p.week) / 7 < policy.weekly) add(x.s.name, `weekly ${dayText(x.p.week)}`);
  for (const x of monthReps) if (at.month - x.p.month < policy.monthly) add(x.s.name, `monthly ${monthText(x.p.month)}`);
  for (const x of yearReps) if (at.year - x.p.year < policy.yearly) add(x.s.name, `yearly ${x.p.year}`);

  if (sorted.length) {
    const latest = sorted[sorted.length - 1].name;
    add(latest, policy.keepMin.kind === 'latest' ? 'keep_min latest' : 'latest');
  }
  for (const [name, whys] of protect) if (reasons.has(name)) for (const w of whys) add(name, w);

  const decisions: RetentionDecision[] = [];
  const rules = `matches no rule of ${describePolicy(policy)}`;
  for (const s of sorted) {
    const r = reasons.get(s.name)!;
    decisions.push(r.length ? { name: s.name, time: s.time, action: 'keep', reasons: r } : { name: s.name, time: s.time, action: 'remove', reasons: [rules] });
  }
  return {
    decisions,
    keep: decisions.filter((d) => d.action === 'keep').map((d) => d.name),
    remove: decisions.filter((d) => d.action === 'remove').map((d) => d.name),
  };
}

/**
 * For chains where a snapshot cannot be restored without its ancestors
 * (stream-file targets: an incremental stream needs its parent's stream),
 * keep every ancestor of every kept snapshot. `parentOf` maps a name to its
 * parent's name (null or missing: a full stream). Pure; returns a new result.
 */
export function keepAncestors(r: RetentionResult, parentOf: ReadonlyMap<string, string | null>): RetentionResult {
  const byName = new Map(r.decisions.map((d) => [d.name, { ...d, reasons: [...d.reasons] }]));
  for (const d of r.decisions) {
    if (d.action !== 'keep') continue;
    let p = parentOf.get(d.name) ?? null;
    const seen = new Set<string>([d.name]);
    while (p !== null && !seen.has(p)) {
      seen.add(p);
      const pd = byName.get(p);
      if (!pd) break;
      if (pd.action === 'remove') {
        pd.action = 'keep';
        pd.reasons = [];
      }
      const why = `ancestor of kept stream ${d.name}`;
      if (!pd.reasons.some((x) => x.startsWith('ancestor of kept stream'))) pd.reasons.push(why);
      p = parentOf.get(p) ?? null;
    }
  }
  const decisions = r.decisions.map((d) => byName.get(d.name)!);
  return {
    decisions,
    keep: decisions.filter((d) => d.action === 'keep').map((d) => d.name),
    remove: decisions.filter((d) => d.action === 'remove').map((d) => d.name),
  };
}

export function weekdayName(w: Weekday): string {
  return WEEKDAYS[w];
}
