/**
 * `ferry sync` and `ferry serve` as a user runs them: the built binary's exit
 * codes, stdout (summary, NDJSON) and stderr, against real local targets and
 * fake servers (FERRY_REMOTE_COMMAND). Run `npx tsc -p tsconfig.json` first.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localMainJs } from '../../src/replicate/destination';
import { shellJoin } from '../../src/transport/local';
import { Catalog } from '../../src/volume/catalog';
import { ferry, FERRY } from '../helpers/cli';
import { rmTree } from '../helpers/fs';
import { mutate, noise, populate } from '../helpers/sync-trees';
import { compareTrees } from '../helpers/tree-compare';

const SERVE = shellJoin([process.execPath, localMainJs(), 'serve']);

let work: string;
let n = 0;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-e2e-sync-'));
});
afterAll(() => rmTree(work));

function fresh(bigBytes?: number): { vol: string; target: string } {
  const base = path.join(work, `c${++n}`);
  const vol = path.join(base, 'vol');
  fs.mkdirSync(vol, { recursive: true });
  populate(vol, bigBytes);
  expect(ferry(['init', vol]).code).toBe(0);
  return { vol, target: path.join(base, 'target') };
}

const lines = (b: Buffer) =>
  b
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A fake `ferry serve`: a node script given as FERRY_REMOTE_COMMAND. */
function fakeServe(name: string, body: string): string {
  const file = path.join(work, `${name}.js`);
  fs.writeFileSync(
    file,
    `const out = (t, o) => { const p = Buffer.from(JSON.stringify(o)); const h = Buffer.alloc(5); h[0] = t; h.writeUInt32BE(p.length, 1); process.stdout.write(Buffer.concat([h, p])); };
process.stdout.write('ferry-control/1\\n');
${body}
`,
  );
  return shellJoin([process.execPath, file]);
}

test('--json: NDJSON events, then a summary with the documented fields; exit 0', () => {
  const { vol, target } = fresh();
  const r = ferry(['sync', vol, target, '--name', 's1', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const ev = lines(r.stdout);
  const summary = ev[ev.length - 1];
  expect(summary).toEqual({
    event: 'summary',
    volume: vol,
    snapshot: 's1',
    parent: null,
    streamBytes: expect.any(Number),
    wireBytes: expect.any(Number),
    resumedFromByte: 0,
    seconds: expect.any(Number),
    target,
    warnings: [],
    transfers: [expect.objectContaining({ snapshot: 's1', parent: null })],
  });
  const progress = ev.filter((e) => e.event === 'progress');
  expect(progress.length).toBeGreaterThan(0);
  expect(progress[progress.length - 1]).toMatchObject({ streamBytes: summary.streamBytes, totalBytes: expect.any(Number), bytesPerSecond: expect.any(Number) });
  expect(ev.filter((e) => e.event === 'phase').map((e) => e.phase)).toEqual(['connect', 'list', 'snapshot', 'plan', 'send', 'commit', 'done']);

  mutate(vol, 1);
  const r2 = ferry(['sync', vol, target, '--name', 's2', '--json']);
  expect(r2.code).toBe(0);
  expect(lines(r2.stdout).pop()).toMatchObject({ event: 'summary', snapshot: 's2', parent: 's1' });
  expect(compareTrees(vol, path.join(target, 's2'), { ignore: ['.ferry'] })).toEqual([]);
});

test('text: one summary line on stdout, one line per phase on stderr (not a terminal)', () => {
  const { vol, target } = fresh();
  const r = ferry(['sync', vol, target, '--name', 'one']);
  expect(r.code).toBe(0);
  expect(r.stdout.toString()).toMatch(new RegExp(`^${vol}@one -> ${target} \\(full\\): [\\d.]+ MiB stream, [\\d.]+ MiB on the wire, [\\d.]+s\\n$`));
  expect(r.stderr.split('\n').filter(Boolean)).toEqual([
    `ferry: connecting to ${target}`,
    `ferry: listing ${target}`,
    `ferry: taking a snapshot of ${vol}`,
    'ferry: choosing the parent for one',
    'ferry: sending one (full)',
    `ferry: ${target} committed one`,
  ]);
});

test('exit 15: --incremental-only with no common snapshot; the JSON error names both sides', () => {
  const a = fresh();
  const b = fresh();
  expect(ferry(['sync', a.vol, a.target, '--name', 'a1']).code).toBe(0);
  const r = ferry(['sync', b.vol, a.target, '--name', 'b1', '--incremental-only', '--json']);
  expect(r.code).toBe(15);
  const err = JSON.parse(r.stderr);
  expect(err).toMatchObject({ error: 'REPLICATE_NO_PARENT', exitCode: 15 });
  expect(err.message).toMatch(/source has: none; destination has: a1 \(/);
});

test('exit 15: a diverged target', () => {
  const { vol, target } = fresh();
  expect(ferry(['sync', vol, target, '--name', 's1']).code).toBe(0);
  expect(ferry(['sync', vol, target, '--name', 's2']).code).toBe(0);
  fs.rmSync(path.join(vol, '.ferry', 'snapshots', 's2'), { recursive: true });
  const r = ferry(['sync', vol, target, '--name', 's3']);
  expect(r.code).toBe(15);
  expect(r.stderr).toMatch(/sync refused: .* has a snapshot the source does not know, newer than the common snapshot s1: s2 \(/);
  expect(r.stderr).toMatch(/^hint: nothing was sent/m);
});

test('exit 16: serve --restrict-to (as a forced command) refuses a target outside it', () => {
  const { vol } = fresh();
  const allowed = path.join(work, 'allowed');
  fs.mkdirSync(allowed, { recursive: true });
  const r = ferry(['sync', vol, path.join(work, 'elsewhere'), '--name', 'x'], { env: { FERRY_REMOTE_COMMAND: `exec ${SERVE} --restrict-to ${allowed}` } });
  expect(r.code).toBe(16);
  expect(r.stderr).toMatch(/serve refused: path is outside the allowed directory/);
  expect(fs.existsSync(path.join(work, 'elsewhere'))).toBe(false);
  // --remote-command beats the environment.
  const ok = ferry(['sync', vol, path.join(allowed, 't'), '--name', 'y', '--remote-command', `${SERVE} --restrict-to ${allowed}`], {
    env: { FERRY_REMOTE_COMMAND: 'false' },
  });
  expect(ok.code).toBe(0);
});

test('exit 13: a remote shell that prints a banner is a protocol error that shows the banner', () => {
  const { vol, target } = fresh();
  const r = ferry(['sync', vol, target, '--name', 'x'], { env: { FERRY_REMOTE_COMMAND: 'echo "Welcome to nas.example"; cat >/dev/null' } });
  expect(r.code).toBe(13);
  expect(r.stderr).toMatch(/control protocol violated: the other side did not start with the ferry preamble .*Welcome to nas\.example/);
  expect(r.stderr).toMatch(/^hint: .*shell startup files/m);
});

test('exit 13: a fake serve that sends a frame larger than the limit', () => {
  const { vol, target } = fresh();
  const cmd = fakeServe('huge', `const h = Buffer.alloc(5); h[0] = 1; h.writeUInt32BE(0xfffffff0, 1); process.stdout.write(h); process.stdin.resume();`);
  const r = ferry(['sync', vol, target, '--name', 'x', '--json'], { env: { FERRY_REMOTE_COMMAND: cmd } });
  expect(r.code).toBe(13);
  expect(JSON.parse(r.stderr)).toMatchObject({ error: 'TRANSPORT_PROTOCOL' });
});

test('a remote structured error is rethrown with its code, hint and exit code', () => {
  const { vol, target } = fresh();
  const cmd = fakeServe(
    'nospace',
    `let n = 0;
process.stdin.on('data', () => {
  if (n++ === 0) out(1, { t: 'hello', version: 1, ferry: 'fake', features: [] });
  else out(1, { t: 'error', error: { code: 'RECV_NO_SPACE', summary: 'receive refused: not enough free space on the target', hint: 'free space on nas', retryable: false, context: { needed: '99' } } });
});`,
  );
  const r = ferry(['sync', vol, target, '--name', 'x'], { env: { FERRY_REMOTE_COMMAND: cmd } });
  expect(r.code).toBe(17);
  expect(r.stderr).toMatch(/\nferry: receive refused: not enough free space on the target \(needed "99", remote "local"\)\nhint: free space on nas\n$/);
});

test('exit 13: ferry missing on the other side says how to point at it', () => {
  const { vol, target } = fresh();
  const r = ferry(['sync', vol, target, '--name', 'x'], { env: { FERRY_REMOTE_COMMAND: '/nonexistent/bin/ferry serve' } });
  expect(r.code).toBe(13);
  expect(r.stderr).toMatch(/remote ferry serve ended unexpectedly \(exit code 127\)/);
  expect(r.stderr).toMatch(/hint: ferry was not found on the remote host/);
});

test('a serve that exits before reading (broken pipe on our side) is exit 13, never a silent 0', () => {
  // Before the fix, the EPIPE from writing the preamble to a dead child was
  // mistaken for our own stdout closing and the run ended with status 0.
  const { vol, target } = fresh();
  for (let i = 0; i < 3; i++) {
    const r = ferry(['sync', vol, target, '--name', `x${i}`], { env: { FERRY_REMOTE_COMMAND: 'exec 0<&- 1>&-; exit 3' } });
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/remote ferry serve ended unexpectedly/);
  }
  expect(fs.existsSync(target) ? fs.readdirSync(target).filter((n) => !n.startsWith('.')) : []).toEqual([]);
});

test('exit 13 when serve is killed mid-stream; target unchanged; the next run resumes', () => {
  const { vol, target } = fresh(3 * 1024 * 1024);
  const r = ferry(['sync', vol, target, '--name', 's1', '--json'], { env: { FERRY_REMOTE_COMMAND: `FERRY_FAULT=serve:data:24 exec ${SERVE}` } });
  expect(r.code).toBe(13);
  expect(JSON.parse(r.stderr)).toMatchObject({ error: 'TRANSPORT_REMOTE_FAILED', retryable: true });
  expect(fs.readdirSync(target).filter((x) => x !== '.ferry')).toEqual([]);
  const again = ferry(['sync', vol, target, '--json']);
  expect(again.code).toBe(0);
  const s = lines(again.stdout).pop()!;
  expect(s.resumedFromByte as number).toBeGreaterThan(0);
  expect((s.transfers as Array<{ snapshot: string; parent: string | null }>).map((t) => [t.snapshot, t.parent])).toEqual([
    ['s1', null],
    [s.snapshot, 's1'],
  ]);
  expect(compareTrees(vol, path.join(target, 's1'), { ignore: ['.ferry'] })).toEqual([]);
});

test('--bwlimit caps the rate (a lower bound on the time, with slack)', () => {
  const { vol, target } = fresh(1536 * 1024);
  const t0 = Date.now();
  const r = ferry(['sync', vol, target, '--name', 's1', '--bwlimit', '512K', '--json']);
  const ms = Date.now() - t0;
  expect(r.code).toBe(0);
  const s = lines(r.stdout).pop()!;
  // Everything past the first burst (256 KiB) goes at 512 KiB/s.
  const floor = (((s.wireBytes as number) - 256 * 1024) / (512 * 1024)) * 1000;
  expect(floor).toBeGreaterThan(2000);
  expect(ms).toBeGreaterThanOrEqual(floor * 0.9);
});

test('SIGINT stops a sync (exit 130) without a visible snapshot; running it again resumes', async () => {
  const { vol, target } = fresh(4 * 1024 * 1024);
  const child = spawn(process.execPath, [FERRY, 'sync', vol, target, '--name', 's1', '--bwlimit', '1M'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve) => {
    const check = () => (err.includes('sending s1') ? resolve() : setTimeout(check, 50));
    check();
  });
  await new Promise((r) => setTimeout(r, 2500));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  expect(code).toBe(130);
  expect(err).toMatch(/sync interrupted by SIGINT; run it again to resume/);
  expect(fs.readdirSync(target).filter((x) => x !== '.ferry')).toEqual([]);
  expect(new Catalog(target).list()).toEqual([]);
  const again = ferry(['sync', vol, target, '--snapshot', 's1', '--json']);
  expect(again.code).toBe(0);
  expect(lines(again.stdout).pop()).toMatchObject({ snapshot: 's1', resumedFromByte: expect.any(Number) });
  expect((lines(again.stdout).pop()!.resumedFromByte as number) > 0).toBe(true);
  expect(compareTrees(vol, path.join(target, 's1'), { ignore: ['.ferry'] })).toEqual([]);
});

test('usage errors exit 2', () => {
  const { vol, target } = fresh(1024);
  for (const args of [
    ['--compress', 'gzip'],
    ['--compress', 'zstd:99'],
    ['--proto', '3'],
    ['--bwlimit', 'fast'],
    ['--name', 'a', '--snapshot', 'b'],
  ]) {
    const r = ferry(['sync', vol, target, ...args]);
    expect([args, r.code]).toEqual([args, 2]);
  }
  expect(ferry(['sync', path.join(work, 'no-volume'), target]).code).toBe(10);
  void noise;
});

test('exit 3 with warnings: an index volume whose live file changed after the snapshot is sent as read, and said so', () => {
  const { vol, target } = fresh(4096);
  expect(ferry(['snapshot', vol, '--name', 'old']).code).toBe(0);
  fs.writeFileSync(path.join(vol, 'script.sh'), '#!/bin/sh\necho changed after the snapshot\n');
  const r = ferry(['sync', vol, target, '--snapshot', 'old', '--json']);
  expect(r.code).toBe(3);
  const s = lines(r.stdout).pop()!;
  expect(s.warnings).toEqual([expect.stringMatching(/^old: script.sh: file changed after the snapshot was taken; sent as read$/)]);
  const text = ferry(['sync', vol, path.join(target, '..', 'target2'), '--snapshot', 'old']);
  expect(text.code).toBe(3);
  expect(text.stderr).toMatch(/^ferry: warning: old: script.sh: file changed after the snapshot was taken; sent as read$/m);
});
