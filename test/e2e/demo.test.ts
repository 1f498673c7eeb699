import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const DEMO = path.join(__dirname, '..', '..', 'dist', 'scripts', 'demo.js');

function expectAllGood(r: { stdout: string; stderr: string; status: number | null }): void {
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('demo: all steps behaved as expected');
  expect(r.stdout).not.toContain('FAIL');
  expect(r.status).toBe(0);
}

describe('npm run demo', () => {
  it('runs end to end and says every step behaved', () => {
    expectAllGood(spawnSync(process.execPath, [DEMO], { encoding: 'utf8' }));
  });

  // The README promises the demo needs no root. Under root, run it again
  // with every capability dropped (no immutable flag, no chown to others, no
  // device nodes), keeping uid 0 so the checkout stays readable wherever it is.
  const root = process.getuid?.() === 0;
  const setpriv = spawnSync('setpriv', ['--help']).status === 0;
  if (root && !setpriv && process.env.FERRY_REQUIRE_REAL_FS === '1') throw new Error('setpriv (util-linux) is missing');
  (root && setpriv ? it : it.skip)('runs without any capability too (skipped when not root: the case above already is)', () => {
    const r = spawnSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--', process.execPath, DEMO], { encoding: 'utf8' });
    expectAllGood(r);
  });
});
