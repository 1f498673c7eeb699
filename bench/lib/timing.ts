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
