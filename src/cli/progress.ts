/**
 * How `ferry sync` shows its progress: a cli-progress bar on a terminal
 * (bytes done and total, rate, percentage, ETA), one plain line per phase
 * when stderr is not a terminal, or NDJSON events on stdout with --json.
 *
 * Owns: the three renderers and their byte/rate/time formatting. Never:
 * decides anything about the sync; the mode is chosen by the command (only
 * src/cli/ looks at isTTY). Progress goes to stderr in text modes, so stdout
 * keeps only the result.
 */
import { SingleBar } from 'cli-progress';
import type { SyncEvent, SyncSummary } from '../replicate/sync';

export type ProgressMode = 'bar' | 'plain' | 'json';

export interface ProgressRenderer {
  onEvent(e: SyncEvent): void;
  /** The final result (stdout). */
  summary(s: SyncSummary): void;
  /** Stop drawing (before an error is printed). */
  stop(): void;
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function humanSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** Rate over the bytes sent in this run (a resumed prefix is not counted) and the time left. */
export function rateAndEta(e: Extract<SyncEvent, { event: 'progress' }>): { rate: number; eta: number } {
  const sent = e.streamBytes - e.resumedFromByte;
  const rate = e.seconds > 0 ? sent / e.seconds : 0;
  const left = Math.max(0, e.totalBytes - e.streamBytes);
  return { rate, eta: rate > 0 ? left / rate : Infinity };
}

/** One line per transfer and for the whole run, for humans. */
export function describeSummary(s: SyncSummary): string {
  if (!s.transfers.length) return `${s.volume}@${s.snapshot} is already in ${s.target}; nothing sent\n`;
  const lines = s.transfers.map((t) => {
    const how = t.parent ? `incremental from ${t.parent}` : 'full';
    const resumed = t.resumedFromByte ? `, resumed at ${humanBytes(t.resumedFromByte)}` : '';
    return `${s.volume}@${t.snapshot} -> ${s.target} (${how}${resumed}): ${humanBytes(t.streamBytes)} stream, ${humanBytes(t.wireBytes)} on the wire, ${t.seconds.toFixed(1)}s`;
  });
  return lines.join('\n') + '\n';
}

/** NDJSON: every event; progress at most once a second, and always the last one before the next other event. */
class JsonRenderer implements ProgressRenderer {
  private lastProgress = 0;
  private held: Extract<SyncEvent, { event: 'progress' }> | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  private writeProgress(e: Extract<SyncEvent, { event: 'progress' }>): void {
    const { rate, eta } = rateAndEta(e);
    this.out.write(JSON.stringify({ ...e, bytesPerSecond: Math.round(rate), etaSeconds: Number.isFinite(eta) ? Math.round(eta) : null }) + '\n');
  }

  onEvent(e: SyncEvent): void {
    if (e.event === 'progress') {
      const now = Date.now();
      if (now - this.lastProgress < 1000) {
        this.held = e;
        return;
      }
      this.lastProgress = now;
      this.held = undefined;
      this.writeProgress(e);
      return;
    }
    if (this.held) this.writeProgress(this.held);
    this.held = undefined;
    this.out.write(JSON.stringify(e) + '\n');
  }

  summary(s: SyncSummary): void {
    this.out.write(JSON.stringify({ event: 'summary', ...s }) + '\n');
  }

  stop(): void {}
}

class PlainRenderer implements ProgressRenderer {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly err: NodeJS.WritableStream,
  ) {}

  onEvent(e: SyncEvent): void {
    if (e.event === 'phase' && e.phase !== 'done') this.err.write(`ferry: ${e.message}\n`);
    else if (e.event === 'warning') this.err.write(`ferry: warning: ${e.message}\n`);
  }

  summary(s: SyncSummary): void {
    this.out.write(describeSummary(s));
  }

  stop(): void {}
}

class BarRenderer implements ProgressRenderer {
  private bar: SingleBar | undefined;
  private readonly plain: PlainRenderer;

  constructor(
    out: NodeJS.WritableStream,
    private readonly err: NodeJS.WritableStream,
  ) {
    this.plain = new PlainRenderer(out, err);
  }

  onEvent(e: SyncEvent): void {
    if (e.event === 'progress') {
      const { rate, eta } = rateAndEta(e);
      const payload = { done: humanBytes(e.streamBytes), tot: humanBytes(e.totalBytes), rate: humanBytes(Math.round(rate)), left: humanSeconds(eta), snap: e.snapshot };
      if (!this.bar) {
        this.bar = new SingleBar({
          stream: this.err,
          format: '{snap} [{bar}] {percentage}% | {done} / {tot} | {rate}/s | ETA {left}',
          hideCursor: true,
          barsize: 30,
          fps: 5,
        });
        this.bar.start(e.totalBytes, e.streamBytes, payload);
      } else {
        this.bar.setTotal(e.totalBytes);
        this.bar.update(e.streamBytes, payload);
      }
      return;
    }
    if (e.event === 'transfer') {
      this.stop();
      return;
    }
    // The bar owns the line while it runs; warnings are printed with the summary.
    if (e.event === 'phase' && !this.bar) this.plain.onEvent(e);
  }

  summary(s: SyncSummary): void {
    this.stop();
    for (const w of s.warnings) this.err.write(`ferry: warning: ${w}\n`);
    this.plain.summary(s);
  }

  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
    }
  }
}

export function createProgress(mode: ProgressMode, out: NodeJS.WritableStream, err: NodeJS.WritableStream): ProgressRenderer {
  if (mode === 'json') return new JsonRenderer(out);
  if (mode === 'bar') return new BarRenderer(out, err);
  return new PlainRenderer(out, err);
}
