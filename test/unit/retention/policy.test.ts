/** Retention rules (src/retention/policy.ts) with an injected clock: btrbk semantics, reasons, protections. */
import { applyRetention, checkPolicy, describePolicy, keepAncestors, KEEP_ALL, RetentionPolicy, RetentionSnapshot } from '../../../src/retention/policy';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { dayText, periodsOf } from '../../../src/retention/calendar';

const P = (o: Partial<RetentionPolicy>): RetentionPolicy => ({ ...KEEP_ALL, keepMin: { kind: 'none' }, timezone: 'utc', weekStart: 1, dayStart: 0, ...o });
const at = (iso: string) => new Date(iso);
const snap = (iso: string, name = iso): RetentionSnapshot => ({ name, time: at(iso) });
const H = 3_600_000;
const D = 24 * H;

function kept(snaps: RetentionSnapshot[], now: string, p: RetentionPolicy, protect = new Map<string, string[]>()): string[] {
  return applyRetention(snaps, at(now), p, protect).keep;
}

/** One snapshot at `hh:mm` UTC every day from `from` for `days` days. */
function daily(from: string, days: number, hhmm = '03:00'): RetentionSnapshot[] {
  const t0 = Date.parse(`${from}T${hhmm}:00Z`);
  return Array.from({ length: days }, (_, i) => {
    const iso = new Date(t0 + i * D).toISOString();
    return { name: iso.slice(0, 10), time: new Date(iso) };
  });
}

describe('keep_min', () => {
  test('keeps every snapshot strictly younger than the duration, whatever the buckets say', () => {
    const snaps = [snap('2026-03-01T00:00:00Z', 'a'), snap('2026-03-01T12:00:00Z', 'b'), snap('2026-03-01T23:00:00Z', 'c'), snap('2026-03-02T00:00:00Z', 'd')];
    const r = applyRetention(snaps, at('2026-03-02T12:00:00Z'), P({ keepMin: { kind: 'age', ms: 1 * D } }));
    // a is exactly 36 h old, b exactly 24 h: not younger than 1d.
    expect(r.remove).toEqual(['a', 'b']);
    expect(r.decisions.find((d) => d.name === 'c')!.reasons).toEqual(['keep_min 1d']);
    expect(r.decisions.find((d) => d.name === 'd')!.reasons).toEqual(['keep_min 1d', 'latest']);
  });

  test('all keeps everything; latest keeps only the newest', () => {
    const snaps = daily('2026-01-01', 10);
    expect(kept(snaps, '2026-02-01T00:00:00Z', P({ keepMin: { kind: 'all' } }))).toHaveLength(10);
    const r = applyRetention(snaps, at('2026-02-01T00:00:00Z'), P({ keepMin: { kind: 'latest' } }));
    expect(r.keep).toEqual(['2026-01-10']);
    expect(r.decisions[9].reasons).toEqual(['keep_min latest']);
    expect(r.decisions[0].reasons).toEqual(['matches no rule of keep_min latest']);
  });
});

describe('buckets keep the FIRST (oldest) snapshot of each of the newest N periods', () => {
  test('daily N counts today and the N-1 days before it; the oldest of each day wins', () => {
    const snaps = [
      snap('2026-03-08T01:00:00Z', 'd8a'),
      snap('2026-03-08T13:00:00Z', 'd8b'),
      snap('2026-03-09T05:00:00Z', 'd9a'),
      snap('2026-03-09T20:00:00Z', 'd9b'),
      snap('2026-03-10T02:00:00Z', 'd10a'),
      snap('2026-03-10T09:00:00Z', 'd10b'),
    ];
    const r = applyRetention(snaps, at('2026-03-10T10:00:00Z'), P({ daily: 2 }));
    expect(r.keep).toEqual(['d9a', 'd10a', 'd10b']); // d10b: latest
    expect(r.decisions.find((d) => d.name === 'd9a')!.reasons).toEqual(['daily 2026-03-09']);
    expect(r.decisions.find((d) => d.name === 'd10a')!.reasons).toEqual(['daily 2026-03-10']);
    expect(r.decisions.find((d) => d.name === 'd8a')!.reasons).toEqual(['matches no rule of daily 2']);
  });

  test('a day without a snapshot still counts (calendar days back from now, like btrbk)', () => {
    const snaps = [snap('2026-03-01T03:00:00Z', 'old'), snap('2026-03-05T03:00:00Z', 'mid'), snap('2026-03-10T03:00:00Z', 'new')];
    // daily 7 at 2026-03-10 covers 03-04 .. 03-10: "old" is out even though only 3 days have snapshots.
    expect(kept(snaps, '2026-03-10T04:00:00Z', P({ daily: 7 }))).toEqual(['mid', 'new']);
  });

  test('day_start moves the day boundary: 02:00 belongs to the day before when days begin at 03:00', () => {
    const snaps = [snap('2026-03-09T22:00:00Z', 'evening'), snap('2026-03-10T02:00:00Z', 'night'), snap('2026-03-10T04:00:00Z', 'morning'), snap('2026-03-10T05:00:00Z', 'later')];
    expect(kept(snaps, '2026-03-10T06:00:00Z', P({ daily: 2, dayStart: 0 }))).toEqual(['evening', 'night', 'later']);
    expect(kept(snaps, '2026-03-10T06:00:00Z', P({ daily: 2, dayStart: 3 }))).toEqual(['evening', 'morning', 'later']);
  });

  test('hourly keeps the first snapshot of each wall-clock hour', () => {
    const snaps = [snap('2026-03-10T08:10:00Z', 'a'), snap('2026-03-10T08:40:00Z', 'b'), snap('2026-03-10T09:05:00Z', 'c'), snap('2026-03-10T09:50:00Z', 'd'), snap('2026-03-10T10:15:00Z', 'e'), snap('2026-03-10T10:20:00Z', 'f')];
    const r = applyRetention(snaps, at('2026-03-10T10:30:00Z'), P({ hourly: 2 }));
    expect(r.keep).toEqual(['c', 'e', 'f']);
    expect(r.decisions.find((d) => d.name === 'c')!.reasons).toEqual(['hourly 2026-03-10T09']);
  });

  test('weekly: the week begins on week_start', () => {
    // 2026-03-01 is a sunday, 2026-03-02 a monday.
    const snaps = daily('2026-02-26', 12); // thu 02-26 .. mon 03-09
    const now = '2026-03-09T12:00:00Z';
    const mon = applyRetention(snaps, at(now), P({ weekly: 2, weekStart: 1 }));
    expect(mon.keep).toEqual(['2026-03-02', '2026-03-09']);
    expect(mon.decisions.find((d) => d.name === '2026-03-02')!.reasons).toEqual(['weekly 2026-03-02']);
    const sun = applyRetention(snaps, at(now), P({ weekly: 2, weekStart: 0 }));
    expect(sun.keep).toEqual(['2026-03-01', '2026-03-08', '2026-03-09']);
    // 3 weeks back from a sunday start reaches the partial week of thu 02-26.
    expect(kept(snaps, now, P({ weekly: 3, weekStart: 0 }))).toEqual(['2026-02-26', '2026-03-01', '2026-03-08', '2026-03-09']);
  });

  test('monthly is the first WEEKLY snapshot in a month, so it falls on week_start', () => {
    // Daily snapshots all of 2026-11 and into 2026-12. 2026-12-01 is a tuesday;
    // the week from monday 11-30 belongs to november, so december's first weekly is monday 12-07.
    const snaps = daily('2026-10-20', 60);
    const r = applyRetention(snaps, at('2026-12-18T12:00:00Z'), P({ monthly: 2, weekStart: 1 }));
    expect(r.keep).toEqual(['2026-11-02', '2026-12-07', '2026-12-18']);
    expect(r.decisions.find((d) => d.name === '2026-12-07')!.reasons).toEqual(['monthly 2026-12']);
    // With weeks from tuesday, december's first week starts on the 1st.
    expect(kept(snaps, '2026-12-18T12:00:00Z', P({ monthly: 1, weekStart: 2 }))).toEqual(['2026-12-01', '2026-12-18']);
  });

  test('yearly is the first monthly snapshot of each year', () => {
    const snaps = [...daily('2024-12-20', 30), ...daily('2025-12-25', 20)];
    // 2025-01-01 is a wednesday: its first monday-week starts 2025-01-06.
    // 2024's first monthly (12-20) is 2 years back: out. 2026-01-13 is the latest.
    const r = applyRetention(snaps, at('2026-01-14T12:00:00Z'), P({ yearly: 2 }));
    expect(r.keep).toEqual(['2025-01-06', '2026-01-05', '2026-01-13']);
    expect(kept(snaps, '2026-01-14T12:00:00Z', P({ yearly: 3 }))).toEqual(['2024-12-20', '2025-01-06', '2026-01-05', '2026-01-13']);
    expect(r.decisions.find((d) => d.name === '2025-01-06')!.reasons).toEqual(['yearly 2025']);
  });

  test('"all" keeps every period', () => {
    const snaps = daily('2020-01-01', 5 * 365);
    const r = applyRetention(snaps, at('2025-01-01T00:00:00Z'), P({ monthly: Infinity }));
    expect(r.keep.length).toBe(60 + 1); // one per month for 5 years, plus the latest
  });

  test('rules add up; every kept snapshot lists every rule that keeps it', () => {
    const snaps = daily('2026-03-01', 14);
    const r = applyRetention(snaps, at('2026-03-14T04:00:00Z'), P({ keepMin: { kind: 'age', ms: 2 * D }, daily: 3, weekly: 2 }));
    const why = Object.fromEntries(r.decisions.filter((d) => d.action === 'keep').map((d) => [d.name, d.reasons]));
    // weekly 2 = this week (from monday 03-09) and the one before.
    expect(why).toEqual({
      '2026-03-02': ['weekly 2026-03-02'],
      '2026-03-09': ['weekly 2026-03-09'],
      '2026-03-12': ['daily 2026-03-12'],
      '2026-03-13': ['keep_min 2d', 'daily 2026-03-13'],
      '2026-03-14': ['keep_min 2d', 'daily 2026-03-14', 'latest'],
    });
  });
});

describe('never removed', () => {
  test('the latest snapshot, even when no rule keeps anything', () => {
    const r = applyRetention(daily('2026-01-01', 3), at('2027-01-01T00:00:00Z'), P({ daily: 1 }));
    expect(r.keep).toEqual(['2026-01-03']);
    expect(r.decisions[2].reasons).toEqual(['latest']);
  });

  test('latest is decided by time, then by order (transid) for equal times', () => {
    const t = '2026-01-01T00:00:00Z';
    const r = applyRetention([{ name: 'b', time: at(t), order: 7n }, { name: 'a', time: at(t), order: 9n }], at('2027-01-01T00:00:00Z'), P({ daily: 1 }));
    expect(r.keep).toEqual(['a']);
  });

  test('protected snapshots, with the reasons given', () => {
    const snaps = daily('2026-01-01', 30);
    const protect = new Map([
      ['2026-01-05', ['parent for target /mnt/b']],
      ['2026-01-07', ['held by interrupted transfer to nas:/x']],
    ]);
    const r = applyRetention(snaps, at('2026-01-30T12:00:00Z'), P({ daily: 2 }), protect);
    expect(r.keep).toEqual(['2026-01-05', '2026-01-07', '2026-01-29', '2026-01-30']);
    expect(r.decisions[4].reasons).toEqual(['parent for target /mnt/b']);
    expect(r.decisions[6].reasons).toEqual(['held by interrupted transfer to nas:/x']);
  });

  test('a snapshot dated after now (clock skew) is kept and says why', () => {
    const r = applyRetention([snap('2026-01-01T00:00:00Z', 'a'), snap('2026-06-01T00:00:00Z', 'future'), snap('2026-01-02T00:00:00Z', 'b')], at('2026-02-01T00:00:00Z'), P({ daily: 1 }));
    expect(r.decisions.find((d) => d.name === 'future')!.reasons).toEqual(['dated after now (clock skew)', 'latest']);
    expect(r.remove).toEqual(['a', 'b']);
  });
});

test('every snapshot gets exactly one decision; removed ones exactly one reason', () => {
  const snaps = daily('2025-01-01', 500);
  const r = applyRetention(snaps, at('2026-05-16T00:00:00Z'), P({ keepMin: { kind: 'age', ms: 3 * D }, daily: 7, weekly: 4, monthly: 12, yearly: 3 }));
  expect(r.decisions.map((d) => d.name).sort()).toEqual(snaps.map((s) => s.name).sort());
  expect(r.keep.length + r.remove.length).toBe(500);
  for (const d of r.decisions) expect(d.action === 'remove' ? d.reasons.length === 1 : d.reasons.length >= 1).toBe(true);
});

test('keepAncestors keeps every stream a kept stream is built on', () => {
  // full f1 <- i2 <- i3 ; full f4 <- i5
  const snaps = daily('2026-01-01', 5).map((s, i) => ({ ...s, name: ['f1', 'i2', 'i3', 'f4', 'i5'][i] }));
  const r = applyRetention(snaps, at('2026-01-05T12:00:00Z'), P({ keepMin: { kind: 'latest' } }), new Map([['i3', ['parent for the next send from /v']]]));
  expect(r.keep).toEqual(['i3', 'i5']);
  const parentOf = new Map<string, string | null>([['f1', null], ['i2', 'f1'], ['i3', 'i2'], ['f4', null], ['i5', 'f4']]);
  const c = keepAncestors(r, parentOf);
  expect(c.keep).toEqual(['f1', 'i2', 'i3', 'f4', 'i5']);
  expect(c.decisions[0].reasons).toEqual(['ancestor of kept stream i3']);
  expect(c.decisions[3].reasons).toEqual(['ancestor of kept stream i5']);
});

test('local time: days begin at day_start in the host time zone, across a DST change', () => {
  // Jest gives tests a copy of process.env, so TZ cannot change in-process:
  // run the (import-free) calendar module in a child node with TZ set.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-tz-'));
  try {
    const src = fs.readFileSync(path.join(__dirname, '../../../src/retention/calendar.ts'), 'utf8');
    fs.writeFileSync(path.join(dir, 'calendar.js'), ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText);
    const probe = (tz: string, isos: string[]) => {
      const code = `const c = require(${JSON.stringify(path.join(dir, 'calendar.js'))});
        console.log(JSON.stringify(${JSON.stringify(isos)}.map((t) => c.periodsOf(new Date(t), { weekStart: 1, dayStart: 3, timezone: 'local' }))));`;
      const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, TZ: tz }, encoding: 'utf8' });
      expect(r.status).toBe(0);
      return JSON.parse(r.stdout) as Array<{ day: number; hour: number }>;
    };
    // New York switched to EDT (UTC-4) at 2026-03-08 02:00 local. Days begin at 03:00 local.
    const isos = ['2026-03-07T07:30:00Z', '2026-03-08T06:30:00Z', '2026-03-08T07:30:00Z', '2026-03-09T06:59:00Z', '2026-03-09T07:01:00Z'];
    // local: 03-07 02:30 EST, 03-08 01:30 EST, 03-08 03:30 EDT, 03-09 02:59 EDT, 03-09 03:01 EDT
    const ny = probe('America/New_York', isos).map((p) => dayText(p.day));
    expect(ny).toEqual(['2026-03-06', '2026-03-07', '2026-03-08', '2026-03-08', '2026-03-09']);
    const utc = probe('UTC', isos).map((p) => dayText(p.day));
    expect(utc).toEqual(['2026-03-07', '2026-03-08', '2026-03-08', '2026-03-09', '2026-03-09']);
    // timezone: utc ignores TZ altogether.
    expect(isos.map((t) => dayText(periodsOf(new Date(t), { weekStart: 1, dayStart: 3, timezone: 'utc' }).day))).toEqual(utc);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('checkPolicy and describePolicy', () => {
  expect(() => checkPolicy(P({ daily: -1 }))).toThrow(/daily must be a whole number/);
  expect(() => checkPolicy(P({ dayStart: 24 }))).toThrow(expect.objectContaining({ code: 'RETENTION_INVALID' }));
  expect(describePolicy(P({ keepMin: { kind: 'age', ms: 36 * H }, daily: 7, yearly: Infinity }))).toBe('keep_min 36h, daily 7, yearly all');
});
