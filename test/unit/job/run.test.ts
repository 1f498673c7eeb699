/**
 * The job runner (src/job/run.ts) with its dependencies injected: in-memory
 * targets and a fake clock, real volumes, locks, hooks and retention.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../../src/config/load';
import { FerryError } from '../../../src/errors';
import { JobEvent, judgeRun } from '../../../src/job/outcome';
import { runJobs } from '../../../src/job/run';
import { listTargetStates } from '../../../src/job/target-state';
import { placeHold } from '../../../src/volume/holds';
import { Lock } from '../../../src/volume/lock';
import { initVolume, listSnapshots, openVolume } from '../../../src/volume/volume';
import { FakeWorld, transportDown } from './fake-world';

const D = 86_400_000;
let tmp: string;
let vol: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-job-'));
  vol = path.join(tmp, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'a.txt'), 'hello\n');
  initVolume(vol, 'index');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function config(body: string) {
  return parseConfig(`jobs:\n  - name: nightly\n    volume: ${vol}\n${body}`, path.join(tmp, 'ferry.yaml'));
}

async function run(cfg: ReturnType<typeof config>, world: FakeWorld, o: { dryRun?: boolean; jobs?: string[] } = {}) {
  const events: JobEvent[] = [];
  const summary = await runJobs(cfg, { ...o, onEvent: (e) => events.push(e) }, world.deps());
  return { summary, events, job: summary.jobs[0] };
}

const names = () => listSnapshots(openVolume(vol)).map((s) => s.meta.name);

/** Alive and not a zombie (in a container, PID 1 may never reap an orphan). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

test('snapshot → every target → prune; names and ages from the injected clock', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const cfg = config('    targets: [/fake/usb, "nas:/pool/x"]\n');
  const { summary, events, job } = await run(cfg, world);
  expect(summary).toMatchObject({ event: 'summary', result: 'ok', exitCode: 0, dryRun: false });
  expect(job.snapshot).toMatchObject({ name: '20261103T031500Z', action: 'created', reason: 'snapshot: always' });
  expect(job.targets.map((t) => [t.target, t.result, t.snapshot, t.parent, t.streamBytes])).toEqual([
    ['/fake/usb', 'ok', '20261103T031500Z', null, 5000],
    ['nas:/pool/x', 'ok', '20261103T031500Z', null, 5000],
  ]);
  expect(events.map((e) => e.event)).toEqual([
    'job-start',
    'snapshot',
    'target-start',
    'progress',
    'target-done',
    'target-start',
    'progress',
    'target-done',
    'prune-done', // retention defaults to keep_min all on both sides: nothing considered
    'prune-done',
    'prune-done',
    'job-done',
  ]);
  expect(job.prune).toMatchObject({ note: 'keep_min all: nothing is pruned', removed: [] });
  // What was sent is recorded for the day a target cannot be listed.
  expect(listTargetStates(vol).map((s) => [s.dest, s.snapshot]).sort()).toEqual([
    ['/fake/usb', '20261103T031500Z'],
    ['nas:/pool/x', '20261103T031500Z'],
  ]);

  world.advance(D);
  fs.writeFileSync(path.join(vol, 'b.txt'), 'more\n');
  const second = await run(cfg, world);
  expect(second.job.targets.map((t) => [t.result, t.snapshot, t.parent])).toEqual([
    ['ok', '20261104T031500Z', '20261103T031500Z'],
    ['ok', '20261104T031500Z', '20261103T031500Z'],
  ]);
});

test('one failing target does not stop the others: partial, with the failing target\'s exit code', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  world.target('nas:/pool/x').unreachable = transportDown();
  const cfg = config('    targets: ["nas:/pool/x", /fake/usb]\n');
  const { summary, job, events } = await run(cfg, world);
  expect(job.targets.map((t) => [t.target, t.result])).toEqual([
    ['nas:/pool/x', 'failed'],
    ['/fake/usb', 'ok'],
  ]);
  expect(job.targets[0].error).toEqual({ code: 'SSH_CONNECT_FAILED', exitCode: 13, message: 'ssh connect failed: connection refused (host "nas")', hint: 'is the host up?' });
  expect(job).toMatchObject({ result: 'partial', exitCode: 13, error: null });
  expect(summary).toMatchObject({ result: 'partial', exitCode: 13 });
  expect(events.filter((e) => e.event === 'error').map((e) => (e as { target: string }).target)).toEqual(['nas:/pool/x']);
  expect(world.target('/fake/usb').snaps).toHaveLength(1);

  // Every target failing is a total failure, with the same code.
  world.target('/fake/usb').failSync = new FerryError('RECV_NO_SPACE', 'not enough space', { context: { target: '/fake/usb' } });
  world.advance(1000);
  const all = await run(cfg, world);
  expect(all.job).toMatchObject({ result: 'failed', exitCode: 13 });
  expect(all.job.targets.map((t) => t.error?.exitCode)).toEqual([13, 17]);
});

test('onchange: no snapshot when nothing changed; a change, a removal or a rename makes one', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const cfg = config('    snapshot: onchange\n    targets: [/fake/usb]\n');
  const first = await run(cfg, world);
  expect(first.job.snapshot).toMatchObject({ action: 'created', reason: 'onchange: the volume has no snapshot yet' });

  world.advance(3600_000);
  const same = await run(cfg, world);
  expect(same.job.snapshot).toMatchObject({ action: 'skipped', name: '20261103T031500Z' });
  expect(same.job.snapshot!.reason).toMatch(/^onchange: nothing changed since 20261103T031500Z/);
  expect(same.job.targets[0].result).toBe('up-to-date');
  expect(same.job.result).toBe('ok');
  expect(names()).toEqual(['20261103T031500Z']);

  for (const change of [
    () => fs.appendFileSync(path.join(vol, 'a.txt'), 'x'),
    () => fs.renameSync(path.join(vol, 'a.txt'), path.join(vol, 'b.txt')),
    () => fs.rmSync(path.join(vol, 'b.txt')),
    () => fs.mkdirSync(path.join(vol, 'd')),
    () => fs.chmodSync(path.join(vol, 'd'), 0o700),
  ]) {
    world.advance(3600_000);
    change();
    const r = await run(cfg, world);
    expect(r.job.snapshot!.action).toBe('created');
    expect(r.job.targets[0].result).toBe('ok');
  }
  expect(names()).toHaveLength(6);
});

test('a run while the job lock is held exits 11 at once, naming the holder, and changes nothing', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const marker = path.join(tmp, 'hook-ran');
  const cfg = config(`    targets: [/fake/usb]\n    hooks: { pre: "touch ${marker}", post: "touch ${marker}" }\n`);
  const lock = Lock.acquire(path.join(vol, '.ferry', 'job.lock'), 'test holds it');
  try {
    const t0 = Date.now();
    const { summary, job } = await run(cfg, world);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(summary).toMatchObject({ result: 'failed', exitCode: 11 });
    expect(job.error!.code).toBe('JOB_LOCKED');
    expect(job.error!.message).toMatch(new RegExp(`^job nightly skipped: another ferry run holds the volume \\(pid ${process.pid}, started \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z, test holds it\\)`));
    expect(names()).toEqual([]);
    expect(world.syncCalls).toHaveLength(0);
    expect(fs.existsSync(marker)).toBe(false);
  } finally {
    lock.release();
  }
  // A lock left by a dead process is taken over.
  fs.writeFileSync(path.join(vol, '.ferry', 'job.lock'), JSON.stringify({ pid: 2 ** 22 + 17, startedAt: 'x', procStart: '1', purpose: 'dead' }));
  expect((await run(cfg, world)).summary.exitCode).toBe(0);
  expect(fs.existsSync(path.join(vol, '.ferry', 'job.lock'))).toBe(false);
});

test('a failing pre hook skips the job (exit 18); the post hook still runs and is told why', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const env = path.join(tmp, 'post-env');
  const cfg = config(`    targets: [/fake/usb]\n    hooks:\n      pre: "echo freezing; echo db is down >&2; exit 4"\n      post: 'env | grep ^FERRY_ | sort > ${env}'\n`);
  const { summary, job, events } = await run(cfg, world);
  expect(summary).toMatchObject({ result: 'failed', exitCode: 18 });
  expect(job.error).toMatchObject({ code: 'JOB_HOOK_FAILED', exitCode: 18, message: 'job nightly skipped: its pre hook exit 4 (command "echo freezing; echo db is down >&2; exit 4")', hint: 'its stderr ends with: db is down' });
  expect(job.hooks.map((h) => [h.hook, h.ok, h.exitCode, h.stdout, h.stderr])).toEqual([
    ['pre', false, 4, 'freezing\n', 'db is down\n'],
    ['post', true, 0, '', ''],
  ]);
  expect(events.filter((e) => e.event === 'hook')).toHaveLength(2);
  expect(names()).toEqual([]);
  expect(world.syncCalls).toHaveLength(0);
  // Only what ferry set: FERRY_* variables inherited from the test's own
  // environment (FERRY_REQUIRE_REAL_FS in CI) pass through untouched.
  const hookEnv = fs
    .readFileSync(env, 'utf8')
    .split('\n')
    .filter((l) => !(l.slice(0, l.indexOf('=')) in process.env))
    .join('\n');
  expect(hookEnv).toBe(
    `FERRY_ERROR=job nightly skipped: its pre hook exit 4 (command "echo freezing; echo db is down >&2; exit 4")\nFERRY_EXIT_CODE=18\nFERRY_JOB=nightly\nFERRY_PHASE=post\nFERRY_RESULT=failed\nFERRY_VOLUME=${vol}\n`,
  );
});

test('hooks: a post hook failure is a warning (exit 3); the post hook sees a partial result', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  world.target('nas:/x').unreachable = transportDown();
  const env = path.join(tmp, 'post-env');
  const cfg = config(`    targets: [/fake/usb, "nas:/x"]\n    hooks: { post: 'echo "$FERRY_RESULT $FERRY_EXIT_CODE $FERRY_SNAPSHOT" > ${env}; exit 1' }\n`);
  const { job } = await run(cfg, world);
  expect(fs.readFileSync(env, 'utf8')).toBe('partial 13 20261103T031500Z\n');
  expect(job).toMatchObject({ result: 'partial', exitCode: 13 });
  world.target('nas:/x').unreachable = undefined;
  world.advance(1000);
  const again = await run(cfg, world);
  expect(again.job).toMatchObject({ result: 'warning', exitCode: 3 });
  expect(again.job.warnings).toEqual([expect.stringMatching(/^post hook exit 1: echo/)]);
});

test('a hook that outlives its timeout is killed with its whole process group', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const pidFile = path.join(tmp, 'bg.pid');
  const cfg = config(`    targets: [/fake/usb]\n    hooks:\n      pre: { command: "sleep 30 & echo $! > ${pidFile}; echo started; sleep 30", timeout: 1s }\n`);
  const t0 = Date.now();
  const { job } = await run(cfg, world);
  expect(Date.now() - t0).toBeLessThan(8000);
  expect(job).toMatchObject({ result: 'failed', exitCode: 18 });
  expect(job.error!.message).toBe(`job nightly skipped: its pre hook timed out after 1s (its process group was killed) (command "sleep 30 & echo $! > ${pidFile}; echo started; sleep 30")`);
  expect(job.hooks[0]).toMatchObject({ timedOut: true, ok: false, stdout: 'started\n' });
  const bg = Number(fs.readFileSync(pidFile, 'utf8'));
  await new Promise((r) => setTimeout(r, 200));
  expect(running(bg)).toBe(false);
});

test('a missing volume fails the job with exit 10 and the next job still runs', async () => {
  const world = new FakeWorld('2026-11-03T03:15:00Z');
  const cfg = parseConfig(`jobs:\n  - name: gone\n    volume: ${tmp}/nope\n    targets: [/fake/a]\n  - name: here\n    volume: ${vol}\n    targets: [/fake/b]\n`, 'x.yaml');
  const { summary } = await run(cfg, world);
  expect(summary.jobs.map((j) => [j.job, j.result, j.exitCode, j.error?.code ?? null])).toEqual([
    ['gone', 'failed', 10, 'VOLUME_NOT_FOUND'],
    ['here', 'ok', 0, null],
  ]);
  expect(summary).toMatchObject({ result: 'partial', exitCode: 10 });
  await expect(runJobs(cfg, { jobs: ['here', 'typo'] }, world.deps())).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('"typo"') });
  const only = await runJobs(cfg, { jobs: ['here'] }, world.deps());
  expect(only.jobs.map((j) => j.job)).toEqual(['here']);
});

test('retention in a run: source and targets pruned, the parent each target needs is protected', async () => {
  const world = new FakeWorld('2026-11-01T03:00:00Z');
  const cfg = config(
    [
      '    targets:',
      '      - path: /fake/usb',
      '      - path: "nas:/x"',
      '        retention: { daily: 2 }',
      '    retention:',
      '      timezone: utc',
      '      source: { daily: 3 }',
      '      target: { daily: 5 }',
      '',
    ].join('\n'),
  );
  for (let day = 0; day < 4; day++) {
    fs.writeFileSync(path.join(vol, 'a.txt'), `day ${day}\n`);
    const r = await run(cfg, world);
    expect(r.job.result).toBe('ok');
    world.advance(D);
  }
  // NAS goes away for 5 days; the source keeps what it last sent there.
  world.target('nas:/x').unreachable = transportDown();
  let last;
  for (let day = 4; day < 9; day++) {
    fs.writeFileSync(path.join(vol, 'a.txt'), `day ${day}\n`);
    last = await run(cfg, world);
    expect(last.job.result).toBe('partial');
    world.advance(D);
  }
  const kept = last!.job.prune!.decisions.filter((d) => d.action === 'keep');
  expect(kept.map((d) => [d.name, d.reasons])).toEqual([
    ['20261104T030000Z', ['parent for target nas:/x (last sent; the target could not be listed)']],
    ['20261107T030000Z', ['daily 2026-11-07']],
    ['20261108T030000Z', ['daily 2026-11-08']],
    ['20261109T030000Z', ['daily 2026-11-09', 'latest', 'parent for target /fake/usb']],
  ]);
  expect(last!.job.targets[1].prune).toMatchObject({ note: 'not pruned: the target could not be reached (SSH_CONNECT_FAILED)', error: null });
  // Back online: the send is incremental from that protected snapshot.
  world.target('nas:/x').unreachable = undefined;
  const back = await run(cfg, world);
  expect(back.job.targets[1]).toMatchObject({ result: 'ok', parent: '20261104T030000Z' });
  // The NAS kept 11-04 (its newest common one) through its outage, whatever daily: 2 said;
  // once it has 11-10, 11-04 is neither daily nor the parent any more.
  expect(back.job.targets[1].prune!.decisions.map((d) => [d.name, d.action, d.reasons])).toEqual([
    ['20261103T030000Z', 'remove', ['matches no rule of daily 2']],
    ['20261104T030000Z', 'remove', ['matches no rule of daily 2']],
    ['20261110T030000Z', 'keep', ['daily 2026-11-10', 'latest', `parent for the next send from ${vol}`]],
  ]);
  expect(world.target('nas:/x').snaps.map((s) => s.name)).toEqual(['20261110T030000Z']);
  expect(world.target('/fake/usb').snaps.map((s) => s.name)).toEqual(['20261106T030000Z', '20261107T030000Z', '20261108T030000Z', '20261109T030000Z', '20261110T030000Z']);
});

test('holds and targets\' held partials are never pruned', async () => {
  const world = new FakeWorld('2026-11-01T03:00:00Z');
  const cfg = config('    targets: [/fake/usb]\n    retention:\n      timezone: utc\n      source: { keep_min: latest }\n      target: { keep_min: latest }\n');
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(vol, 'a.txt'), `v${i}\n`);
    await run(cfg, world);
    world.advance(D);
  }
  expect(names()).toEqual(['20261103T030000Z']);
  placeHold(vol, 'nas:/other', ['20261103T030000Z'], 'sync to nas:/other');
  world.target('/fake/usb').held = [world.target('/fake/usb').snaps[0].receivedUuid];
  fs.writeFileSync(path.join(vol, 'a.txt'), 'v3\n');
  const r = await run(cfg, world);
  expect(r.job.prune!.decisions.map((d) => [d.name, d.action, d.reasons])).toEqual([
    ['20261103T030000Z', 'keep', ['held by interrupted transfer to nas:/other (sync to nas:/other)']],
    ['20261104T030000Z', 'keep', ['keep_min latest', 'parent for target /fake/usb']],
  ]);
  expect(r.job.targets[0].prune!.decisions.map((d) => [d.name, d.action, d.reasons])).toEqual([
    ['20261103T030000Z', 'keep', ['held by interrupted transfer to /fake/usb']],
    ['20261104T030000Z', 'keep', ['keep_min latest', 'parent for the next send from ' + vol]],
  ]);
});

test('dry run: every decision with its reason, and nothing changes', async () => {
  const world = new FakeWorld('2026-11-01T03:00:00Z');
  const marker = path.join(tmp, 'hook-ran');
  const cfg = config(`    targets: [/fake/usb]\n    hooks: { pre: "touch ${marker}" }\n    retention:\n      timezone: utc\n      source: { daily: 1 }\n      target: { daily: 1 }\n`);
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(vol, 'a.txt'), `v${i}\n`);
    const r = await run({ ...cfg, jobs: cfg.jobs.map((j) => ({ ...j, retention: { source: { ...j.retention.source, keepMin: { kind: 'all' as const } } } })) }, world);
    expect(r.job.result).toBe('ok');
    world.advance(D);
  }
  fs.rmSync(marker);
  fs.writeFileSync(path.join(vol, 'a.txt'), 'changed\n');
  const before = names();
  const syncs = world.syncCalls.length;
  const targetBefore = JSON.stringify(world.target('/fake/usb').snaps);
  const { summary, events, job } = await run(cfg, world, { dryRun: true });
  expect(summary).toMatchObject({ dryRun: true, result: 'ok', exitCode: 0 });
  expect(names()).toEqual(before);
  expect(world.syncCalls.length).toBe(syncs);
  expect(JSON.stringify(world.target('/fake/usb').snaps)).toBe(targetBefore);
  expect(fs.existsSync(marker)).toBe(false);
  expect(job.snapshot).toMatchObject({ action: 'would-create', name: '20261104T030000Z' });
  expect(job.targets[0]).toMatchObject({ result: 'would-send', parent: '20261103T030000Z' });
  const decisions = events.filter((e) => e.event === 'decision').map((e) => `${(e as { what: string }).what}: ${(e as { reason: string }).reason}`);
  expect(decisions).toEqual([
    `lock: would take ${vol}/.ferry/job.lock`,
    `pre hook: would run \`touch ${marker}\` (timeout 600s)`,
  ]);
  expect(job.prune!.decisions.map((d) => [d.name, d.action, d.reasons])).toEqual([
    ['20261101T030000Z', 'remove', ['matches no rule of daily 1']],
    ['20261102T030000Z', 'remove', ['matches no rule of daily 1']],
    ['20261103T030000Z', 'keep', ['latest', 'parent for target /fake/usb']],
  ]);
  expect(job.prune!.removed).toEqual(['20261101T030000Z', '20261102T030000Z']);
});

test('judgeRun: ok, warning, partial across jobs, and a specific code beats 1', () => {
  expect(judgeRun([{ result: 'ok', exitCode: 0 }, { result: 'warning', exitCode: 3 }])).toEqual({ result: 'warning', exitCode: 3 });
  expect(judgeRun([{ result: 'ok', exitCode: 0 }, { result: 'failed', exitCode: 11 }])).toEqual({ result: 'partial', exitCode: 11 });
  expect(judgeRun([{ result: 'failed', exitCode: 1 }, { result: 'failed', exitCode: 13 }])).toEqual({ result: 'failed', exitCode: 13 });
  expect(judgeRun([{ result: 'partial', exitCode: 15 }])).toEqual({ result: 'partial', exitCode: 15 });
});
