/**
 * `ferry prune DIR|TARGET`: apply a retention policy by hand to one volume
 * or one target, with the same protections `ferry run` uses (prune.ts).
 *
 * Owns: telling a volume from a target, gathering the listings its
 * protections need, and the job lock for a source volume (a hand prune
 * never races a `ferry run` on the same volume: JOB_LOCKED, exit 11).
 * Never: prints or exits (src/cli/commands/prune.ts does).
 *
 * What is protected without a config: on a volume, the latest snapshot,
 * holds, and the last snapshot `ferry run` sent to every target it ever
 * recorded; on a target, the latest snapshot, held snapshots, and, with
 * `--source DIR` (or a job), the newest snapshot shared with that volume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { JobConfig, TargetConfig } from '../config/schema';
import { RetentionPolicy } from '../retention/policy';
import { FERRY_DIR } from '../volume/catalog';
import { Lock } from '../volume/lock';
import { listSnapshots, openVolume, volumeFile } from '../volume/volume';
import { errorInfo, JobEvent, PruneOutcome } from './outcome';
import { Destination, JobDeps } from './ports';
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
import { JOB_LOCK } from './run';

export interface PruneRequest {
  /** A volume directory, a local target, or `[user@]host[:port]:/path`. */
  where: string;
  policy: RetentionPolicy;
  /** The job the volume or target belongs to, when a config names one. */
  job?: JobConfig;
  /** For a target: its settings in that job. */
  target?: TargetConfig;
  /** For a target: the volume it receives from (protects the newest common snapshot). */
  source?: string;
  format?: 'tree' | 'stream';
  dryRun: boolean;
  onEvent?: (e: JobEvent) => void;
}

/** `[user@]host[:port]:/path` rather than a local path (a colon before any slash). */
export function isRemote(where: string): boolean {
  return /^[^/]+:/.test(where) && !where.startsWith('.');
}

export function isVolume(where: string): boolean {
  return !isRemote(where) && fs.existsSync(volumeFile(where));
}

const label = (r: PruneRequest) => r.job?.name ?? 'prune';

function emit(r: PruneRequest, p: PruneOutcome): void {
  for (const d of p.decisions) r.onEvent?.({ event: 'prune', job: label(r), side: p.side, where: p.where, dryRun: p.dryRun, decision: d });
  const { decisions: _d, ...rest } = p;
  void _d;
  r.onEvent?.({ event: 'prune-done', job: label(r), outcome: rest });
}

async function openFor(deps: JobDeps, dest: string, t: TargetConfig | undefined, format: 'tree' | 'stream'): Promise<Destination> {
  return deps.openDestination(dest, {
    ssh: t && Object.keys(t.ssh).length ? t.ssh : undefined,
    remoteCommand: t?.remoteCommand ?? undefined,
    format,
  });
}

export async function pruneOne(r: PruneRequest, deps: JobDeps): Promise<PruneOutcome> {
  const now = deps.now();
  if (isVolume(r.where)) {
    const vol = openVolume(r.where);
    const out = emptyPrune('source', vol.dir, r.policy, r.dryRun);
    const lock = r.dryRun ? undefined : takeJobLock(vol.ferryDir);
    try {
      const listings: TargetListing[] = [];
      for (const t of r.job?.targets ?? []) {
        try {
          const d = await openFor(deps, t.path, t, t.format);
          try {
            listings.push({ dest: t.path, listing: await d.list() });
          } finally {
            await d.close().catch(() => undefined);
          }
        } catch {
          listings.push({ dest: t.path, listing: null });
        }
      }
      const snaps = listSnapshots(vol);
      const plan = planSourcePrune(snaps, r.policy, now, sourceProtections(vol, snaps, listings, !r.job));
      out.decisions = decisionsOut(plan);
      if (r.dryRun) out.removed = [...plan.remove];
      else applySourcePrune(vol, plan, out);
    } finally {
      lock?.release();
    }
    emit(r, out);
    return out;
  }

  const format = r.format ?? r.target?.format ?? 'tree';
  const local = !isRemote(r.where);
  const where = local ? path.resolve(r.where) : r.where;
  if (local && format === 'tree' && !fs.existsSync(path.join(where, FERRY_DIR, 'catalog'))) {
    throw new FerryError('VOLUME_NOT_FOUND', 'neither a ferry volume nor a target', {
      context: { dir: where },
      hint: 'a volume has .ferry/volume.json (ferry init); a target has .ferry/catalog (ferry receive); stream files need --format stream',
    });
  }
  const out = emptyPrune('target', where, r.policy, r.dryRun);
  let d: Destination;
  try {
    d = await openFor(deps, where, r.target, format);
  } catch (e) {
    out.error = errorInfo(e);
    out.note = 'the target could not be opened';
    emit(r, out);
    return out;
  }
  try {
    const listing = await d.list();
    const held = await d.held();
    const sourceDir = r.source ?? r.job?.volume;
    let source: { volume: string; snaps: ReturnType<typeof toSourceSnap>[] } | null = null;
    let created: Map<string, string> | undefined;
    if (sourceDir !== undefined) {
      const vol = openVolume(sourceDir);
      const snaps = listSnapshots(vol);
      source = { volume: vol.dir, snaps: snaps.map(toSourceSnap) };
      created = new Map(snaps.map((s) => [s.meta.uuid, s.meta.created]));
    }
    const plan = planTargetPrune(listing, r.policy, now, targetProtections(listing, held, source, where), { chain: format === 'stream', sourceCreated: created });
    out.decisions = decisionsOut(plan);
    if (r.dryRun) out.removed = [...plan.remove];
    else if (local && format === 'tree') applyLocalTargetPrune(where, plan, out, deps.removeLocal);
    else await applyTargetPrune(d, plan, out);
  } catch (e) {
    out.error = errorInfo(e);
  } finally {
    await d.close().catch(() => undefined);
  }
  emit(r, out);
  return out;
}

function takeJobLock(ferryDir: string): Lock {
  const file = path.join(ferryDir, JOB_LOCK);
  try {
    return Lock.acquire(file, 'ferry prune');
  } catch (e) {
    if (e instanceof FerryError && e.code === 'VOLUME_LOCKED') {
      throw new FerryError('JOB_LOCKED', `prune refused: ${e.summary}`, { context: { lock: file }, hint: 'a ferry run is working on this volume; prune after it finishes', retryable: true, cause: e });
    }
    throw e;
  }
}
