/** Job hooks (src/job/hooks.ts): /bin/sh -c, captured output, timeout that kills the process group. */
import { CAPTURE_BYTES, describeHookEnd, runHook } from '../../../src/job/hooks';

const base = { hook: 'pre' as const, timeoutMs: 10_000, env: {} };

test('runs through /bin/sh with the environment given; stdout and stderr captured apart', async () => {
  const r = await runHook({ ...base, command: 'echo "job=$FERRY_JOB"; echo oops >&2; exit 0', env: { FERRY_JOB: 'nightly' } });
  expect(r).toMatchObject({ ok: true, exitCode: 0, signal: null, timedOut: false, stdout: 'job=nightly\n', stderr: 'oops\n' });
  expect(describeHookEnd(r)).toBe('exit 0');
});

test('a non-zero exit is not ok', async () => {
  const r = await runHook({ ...base, command: 'exit 7' });
  expect(r).toMatchObject({ ok: false, exitCode: 7 });
  expect(describeHookEnd(r)).toBe('exit 7');
});

test('only the last 64 KiB of output is kept, and it says so', async () => {
  const r = await runHook({ ...base, command: `head -c ${CAPTURE_BYTES * 3} /dev/zero | tr '\\0' x; echo END` });
  expect(r.ok).toBe(true);
  expect(r.stdout.startsWith('[... earlier output dropped]\n')).toBe(true);
  expect(r.stdout.endsWith('xEND\n')).toBe(true);
  expect(r.stdout.length).toBe('[... earlier output dropped]\n'.length + CAPTURE_BYTES);
});

test('timeout: SIGTERM to the group, SIGKILL when it is ignored', async () => {
  const t0 = Date.now();
  const r = await runHook({ ...base, command: "trap '' TERM; echo stubborn; sleep 20", timeoutMs: 300, killGraceMs: 300 });
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(r).toMatchObject({ ok: false, timedOut: true, stdout: 'stubborn\n' });
  expect(describeHookEnd(r, 300)).toBe('timed out after 0.3s (its process group was killed)');
});

test('a background child that keeps the pipes open does not hang the job', async () => {
  const t0 = Date.now();
  const r = await runHook({ ...base, command: 'sleep 5 & echo done' });
  expect(Date.now() - t0).toBeLessThan(3000);
  expect(r).toMatchObject({ ok: true, exitCode: 0, stdout: 'done\n' });
});

test('an abort (SIGINT/SIGTERM of ferry) stops the hook', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const r = await runHook({ ...base, command: 'sleep 20', signal: ac.signal });
  expect(r.ok).toBe(false);
  expect(r.timedOut).toBe(false);
  expect(r.signal).toBe('SIGTERM');
  expect(describeHookEnd(r)).toBe('killed by SIGTERM');
});
