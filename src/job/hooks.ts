/**
 * Job hooks: run a user's shell command before or after a job, with a
 * timeout, capturing what it prints.
 *
 * Owns: spawning `/bin/sh -c COMMAND` in its own process group, the timeout
 * (SIGTERM to the whole group, SIGKILL after a grace period), and bounded
 * capture of stdout and stderr (the last 64 KiB of each). Never throws for a
 * failing command: the caller gets a HookOutcome and decides.
 *
 * Invariant: when runHook returns, no process of the hook's group that it
 * killed is left running, and its pipes are closed, even when a background
 * child of the hook kept them open.
 */
import { spawn } from 'node:child_process';

export const CAPTURE_BYTES = 64 * 1024;
export const KILL_GRACE_MS = 3000;
/** After the shell exits, how long to wait for pipes a background child still holds. */
const DRAIN_MS = 500;

export interface HookOutcome {
  hook: 'pre' | 'post';
  command: string;
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  seconds: number;
  stdout: string;
  stderr: string;
}

class Tail {
  private parts: Buffer[] = [];
  private size = 0;
  truncated = false;

  push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
    while (this.size > CAPTURE_BYTES) {
      this.truncated = true;
      const excess = this.size - CAPTURE_BYTES;
      const first = this.parts[0];
      if (first.length <= excess) {
        this.parts.shift();
        this.size -= first.length;
      } else {
        this.parts[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    const s = Buffer.concat(this.parts).toString('utf8');
    return this.truncated ? `[... earlier output dropped]\n${s}` : s;
  }
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
}

export interface HookRun {
  hook: 'pre' | 'post';
  command: string;
  timeoutMs: number;
  env: Record<string, string>;
  signal?: AbortSignal;
  /** For tests: the grace period between SIGTERM and SIGKILL. */
  killGraceMs?: number;
}

/** Run one hook to completion (or timeout) and report what happened. */
export function runHook(h: HookRun): Promise<HookOutcome> {
  const started = process.hrtime.bigint();
  const out = new Tail();
  const err = new Tail();
  return new Promise<HookOutcome>((resolve) => {
    const child = spawn('/bin/sh', ['-c', h.command], {
      env: { ...process.env, ...h.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so a timeout kills what it started too
    });
    let timedOut = false;
    let aborted = false;
    let done = false;
    let exit: { code: number | null; signal: string | null } | undefined;
    let spawnError: Error | undefined;
    const timers: NodeJS.Timeout[] = [];
    const stop = (why: 'timeout' | 'abort') => {
      if (exit) return;
      if (why === 'timeout') timedOut = true;
      else aborted = true;
      killGroup(child.pid, 'SIGTERM');
      timers.push(setTimeout(() => killGroup(child.pid, 'SIGKILL'), h.killGraceMs ?? KILL_GRACE_MS));
    };
    timers.push(setTimeout(() => stop('timeout'), h.timeoutMs));
    const onAbort = () => stop('abort');
    h.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));

    const finish = () => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      h.signal?.removeEventListener('abort', onAbort);
      child.stdout.destroy();
      child.stderr.destroy();
      // A background child of the hook may still hold the group: it goes with the hook.
      if (timedOut || aborted) killGroup(child.pid, 'SIGKILL');
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      let stderr = err.text();
      if (spawnError) stderr += `${stderr ? '\n' : ''}cannot start /bin/sh: ${spawnError.message}`;
      const code = exit?.code ?? null;
      resolve({
        hook: h.hook,
        command: h.command,
        ok: !timedOut && !aborted && !spawnError && code === 0,
        exitCode: code,
        signal: exit?.signal ?? null,
        timedOut,
        seconds,
        stdout: out.text(),
        stderr,
      });
    };
    child.once('error', (e) => {
      spawnError = e;
      finish();
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // Wait for the pipes to drain, but not for a background child that keeps them open.
      timers.push(setTimeout(finish, DRAIN_MS));
    });
    child.once('close', finish);
  });
}

/** One line saying how a hook ended: `exit 3`, `timed out after 5s`, `killed by SIGKILL`. */
export function describeHookEnd(o: HookOutcome, timeoutMs?: number): string {
  if (o.timedOut) return `timed out${timeoutMs !== undefined ? ` after ${timeoutMs / 1000}s` : ''} (its process group was killed)`;
  if (o.signal) return `killed by ${o.signal}`;
  if (o.exitCode === null) return 'could not be started';
  return `exit ${o.exitCode}`;
}
