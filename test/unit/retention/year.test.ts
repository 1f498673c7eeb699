/**
 * A simulated year of nightly runs (injected clock, pure retention and
 * protection code): the source keeps exactly what the policy says, and the
 * incremental chain to every target is never broken — not even for a
 * target that is unreachable for six weeks and prunes harder than the source.
 */
import { applyRetention, KEEP_ALL, RetentionPolicy } from '../../../src/retention/policy';
import { newestCommon, ProtectionSet, reasons, SourceSnap, TargetSnap } from '../../../src/retention/protect';

const D = 86_400_000;
const P = (o: Partial<RetentionPolicy>): RetentionPolicy => ({ ...KEEP_ALL, keepMin: { kind: 'none' }, timezone: 'utc', weekStart: 1, dayStart: 0, ...o });

interface Src extends SourceSnap {
  time: Date;
}
interface Tgt extends TargetSnap {
  time: Date;
  parent: string | null;
}

const SOURCE_POLICY = P({ keepMin: { kind: 'age', ms: 1 * D }, daily: 7, weekly: 4, monthly: 6 });
const TARGETS: Record<string, { policy: RetentionPolicy; offline: (day: number) => boolean }> = {
  '/mnt/usb': { policy: P({ daily: 30, weekly: 8, monthly: 12, yearly: 5 }), offline: () => false },
  // Off for six weeks in spring, and it keeps only 3 dailies: its chain hangs on protections alone.
  'nas:/pool/x': { policy: P({ daily: 3 }), offline: (d) => d >= 100 && d < 142 },
};

function simulate(days: number) {
  let source: Src[] = [];
  const targets = new Map<string, Tgt[]>(Object.keys(TARGETS).map((k) => [k, []]));
  const lastSent = new Map<string, string>(); // dest -> source uuid (what ferry run records)
  const t0 = Date.parse('2026-01-01T03:00:00Z');
  const sends: Array<{ day: number; dest: string; parent: string | null }> = [];
  for (let day = 0; day < days; day++) {
    const now = new Date(t0 + day * D);
    const name = now.toISOString().slice(0, 10);
    source.push({ name, uuid: `u-${name}`, order: BigInt(day + 1), time: now });

    // send to every reachable target, incremental from the newest common snapshot
    for (const [dest, cfg] of Object.entries(TARGETS)) {
      if (cfg.offline(day)) continue;
      const t = targets.get(dest)!;
      const common = newestCommon(source, t);
      if (t.length > 0) {
        // THE property: once a target has anything, it always still shares a snapshot with the source.
        expect({ day, dest, common: common?.source.name ?? null }).toEqual({ day, dest, common: expect.any(String) });
      }
      t.push({ name, receivedUuid: `u-${name}`, time: now, parent: common?.source.name ?? null });
      sends.push({ day, dest, parent: common?.source.name ?? null });
      lastSent.set(dest, `u-${name}`);
    }

    // prune targets (each protects its newest snapshot in common with the source)
    for (const [dest, cfg] of Object.entries(TARGETS)) {
      if (cfg.offline(day)) continue;
      const t = targets.get(dest)!;
      const protect = new ProtectionSet();
      const c = newestCommon(source, t);
      if (c) protect.add(c.target.name, reasons.parentForNextSend('/srv/data'));
      const r = applyRetention(t, now, cfg.policy, protect.map);
      targets.set(dest, t.filter((x) => r.keep.includes(x.name)));
    }

    // prune the source: listings for reachable targets, the last-sent record for the others
    const protect = new ProtectionSet();
    for (const [dest, cfg] of Object.entries(TARGETS)) {
      if (!cfg.offline(day)) {
        const c = newestCommon(source, targets.get(dest)!);
        if (c) protect.add(c.source.name, reasons.parentForTarget(dest));
      } else {
        const s = source.find((x) => x.uuid === lastSent.get(dest));
        if (s) protect.add(s.name, reasons.parentLastKnown(dest));
      }
    }
    const r = applyRetention(source, now, SOURCE_POLICY, protect.map);
    source = source.filter((s) => r.keep.includes(s.name));
  }
  return { source, targets, sends };
}

test('a year of nightly runs keeps exactly the expected source snapshots and never breaks a chain', () => {
  const { source, targets, sends } = simulate(365);
  // now = 2026-12-31 03:00 UTC (a thursday). keep_min 1d: only today's (yesterday's is exactly 1d old).
  // daily 7: 12-25 .. 12-31. weekly 4 (weeks from monday): 12-28, 12-21, 12-14, 12-07.
  // monthly 6: the first weekly snapshot of each month (2026-12-01 is a tuesday, so
  // december's is monday 12-07): 12-07, 11-02, 10-05, 09-07, 08-03, 07-06.
  expect(source.map((s) => s.name)).toEqual([
    '2026-07-06',
    '2026-08-03',
    '2026-09-07',
    '2026-10-05',
    '2026-11-02',
    '2026-12-07',
    '2026-12-14',
    '2026-12-21',
    '2026-12-25',
    '2026-12-26',
    '2026-12-27',
    '2026-12-28',
    '2026-12-29',
    '2026-12-30',
    '2026-12-31',
  ]);
  // Every send after the first was incremental.
  for (const dest of Object.keys(TARGETS)) {
    const s = sends.filter((x) => x.dest === dest);
    expect(s[0].parent).toBeNull();
    expect(s.slice(1).every((x) => x.parent !== null)).toBe(true);
  }
  // The NAS came back on day 142 and continued from what it had before day 100 (04-10),
  // which the source kept only because it was that target's parent.
  const back = sends.find((x) => x.dest === 'nas:/pool/x' && x.day === 142)!;
  expect(back.parent).toBe('2026-04-10');
  // The NAS keeps 3 dailies (12-29 .. 12-31); the USB disk its dailies, weeklies, monthlies and a yearly.
  expect(targets.get('nas:/pool/x')!.map((t) => t.name)).toEqual(['2026-12-29', '2026-12-30', '2026-12-31']);
  const usb = targets.get('/mnt/usb')!.map((t) => t.name);
  expect(usb).toContain('2026-01-01'); // yearly 2026 (the first monthly of the year)
  expect(usb).toContain('2026-02-02'); // monthly 2026-02 (first monday of february)
  expect(usb.filter((n) => n >= '2026-12-02')).toHaveLength(30);
});

test('daily application is stable: applying the policy once to all 365 snapshots keeps the same set', () => {
  const { source } = simulate(365);
  const all = Array.from({ length: 365 }, (_, d) => {
    const time = new Date(Date.parse('2026-01-01T03:00:00Z') + d * D);
    return { name: time.toISOString().slice(0, 10), time };
  });
  const once = applyRetention(all, all[364].time, SOURCE_POLICY).keep;
  expect(once).toEqual(source.map((s) => s.name));
});

test('without its protection, the offline target WOULD lose its parent (the test can fail)', () => {
  // Same source policy, no protections: the snapshot the NAS needs on day 142 is gone.
  const t0 = Date.parse('2026-01-01T03:00:00Z');
  let source: Array<{ name: string; time: Date }> = [];
  for (let day = 0; day < 142; day++) {
    const time = new Date(t0 + day * D);
    source.push({ name: time.toISOString().slice(0, 10), time });
    const r = applyRetention(source, time, SOURCE_POLICY);
    source = source.filter((s) => r.keep.includes(s.name));
  }
  expect(source.map((s) => s.name)).not.toContain('2026-04-10');
});
