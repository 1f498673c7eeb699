/** `npm run bench -- --smoke` must keep working (the benchmark is not part of npm test otherwise). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

describe('npm run bench -- --smoke', () => {
  it('runs every suite in smoke mode, writes a JSON report and leaves RESULTS.md alone', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-')), 'report.json');
    const results = path.join(__dirname, '..', '..', 'bench', 'RESULTS.md');
    const before = fs.existsSync(results) ? fs.readFileSync(results, 'utf8') : undefined;
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'bench', 'run.js'), '--smoke', '--json', out], {
      encoding: 'utf8',
      env: { ...process.env, FERRY_REQUIRE_REAL_FS: '' },
    });
    expect(r.status).toBe(0);
    const report = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(JSON.stringify(report)).toContain('decode');
    expect(fs.existsSync(results) ? fs.readFileSync(results, 'utf8') : undefined).toBe(before);
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  });
});
