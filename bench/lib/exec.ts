/**
 * Running the tools a suite compares: ferry's CLI, btrfs, rsync, find, ssh.
 *
 * Owns: spawning a child (or a bash pipeline with pipefail), collecting its
 * output, and turning a failure into a CommandError that names the tool and
 * carries the tail of its stderr, so a suite can tell "ferry failed" (a
 * result worth reporting) from a bug in the benchmark (a crash). Never uses
 * a shell for a single command; pipelines are built with `q()` quoting only.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/** Quote one word for bash. */
export function q(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A command line as one bash string. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(q).join(' ');
}

export class CommandError extends Error {
  constructor(
    /** Which side failed, e.g. "ferry", "btrfs", "rsync". */
    readonly tool: string,
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(
      `${tool} failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${shortArgv(argv)}` +
        (stderrTail.trim() ? `\n${stderrTail.trim()}` : ''),
    );
    this.name = 'CommandError';
  }

  /** One line for a report note. */
  get summary(): string {
    const last = this.stderrTail.trim().split('\n').filter(Boolean).slice(-2).join(' / ');
    return `${this.tool} failed (${this.signal ? `signal ${this.signal}` : `exit ${this.code}`})${last ? `: ${last}` : ''}`;
  }
}

function shortArgv(argv: readonly string[]): string {
  const s = shellJoin(argv);
  return s.length > 400 ? `${s.slice(0, 400)}...` : s;
}

export interface RunOptions {
  /** Names the side in errors (default: argv[0]'s basename). */
  tool?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
  /** Read stdin from this file (default /dev/null). */
  stdinFile?: string;
  /** Write stdout to this file instead of capturing it. */
  stdoutFile?: string;
  /** Captured stdout beyond this many bytes is dropped (default 16 MiB). */
  maxStdout?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const STDERR_TAIL = 8192;

/** Run argv to completion. Throws CommandError for an exit code not in okCodes. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const tool = opts.tool ?? argv[0].split('/').pop()!;
  const fds: number[] = [];
  try {
    const stdin = opts.stdinFile ? openSync(opts.stdinFile, 'r') : 'ignore';
    const stdout = opts.stdoutFile ? openSync(opts.stdoutFile, 'w') : 'pipe';
    for (const f of [stdin, stdout]) if (typeof f === 'number') fds.push(f);
    const child = spawn(argv[0], argv.slice(1), { env: opts.env, cwd: opts.cwd, stdio: [stdin, stdout, 'pipe'] });
    const max = opts.maxStdout ?? 16 << 20;
    const out: Buffer[] = [];
    let outBytes = 0;
    child.stdout?.on('data', (d: Buffer) => {
      if (outBytes < max) out.push(d);
      outBytes += d.length;
    });
    let err = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      err = (err + d).slice(-STDERR_TAIL);
    });
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve({ code: c, signal: s }));
    });
    if (signal || code === null || !(opts.okCodes ?? [0]).includes(code)) {
      throw new CommandError(tool, argv, code, signal, err);
    }
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: err };
  } finally {
    for (const f of fds) closeSync(f);
  }
}

/** Run a bash script with `set -o pipefail`, so a failure anywhere in a pipeline fails it. */
export function bash(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run(['bash', '-o', 'pipefail', '-c', script], { tool: opts.tool ?? 'bash', ...opts });
}

/** The first CommandError in an error's cause chain, if any. */
export function commandErrorOf(e: unknown): CommandError | undefined {
  for (let x = e as { cause?: unknown } | undefined, i = 0; x && i < 8; x = x.cause as typeof x, i++) {
    if (x instanceof CommandError) return x;
  }
  return undefined;
}
