/**
 * A season of nightly `ferry run`s through the real runner (real volume,
 * snapshots, holds and target records; in-memory targets; injected clock):
 * the chain to every target is never broken, even for a target that is
 * unreachable for weeks and prunes harder than the source, and what the
 * source keeps is what the pure policy says.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../../src/config/load';
import { runJobs } from '../../../src/job/run';
import { applyRetention } from '../../../src/retention/policy';
import { initVolume, listSnapshots, openVolume } from '../../../src/volume/volume';
import { FakeWorld, transportDown } from './fake-world';

const D = 86_400_000;

test('90 nightly runs, one target offline for 25 days: no broken chain, and the source keeps exactly the policy\'s set', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-season-'));
  try {
    const vol = path.join(tmp, 'vol');
    fs.mkdirSync(vol);
    initVolume(vol, 'index');
    const cfg = parseConfig(
      [
        'jobs:',
        '  - name: nightly',
        `    volume: ${vol}`,
        '    targets:',
        '      - /fake/usb',
        '      - path: "nas:/pool/x"',
        '        retention: { daily: 2 }',
        '    retention:',
        '      timezone: utc',
        '      source: { keep_min: 1d, daily: 5, weekly: 3, monthly: 2 }',
        '      target: { daily: 14, weekly: 6, monthly: 3 }',
        '',
      ].join('\n'),
      'season.yaml',
    );
    const world = new FakeWorld('2026-01-01T03:00:00Z');
    const nas = world.target('nas:/pool/x');
    for (let day = 0; day < 90; day++) {
      nas.unreachable = day >= 30 && day < 55 ? transportDown() : undefined;
      fs.writeFileSync(path.join(vol, 'f'), `day ${day}\n`);
      const s = await runJobs(cfg, {}, world.deps());
      expect({ day, result: s.jobs[0].result }).toEqual({ day, result: nas.unreachable ? 'partial' : 'ok' });
      world.advance(D);
    }
    expect(world.brokenChains).toEqual([]);
    // Every transfer after each target's first was incremental; the NAS came back on
    // day 55 (02-25) and continued from day 29 (01-30), which the source kept for it.
    for (const dest of ['/fake/usb', 'nas:/pool/x']) {
      const t = world.transfers.filter((x) => x.dest === dest);
      expect(t[0].parent).toBeNull();
      expect(t.slice(1).filter((x) => x.parent === null)).toEqual([]);
    }
    expect(world.transfers.filter((x) => x.dest === 'nas:/pool/x')).toHaveLength(90 - 25);
    expect(world.transfers.find((x) => x.dest === 'nas:/pool/x' && x.snapshot === '20260225T030000Z')!.parent).toBe('20260130T030000Z');
    expect(nas.snaps.map((x) => x.name)).toEqual(['20260330T030000Z', '20260331T030000Z']);
    // Source: the same set a single application of the policy gives (both targets are up to date now).
    const names = listSnapshots(openVolume(vol)).map((x) => x.meta.name);
    const all = Array.from({ length: 90 }, (_, d) => {
      const time = new Date(Date.parse('2026-01-01T03:00:00Z') + d * D);
      return { name: time.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z'), time };
    });
    const policy = cfg.jobs[0].retention.source;
    expect(names).toEqual(applyRetention(all, new Date(Date.parse('2026-03-31T03:00:00Z')), policy).keep);
    // now 2026-03-31 (a tuesday): daily 5 = 03-27..03-31; weekly 3 = mondays 03-30, 03-23, 03-16;
    // monthly 2 = the first monday-week of march (03-02) and of february (02-02).
    expect(names).toEqual([
      '20260202T030000Z',
      '20260302T030000Z',
      '20260316T030000Z',
      '20260323T030000Z',
      '20260327T030000Z',
      '20260328T030000Z',
      '20260329T030000Z',
      '20260330T030000Z',
      '20260331T030000Z',
    ]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
