/**
 * `ferry run`: the composition root that executes the jobs of a config.
 *
 * Per job, in order (docs/jobs.md):
 *   volume → lock (VOLUME/.ferry/job.lock; held: JOB_LOCKED, exit 11, at
 *   once) → pre hook (failure: JOB_HOOK_FAILED, the job is skipped) →
 *   snapshot (always | onchange) → each target: syncVolume (one failing
 *   target never stops the next) → prune targets and source → post hook
 *   (always, once the lock is held; FERRY_RESULT tells it how it went) →
 *   unlock.
 *
 * Owns: that order, turning every failure into an outcome (nothing a job
 * does can stop the next job), and the events the CLI renders. Depends on
 * the rest of ferry only through JobDeps (ports.ts) plus the volume
 * modules. Never prints, exits or reads argv (src/cli does).
 *
 * Dry run: reads everything it needs (volume, snapshots, target listings)
 * and reports every decision with its reason, but takes no lock, runs no
 * hook, takes no snapshot, sends nothing, removes nothing and writes
 * nothing — the volume, its .ferry directory and every target are left
 * byte for byte as they were.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Exit, FerryError } from '../errors';
import { FerryConfig, JobConfig, TargetConfig } from '../config/schema';
import { keepsEverything } from '../retention/policy';
import { newestCommon } from '../retention/protect';
import { Lock, LockInfo } from '../volume/lock';
import { defaultSnapshotName, listSnapshots, openVolume, snapshot as takeSnapshot, SnapshotInfo, Volume } from '../volume/volume';
import { describeHookEnd, HookOutcome, runHook } from './hooks';
import { changedSince } from './onchange';
import {
  ErrorInfo,
  errorInfo,
  JobEvent,
  JobOutcome,
  judgeJob,
  judgeRun,
  PruneOutcome,
  RunSummary,
  SnapshotOutcome,
  TargetOutcome,
} from './outcome';
import { Destination, JobDeps, RemoteSnapshot, SyncEvent } from './ports';
import {
  applySourcePrune,
  applyTargetPrune,
  decisionsOut,
  emptyPrune,
  planSourcePrune,
  planTargetPrune,
  sourceProtections,
  applyLocalTargetPrune,
  TargetListing,
  targetProtections,
  toSourceSnap,
} from './prune';
import { recordSent } from './target-state';

export const JOB_LOCK = 'job.lock';

export interface RunOptions {
  /** Job names to run (default: all, in config order). */
  jobs?: string[];
  dryRun?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: JobEvent) => void;
}

/** Throws USAGE when a requested job is not in the config. */
export function selectJobs(cfg: FerryConfig, names: string[] | undefined): JobConfig[] {
  if (!names || names.length === 0) return cfg.jobs;
  const unknown = names.filter((n) => !cfg.jobs.some((j) => j.name === n));
  if (unknown.length) {
    throw new FerryError('USAGE', `no job named ${unknown.map((n) => JSON.stringify(n)).join(', ')} in ${cfg.file}`, {
      hint: `jobs in this config: ${cfg.jobs.map((j) => j.name).join(', ')}`,
    });
  }
  return cfg.jobs.filter((j) => names.includes(j.name));
}

export async function runJobs(cfg: FerryConfig, o: RunOptions, deps: JobDeps): Promise<RunSummary> {
  const jobs = selectJobs(cfg, o.jobs);
  const startedAt = deps.now();
  const t0 = process.hrtime.bigint();
  const outcomes: JobOutcome[] = [];
  for (const job of jobs) {
    if (o.signal?.aborted) break;
    outcomes.push(await new JobRun(job, o, deps).run());
  }
  const { result, exitCode } = judgeRun(outcomes);
  return {
    event: 'summary',
    result,
    exitCode: o.signal?.aborted ? interruptedExit(o.signal) : exitCode,
    dryRun: !!o.dryRun,
    config: cfg.file,
    startedAt: startedAt.toISOString(),
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    jobs: outcomes,
  };
}

function interruptedExit(signal: AbortSignal): number {
  return signal.reason === 'SIGTERM' ? Exit.TERMINATED : Exit.INTERRUPTED;
}

function readLockInfo(file: string): LockInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

/** Pick a free default name: YYYYMMDDTHHMMSSZ, then _2, _3 ... within the same second. */
function freshName(now: Date, existing: readonly SnapshotInfo[]): string {
  const base = defaultSnapshotName(now);
  const taken = new Set(existing.map((s) => s.meta.name));
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
}

class JobRun {
  private readonly out: JobOutcome;
  private readonly t0 = process.hrtime.bigint();
  private readonly dry: boolean;
  private vol: Volume | undefined;

  constructor(
    private readonly job: JobConfig,
    private readonly o: RunOptions,
    private readonly deps: JobDeps,
  ) {
    this.dry = !!o.dryRun;
    this.out = {
      job: job.name,
      volume: job.volume,
      result: 'ok',
      exitCode: Exit.OK,
      dryRun: this.dry,
      startedAt: deps.now().toISOString(),
      seconds: 0,
      snapshot: null,
      hooks: [],
      targets: [],
      prune: null,
      warnings: [],
      error: null,
    };
  }

  private emit(e: JobEvent): void {
    this.o.onEvent?.(e);
  }

  private decide(what: string, reason: string): void {
    this.emit({ event: 'decision', job: this.job.name, what, reason });
  }

  private fail(e: unknown): ErrorInfo {
    const info = errorInfo(e);
    this.out.error = info;
    this.emit({ event: 'error', job: this.job.name, target: null, error: info });
    return info;
  }

  private warn(message: string, target: string | null = null): void {
    if (target === null) this.out.warnings.push(message);
    this.emit({ event: 'warning', job: this.job.name, target, message });
  }

  async run(): Promise<JobOutcome> {
    const job = this.job;
    this.emit({ event: 'job-start', job: job.name, volume: job.volume, dryRun: this.dry });
    let lock: Lock | undefined;
    try {
      try {
        this.vol = openVolume(job.volume);
      } catch (e) {
        this.fail(e);
        return this.finish();
      }
      const lockFile = path.join(this.vol.ferryDir, JOB_LOCK);
      if (this.dry) {
        const held = readLockInfo(lockFile);
        this.decide('lock', held ? `${lockFile} is held by pid ${held.pid} since ${held.startedAt} (${held.purpose}): a real run now would exit 11` : `would take ${lockFile}`);
      } else {
        try {
          lock = Lock.acquire(lockFile, `ferry run, job ${job.name}`);
        } catch (e) {
          if (e instanceof FerryError && e.code === 'VOLUME_LOCKED') {
            const h = readLockInfo(lockFile);
            this.fail(
              new FerryError('JOB_LOCKED', `job ${job.name} skipped: another ferry run holds the volume${h ? ` (pid ${h.pid}, started ${h.startedAt}, ${h.purpose})` : ''}`, {
                context: { lock: lockFile },
                hint: 'cron started this run while the last one was still going; nothing was changed. A lock whose process is gone is taken over automatically',
                retryable: true,
                cause: e,
              }),
            );
            return this.finish();
          }
          this.fail(e);
          return this.finish();
        }
      }
      try {
        if (await this.preHook()) {
          const snap = await this.snapshot();
          if (snap !== undefined) {
            for (const t of job.targets) this.out.targets.push(await this.target(t, snap));
            await this.prune();
          }
        }
      } catch (e) {
        // A step above turns expected failures into outcomes; this is the safety net.
        this.fail(e);
      }
      await this.postHook();
      return this.finish();
    } finally {
      lock?.release();
    }
  }

  private finish(): JobOutcome {
    const j = judgeJob(this.out);
    this.out.result = j.result;
    this.out.exitCode = j.exitCode;
    this.out.seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    this.emit({ event: 'job-done', job: this.job.name, result: j.result, exitCode: j.exitCode, seconds: this.out.seconds });
    return this.out;
  }

  private hookEnv(phase: 'pre' | 'post'): Record<string, string> {
    const env: Record<string, string> = { FERRY_JOB: this.job.name, FERRY_VOLUME: this.job.volume, FERRY_PHASE: phase };
    if (phase === 'post') {
      const j = judgeJob(this.out);
      env.FERRY_RESULT = j.result;
      env.FERRY_EXIT_CODE = String(j.exitCode);
      if (this.out.snapshot?.name) env.FERRY_SNAPSHOT = this.out.snapshot.name;
      const firstError = this.out.error ?? this.out.targets.find((t) => t.error)?.error;
      if (firstError) env.FERRY_ERROR = firstError.message;
    }
    return env;
  }

  private async hook(phase: 'pre' | 'post'): Promise<HookOutcome | undefined> {
    const h = this.job.hooks[phase];
    if (!h) return undefined;
    if (this.dry) {
      this.decide(`${phase} hook`, `would run \`${h.command}\` (timeout ${h.timeoutMs / 1000}s)`);
      return undefined;
    }
    // An interrupted run still runs its post hook (within its timeout): that is where failure mail is sent.
    const signal = phase === 'pre' ? this.o.signal : undefined;
    const r = await runHook({ hook: phase, command: h.command, timeoutMs: h.timeoutMs, env: this.hookEnv(phase), signal });
    this.out.hooks.push(r);
    this.emit({ event: 'hook', job: this.job.name, outcome: r });
    return r;
  }

  /** False when the pre hook failed (the job is skipped). */
  private async preHook(): Promise<boolean> {
    const r = await this.hook('pre');
    if (!r || r.ok) return true;
    const h = this.job.hooks.pre!;
    this.fail(
      new FerryError('JOB_HOOK_FAILED', `job ${this.job.name} skipped: its pre hook ${describeHookEnd(r, h.timeoutMs)}`, {
        context: { command: h.command },
        hint: r.stderr.trim() ? `its stderr ends with: ${lastLine(r.stderr)}` : 'nothing was snapshotted, sent or pruned; the post hook still ran',
      }),
    );
    return false;
  }

  private async postHook(): Promise<void> {
    const r = await this.hook('post');
    if (r && !r.ok) this.warn(`post hook ${describeHookEnd(r, this.job.hooks.post!.timeoutMs)}: ${this.job.hooks.post!.command}`);
  }

  /**
   * The snapshot to send: a new one, or (onchange, nothing changed) the
   * newest. undefined when the job cannot go on; null in a dry run that
   * would take a new one.
   */
  private async snapshot(): Promise<string | null | undefined> {
    const vol = this.vol!;
    const snaps = listSnapshots(vol);
    const newest = snaps[snaps.length - 1];
    let reason = 'snapshot: always';
    const record = (s: SnapshotOutcome) => {
      this.out.snapshot = s;
      this.emit({ event: 'snapshot', job: this.job.name, volume: vol.dir, outcome: s });
    };
    try {
      if (this.job.snapshot === 'onchange') {
        if (!newest) reason = 'onchange: the volume has no snapshot yet';
        else {
          const c = await changedSince(vol, newest);
          if (!c.changed) {
            record({ name: newest.meta.name, action: this.dry ? 'would-skip' : 'skipped', reason: `onchange: ${c.reason}; sending ${newest.meta.name} where it is missing`, warnings: [] });
            return newest.meta.name;
          }
          reason = `onchange: ${c.reason}`;
        }
      }
      const name = freshName(this.deps.now(), snaps);
      if (this.dry) {
        record({ name, action: 'would-create', reason, warnings: [] });
        return null;
      }
      const r = await takeSnapshot(vol, { name, onWarning: (m) => this.warn(`snapshot ${name}: ${m}`) });
      record({ name: r.meta.name, action: 'created', reason, warnings: r.warnings });
      return r.meta.name;
    } catch (e) {
      record({ name: null, action: 'failed', reason, warnings: [] });
      this.fail(e);
      return undefined;
    }
  }

  private syncOptions(t: TargetConfig): Omit<Parameters<JobDeps['sync']>[0], 'volume' | 'dest'> {
    return {
      proto: t.proto,
      compress: t.compress ?? undefined,
      bwlimit: t.bwlimit ?? undefined,
      ssh: Object.keys(t.ssh).length ? t.ssh : undefined,
      remoteCommand: t.remoteCommand ?? undefined,
      incrementalOnly: t.incrementalOnly || undefined,
      format: t.format,
      fullEvery: t.fullEvery ?? undefined,
      signal: this.o.signal,
    };
  }

  private async openDest(t: TargetConfig): Promise<Destination> {
    return this.deps.openDestination(t.path, { ssh: Object.keys(t.ssh).length ? t.ssh : undefined, remoteCommand: t.remoteCommand ?? undefined, format: t.format, signal: this.o.signal });
  }

  private async target(t: TargetConfig, snap: string | null): Promise<TargetOutcome> {
    const job = this.job.name;
    const out: TargetOutcome = {
      target: t.path,
      result: 'failed',
      snapshot: snap,
      parent: null,
      streamBytes: 0,
      wireBytes: 0,
      resumedFromByte: 0,
      seconds: 0,
      warnings: [],
      error: null,
      prune: null,
    };
    const t1 = process.hrtime.bigint();
    const done = () => {
      out.seconds = Number(process.hrtime.bigint() - t1) / 1e9;
      const { prune: _p, ...rest } = out;
      void _p;
      this.emit({ event: 'target-done', job, outcome: rest });
      return out;
    };
    if (this.o.signal?.aborted) {
      out.result = 'not-run';
      return done();
    }
    this.emit({ event: 'target-start', job, target: t.path, snapshot: snap });
    if (this.dry) {
      try {
        const d = await this.openDest(t);
        try {
          const listing = await d.list();
          const snaps = listSnapshots(this.vol!);
          const wanted = snap === null ? undefined : snaps.find((s) => s.meta.name === snap);
          if (wanted && listing.some((r) => r.receivedUuid === wanted.meta.uuid)) {
            out.result = 'up-to-date';
          } else {
            // The parent sync would choose: the newest snapshot both sides have (by uuid).
            const older = wanted ? snaps.filter((s) => BigInt(s.meta.transid) < BigInt(wanted.meta.transid)) : snaps;
            out.parent = newestCommon(older.map(toSourceSnap), listing)?.source.name ?? null;
            out.result = 'would-send';
            if (!out.parent && listing.length) this.decide(`send to ${t.path}`, 'the target has snapshots but none in common with the volume: sync will send in full or refuse (exit 15)');
          }
        } finally {
          await d.close().catch(() => undefined);
        }
      } catch (e) {
        out.error = errorInfo(e);
        this.emit({ event: 'error', job, target: t.path, error: out.error });
      }
      return done();
    }
    try {
      const r = await this.deps.sync({
        volume: this.job.volume,
        dest: t.path,
        snapshotName: snap ?? undefined,
        ...this.syncOptions(t),
        onEvent: (e: SyncEvent) => {
          if (e.event === 'progress') this.emit({ event: 'progress', job, target: t.path, bytes: e.streamBytes, total: e.totalBytes });
          else if (e.event === 'warning') this.emit({ event: 'warning', job, target: t.path, message: e.message });
        },
      });
      out.snapshot = r.snapshot;
      out.parent = r.parent;
      out.streamBytes = r.streamBytes;
      out.wireBytes = r.wireBytes;
      out.resumedFromByte = r.resumedFromByte;
      out.warnings = r.warnings;
      out.result = r.transfers.length === 0 ? 'up-to-date' : r.warnings.length ? 'warning' : 'ok';
      const sent = listSnapshots(this.vol!).find((s) => s.meta.name === r.snapshot);
      if (sent) recordSent(this.job.volume, { dest: t.path, job, snapshot: sent.meta.name, uuid: sent.meta.uuid, at: this.deps.now().toISOString() });
    } catch (e) {
      out.error = errorInfo(e);
      this.emit({ event: 'error', job, target: t.path, error: out.error });
    }
    return done();
  }

  private emitPrune(p: PruneOutcome): void {
    for (const d of p.decisions) this.emit({ event: 'prune', job: this.job.name, side: p.side, where: p.where, dryRun: p.dryRun, decision: d });
    const { decisions: _d, ...rest } = p;
    void _d;
    this.emit({ event: 'prune-done', job: this.job.name, outcome: rest });
  }

  private async prune(): Promise<void> {
    if (this.o.signal?.aborted) return;
    const job = this.job;
    const vol = this.vol!;
    const now = this.deps.now();
    const sourceKeepsAll = keepsEverything(job.retention.source);
    const anyTargetPrunes = job.targets.some((t) => !keepsEverything(t.retention));
    const listings: TargetListing[] = [];
    const opened = new Map<string, { dest: Destination; listing: RemoteSnapshot[]; held: string[] }>();
    try {
      if (!sourceKeepsAll || anyTargetPrunes) {
        for (const t of job.targets) {
          const outcome = this.out.targets.find((x) => x.target === t.path)!;
          if (outcome.error?.exitCode === Exit.TRANSPORT) {
            // Unreachable a moment ago: do not wait for another connect timeout.
            listings.push({ dest: t.path, listing: null });
            if (!keepsEverything(t.retention)) {
              outcome.prune = { ...emptyPrune('target', t.path, t.retention, this.dry), note: `not pruned: the target could not be reached (${outcome.error.code})` };
              this.emitPrune(outcome.prune);
            }
            continue;
          }
          try {
            const d = await this.openDest(t);
            try {
              const listing = await d.list();
              const held = await d.held();
              opened.set(t.path, { dest: d, listing, held });
              listings.push({ dest: t.path, listing });
            } catch (e) {
              await d.close().catch(() => undefined);
              throw e;
            }
          } catch (e) {
            listings.push({ dest: t.path, listing: null });
            if (!keepsEverything(t.retention)) {
              outcome.prune = { ...emptyPrune('target', t.path, t.retention, this.dry), note: 'the target could not be listed', error: errorInfo(e) };
              this.emitPrune(outcome.prune);
            }
          }
        }
      }
      const snaps = listSnapshots(vol);
      const sourceSnaps = snaps.map(toSourceSnap);
      const created = new Map(snaps.map((s) => [s.meta.uuid, s.meta.created]));

      // Targets first: each protects the newest snapshot it shares with the source.
      for (const t of job.targets) {
        const outcome = this.out.targets.find((x) => x.target === t.path)!;
        if (outcome.prune) continue;
        const p = emptyPrune('target', t.path, t.retention, this.dry);
        outcome.prune = p;
        const o = opened.get(t.path);
        if (keepsEverything(t.retention)) p.note = 'keep_min all: nothing is pruned';
        else if (o) {
          const protect = targetProtections(o.listing, o.held, { volume: vol.dir, snaps: sourceSnaps }, t.path);
          const plan = planTargetPrune(o.listing, t.retention, now, protect, { chain: t.format === 'stream', sourceCreated: created });
          p.decisions = decisionsOut(plan);
          if (this.dry) p.removed = [...plan.remove];
          else if (t.kind === 'local' && t.format === 'tree') applyLocalTargetPrune(t.path, plan, p, this.deps.removeLocal);
          else await applyTargetPrune(o.dest, plan, p);
        }
        this.emitPrune(p);
      }

      const p = emptyPrune('source', vol.dir, job.retention.source, this.dry);
      this.out.prune = p;
      if (sourceKeepsAll) p.note = 'keep_min all: nothing is pruned';
      else {
        const protect = sourceProtections(vol, snaps, listings, false);
        const plan = planSourcePrune(snaps, job.retention.source, now, protect);
        p.decisions = decisionsOut(plan);
        if (this.dry) p.removed = [...plan.remove];
        else applySourcePrune(vol, plan, p);
      }
      this.emitPrune(p);
    } finally {
      for (const o of opened.values()) await o.dest.close().catch(() => undefined);
    }
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1].slice(0, 300);
}
