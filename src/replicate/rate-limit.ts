/**
 * `--bwlimit`: a token bucket over wire bytes, and the RATE syntax.
 *
 * Owns: how long to wait before sending n bytes so that the average rate
 * stays at or below the limit, with a burst of at most a quarter second of
 * traffic (at least one data frame). Never: sleeps itself (the caller does,
 * so the arithmetic is testable without a clock).
 */
import { FerryError } from '../errors';
import { MAX_DATA } from '../transport/control';

/** Parse `50M`, `1.5G`, `800k`, `1000000` (bytes per second; K/M/G/T are powers of 1024). */
export function parseRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?B)?(?:\/s)?$/.exec(s.trim());
  const unit = m ? { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'] : undefined;
  const rate = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isFinite(rate) || rate < 1) {
    throw new FerryError('USAGE', `invalid rate "${s}"`, { hint: 'bytes per second, with an optional K, M, G or T suffix (powers of 1024), e.g. 50M' });
  }
  return rate;
}

export class TokenBucket {
  private tokens: number;
  private last: number | undefined;
  readonly burst: number;

  /** `rate` in bytes per second. */
  constructor(readonly rate: number) {
    this.burst = Math.max(MAX_DATA, Math.floor(rate / 4));
    this.tokens = this.burst;
  }

  /**
   * Account for sending n bytes at time `nowMs`; returns the milliseconds to
   * wait before sending them. Debt carries over, so the long-run rate is
   * exactly `rate` however the bytes are chunked.
   */
  take(n: number, nowMs: number): number {
    if (this.last !== undefined) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.rate) / 1000);
    this.last = nowMs;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }
}
