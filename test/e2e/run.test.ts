/**
 * `ferry run` end to end: the built binary (run `npx tsc -p tsconfig.json`
 * first) against a YAML file in a temp dir, local targets, the real sync.
 * Asserts exit codes, stdout and stderr.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ferry, FERRY } from '../helpers/cli';
import { rmTree } from '../helpers/fs';
import { compareTrees } from '../helpers/tree-compare';
import { Lock } from '../../src/volume/lock';

let tmp: string;
let vol: string;
let usb: string;
let disk: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-run-e2e-'));
  vol = path.join(tmp, 'data');
  usb = path.join(tmp, 'usb');
  disk = path.join(tmp, 'disk');
  fs.mkdirSync(path.join(vol, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(vol, 'docs', 'a.txt'), 'alpha\n');
  // No two 128 KiB blocks alike (the sender would CLONE repeats): 251 does not divide 131072.
  fs.writeFileSync(path.join(vol, 'b.bin'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251)));
  expect(ferry(['init', vol, '--method', 'index']).code).toBe(0);
});
afterEach(() => rmTree(tmp));

function writeConfig(body: string, name = 'ferry.yaml'): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, body);
  return f;
}

const basic = (extra = '') =>
  writeConfig(`jobs:\n  - name: nightly\n    volume: ${vol}\n    snapshot: onchange\n    targets:\n      - ${usb}\n      - ${disk}\n${extra}`);

/** Names like 20261121T031500Z (and _2 within the same second) become <SNAP>, durations <T>. */
function normalize(s: string): string {
  return s
    .replace(/\d{8}T\d{6}Z(_\d+)?/g, '<SNAP>')
    .replace(/\d+(\.\d+)?s\b/g, '<T>')
    .replace(/\d{4}-\d\d-\d\d(T[\d:.]+Z)?/g, '<DATE>')
    .replace(/inode \d+/g, 'inode <INO>');
}

function received(target: string): string[] {
  return fs.readdirSync(target).filter((n) => n !== '.ferry');
}

test('a nightly job: snapshot, both targets, a second run with nothing changed, then a change', () => {
  const cfg = basic();
  const r = ferry(['run', '-c', cfg]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.toString()).toMatch(/in full, 29\d\.\d KiB in/);
  expect(normalize(r.stdout.toString()).replace(/\d+\.\d KiB/g, '<SIZE>')).toBe(
    [
      `nightly: starting job for ${vol}`,
      `nightly: snapshot ${vol}@<SNAP> created (onchange: the volume has no snapshot yet)`,
      `nightly: ${usb}: sent <SNAP> in full, <SIZE> in <T>`,
      `nightly: ${disk}: sent <SNAP> in full, <SIZE> in <T>`,
      `nightly: prune target ${usb}: keep_min all: nothing is pruned`,
      `nightly: prune target ${disk}: keep_min all: nothing is pruned`,
      `nightly: prune source ${vol}: keep_min all: nothing is pruned`,
      'nightly: ok in <T>',
      'summary: ok: 1 job(s), 2 target(s), <T>',
      '  nightly: ok, snapshot <SNAP> created',
      `    ${usb}: ok, <SIZE> in <T>`,
      `    ${disk}: ok, <SIZE> in <T>`,
      '',
    ].join('\n'),
  );
  const [snap] = received(usb);
  expect(received(disk)).toEqual([snap]);
  expect(compareTrees(vol, path.join(usb, snap), { ignore: ['.ferry'], noRootMtime: true })).toEqual([]);

  const again = ferry(['run', '-c', cfg]);
  expect(again.code).toBe(0);
  expect(normalize(again.stdout.toString())).toContain(`nightly: snapshot ${vol}@<SNAP> not taken (onchange: nothing changed since <SNAP>; sending <SNAP> where it is missing)\nnightly: ${usb}: up to date (has <SNAP>)\n`);

  fs.writeFileSync(path.join(vol, 'docs', 'c.txt'), 'gamma\n');
  const third = ferry(['run', '-c', cfg]);
  expect(third.code).toBe(0);
  expect(normalize(third.stdout.toString())).toMatch(new RegExp(`nightly: ${usb}: sent <SNAP> incremental from <SNAP>, \\d+ B in <T>`));
  expect(received(usb)).toHaveLength(2);
});

test('--json: NDJSON events, then exactly one summary object listing every target', () => {
  const r = ferry(['run', '-c', basic(), '--json']);
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  const lines = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  expect(lines[0]).toMatchObject({ event: 'job-start', job: 'nightly', volume: vol, dryRun: false, time: expect.any(String) });
  expect(lines.filter((l) => l.event === 'summary')).toHaveLength(1);
  const summary = lines[lines.length - 1];
  expect(summary).toMatchObject({ event: 'summary', result: 'ok', exitCode: 0, dryRun: false, config: path.join(tmp, 'ferry.yaml') });
  expect(summary.jobs[0].targets.map((t: { target: string; result: string; streamBytes: number; error: unknown }) => [t.target, t.result, t.streamBytes > 300_000, t.error])).toEqual([
    [usb, 'ok', true, null],
    [disk, 'ok', true, null],
  ]);
  expect(summary.jobs[0].targets[0]).toEqual(
    expect.objectContaining({ seconds: expect.any(Number), wireBytes: expect.any(Number), parent: null, snapshot: summary.jobs[0].snapshot.name }),
  );
});

test('a bad config: exit 12 with every problem and its line, as text and as JSON', () => {
  const cfg = writeConfig(`jobs:\n  - name: nightly\n    volume: data\n    targets:\n      - backup/usb\n    retention:\n      source: { dayly: 7 }\n`);
  const r = ferry(['run', '-c', cfg]);
  expect(r.code).toBe(12);
  expect(r.stdout.toString()).toBe('');
  expect(r.stderr).toBe(
    [
      `ferry: config ${cfg} is invalid (4 problems):`,
      '  jobs[0].volume: must be absolute (line 3)',
      '  jobs[0].targets[0].path: must be absolute (line 5)',
      '  jobs[0].retention.source.dayly: unknown key (did you mean "daily"?) (line 7)',
      '  jobs[0].retention.source: sets nothing to keep: give keep_min (a duration, latest or all) and/or hourly, daily, weekly, monthly, yearly (line 7)',
      'hint: fix every line listed; `ferry run --dry-run` checks a config without changing anything',
      '',
    ].join('\n'),
  );
  const j = ferry(['run', '-c', cfg, '--json']);
  expect(j.code).toBe(12);
  expect(JSON.parse(j.stderr)).toMatchObject({ error: 'CONFIG_INVALID', exitCode: 12, file: cfg, problems: expect.arrayContaining([expect.objectContaining({ path: 'jobs[0].volume', line: 3 })]) });

  const missing = ferry(['run', '-c', path.join(tmp, 'nope.yaml')]);
  expect(missing.code).toBe(12);
  expect(missing.stderr).toBe(`ferry: config file not found (file "${path.join(tmp, 'nope.yaml')}")\nhint: check the path given to -c\n`);
  const job = ferry(['run', '-c', basic(), 'nightly', 'weekly']);
  expect(job.code).toBe(2);
  expect(job.stderr).toBe(`ferry: no job named "weekly" in ${path.join(tmp, 'ferry.yaml')}\nhint: jobs in this config: nightly\n`);
});

test('a second run while the lock is held exits 11 at once, naming the holder', () => {
  const lock = Lock.acquire(path.join(vol, '.ferry', 'job.lock'), 'test');
  try {
    const t0 = Date.now();
    const r = ferry(['run', '-c', basic()]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(
      new RegExp(`^ferry: nightly: job nightly skipped: another ferry run holds the volume \\(pid ${process.pid}, started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, test\\) \\(lock "${vol}/.ferry/job.lock"\\)\nhint: cron started this run while the last one was still going; nothing was changed`),
    );
    expect(normalize(r.stdout.toString())).toContain('summary: failed (exit 11): 1 job(s), 0 target(s), <T>\n  nightly: failed (JOB_LOCKED)\n');
    expect(fs.existsSync(usb)).toBe(false);
  } finally {
    lock.release();
  }
});

test('two real runs at once: the second exits 11 while the first (in a slow pre hook) holds the volume', async () => {
  const started = path.join(tmp, 'hook-started');
  const cfg = basic(`    hooks:\n      pre: "touch ${started}; sleep 3"\n`);
  const first = spawn(process.execPath, [FERRY, 'run', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  first.stdout.on('data', (b) => (out += b));
  const done = new Promise<number | null>((resolve) => first.on('close', (c) => resolve(c)));
  for (let i = 0; i < 100 && !fs.existsSync(started); i++) await new Promise((r) => setTimeout(r, 100));
  expect(fs.existsSync(started)).toBe(true);
  const second = ferry(['run', '-c', cfg, '--json']);
  expect(second.code).toBe(11);
  const summary = JSON.parse(second.stdout.toString().trim().split('\n').pop()!);
  expect(summary).toMatchObject({ result: 'failed', exitCode: 11, jobs: [{ error: { code: 'JOB_LOCKED', message: expect.stringMatching(new RegExp(`\\(pid ${first.pid}, started `)) } }] });
  expect(await done).toBe(0);
  expect(out).toContain('nightly: ok in');
});

test('a dry run prints every decision and leaves the volume, its .ferry and the targets byte for byte as they were', () => {
  const cfg = basic(`    hooks: { pre: "touch ${tmp}/hook-ran" }\n    retention:\n      source: { keep_min: latest }\n      target: { keep_min: latest }\n`);
  expect(ferry(['run', '-c', cfg]).code).toBe(0);
  fs.writeFileSync(path.join(vol, 'docs', 'a.txt'), 'changed\n');
  expect(ferry(['run', '-c', cfg]).code).toBe(0);
  fs.rmSync(path.join(tmp, 'hook-ran'));
  fs.writeFileSync(path.join(vol, 'new.txt'), 'new\n');
  const before = { vol: fingerprint(vol), usb: fingerprint(usb, true), disk: fingerprint(disk, true) };
  const r = ferry(['run', '-c', cfg, '--dry-run']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  // The volume with its .ferry exactly, directory mtimes included. Listing a target
  // takes and drops its receive lock (src/receive), which touches TARGET/.ferry's
  // mtime, so targets are compared on everything but directory mtimes.
  expect({ vol: fingerprint(vol), usb: fingerprint(usb, true), disk: fingerprint(disk, true) }).toEqual(before);
  // The first difference in inode order: the root's mtime or new.txt, whichever inode number is lower.
  expect(r.stdout.toString()).toMatch(/\(onchange: (\/ changed|new inode \d+ \(new\.txt\)) since \d{8}T\d{6}Z(_\d+)?\)\n/);
  expect(normalize(r.stdout.toString()).replace(/onchange: .* since/, 'onchange: <FIRST DIFFERENCE> since')).toBe(
    [
      `nightly: dry run of job for ${vol}`,
      `nightly: lock: would take ${vol}/.ferry/job.lock`,
      `nightly: pre hook: would run \`touch ${tmp}/hook-ran\` (timeout <T>)`,
      `nightly: snapshot ${vol}@<SNAP> would create (onchange: <FIRST DIFFERENCE> since <SNAP>)`,
      `nightly: ${usb}: would send the new snapshot incremental from <SNAP> (the newest snapshot both sides have)`,
      `nightly: ${disk}: would send the new snapshot incremental from <SNAP> (the newest snapshot both sides have)`,
      `nightly: prune target ${usb}: keep <SNAP> (keep_min latest; parent for the next send from ${vol})`,
      `nightly: prune target ${usb} (keep_min latest): would remove 0, kept 1`,
      `nightly: prune target ${disk}: keep <SNAP> (keep_min latest; parent for the next send from ${vol})`,
      `nightly: prune target ${disk} (keep_min latest): would remove 0, kept 1`,
      `nightly: prune source ${vol}: keep <SNAP> (keep_min latest; parent for target ${usb}; parent for target ${disk})`,
      `nightly: prune source ${vol} (keep_min latest): would remove 0, kept 1`,
      'nightly: ok in <T>',
      'dry run summary: ok: 1 job(s), 2 target(s), <T>',
      '  nightly: ok, snapshot <SNAP> would-create',
      `    ${usb}: would-send`,
      `    ${disk}: would-send`,
      '',
    ].join('\n'),
  );
});

test('one target failing does not stop the other: partial, exit 13, and the error with its hint', () => {
  const cfg = writeConfig(
    `jobs:\n  - name: nightly\n    volume: ${vol}\n    targets:\n      - path: nobody@127.0.0.1:1:/srv/x\n        ssh: { connect_timeout: 5s }\n      - ${usb}\n`,
  );
  const r = ferry(['run', '-c', cfg]);
  expect(r.code).toBe(13);
  const out = normalize(r.stdout.toString());
  expect(out).toContain('nightly: nobody@127.0.0.1:1:/srv/x: FAILED: ');
  expect(out).toMatch(new RegExp(`nightly: ${usb}: sent <SNAP> in full`));
  expect(out).toMatch(/summary: partial \(exit 13\): 1 job\(s\), 2 target\(s\), 1 failed, <T>\n  nightly: partial, snapshot <SNAP> created\n    nobody@127\.0\.0\.1:1:\/srv\/x: failed \(SSH_[A-Z_]+\)\n/);
  expect(r.stderr).toMatch(/^ferry: nightly: nobody@127\.0\.0\.1:1:\/srv\/x: .*\nhint: /);
  expect(received(usb)).toHaveLength(1);
});

test('a pre hook that outlives its timeout: the job is skipped with exit 18', () => {
  const cfg = basic(`    hooks:\n      pre: { command: "echo waiting; sleep 30", timeout: 1s }\n`);
  const t0 = Date.now();
  const r = ferry(['run', '-c', cfg]);
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(r.code).toBe(18);
  expect(normalize(r.stdout.toString())).toContain('nightly: pre hook `echo waiting; sleep 30`: timed out in <T>\nnightly: pre hook stdout: waiting\n');
  expect(r.stderr).toBe(
    'ferry: nightly: job nightly skipped: its pre hook timed out after 1s (its process group was killed) (command "echo waiting; sleep 30")\nhint: nothing was snapshotted, sent or pruned; the post hook still ran\n',
  );
  expect(fs.existsSync(usb)).toBe(false);
});

test('--metrics-file: Prometheus textfile metrics, written atomically; a failed run keeps the last success time', () => {
  const metrics = path.join(tmp, 'ferry.prom');
  const cfg = basic();
  expect(ferry(['run', '-c', cfg, '--metrics-file', metrics]).code).toBe(0);
  const text = fs.readFileSync(metrics, 'utf8');
  expect((fs.statSync(metrics).mode & 0o777).toString(8)).toBe('644');
  const ok = Number(/^ferry_job_last_success_timestamp_seconds\{job="nightly"\} (\S+)$/m.exec(text)![1]);
  expect(Math.abs(ok - Date.now() / 1000)).toBeLessThan(60);
  expect(text).toMatch(/^# TYPE ferry_job_last_success_timestamp_seconds gauge$/m);
  expect(text).toMatch(/^ferry_run_exit_code 0$/m);
  expect(text).toMatch(/^ferry_job_success\{job="nightly"\} 1$/m);
  expect(text).toMatch(new RegExp(`^ferry_target_result\\{job="nightly",target="${usb}"\\} 0$`, 'm'));
  expect(Number(new RegExp(`^ferry_target_bytes\\{job="nightly",target="${usb}"\\} (\\d+)$`, 'm').exec(text)![1])).toBeGreaterThan(300_000);
  expect(text).toMatch(/^ferry_job_duration_seconds\{job="nightly"\} [\d.]+$/m);
  expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);

  // The volume goes away: the job fails, and the metrics say so without forgetting the last success.
  fs.renameSync(vol, `${vol}.moved`);
  const r = ferry(['run', '-c', cfg, '--metrics-file', metrics]);
  expect(r.code).toBe(10);
  const after = fs.readFileSync(metrics, 'utf8');
  expect(after).toMatch(/^ferry_run_exit_code 10$/m);
  expect(after).toMatch(/^ferry_job_success\{job="nightly"\} 0$/m);
  expect(after).toMatch(/^ferry_job_exit_code\{job="nightly"\} 10$/m);
  expect(Number(/^ferry_job_last_success_timestamp_seconds\{job="nightly"\} (\S+)$/m.exec(after)![1])).toBe(ok);
  fs.renameSync(`${vol}.moved`, vol);
});

/** Every entry under root: type, mode, size, content hash, mtime in ns, and each directory's names. */
function fingerprint(root: string, noDirMtime = false): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (p: string) => {
    const st = fs.lstatSync(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    let desc = `mode=${st.mode.toString(8)} size=${st.isDirectory() ? '-' : st.size}`;
    if (!(noDirMtime && st.isDirectory())) desc += ` mtime=${st.mtimeNs}`;
    if (st.isFile()) desc += ` sha=${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    if (st.isDirectory()) {
      const names = fs.readdirSync(p).sort();
      desc += ` names=${names.join('/')}`;
      for (const n of names) visit(path.join(p, n));
    }
    out[rel] = desc;
  };
  visit(root);
  return out;
}
