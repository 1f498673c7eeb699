/**
 * Run a child process and measure its wall time and peak resident set size.
 *
 * With GNU time (`/usr/bin/time`, Debian package "time") the kernel's own
 * figure is used: ru_maxrss of the child, written with `-f %M -o FILE` so it
 * never mixes with the child's stderr. For a shell pipeline (`sh -c 'a | b'`)
 * that is the largest of its processes, not their sum. Without GNU time,
 * /proc/<pid>/status VmHWM of the direct child is polled, which misses its
 * descendants and anything shorter-lived than one poll interval.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { CommandError, bash, shellJoin } from './exec';
import { secondsSince } from './timing';

const GNU_TIME = '/usr/bin/time';

export interface MeasuredRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
  /** Peak RSS in bytes; NaN if it could not be measured. */
  peakRssBytes: number;
  method: 'gnu-time' | 'vmhwm-poll';
  /** The last 4 KiB of stderr, for error messages. */
  stderrTail: string;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A file to use as stdin (default: /dev/null). */
  stdinFile?: string;
  /** A file to write stdout to (default: discarded). */
  stdoutFile?: string;
  /** Force the /proc polling method (for tests). */
  forcePoll?: boolean;
  pollMs?: number;
}

let gnuTimeOk: boolean | undefined;
function hasGnuTime(): boolean {
  if (gnuTimeOk === undefined) {
    gnuTimeOk = spawnSync(GNU_TIME, ['-f', '%M', 'true'], { stdio: 'ignore' }).status === 0;
  }
  return gnuTimeOk;
}

function vmHwmBytes(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Run `cmd args` to completion, measuring wall time and peak RSS. Never throws for a non-zero exit. */
export async function peakRss(cmd: string, args: string[], opts: MeasureOptions = {}): Promise<MeasuredRun> {
  const useTime = !opts.forcePoll && hasGnuTime();
  const tmp = mkdtempSync(join(os.tmpdir(), 'ferry-bench-rss-'));
  const undo = registerCleanup(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
  const outFile = join(tmp, 'maxrss');
  const fds: number[] = [];
  try {
    const stdin = opts.stdinFile ? openSync(opts.stdinFile, 'r') : 'ignore';
    const stdout = opts.stdoutFile ? openSync(opts.stdoutFile, 'w') : 'ignore';
    for (const f of [stdin, stdout]) if (typeof f === 'number') fds.push(f);
    const [file, argv] = useTime ? [GNU_TIME, ['-f', '%M', '-o', outFile, cmd, ...args]] : [cmd, args];
    const t0 = process.hrtime.bigint();
    const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env, stdio: [stdin, stdout, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    let polled = 0;
    const timer = useTime
      ? undefined
      : setInterval(() => {
          const v = child.pid ? vmHwmBytes(child.pid) : undefined;
          if (v !== undefined) polled = Math.max(polled, v);
        }, opts.pollMs ?? 20);
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve({ code: c, signal: s }));
    });
    const seconds = secondsSince(t0);
    if (timer) clearInterval(timer);
    let peak = NaN;
    if (useTime) {
      const lines = readFileSync(outFile, 'utf8').trim().split('\n');
      const kib = Number(lines[lines.length - 1]);
      if (Number.isFinite(kib)) peak = kib * 1024;
    } else if (polled > 0) {
      peak = polled;
    }
    return { code, signal, seconds, peakRssBytes: peak, method: useTime ? 'gnu-time' : 'vmhwm-poll', stderrTail: stderr };
  } finally {
    for (const f of fds) closeSync(f);
    undo();
  }
}

export interface PipeRun {
  seconds: number;
  /** Peak RSS in bytes of the writer and of the reader; NaN where unmeasured. */
  peakRssBytes: [number, number];
  method: 'gnu-time' | 'vmhwm-poll';
  /** The reader's stdout (small: e.g. `ferry receive --json`). */
  stdout: string;
}

/**
 * Run `a | b` and measure each side's peak RSS (GNU time around each, or
 * VmHWM polling of the two children). Throws CommandError (tool `tool`)
 * when either side fails.
 */
export async function peakRssPipe(a: string[], b: string[], opts: { tool?: string; forcePoll?: boolean; pollMs?: number } = {}): Promise<PipeRun> {
  const useTime = !opts.forcePoll && hasGnuTime();
  const tool = opts.tool ?? a[0].split('/').pop()!;
  const tmp = mkdtempSync(join(os.tmpdir(), 'ferry-bench-rss-'));
  const undo = registerCleanup(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
  try {
    if (useTime) {
      const fa = join(tmp, 'a');
      const fb = join(tmp, 'b');
      const script = `${shellJoin([GNU_TIME, '-f', '%M', '-o', fa, ...a])} | ${shellJoin([GNU_TIME, '-f', '%M', '-o', fb, ...b])}`;
      const t0 = process.hrtime.bigint();
      const r = await bash(script, { tool });
      const seconds = secondsSince(t0);
      const kib = (f: string) => {
        const lines = readFileSync(f, 'utf8').trim().split('\n');
        const v = Number(lines[lines.length - 1]);
        return Number.isFinite(v) ? v * 1024 : NaN;
      };
      return { seconds, peakRssBytes: [kib(fa), kib(fb)], method: 'gnu-time', stdout: r.stdout };
    }
    const t0 = process.hrtime.bigint();
    const ca = spawn(a[0], a.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const cb = spawn(b[0], b.slice(1), { stdio: [ca.stdout!, 'pipe', 'pipe'] });
    // The reader has its own copy of the pipe now; ours would keep `a` from ever closing.
    ca.stdout!.destroy();
    let err = '';
    let out = '';
    for (const c of [ca, cb]) {
      c.stderr!.setEncoding('utf8');
      c.stderr!.on('data', (d: string) => (err = (err + d).slice(-4096)));
    }
    cb.stdout!.setEncoding('utf8');
    cb.stdout!.on('data', (d: string) => (out += d));
    const peaks: [number, number] = [0, 0];
    const timer = setInterval(() => {
      [ca, cb].forEach((c, i) => {
        const v = c.pid ? vmHwmBytes(c.pid) : undefined;
        if (v !== undefined) peaks[i] = Math.max(peaks[i], v);
      });
    }, opts.pollMs ?? 20);
    const done = (c: typeof ca, event: 'exit' | 'close') =>
      new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
        c.on('error', reject);
        c.on(event, (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
      });
    const [ra, rb] = await Promise.all([done(ca, 'exit'), done(cb, 'close')]);
    clearInterval(timer);
    const seconds = secondsSince(t0);
    for (const [r, argv] of [[ra, a], [rb, b]] as const) {
      if (r.signal || r.code !== 0) throw new CommandError(tool, argv, r.code, r.signal, err);
    }
    return { seconds, peakRssBytes: [peaks[0] || NaN, peaks[1] || NaN], method: 'vmhwm-poll', stdout: out };
  } finally {
    undo();
  }
}
