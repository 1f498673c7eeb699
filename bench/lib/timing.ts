/**
 * Timing: medians, and ferry-vs-peer runs interleaved ABAB so that drift in
 * the machine (page cache, thermal, background work) hits both sides alike.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Timing } from './suite';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function timingOf(samples: number[]): Timing {
  return { median: median(samples), samples };
}

/** Seconds since `start` (from process.hrtime.bigint()). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** One side of a comparison: `run` is timed; `before`/`after` (fresh target, drop caches) are not. */
export interface Side {
  run: () => Promise<void> | void;
  before?: () => Promise<void> | void;
  after?: () => Promise<void> | void;
}

export interface TimeItOptions {
  ferry: Side | (() => Promise<void> | void);
  peer: Side | (() => Promise<void> | void);
  reps: number;
  /** Called after every sample, e.g. to log progress. */
  onSample?: (side: 'ferry' | 'peer', rep: number, seconds: number) => void;
}

export interface TimeItResult {
  ferry: Timing;
  peer: Timing;
  /** median(ferry) / median(peer): below 1 means ferry is faster. */
  ratio: number;
}

function asSide(s: TimeItOptions['ferry']): Side {
  return typeof s === 'function' ? { run: s } : s;
}

/** Time one run of `side`, excluding its before/after hooks. */
export async function timeOnce(side: Side): Promise<number> {
  await side.before?.();
  const t0 = process.hrtime.bigint();
  await side.run();
  const s = secondsSince(t0);
  await side.after?.();
  return s;
}

/** Run ferry, peer, ferry, peer, ... `reps` times each and report the medians. */
export async function timeIt(opts: TimeItOptions): Promise<TimeItResult> {
  if (!Number.isInteger(opts.reps) || opts.reps < 1) throw new RangeError(`reps must be a positive integer, got ${opts.reps}`);
  const ferry = asSide(opts.ferry);
  const peer = asSide(opts.peer);
  const fs: number[] = [];
  const ps: number[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    const f = await timeOnce(ferry);
    fs.push(f);
    opts.onSample?.('ferry', rep, f);
    const p = await timeOnce(peer);
    ps.push(p);
    opts.onSample?.('peer', rep, p);
  }
  const ferryT = timingOf(fs);
  const peerT = timingOf(ps);
  return { ferry: ferryT, peer: peerT, ratio: ferryT.median / peerT.median };
}

let gcFn: (() => void) | undefined | null;

/**
 * Collect garbage before a timed in-process section, so that it does not pay
 * for garbage left by the previous one (its own garbage still counts). A
 * no-op if V8 refuses to expose gc.
 */
export function settleHeap(): void {
  if (gcFn === undefined) {
    gcFn = null;
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

// ---------------------------------------------------------------------------
// Several sides in alternation, with the steps inside each timed run.

/** Records how long the named steps inside one timed run take. */
export interface StepClock {
  /** Time `fn` as step `name` (the run's total still counts everything). */
  step<T>(name: string, fn: () => Promise<T> | T): Promise<T>;
  /** Record a number measured elsewhere (seconds), e.g. a flush timed in `after`. */
  record(name: string, seconds: number): void;
}

export interface NamedSide {
  name: string;
  /** Untimed, right before the run: reset state, drop caches. */
  before?: (rep: number) => Promise<void> | void;
  /** Timed. */
  run: (clock: StepClock, rep: number) => Promise<void> | void;
  /** Untimed, right after the run: collect sizes, time a flush. */
  after?: (clock: StepClock, rep: number) => Promise<void> | void;
}

export interface SideTiming extends Timing {
  /** Per step: the samples in rep order and their median. */
  steps: Record<string, Timing>;
  /** Set when the side failed (it is not run again in later reps); the error itself. */
  error?: unknown;
}

export interface AlternateOptions {
  sides: NamedSide[];
  reps: number;
  /** Untimed, once at the start of every rep, before any side (e.g. mutate the source trees). */
  beforeRep?: (rep: number) => Promise<void> | void;
  onSample?: (side: string, rep: number, seconds: number, steps: Record<string, number>) => void;
  /**
   * Which errors fail only their side (recorded, side dropped from later
   * reps, the others go on); anything else is rethrown. Default: none.
   */
  sideFailure?: (e: unknown) => boolean;
  onFailure?: (side: string, rep: number, e: unknown) => void;
}

/**
 * Run every side once per rep, always in the given order (A B C A B C ...),
 * so drift in the machine hits all sides alike. Returns each side's total
 * and per-step timings.
 */
export async function alternate(opts: AlternateOptions): Promise<Record<string, SideTiming>> {
  if (!Number.isInteger(opts.reps) || opts.reps < 1) throw new RangeError(`reps must be a positive integer, got ${opts.reps}`);
  const names = new Set<string>();
  for (const s of opts.sides) {
    if (names.has(s.name)) throw new Error(`duplicate side name ${s.name}`);
    names.add(s.name);
  }
  const totals = new Map<string, number[]>(opts.sides.map((s) => [s.name, []]));
  const steps = new Map<string, Map<string, number[]>>(opts.sides.map((s) => [s.name, new Map()]));
  const failed = new Map<string, unknown>();
  for (let rep = 0; rep < opts.reps; rep++) {
    await opts.beforeRep?.(rep);
    for (const side of opts.sides) {
      if (failed.has(side.name)) continue;
      const mine = steps.get(side.name)!;
      const got: Record<string, number> = {};
      const clock: StepClock = {
        async step(name, fn) {
          const t0 = process.hrtime.bigint();
          try {
            return await fn();
          } finally {
            got[name] = (got[name] ?? 0) + secondsSince(t0);
          }
        },
        record(name, seconds) {
          got[name] = (got[name] ?? 0) + seconds;
        },
      };
      let total: number;
      try {
        await side.before?.(rep);
        const t0 = process.hrtime.bigint();
        await side.run(clock, rep);
        total = secondsSince(t0);
        await side.after?.(clock, rep);
      } catch (e) {
        if (!opts.sideFailure?.(e)) throw e;
        failed.set(side.name, e);
        opts.onFailure?.(side.name, rep, e);
        continue;
      }
      totals.get(side.name)!.push(total);
      for (const [k, v] of Object.entries(got)) {
        if (!mine.has(k)) mine.set(k, []);
        mine.get(k)!.push(v);
      }
      opts.onSample?.(side.name, rep, total, got);
    }
  }
  const out: Record<string, SideTiming> = {};
  for (const s of opts.sides) {
    const st: Record<string, Timing> = {};
    for (const [k, v] of steps.get(s.name)!) st[k] = timingOf(v);
    out[s.name] = { ...timingOf(totals.get(s.name)!), steps: st, ...(failed.has(s.name) ? { error: failed.get(s.name) } : {}) };
  }
  return out;
}
