/**
 * `ferry run --metrics-file PATH`: Prometheus textfile-collector metrics
 * (node_exporter --collector.textfile.directory), as sanoid users get from
 * their check scripts.
 *
 * Owns: the metric names (scripts and alerts depend on them; extend, don't
 * rename) and writing the file atomically (temp file in the same directory,
 * fsync, rename), so the collector never reads half a file.
 *
 * The file is rewritten by every run, but what a run cannot know is carried
 * over from the previous file: the samples of jobs this run did not run
 * (`ferry run JOB`), and the last-success timestamps of jobs and targets
 * that failed this time. Alert on `time() - ferry_job_last_success_timestamp_seconds`.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../volume/atomic';
import { JobOutcome, RunSummary, TargetOutcome } from './outcome';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const HELP: Record<string, [string, string]> = {
  ferry_run_timestamp_seconds: ['gauge', 'When the last ferry run finished (unix time).'],
  ferry_run_exit_code: ['gauge', 'Exit code of the last ferry run (0 ok, 3 warnings, see docs/jobs.md).'],
  ferry_job_last_run_timestamp_seconds: ['gauge', 'When the job last ran (unix time).'],
  ferry_job_last_success_timestamp_seconds: ['gauge', 'When the job last finished with result ok or warning (unix time).'],
  ferry_job_duration_seconds: ['gauge', 'How long the job took in its last run.'],
  ferry_job_success: ['gauge', '1 if the job last finished ok or with warnings, else 0.'],
  ferry_job_exit_code: ['gauge', "Exit code of the job's last run (0 ok, 3 warnings, 11 locked, 13 transport, 18 hook, ...)."],
  ferry_target_result: ['gauge', 'Result of the last send to the target as an exit code: 0 sent or up to date, 3 warnings, else the error exit code.'],
  ferry_target_bytes: ['gauge', 'Stream bytes sent to the target in the last run.'],
  ferry_target_wire_bytes: ['gauge', 'Bytes on the wire (after compression) to the target in the last run.'],
  ferry_target_duration_seconds: ['gauge', 'How long the last send to the target took.'],
  ferry_target_last_success_timestamp_seconds: ['gauge', 'When a send to the target last succeeded (unix time).'],
  ferry_snapshots_kept: ['gauge', 'Snapshots kept by the last prune of a volume or target.'],
  ferry_snapshots_removed: ['gauge', 'Snapshots removed by the last prune of a volume or target.'],
};

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(\\|"|n)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parse the samples of a textfile (comments and malformed lines are skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    const lre = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;
    let lm: RegExpExecArray | null;
    const body = m[2] ?? '';
    while ((lm = lre.exec(body)) !== null) labels[lm[1]] = unescapeLabel(lm[2]);
    const value = Number(m[3]);
    if (Number.isFinite(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

const targetOk = (t: TargetOutcome) => t.result === 'ok' || t.result === 'warning' || t.result === 'up-to-date';
const jobOk = (j: JobOutcome) => j.result === 'ok' || j.result === 'warning';
const targetCode = (t: TargetOutcome) => (t.result === 'failed' ? t.error?.exitCode ?? 1 : t.result === 'warning' ? 3 : 0);

/** The metrics for `s`, merged with the previous file's samples as described above. */
export function renderMetrics(s: RunSummary, now: Date, previous: string | undefined): string {
  const prev = previous ? parseMetrics(previous) : [];
  const t = now.getTime() / 1000;
  const ran = new Set(s.jobs.map((j) => j.job));
  const samples: Sample[] = [
    { name: 'ferry_run_timestamp_seconds', labels: {}, value: t },
    { name: 'ferry_run_exit_code', labels: {}, value: s.exitCode },
  ];
  const carried = (name: string, labels: Record<string, string>) =>
    prev.find((p) => p.name === name && Object.keys(labels).length === Object.keys(p.labels).length && Object.entries(labels).every(([k, v]) => p.labels[k] === v));
  for (const j of s.jobs) {
    const job = { job: j.job };
    samples.push({ name: 'ferry_job_last_run_timestamp_seconds', labels: job, value: t });
    if (jobOk(j)) samples.push({ name: 'ferry_job_last_success_timestamp_seconds', labels: job, value: t });
    else {
      const p = carried('ferry_job_last_success_timestamp_seconds', job);
      if (p) samples.push(p);
    }
    samples.push({ name: 'ferry_job_duration_seconds', labels: job, value: j.seconds });
    samples.push({ name: 'ferry_job_success', labels: job, value: jobOk(j) ? 1 : 0 });
    samples.push({ name: 'ferry_job_exit_code', labels: job, value: j.exitCode });
    for (const tg of j.targets) {
      const l = { job: j.job, target: tg.target };
      samples.push({ name: 'ferry_target_result', labels: l, value: targetCode(tg) });
      samples.push({ name: 'ferry_target_bytes', labels: l, value: tg.streamBytes });
      samples.push({ name: 'ferry_target_wire_bytes', labels: l, value: tg.wireBytes });
      samples.push({ name: 'ferry_target_duration_seconds', labels: l, value: tg.seconds });
      if (targetOk(tg)) samples.push({ name: 'ferry_target_last_success_timestamp_seconds', labels: l, value: t });
      else {
        const p = carried('ferry_target_last_success_timestamp_seconds', l);
        if (p) samples.push(p);
      }
    }
    const prunes = [j.prune, ...j.targets.map((x) => x.prune)];
    for (const p of prunes) {
      if (!p || p.note || p.error) continue;
      const l = { job: j.job, location: p.where };
      samples.push({ name: 'ferry_snapshots_kept', labels: l, value: p.decisions.filter((d) => d.action === 'keep').length });
      samples.push({ name: 'ferry_snapshots_removed', labels: l, value: p.removed.length });
    }
  }
  for (const p of prev) if (p.labels.job !== undefined && !ran.has(p.labels.job)) samples.push(p);

  const lines: string[] = [];
  for (const name of Object.keys(HELP)) {
    const group = samples.filter((x) => x.name === name);
    if (!group.length) continue;
    lines.push(`# HELP ${name} ${HELP[name][1]}`, `# TYPE ${name} ${HELP[name][0]}`);
    for (const x of group) {
      const ls = Object.entries(x.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      lines.push(`${name}${ls.length ? `{${ls.join(',')}}` : ''} ${Number.isInteger(x.value) ? x.value : Number(x.value.toFixed(3))}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Write the metrics file atomically, readable by the collector (0644). */
export function writeMetricsFile(file: string, s: RunSummary, now: Date): void {
  let previous: string | undefined;
  try {
    previous = fs.readFileSync(file, 'utf8');
  } catch {
    previous = undefined;
  }
  writeFileAtomic(file, renderMetrics(s, now, previous), 0o644);
}
