/** The job renderers (src/cli/job-render.ts): the TTY table, plain lines, and NDJSON with one summary. */
import { makeJobRenderer } from '../../../src/cli/job-render';
import { JobEvent, RunSummary } from '../../../src/job/outcome';

class Buf {
  text = '';
  write(s: string) {
    this.text += s;
    return true;
  }
}

const summary: RunSummary = {
  event: 'summary',
  result: 'partial',
  exitCode: 13,
  dryRun: false,
  config: '/etc/ferry/ferry.yaml',
  startedAt: '2026-11-03T03:15:00.000Z',
  seconds: 4.2,
  jobs: [
    {
      job: 'nightly',
      volume: '/srv/data',
      result: 'partial',
      exitCode: 13,
      dryRun: false,
      startedAt: '2026-11-03T03:15:00.000Z',
      seconds: 4.1,
      snapshot: { name: '20261103T031500Z', action: 'created', reason: 'snapshot: always', warnings: [] },
      hooks: [],
      targets: [
        { target: '/mnt/usb', result: 'ok', snapshot: '20261103T031500Z', parent: '20261102T031500Z', streamBytes: 5 * 1024 * 1024, wireBytes: 5 * 1024 * 1024, resumedFromByte: 0, seconds: 2, warnings: [], error: null, prune: { side: 'target', where: '/mnt/usb', policy: 'daily 7', dryRun: false, decisions: [], removed: ['a'], note: null, error: null } },
        {
          target: 'backup@nas:/pool',
          result: 'failed',
          snapshot: '20261103T031500Z',
          parent: null,
          streamBytes: 0,
          wireBytes: 0,
          resumedFromByte: 0,
          seconds: 0.4,
          warnings: [],
          error: { code: 'SSH_CONNECT_FAILED', exitCode: 13, message: 'ssh connect failed: ECONNREFUSED (host "nas")', hint: 'is sshd running there?' },
          prune: null,
        },
      ],
      prune: { side: 'source', where: '/srv/data', policy: 'daily 7', dryRun: false, decisions: [], removed: [], note: null, error: null },
      warnings: [],
      error: null,
    },
    {
      job: 'db',
      volume: '/srv/db',
      result: 'failed',
      exitCode: 11,
      dryRun: false,
      startedAt: '2026-11-03T03:15:04.000Z',
      seconds: 0.01,
      snapshot: null,
      hooks: [],
      targets: [],
      prune: null,
      warnings: [],
      error: { code: 'JOB_LOCKED', exitCode: 11, message: 'job db skipped: another ferry run holds the volume (pid 42, started x)', hint: null },
    },
  ],
};

test('TTY: a table naming every target, its outcome, bytes, time, prunes and errors', () => {
  const out = new Buf();
  const err = new Buf();
  const r = makeJobRenderer('tty', out, err);
  r.summary(summary);
  expect(out.text).toBe(
    [
      '',
      'summary: partial (exit 13): 2 job(s), 2 target(s), 1 failed, 4.2s',
      'JOB      RESULT   SNAPSHOT                    TARGET              TARGET RESULT  BYTES    TIME  PRUNED  ERROR',
      'nightly  partial  20261103T031500Z (created)  /mnt/usb            ok             5.0 MiB  2.0s  1',
      '                                              backup@nas:/pool    failed         -        0.4s  -       SSH_CONNECT_FAILED: ssh connect failed: ECONNREFUSED (host "nas")',
      '                                              (source /srv/data)                                0',
      'db       failed   -                           -                   -              -        0.0s  -       JOB_LOCKED: job db skipped: another ferry run holds the volume (pid 42, started x)',
      '',
    ].join('\n'),
  );
  expect(err.text).toBe('');
});

test('plain: one line per action on stdout; failures with their hint on stderr', () => {
  const out = new Buf();
  const err = new Buf();
  const r = makeJobRenderer('plain', out, err);
  const events: JobEvent[] = [
    { event: 'job-start', job: 'nightly', volume: '/srv/data', dryRun: false },
    { event: 'target-start', job: 'nightly', target: '/mnt/usb', snapshot: 's2' },
    { event: 'progress', job: 'nightly', target: '/mnt/usb', bytes: 10, total: 100 },
    { event: 'target-done', job: 'nightly', outcome: { ...summary.jobs[0].targets[1], target: 'nas:/x' } },
    { event: 'prune', job: 'nightly', side: 'source', where: '/srv/data', dryRun: false, decision: { name: 's0', time: '', action: 'remove', reasons: ['matches no rule of daily 7'] } },
    { event: 'prune', job: 'nightly', side: 'source', where: '/srv/data', dryRun: false, decision: { name: 's1', time: '', action: 'keep', reasons: ['latest'] } },
    { event: 'prune-done', job: 'nightly', outcome: { side: 'source', where: '/srv/data', policy: 'daily 7', dryRun: false, removed: ['s0'], note: null, error: null } },
    { event: 'job-done', job: 'nightly', result: 'partial', exitCode: 13, seconds: 1 },
  ];
  for (const e of events) r.event(e);
  expect(out.text).toBe(
    [
      'nightly: starting job for /srv/data',
      'nightly: nas:/x: FAILED: ssh connect failed: ECONNREFUSED (host "nas")',
      'nightly: prune source /srv/data: remove s0 (matches no rule of daily 7)',
      'nightly: prune source /srv/data (daily 7): removed 1, kept 1',
      'nightly: partial in 1.0s (exit 13)',
      '',
    ].join('\n'),
  );
  expect(err.text).toBe('ferry: nightly: nas:/x: ssh connect failed: ECONNREFUSED (host "nas")\nhint: is sshd running there?\n');
});

test('json: every event one line with a time, then exactly one summary object', () => {
  const out = new Buf();
  const r = makeJobRenderer('json', out, new Buf(), () => new Date('2026-11-03T03:15:00Z'));
  r.event({ event: 'job-start', job: 'nightly', volume: '/srv/data', dryRun: false });
  r.summary(summary);
  const lines = out.text.trim().split('\n').map((l) => JSON.parse(l));
  expect(lines).toHaveLength(2);
  expect(lines[0]).toEqual({ event: 'job-start', job: 'nightly', volume: '/srv/data', dryRun: false, time: '2026-11-03T03:15:00.000Z' });
  expect(lines[1]).toEqual(JSON.parse(JSON.stringify(summary)));
});
