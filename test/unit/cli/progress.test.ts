/** Progress renderers: formatting, NDJSON throttling that never loses the last event, plain lines per phase. */
import { Writable } from 'node:stream';
import { createProgress, describeSummary, humanBytes, humanSeconds, rateAndEta } from '../../../src/cli/progress';
import type { SyncEvent, SyncSummary } from '../../../src/replicate/sync';

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(c, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  return { stream, text: () => out };
}

const progress = (streamBytes: number, seconds: number, extra: Partial<Extract<SyncEvent, { event: 'progress' }>> = {}): SyncEvent => ({
  event: 'progress',
  snapshot: 's1',
  streamBytes,
  totalBytes: 1000,
  wireBytes: streamBytes,
  resumedFromByte: 0,
  seconds,
  ...extra,
});

const summary: SyncSummary = {
  volume: '/v',
  snapshot: 's2',
  parent: 's1',
  streamBytes: 3 * 1024 * 1024,
  wireBytes: 1024,
  resumedFromByte: 2048,
  seconds: 1.5,
  target: 'nas:/t',
  warnings: ['w1'],
  transfers: [{ snapshot: 's2', parent: 's1', streamBytes: 3 * 1024 * 1024, wireBytes: 1024, resumedFromByte: 2048, seconds: 1.25 }],
};

test('formatting', () => {
  expect(humanBytes(0)).toBe('0 B');
  expect(humanBytes(1536)).toBe('1.5 KiB');
  expect(humanBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
  expect(humanSeconds(59.4)).toBe('59s');
  expect(humanSeconds(61)).toBe('1m01s');
  expect(humanSeconds(3 * 3600 + 120)).toBe('3h02m');
  expect(humanSeconds(Infinity)).toBe('--');
  // Rate counts only what this run sent (not a resumed prefix); ETA from what is left.
  const r = rateAndEta(progress(600, 2, { resumedFromByte: 200 }) as Extract<SyncEvent, { event: 'progress' }>);
  expect(r.rate).toBe(200);
  expect(r.eta).toBe(2);
  expect(rateAndEta(progress(0, 0) as Extract<SyncEvent, { event: 'progress' }>).eta).toBe(Infinity);
  expect(describeSummary(summary)).toBe('/v@s2 -> nas:/t (incremental from s1, resumed at 2.0 KiB): 3.0 MiB stream, 1.0 KiB on the wire, 1.3s\n');
  expect(describeSummary({ ...summary, transfers: [] })).toBe('/v@s2 is already in nas:/t; nothing sent\n');
});

test('json: throttled progress, but the last one before any other event is always written', () => {
  const out = sink();
  const r = createProgress('json', out.stream, sink().stream);
  r.onEvent({ event: 'phase', phase: 'send', message: 'sending' });
  r.onEvent(progress(10, 0.1));
  r.onEvent(progress(20, 0.2)); // within a second: held back
  r.onEvent(progress(30, 0.3)); // replaces the held one
  r.onEvent({ event: 'transfer', snapshot: 's1', parent: null, streamBytes: 30, wireBytes: 30, resumedFromByte: 0, seconds: 0.3 });
  r.summary(summary);
  const ev = out
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(ev.map((e) => [e.event, e.streamBytes])).toEqual([
    ['phase', undefined],
    ['progress', 10],
    ['progress', 30],
    ['transfer', 30],
    ['summary', summary.streamBytes],
  ]);
  expect(ev[2]).toMatchObject({ bytesPerSecond: 100, etaSeconds: 10 });
  expect(ev[4]).toEqual({ event: 'summary', ...summary });
});

test('plain: one stderr line per phase and warning, the summary on stdout', () => {
  const out = sink();
  const err = sink();
  const r = createProgress('plain', out.stream, err.stream);
  r.onEvent({ event: 'phase', phase: 'connect', message: 'connecting to nas' });
  r.onEvent(progress(10, 1));
  r.onEvent({ event: 'warning', message: 'careful' });
  r.onEvent({ event: 'phase', phase: 'done', message: 'done' });
  r.summary(summary);
  expect(err.text()).toBe('ferry: connecting to nas\nferry: warning: careful\n');
  expect(out.text()).toBe(describeSummary(summary));
});
