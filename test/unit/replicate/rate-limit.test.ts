/** --bwlimit: RATE syntax and the token bucket's delays (no clock: time is passed in). */
import { parseRate, TokenBucket } from '../../../src/replicate/rate-limit';
import { throttle } from '../../../src/replicate/sync';
import { MAX_DATA } from '../../../src/transport/control';

test('parseRate', () => {
  expect(parseRate('1000')).toBe(1000);
  expect(parseRate('50M')).toBe(50 * 1024 * 1024);
  expect(parseRate('800k')).toBe(800 * 1024);
  expect(parseRate('1.5G')).toBe(1.5 * 1024 ** 3);
  expect(parseRate('10MiB')).toBe(10 * 1024 * 1024);
  expect(parseRate('2M/s')).toBe(2 * 1024 * 1024);
  for (const bad of ['', '0', 'fast', '-5M', '5X', '1e9']) expect(() => parseRate(bad)).toThrow(expect.objectContaining({ code: 'USAGE' }));
});

test('a burst is free, then the long-run rate is exact however bytes are chunked', () => {
  const rate = 1024 * 1024; // 1 MiB/s
  const b = new TokenBucket(rate);
  expect(b.burst).toBe(Math.max(MAX_DATA, rate / 4));
  let now = 0;
  expect(b.take(b.burst, now)).toBe(0);
  // Then every byte costs 1/rate seconds: send 10 MiB in 64 KiB chunks, sleeping as told.
  let slept = 0;
  for (let sent = 0; sent < 10 * rate; sent += 65536) {
    const d = b.take(65536, now);
    slept += d;
    now += d;
  }
  expect(slept / 1000).toBeCloseTo(10, 3);
});

test('idle time refills at most one burst', () => {
  const b = new TokenBucket(1000 * 1024); // burst 256000
  b.take(b.burst, 0);
  // A long pause earns only `burst` tokens.
  expect(b.take(b.burst, 3_600_000)).toBe(0);
  expect(b.take(1024, 3_600_000)).toBeCloseTo((1024 * 1000) / (1000 * 1024), 6);
});

test('throttle really sleeps: 5 frames at 4 frames/s with a one-frame burst take about 1 s', async () => {
  const b = new TokenBucket(4 * MAX_DATA);
  expect(b.burst).toBe(MAX_DATA);
  async function* src() {
    for (let i = 0; i < 5; i++) yield Buffer.alloc(MAX_DATA);
  }
  const t0 = Date.now();
  let n = 0;
  for await (const c of throttle(src(), b)) n += c.length;
  const ms = Date.now() - t0;
  expect(n).toBe(5 * MAX_DATA);
  expect(ms).toBeGreaterThanOrEqual(950);
  expect(ms).toBeLessThan(5000);
});

test('throttle stops sleeping when aborted', async () => {
  const b = new TokenBucket(1024);
  const ac = new AbortController();
  async function* src() {
    for (;;) yield Buffer.alloc(MAX_DATA);
  }
  setTimeout(() => ac.abort(), 50);
  const t0 = Date.now();
  await expect(
    (async () => {
      for await (const c of throttle(src(), b, ac.signal)) void c;
    })(),
  ).rejects.toMatchObject({ code: 'TRANSPORT_REMOTE_FAILED', summary: 'sync interrupted' });
  expect(Date.now() - t0).toBeLessThan(2000);
});
