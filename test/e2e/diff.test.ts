/** `ferry diff` through the built binary: text, --json, and its errors. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ferry } from '../helpers/cli';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-diff-e2e-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function ok(args: string[]): string {
  const r = ferry(args);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.toString();
}

test('text and NDJSON output, like zfs diff -F', () => {
  const vol = path.join(dir, 'my vol');
  fs.mkdirSync(path.join(vol, 'd'), { recursive: true });
  fs.writeFileSync(path.join(vol, 'd/a'), 'a');
  fs.writeFileSync(path.join(vol, 'b'), 'b');
  fs.writeFileSync(path.join(vol, 'c'), 'c');
  ok(['init', vol]);
  ok(['snapshot', vol, '--name', 'one']);
  fs.renameSync(path.join(vol, 'd/a'), path.join(vol, 'a2'));
  fs.appendFileSync(path.join(vol, 'b'), 'more');
  fs.rmSync(path.join(vol, 'c'));
  fs.writeFileSync(path.join(vol, 'e'), 'e');
  ok(['snapshot', vol, '--name', 'two']);

  const r = ferry(['diff', `${vol}@one`, `${vol}@two`]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const v = vol.replace(/ /g, '\\0040');
  expect(r.stdout.toString()).toBe(
    [
      `M\t/\t${v}/\tmtime`,
      `M\tF\t${v}/b\tcontent,mtime`,
      `-\tF\t${v}/c`,
      `M\t/\t${v}/d\tmtime`,
      `R\tF\t${v}/d/a -> ${v}/a2`,
      `+\tF\t${v}/e`,
      '',
    ].join('\n'),
  );

  const j = ferry(['diff', `${vol}@one`, `${vol}@two`, '--json']);
  expect(j.code).toBe(0);
  const rows = j.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  expect(rows).toEqual([
    { op: 'M', change: 'modified', type: 'dir', path: '/', what: ['mtime'] },
    { op: 'M', change: 'modified', type: 'file', path: '/b', what: ['content', 'mtime'] },
    { op: '-', change: 'removed', type: 'file', path: '/c' },
    { op: 'M', change: 'modified', type: 'dir', path: '/d', what: ['mtime'] },
    { op: 'R', change: 'renamed', type: 'file', path: '/a2', from: '/d/a' },
    { op: '+', change: 'added', type: 'file', path: '/e' },
  ]);
  // no changes: no output
  const same = ferry(['diff', `${vol}@two`, `${vol}@two`]);
  expect([same.code, same.stdout.toString()]).toEqual([0, '']);
});

test('errors: unknown snapshot (10), different volumes and bad refs (2), not a volume (10)', () => {
  const vol = path.join(dir, 'v');
  const other = path.join(dir, 'w');
  fs.mkdirSync(vol);
  fs.mkdirSync(other);
  ok(['init', vol]);
  ok(['init', other]);
  ok(['snapshot', vol, '--name', 'a']);
  ok(['snapshot', other, '--name', 'a']);
  const missing = ferry(['diff', `${vol}@a`, `${vol}@nope`]);
  expect(missing.code).toBe(10);
  expect(missing.stderr).toMatch(/snapshot not found.*nope/);
  expect(ferry(['diff', `${vol}@a`, `${other}@a`]).code).toBe(2);
  expect(ferry(['diff', vol, `${vol}@a`]).code).toBe(2);
  expect(ferry(['diff', `${dir}/none@a`, `${dir}/none@b`]).code).toBe(10);
  const json = ferry(['diff', `${vol}@a`, `${vol}@nope`, '--json']);
  expect(JSON.parse(json.stderr)).toEqual(expect.objectContaining({ error: 'SNAPSHOT_NOT_FOUND', exitCode: 10 }));
});
