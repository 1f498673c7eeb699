/**
 * kill -9 during receive: at every commit step (fault points) and at random
 * moments while the stream flows. Afterwards the target's visible snapshots
 * and effective catalog are exactly as before (or, past the commit point,
 * hold the complete new snapshot), and the next run cleans up and succeeds.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '../../../src/volume/catalog';
import { ferry, FERRY } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { FIXTURE_DIR, rng } from '../../helpers/streams';
import { compareTrees } from '../../helpers/tree-compare';

const S = (n: string) => path.join(FIXTURE_DIR, `${n}.stream`);
const ALLOW = ['--allow-devices', '--allow-setuid'];
const isRoot = process.getuid?.() === 0;
const rootDescribe = isRoot || process.env.FERRY_REQUIRE_REAL_FS === '1' ? describe : describe.skip;

let work: string;
let reference: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-kill-'));
  reference = path.join(work, 'reference');
  for (const f of ['full-v1', 'incr-v1']) expect(ferry(['receive', reference, '-f', S(f), ...ALLOW]).code).toBe(0);
});

afterAll(() => rmTree(work));

/** What a user can see: snapshot dirs and effective catalog entries. */
function visible(target: string): { dirs: string[]; catalog: string[] } {
  const dirs = fs.existsSync(target) ? fs.readdirSync(target).filter((n) => n !== '.ferry').sort() : [];
  const catalog = new Catalog(target).list().map((e) => `${e.name} ${e.receivedUuid}`);
  return { dirs, catalog };
}

function freshTargetWithSnap1(name: string): string {
  const t = path.join(work, name);
  expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
  return t;
}

rootDescribe('kill -9 during receive', () => {
  const points = ['receive:seeded', 'receive:command:20', 'receive:before-catalog', 'receive:after-catalog', 'receive:after-rename'];

  it.each(points)('killed at %s: target unchanged (or fully committed), next run succeeds', (point) => {
    const t = freshTargetWithSnap1(`fault-${point.replace(/\W/g, '-')}`);
    const before = visible(t);
    const r = ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW], { env: { FERRY_FAULT: point } });
    expect(r.code).toBeNull(); // killed by a signal
    const after = visible(t);
    const committed = point === 'receive:after-rename';
    if (committed) {
      expect(after.dirs).toEqual(['snap1', 'snap2']);
      expect(after.catalog).toHaveLength(2);
    } else {
      expect(after).toEqual(before);
    }
    // parent untouched in every case
    expect(compareTrees(path.join(reference, 'snap1'), path.join(t, 'snap1'))).toEqual([]);
    // the next run sweeps the leftovers and succeeds (or says it already has it)
    const again = ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]);
    if (committed) expect(again.code).toBe(2);
    else expect(again.code).toBe(0);
    expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
    expect(fs.readdirSync(path.join(t, '.ferry', 'catalog')).filter((n) => n.endsWith('.json'))).toHaveLength(2);
    expect(compareTrees(path.join(reference, 'snap2'), path.join(t, 'snap2'))).toEqual([]);
  });

  it('killed at random moments while the stream flows: never a half snapshot', async () => {
    const stream = fs.readFileSync(S('incr-v1'));
    const rand = rng(7);
    for (let trial = 0; trial < 6; trial++) {
      const t = freshTargetWithSnap1(`random-${trial}`);
      const before = visible(t);
      const cut = Math.floor(rand() * stream.length);
      const child = spawn(process.execPath, [FERRY, 'receive', t, ...ALLOW], { stdio: ['pipe', 'pipe', 'pipe'] });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.stdin.on('error', () => undefined);
      child.stdin.write(stream.subarray(0, cut));
      await new Promise((r) => setTimeout(r, 50 + Math.floor(rand() * 150)));
      child.kill('SIGKILL');
      await exited;
      const after = visible(t);
      if (after.dirs.length === 2) {
        // it could only have committed with the whole stream, which it never got
        throw new Error(`snapshot committed from a partial stream (cut ${cut})`);
      }
      expect(after).toEqual(before);
      expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).code).toBe(0);
      expect(compareTrees(path.join(reference, 'snap2'), path.join(t, 'snap2'))).toEqual([]);
    }
  });
});
