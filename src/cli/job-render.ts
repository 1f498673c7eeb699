/**
 * Renderers for `ferry run` and `ferry prune`: the same events and summary,
 * three ways.
 *
 *  - json:  every event as one JSON line on stdout (NDJSON), then exactly one
 *           summary object (`"event":"summary"`) as the last line;
 *  - plain: (not a TTY: cron mail, journald) one line per action on stdout,
 *           prefixed with the job name; failures and warnings on stderr with
 *           their hint; then the summary as lines;
 *  - tty:   the plain lines, a progress bar per transfer (bytes, rate,
 *           percentage, ETA) on stderr, and the summary as a table.
 *
 * Owns: how job output looks. Never: decides anything or exits.
 * In a real run prune prints what it removed and how many it kept; in a dry
 * run it prints every decision with its reasons.
 */
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import { HookOutcome } from '../job/hooks';
import { ErrorInfo, JobEvent, JobOutcome, PruneOutcome, RunSummary, TargetOutcome } from '../job/outcome';

export type RenderMode = 'json' | 'plain' | 'tty';

export interface Sink {
  write(s: string): unknown;
}

export interface JobRenderer {
  event(e: JobEvent): void;
  summary(s: RunSummary): void;
  /** Stop bars (on any exit path). */
  close(): void;
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function fmtSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 120) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  return m < 120 ? `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function errorText(e: ErrorInfo): string {
  return `${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`;
}

function hookLines(job: string, h: HookOutcome): string[] {
  const lines = [`${job}: ${h.hook} hook \`${h.command}\`: ${h.ok ? 'ok' : h.timedOut ? 'timed out' : h.exitCode === null ? `killed by ${h.signal ?? 'a signal'}` : `exit ${h.exitCode}`} in ${fmtSeconds(h.seconds)}`];
  for (const [name, text] of [
    ['stdout', h.stdout],
    ['stderr', h.stderr],
  ] as const) {
    for (const l of text.replace(/\n$/, '').split('\n')) if (text.trim()) lines.push(`${job}: ${h.hook} hook ${name}: ${l}`);
  }
  return lines;
}

function targetLine(job: string, t: Omit<TargetOutcome, 'prune'>): string {
  const where = `${job}: ${t.target}`;
  switch (t.result) {
    case 'up-to-date':
      return `${where}: up to date (has ${t.snapshot})`;
    case 'would-send':
      return `${where}: would send ${t.snapshot ?? 'the new snapshot'} ${t.parent ? `incremental from ${t.parent} (the newest snapshot both sides have)` : 'in full'}`;
    case 'not-run':
      return `${where}: not run (interrupted)`;
    case 'failed':
      return `${where}: FAILED: ${t.error?.message ?? 'unknown error'}`;
    default:
      return `${where}: sent ${t.snapshot} ${t.parent ? `incremental from ${t.parent}` : 'in full'}, ${fmtBytes(t.streamBytes)}${t.wireBytes !== t.streamBytes ? ` (${fmtBytes(t.wireBytes)} on the wire)` : ''}${t.resumedFromByte ? `, resumed at byte ${t.resumedFromByte}` : ''} in ${fmtSeconds(t.seconds)}${t.warnings.length ? `, ${t.warnings.length} warning(s)` : ''}`;
  }
}

function pruneDoneLine(job: string, p: Omit<PruneOutcome, 'decisions'> & { kept?: number }): string {
  const where = `${job}: prune ${p.side} ${p.where}`;
  if (p.error) return `${where}: FAILED: ${p.error.message}${p.note ? ` (${p.note})` : ''}`;
  if (p.note) return `${where}: ${p.note}`;
  const verb = p.dryRun ? 'would remove' : 'removed';
  return `${where} (${p.policy}): ${verb} ${p.removed.length}, kept ${p.kept ?? '?'}`;
}

class TextRenderer implements JobRenderer {
  private bars: MultiBar | undefined;
  private readonly open = new Map<string, SingleBar>();
  private readonly kept = new Map<string, number>();
  private readonly started = new Map<string, number>();

  constructor(
    private readonly out: Sink,
    private readonly err: Sink,
    private readonly tty: boolean,
  ) {}

  private line(s: string): void {
    if (this.bars) this.bars.log(s + '\n');
    else this.out.write(s + '\n');
  }

  private errLine(s: string): void {
    if (this.bars) this.bars.log(s + '\n');
    else this.err.write(s + '\n');
  }

  private stopBar(key: string): void {
    const b = this.open.get(key);
    if (!b || !this.bars) return;
    this.bars.remove(b);
    this.open.delete(key);
    if (this.open.size === 0) {
      this.bars.stop();
      this.bars = undefined;
    }
  }

  event(e: JobEvent): void {
    switch (e.event) {
      case 'job-start':
        this.line(`${e.job}: ${e.dryRun ? 'dry run of' : 'starting'} job for ${e.volume}`);
        break;
      case 'decision':
        this.line(`${e.job}: ${e.what}: ${e.reason}`);
        break;
      case 'hook':
        for (const l of hookLines(e.job, e.outcome)) this.line(l);
        break;
      case 'snapshot': {
        const s = e.outcome;
        const verb = { created: 'created', skipped: 'not taken', 'would-create': 'would create', 'would-skip': 'would not take', failed: 'FAILED' }[s.action];
        this.line(`${e.job}: snapshot ${s.name ? `${e.volume}@${s.name}` : e.volume} ${verb} (${s.reason})`);
        break;
      }
      case 'target-start':
        if (this.tty) {
          if (!this.bars) {
            this.bars = new MultiBar(
              {
                format: ' {target} [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}',
                hideCursor: true,
                clearOnComplete: true,
                stopOnComplete: false,
                etaBuffer: 20,
                fps: 5,
                stream: this.err as unknown as NodeJS.WritableStream,
              },
              Presets.shades_classic,
            );
          }
          this.open.set(`${e.job}\0${e.target}`, this.bars.create(1, 0, { target: e.target, done: '0 B', size: '?', rate: '' }));
          this.started.set(`${e.job}\0${e.target}`, Date.now());
        }
        break;
      case 'progress': {
        const b = this.open.get(`${e.job}\0${e.target}`);
        if (b) {
          const total = Math.max(e.total ?? e.bytes, e.bytes, 1);
          b.setTotal(total);
          const secs = (Date.now() - (this.started.get(`${e.job}\0${e.target}`) ?? Date.now())) / 1000;
          b.update(e.bytes, { done: fmtBytes(e.bytes), size: fmtBytes(total), rate: secs > 0.5 ? `${fmtBytes(Math.round(e.bytes / secs))}/s` : '' });
        }
        break;
      }
      case 'target-done':
        this.stopBar(`${e.job}\0${e.outcome.target}`);
        this.line(targetLine(e.job, e.outcome));
        for (const w of e.outcome.warnings) this.errLine(`ferry: warning: ${e.job}: ${e.outcome.target}: ${w}`);
        if (e.outcome.error) this.errLine(`ferry: ${e.job}: ${e.outcome.target}: ${errorText(e.outcome.error)}`);
        break;
      case 'prune': {
        const key = `${e.job}\0${e.side}\0${e.where}`;
        if (e.decision.action === 'keep') this.kept.set(key, (this.kept.get(key) ?? 0) + 1);
        if (e.dryRun || e.decision.action === 'remove') {
          const verb = e.decision.action === 'keep' ? 'keep' : e.dryRun ? 'would remove' : 'remove';
          this.line(`${e.job}: prune ${e.side} ${e.where}: ${verb} ${e.decision.name} (${e.decision.reasons.join('; ')})`);
        }
        break;
      }
      case 'prune-done': {
        const key = `${e.job}\0${e.outcome.side}\0${e.outcome.where}`;
        this.line(pruneDoneLine(e.job, { ...e.outcome, kept: this.kept.get(key) ?? 0 }));
        if (e.outcome.error) this.errLine(`ferry: ${e.job}: prune ${e.outcome.where}: ${errorText(e.outcome.error)}`);
        break;
      }
      case 'warning':
        if (e.target === null) this.errLine(`ferry: warning: ${e.job}: ${e.message}`);
        break; // target warnings are listed with the target's result
      case 'error':
        if (e.target === null) this.errLine(`ferry: ${e.job}: ${errorText(e.error)}`);
        break; // target errors are printed with the target's result
      case 'job-done':
        this.line(`${e.job}: ${e.result} in ${fmtSeconds(e.seconds)}${e.exitCode ? ` (exit ${e.exitCode})` : ''}`);
        break;
    }
  }

  summary(s: RunSummary): void {
    this.close();
    const counts = s.jobs.flatMap((j) => j.targets);
    const failed = counts.filter((t) => t.result === 'failed').length;
    const head = `${s.dryRun ? 'dry run ' : ''}summary: ${s.result}${s.exitCode ? ` (exit ${s.exitCode})` : ''}: ${s.jobs.length} job(s), ${counts.length} target(s)${failed ? `, ${failed} failed` : ''}, ${fmtSeconds(s.seconds)}`;
    if (this.tty) this.out.write(`\n${head}\n${summaryTable(s.jobs)}`);
    else {
      this.out.write(`${head}\n`);
      for (const j of s.jobs) {
        this.out.write(`  ${j.job}: ${j.result}${j.error ? ` (${j.error.code})` : ''}${j.snapshot?.name ? `, snapshot ${j.snapshot.name} ${j.snapshot.action}` : ''}\n`);
        for (const t of j.targets) {
          this.out.write(`    ${t.target}: ${t.result}${t.result === 'ok' || t.result === 'warning' ? `, ${fmtBytes(t.streamBytes)} in ${fmtSeconds(t.seconds)}` : ''}${t.error ? ` (${t.error.code})` : ''}\n`);
        }
      }
    }
  }

  close(): void {
    if (this.bars) {
      this.bars.stop();
      this.bars = undefined;
      this.open.clear();
    }
  }
}

function summaryTable(jobs: JobOutcome[]): string {
  const rows = [['JOB', 'RESULT', 'SNAPSHOT', 'TARGET', 'TARGET RESULT', 'BYTES', 'TIME', 'PRUNED', 'ERROR']];
  for (const j of jobs) {
    const pruned = (p: PruneOutcome | null) => (p ? (p.error ? 'failed' : p.note ? '-' : String(p.removed.length)) : '-');
    const first = [j.job, j.result, j.snapshot?.name ? `${j.snapshot.name} (${j.snapshot.action})` : '-'];
    if (j.targets.length === 0 || j.error) {
      rows.push([...first, '-', '-', '-', fmtSeconds(j.seconds), pruned(j.prune), j.error ? `${j.error.code}: ${j.error.message.split('\n')[0]}` : '']);
    }
    if (!j.error) {
      j.targets.forEach((t, i) => {
        rows.push([
          ...(i === 0 ? first : ['', '', '']),
          t.target,
          t.result,
          t.result === 'ok' || t.result === 'warning' ? fmtBytes(t.streamBytes) : '-',
          fmtSeconds(t.seconds),
          pruned(t.prune),
          t.error ? `${t.error.code}: ${t.error.message.split('\n')[0]}` : '',
        ]);
      });
      if (j.prune && !j.prune.note) rows.push(['', '', '', `(source ${j.volume})`, '', '', '', pruned(j.prune), j.prune.error?.code ?? '']);
    }
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

class JsonRenderer implements JobRenderer {
  constructor(
    private readonly out: Sink,
    private readonly now: () => Date,
  ) {}

  event(e: JobEvent): void {
    this.out.write(JSON.stringify({ ...e, time: this.now().toISOString() }) + '\n');
  }

  summary(s: RunSummary): void {
    this.out.write(JSON.stringify(s) + '\n');
  }

  close(): void {}
}

export function makeJobRenderer(mode: RenderMode, out: Sink, err: Sink, now: () => Date = () => new Date()): JobRenderer {
  return mode === 'json' ? new JsonRenderer(out, now) : new TextRenderer(out, err, mode === 'tty');
}
