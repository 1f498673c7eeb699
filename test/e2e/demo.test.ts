import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

describe('npm run demo', () => {
  it('runs end to end and says every step behaved', () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'scripts', 'demo.js')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('demo: all steps behaved as expected');
    expect(r.stdout).not.toContain('FAIL');
    expect(r.status).toBe(0);
  });
});
