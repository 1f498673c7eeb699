/**
 * `ferry prune` end to end (built binary): a volume and a local target,
 * policy from flags or from a job, dry run, locking.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ferry } from '../helpers/cli';
import { rmTree } from '../helpers/fs';
import { Catalog } from '../../src/volume/catalog';
import { Lock } from '../../src/volume/lock';

const D = 86_400_000;
let tmp: string;
let vol: string;
let usb: string;

const stamp = (t: number) => new Date(t).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
/** 00:30 UTC, k days before today (UTC). */
const daysAgo = (k: number) => stamp(Math.floor(Date.now() / D) * D - k * D + 30 * 60_000);

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-prune-e2e-'));
  vol = path.join(tmp, 'data');
  usb = path.join(tmp, 'usb');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'f'), 'v0\n');
  expect(ferry(['init', vol, '--method', 'index']).code).toBe(0);
});
afterEach(() => rmTree(tmp));

function snapshots(ks: number[]): string[] {
  return ks.map((k, i) => {
    fs.writeFileSync(path.join(vol, 'f'), `v${i + 1}\n`);
    const r = ferry(['snapshot', vol, '--name', daysAgo(k)]);
    expect(r.code).toBe(0);
    return daysAgo(k);
  });
}

const listed = (dir: string) =>
  ferry(['list', dir, '--json'])
    .stdout.toString()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).name as string);

test('a volume by hand: --dry-run lists every decision and removes nothing; then it removes', () => {
  const [d10, d5, d2, d1] = snapshots([10, 5, 2, 1]);
  const dry = ferry(['prune', vol, '--daily', '3', '--timezone', 'utc', '--dry-run']);
  expect(dry.stderr).toBe('');
  expect(dry.code).toBe(0);
  const day = (s: string) => `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
  expect(dry.stdout.toString()).toBe(
    [
      `prune: prune source ${vol}: would remove ${d10} (matches no rule of daily 3)`,
      `prune: prune source ${vol}: would remove ${d5} (matches no rule of daily 3)`,
      `prune: prune source ${vol}: keep ${d2} (daily ${day(d2)})`,
      `prune: prune source ${vol}: keep ${d1} (daily ${day(d1)}; latest)`,
      `prune: prune source ${vol} (daily 3): would remove 2, kept 2`,
      '',
    ].join('\n'),
  );
  expect(listed(vol)).toEqual([d10, d5, d2, d1]);

  const real = ferry(['prune', vol, '--daily', '3', '--timezone', 'utc', '--json']);
  expect(real.code).toBe(0);
  const lines = real.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  expect(lines[lines.length - 1]).toMatchObject({ event: 'summary', command: 'prune', result: 'ok', exitCode: 0, prune: { side: 'source', removed: [d10, d5], error: null } });
  expect(listed(vol)).toEqual([d2, d1]);
});

test('bad flags are a retention error (exit 12); no policy and no config is a usage error (exit 2)', () => {
  const bad = ferry(['prune', vol, '--daily', 'seven']);
  expect(bad.code).toBe(12);
  expect(bad.stderr).toBe('ferry: invalid retention flag: --daily must be a whole number or all, got "seven"\nhint: for example: ferry prune /srv/data --keep-min 1d --daily 7 --weekly 4\n');
  const m = ferry(['prune', vol, '--keep-min', '5m']);
  expect(m.code).toBe(12);
  expect(m.stderr).toMatch(/ambiguous: write min for minutes or mo for months/);
  const typo = ferry(['prune', path.join(tmp, 'nowhere'), '--daily', '1']);
  expect(typo.code).toBe(10);
  expect(typo.stderr).toMatch(/^ferry: neither a ferry volume nor a target \(dir ".*nowhere"\)\n/);
  if (!fs.existsSync('/etc/ferry/ferry.yaml')) {
    const none = ferry(['prune', vol], { env: { HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'xdg') } });
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      'ferry: no retention policy given and no config file found\nhint: give a policy (--keep-min 1d --daily 7 ...) or a config with a job for this volume or target (-c FILE [--job NAME])\n',
    );
  }
});

test('a target: policy from the job, the newest common snapshot kept, trees and catalog entries gone, no leftovers', () => {
  const cfg = path.join(tmp, 'ferry.yaml');
  fs.writeFileSync(cfg, `jobs:\n  - name: home\n    volume: ${vol}\n    targets: [${usb}]\n    retention:\n      target: { keep_min: latest }\n`);
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(vol, 'f'), `run ${i}\n`);
    expect(ferry(['run', '-c', cfg, '--json']).code).toBe(0);
  }
  // ferry run already pruned the target to its latest; put two older ones back by hand.
  const names = listed(vol);
  expect(names).toHaveLength(3);
  expect(listed(usb)).toEqual([names[2]]);
  const tgt2 = path.join(tmp, 'usb2');
  fs.writeFileSync(cfg, `jobs:\n  - name: home\n    volume: ${vol}\n    targets: [${tgt2}]\n    retention:\n      target: { keep_min: latest }\n`);
  // An index volume sends old snapshots from the live tree: exit 3 ("changed after the snapshot") is expected.
  for (const n of names) expect([0, 3]).toContain(ferry(['sync', vol, tgt2, '--snapshot', n]).code);
  expect(listed(tgt2)).toEqual(names);

  const r = ferry(['prune', tgt2, '-c', cfg]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.toString()).toBe(
    [
      `home: prune target ${tgt2}: remove ${names[0]} (matches no rule of keep_min latest)`,
      `home: prune target ${tgt2}: remove ${names[1]} (matches no rule of keep_min latest)`,
      `home: prune target ${tgt2} (keep_min latest): removed 2, kept 1`,
      '',
    ].join('\n'),
  );
  expect(listed(tgt2)).toEqual([names[2]]);
  expect(fs.readdirSync(tgt2).sort()).toEqual(['.ferry', names[2]]);
  expect(new Catalog(tgt2).list().map((e) => e.name)).toEqual([names[2]]);
  expect(fs.readdirSync(path.join(tgt2, '.ferry', 'catalog')).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  expect(fs.readdirSync(path.join(tgt2, '.ferry')).filter((n) => n.startsWith('removing-'))).toEqual([]);
});

test('--source keeps the newest snapshot the target shares with the volume, even when it is not the latest', () => {
  const names = snapshots([3, 2, 1]);
  for (const n of names) expect([0, 3]).toContain(ferry(['sync', vol, usb, '--snapshot', n]).code);
  // The volume loses its newest snapshot: the target's latest is no longer common.
  expect(ferry(['prune', vol, '--keep-min', 'latest']).code).toBe(0);
  expect(listed(vol)).toEqual([names[2]]);
  const dry = ferry(['prune', usb, '--keep-min', 'latest', '--source', vol, '--dry-run']);
  expect(dry.code).toBe(0);
  expect(dry.stdout.toString()).toContain(`keep ${names[2]} (keep_min latest; parent for the next send from ${vol})`);
  expect(dry.stdout.toString()).toContain(`would remove ${names[0]} (matches no rule of keep_min latest)`);
});

test('a hand prune of a volume refuses while a ferry run holds it (exit 11)', () => {
  snapshots([2, 1]);
  const lock = Lock.acquire(path.join(vol, '.ferry', 'job.lock'), 'ferry run, job test');
  try {
    const r = ferry(['prune', vol, '--keep-min', 'latest']);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(new RegExp(`^ferry: prune refused: locked by another ferry run \\(pid ${process.pid}, started [^,]+, ferry run, job test\\) \\(lock "${vol}/.ferry/job.lock"\\)\nhint: a ferry run is working on this volume`));
    expect(listed(vol)).toHaveLength(2);
  } finally {
    lock.release();
  }
});
