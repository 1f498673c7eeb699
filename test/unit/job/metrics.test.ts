/** Prometheus textfile metrics (src/job/metrics.ts): names, labels, escaping, carry-over. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { escapeLabel, parseMetrics, renderMetrics, writeMetricsFile } from '../../../src/job/metrics';
import { JobOutcome, RunSummary, TargetOutcome } from '../../../src/job/outcome';

const target = (o: Partial<TargetOutcome>): TargetOutcome => ({
  target: '/mnt/b',
  result: 'ok',
  snapshot: 's',
  parent: null,
  streamBytes: 1234,
  wireBytes: 1000,
  resumedFromByte: 0,
  seconds: 1.5,
  warnings: [],
  error: null,
  prune: null,
  ...o,
});

const job = (o: Partial<JobOutcome>): JobOutcome => ({
  job: 'nightly',
  volume: '/srv',
  result: 'ok',
  exitCode: 0,
  dryRun: false,
  startedAt: '2026-01-01T00:00:00Z',
  seconds: 2,
  snapshot: null,
  hooks: [],
  targets: [target({})],
  prune: null,
  warnings: [],
  error: null,
  ...o,
});

const summary = (jobs: JobOutcome[], exitCode = 0): RunSummary => ({ event: 'summary', result: 'ok', exitCode, dryRun: false, config: '/etc/ferry/ferry.yaml', startedAt: '', seconds: 3, jobs });
const T1 = new Date('2026-11-03T03:15:00Z');
const T2 = new Date('2026-11-04T03:15:00Z');

test('names, types, labels and values', () => {
  const text = renderMetrics(
    summary([
      job({
        prune: { side: 'source', where: '/srv', policy: 'daily 7', dryRun: false, decisions: [{ name: 'a', time: '', action: 'keep', reasons: ['latest'] }], removed: ['b', 'c'], note: null, error: null },
      }),
    ]),
    T1,
    undefined,
  );
  const t = T1.getTime() / 1000;
  expect(text).toContain(`# HELP ferry_job_last_success_timestamp_seconds When the job last finished with result ok or warning (unix time).\n# TYPE ferry_job_last_success_timestamp_seconds gauge\nferry_job_last_success_timestamp_seconds{job="nightly"} ${t}\n`);
  for (const line of [
    `ferry_run_timestamp_seconds ${t}`,
    'ferry_run_exit_code 0',
    'ferry_job_duration_seconds{job="nightly"} 2',
    'ferry_job_success{job="nightly"} 1',
    'ferry_job_exit_code{job="nightly"} 0',
    'ferry_target_result{job="nightly",target="/mnt/b"} 0',
    'ferry_target_bytes{job="nightly",target="/mnt/b"} 1234',
    'ferry_target_wire_bytes{job="nightly",target="/mnt/b"} 1000',
    'ferry_target_duration_seconds{job="nightly",target="/mnt/b"} 1.5',
    `ferry_target_last_success_timestamp_seconds{job="nightly",target="/mnt/b"} ${t}`,
    'ferry_snapshots_kept{job="nightly",location="/srv"} 1',
    'ferry_snapshots_removed{job="nightly",location="/srv"} 2',
  ]) {
    expect(text.split('\n')).toContain(line);
  }
});

test('a failed run keeps the previous success times; jobs not run keep all their samples', () => {
  const first = renderMetrics(summary([job({}), job({ job: 'weekly', targets: [target({ target: 'nas:/x' })] })]), T1, undefined);
  const failed = job({ result: 'partial', exitCode: 13, targets: [target({ result: 'failed', error: { code: 'SSH_CONNECT_FAILED', exitCode: 13, message: 'x', hint: null } })] });
  const second = renderMetrics(summary([failed], 13), T2, first);
  const s = parseMetrics(second);
  const get = (name: string, labels: Record<string, string>) => s.find((x) => x.name === name && JSON.stringify(x.labels) === JSON.stringify(labels))?.value;
  expect(get('ferry_job_last_success_timestamp_seconds', { job: 'nightly' })).toBe(T1.getTime() / 1000);
  expect(get('ferry_job_last_run_timestamp_seconds', { job: 'nightly' })).toBe(T2.getTime() / 1000);
  expect(get('ferry_job_success', { job: 'nightly' })).toBe(0);
  expect(get('ferry_target_result', { job: 'nightly', target: '/mnt/b' })).toBe(13);
  expect(get('ferry_target_last_success_timestamp_seconds', { job: 'nightly', target: '/mnt/b' })).toBe(T1.getTime() / 1000);
  // "weekly" did not run this time: its samples are carried over unchanged.
  expect(get('ferry_job_last_success_timestamp_seconds', { job: 'weekly' })).toBe(T1.getTime() / 1000);
  expect(get('ferry_target_bytes', { job: 'weekly', target: 'nas:/x' })).toBe(1234);
  // Each metric family appears once, with its HELP and TYPE.
  expect(second.match(/^# TYPE ferry_job_success gauge$/gm)).toHaveLength(1);
});

test('label values are escaped and parse back', () => {
  const odd = 'a"b\\c\nd';
  expect(escapeLabel(odd)).toBe('a\\"b\\\\c\\nd');
  const text = renderMetrics(summary([job({ targets: [target({ target: odd })] })]), T1, undefined);
  expect(parseMetrics(text).find((x) => x.name === 'ferry_target_bytes')!.labels).toEqual({ job: 'nightly', target: odd });
});

test('the file is replaced atomically and readable by the collector', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-prom-'));
  try {
    const f = path.join(dir, 'ferry.prom');
    writeMetricsFile(f, summary([job({})]), T1);
    writeMetricsFile(f, summary([job({ result: 'failed', exitCode: 11, targets: [] })], 11), T2);
    expect(fs.readdirSync(dir)).toEqual(['ferry.prom']);
    expect(fs.statSync(f).mode & 0o777).toBe(0o644);
    expect(fs.readFileSync(f, 'utf8')).toContain(`ferry_job_last_success_timestamp_seconds{job="nightly"} ${T1.getTime() / 1000}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
