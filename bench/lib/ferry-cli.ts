/**
 * ferry's CLI as the suites run it: the built bin/ferry under this Node, as a
 * user would, optionally with V8's sampling profiler on (`--cpu-prof`) so the
 * report can say where ferry's time went (bench/lib/profile.ts).
 *
 * Also the chores around it that are not timed: forgetting a volume's
 * snapshots, and removing received snapshots from a target (their roots are
 * immutable). Never edits a ferry file in place; it only removes whole
 * snapshots, the way a user would reset a benchmark.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RunOptions, RunResult, run, shellJoin } from './exec';
import { forceRemove } from './fsutil';

export interface ReceivedLine {
  name: string;
  streamBytes: number;
  method: string;
  receivedUuid: string;
  path: string;
  warnings: string[];
}

export class FerryCli {
  constructor(
    /** bin/ferry of the checkout being measured. */
    readonly bin: string,
    readonly node: string = process.execPath,
  ) {}

  /** argv for `ferry ARGS`; with `profileDir`, V8 writes a .cpuprofile there when the process exits. */
  argv(args: readonly string[], profileDir?: string): string[] {
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    return [this.node, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), this.bin, ...args];
  }

  /** The same as one bash word list, for pipelines. */
  sh(args: readonly string[], profileDir?: string): string {
    return shellJoin(this.argv(args, profileDir));
  }

  /** Run ferry; exit 3 (finished with warnings) counts as success. */
  run(args: readonly string[], opts: RunOptions & { profileDir?: string } = {}): Promise<RunResult> {
    return run(this.argv(args, opts.profileDir), { tool: 'ferry', okCodes: [0, 3], ...opts });
  }
}

/** The objects `ferry receive --json` printed, one per received snapshot. */
export function parseReceived(stdout: string): ReceivedLine[] {
  const out: ReceivedLine[] = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    const o = JSON.parse(t) as Partial<ReceivedLine> & { event?: string };
    if (o.event !== 'received') continue;
    out.push({
      name: String(o.name),
      streamBytes: Number(o.streamBytes),
      method: String(o.method),
      receivedUuid: String(o.receivedUuid),
      path: String(o.path),
      warnings: o.warnings ?? [],
    });
  }
  return out;
}

/** The single snapshot a `ferry receive --json` run printed. */
export function receivedOne(stdout: string): ReceivedLine {
  const r = parseReceived(stdout);
  if (r.length !== 1) throw new Error(`ferry receive printed ${r.length} snapshots, expected 1:\n${stdout.slice(0, 2000)}`);
  return r[0];
}

/** Make DIR a plain tree again: remove DIR/.ferry and every snapshot in it. */
export function forgetVolume(dir: string): void {
  forceRemove(join(dir, '.ferry'));
}

/** Remove received snapshot NAME from TARGET: its tree and its catalog entry. */
export function removeReceived(target: string, name: string): void {
  forceRemove(join(target, name));
  const catalog = join(target, '.ferry', 'catalog');
  let files: string[] = [];
  try {
    files = readdirSync(catalog);
  } catch {
    return;
  }
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    try {
      const e = JSON.parse(readFileSync(join(catalog, f), 'utf8')) as { name?: string };
      if (e.name === name) rmSync(join(catalog, f), { force: true });
    } catch {
      /* not an entry */
    }
  }
}
