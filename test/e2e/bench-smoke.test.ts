/** `npm run bench -- --smoke` must keep working (the benchmark is not part of npm test otherwise). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SUITES = ['codec', 'full', 'incremental', 'image', 'scale', 'ssh'];

describe('npm run bench -- --smoke', () => {
  it('runs every suite in smoke mode, writes a JSON report and leaves RESULTS.md alone', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-')), 'report.json');
    const results = path.join(__dirname, '..', '..', 'bench', 'RESULTS.md');
    const before = fs.existsSync(results) ? fs.readFileSync(results, 'utf8') : undefined;
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'bench', 'run.js'), '--smoke', '--json', out], {
      encoding: 'utf8',
      env: { ...process.env, FERRY_REQUIRE_REAL_FS: '' },
      timeout: 280_000,
    });
    expect(r.error).toBeUndefined();
    expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr.slice(-4000) }).toEqual({ status: 0, stderr: '' });
    const report = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(JSON.stringify(report)).toContain('decode');
    expect(report.mode).toBe('smoke');
    const outcomes = report.suites as Array<{ suite: string; status: string; reason?: string; cases?: Array<{ name: string; budgetId?: string }> }>;
    expect(outcomes.map((s) => s.suite)).toEqual(SUITES);
    expect(outcomes.filter((s) => s.status === 'crashed')).toEqual([]);
    // Where the machine can run them (root, loop devices, btrfs-progs, xfsprogs, rsync, sshd), every
    // suite must produce cases; CI (FERRY_REQUIRE_REAL_FS=1) must be such a machine.
    for (const s of outcomes) {
      if (s.status === 'skipped') {
        expect(process.env.FERRY_REQUIRE_REAL_FS).not.toBe('1');
        continue;
      }
      expect(s.cases!.length).toBeGreaterThan(0);
    }
    // The terminal output lists every budget with a measurement or a reason.
    expect(r.stdout).toContain('budgets (DESIGN.md and issues):');
    expect(r.stdout).toMatch(/full-send: /);
    expect(fs.existsSync(results) ? fs.readFileSync(results, 'utf8') : undefined).toBe(before);
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }, 300_000);
});
