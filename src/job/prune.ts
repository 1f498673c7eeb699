/**
 * Pruning a source volume or a target: gather what must be protected, ask
 * the pure retention policy (src/retention) for decisions, then remove.
 * Shared by `ferry run` (after its sends) and `ferry prune` (by hand).
 *
 * Owns: snapshot times for retention, the protections of each side, and
 * applying decisions: through Destination.remove() for remote targets and
 * stream files, and directly (removeLocalReceived) for a target on this
 * host. Never removes a snapshot the policy did not mark `remove`, and
 * never removes anything in a dry run.
 *
 * Protections (docs/jobs.md "What is never removed"):
 *  - source: the latest snapshot; every snapshot a hold names (an
 *    interrupted transfer); for each target, the newest snapshot it shares
 *    with the source (by uuid) — from a fresh listing, or, when the target
 *    cannot be listed, from what ferry run last sent it (target-state.ts);
 *  - target: the latest snapshot; the newest one it shares with the source
 *    (the parent of the next send); snapshots an interrupted transfer there
 *    needs (Destination.held()); and for stream files, every stream a kept
 *    stream is built on.
 *
 * Snapshot time: the UTC stamp in the name (ferry's default names,
 * YYYYMMDDTHHMMSSZ, optionally after a prefix or with a _N suffix), else when the snapshot was
 * created (source) or, on a target, when the source created it, else when
 * the target received it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { applyRetention, describePolicy, keepAncestors, RetentionPolicy, RetentionResult } from '../retention/policy';
import { newestCommon, ProtectionSet, reasons, SourceSnap } from '../retention/protect';
import { targetHeld } from '../replicate/serve';
import { removeCommitted, sweepRemoved } from '../receive/snapshot-trees';
import { sys } from '../sys/linux';
import { Catalog, FERRY_DIR } from '../volume/catalog';
import { listHolds } from '../volume/holds';
import { Lock } from '../volume/lock';
import { removeSnapshot, SnapshotInfo, Volume } from '../volume/volume';
import { errorInfo, PruneOutcome } from './outcome';
import type { Destination, RemoteSnapshot } from '../replicate/destination';
import { listTargetStates } from './target-state';

const STAMP = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:_\d+)?$/;

/** When a snapshot was taken, for retention. */
export function snapshotTime(name: string, fallbackIso: string): Date {
  const m = STAMP.exec(name);
  if (m) {
    const [, y, mo, d, h, mi, s] = m.map(Number);
    const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
    if (t.getUTCMonth() === mo - 1 && t.getUTCDate() === d) return t;
  }
  const f = new Date(fallbackIso);
  return Number.isNaN(f.getTime()) ? new Date(0) : f;
}

export const toSourceSnap = (s: SnapshotInfo): SourceSnap => ({ name: s.meta.name, uuid: s.meta.uuid, order: BigInt(s.meta.transid) });

export interface TargetListing {
  dest: string;
  /** null when the target could not be listed this time. */
  listing: RemoteSnapshot[] | null;
}

/**
 * Protections on the source. `targets` are the targets this job (or the
 * user) named; with `allRecorded`, every target ferry run ever recorded for
 * the volume counts too (`ferry prune DIR` without a config).
 */
export function sourceProtections(vol: Volume, snaps: readonly SnapshotInfo[], targets: readonly TargetListing[], allRecorded: boolean): ProtectionSet {
  const set = new ProtectionSet();
  const names = new Set(snaps.map((s) => s.meta.name));
  for (const h of listHolds(vol.dir)) for (const n of h.snapshots) if (names.has(n)) set.add(n, reasons.heldOnSource(h.dest, h.reason));
  const source = snaps.map(toSourceSnap);
  const listed = new Set<string>();
  for (const t of targets) {
    if (!t.listing) continue;
    listed.add(t.dest);
    const c = newestCommon(source, t.listing);
    if (c) set.add(c.source.name, reasons.parentForTarget(t.dest));
  }
  const wanted = new Set(targets.map((t) => t.dest));
  for (const st of listTargetStates(vol.dir)) {
    if (listed.has(st.dest) || (!allRecorded && !wanted.has(st.dest))) continue;
    // Match by uuid: a snapshot re-created under the same name is not the parent.
    const s = snaps.find((x) => x.meta.uuid === st.uuid);
    if (s) set.add(s.meta.name, reasons.parentLastKnown(st.dest));
  }
  return set;
}

export function planSourcePrune(snaps: readonly SnapshotInfo[], policy: RetentionPolicy, now: Date, protect: ProtectionSet): RetentionResult {
  return applyRetention(
    snaps.map((s) => ({ name: s.meta.name, time: snapshotTime(s.meta.name, s.meta.created), order: BigInt(s.meta.transid) })),
    now,
    policy,
    protect.map,
  );
}

/** Protections on a target, given its listing, what a partial transfer there holds, and the source's snapshots when known. */
export function targetProtections(listing: readonly RemoteSnapshot[], heldUuids: readonly string[], source: { volume: string; snaps: readonly SourceSnap[] } | null, dest: string): ProtectionSet {
  const set = new ProtectionSet();
  const held = new Set(heldUuids);
  for (const r of listing) if (held.has(r.receivedUuid) || held.has(r.uuid)) set.add(r.name, reasons.heldOnTarget(dest));
  if (source) {
    const c = newestCommon(source.snaps, listing);
    if (c) set.add(c.target.name, reasons.parentForNextSend(source.volume));
  }
  return set;
}

export function planTargetPrune(
  listing: readonly RemoteSnapshot[],
  policy: RetentionPolicy,
  now: Date,
  protect: ProtectionSet,
  o: { chain: boolean; sourceCreated?: ReadonlyMap<string, string> },
): RetentionResult {
  const r = applyRetention(
    listing.map((s) => ({
      name: s.name,
      time: snapshotTime(s.name, o.sourceCreated?.get(s.receivedUuid) ?? s.receivedAt),
      order: BigInt(/^\d+$/.test(s.ctransid) ? s.ctransid : '0'),
    })),
    now,
    policy,
    protect.map,
  );
  if (!o.chain) return r;
  const byReceived = new Map(listing.map((s) => [s.receivedUuid, s.name]));
  const parentOf = new Map(listing.map((s) => [s.name, s.parentUuid ? byReceived.get(s.parentUuid) ?? null : null]));
  return keepAncestors(r, parentOf);
}

export function emptyPrune(side: 'source' | 'target', where: string, policy: RetentionPolicy, dryRun: boolean): PruneOutcome {
  return { side, where, policy: describePolicy(policy), dryRun, decisions: [], removed: [], note: null, error: null };
}

export function decisionsOut(r: RetentionResult): PruneOutcome['decisions'] {
  return r.decisions.map((d) => ({ name: d.name, time: d.time.toISOString(), action: d.action, reasons: d.reasons }));
}

/** Remove source snapshots the plan marked `remove`; stops at the first failure. */
export function applySourcePrune(vol: Volume, r: RetentionResult, out: PruneOutcome): void {
  for (const name of r.remove) {
    try {
      removeSnapshot(vol, name);
      out.removed.push(name);
    } catch (e) {
      out.error = errorInfo(e);
      return;
    }
  }
}

/**
 * Remove received snapshots from a target on this host, each by
 * `removeCommitted` (out of sight by one rename, or one subvolume delete,
 * then catalog, then files; a kill leaves nothing a later run mistakes for
 * a snapshot). Never removes
 * one that an interrupted transfer needs. Runs under the target's receive
 * lock, so never beside a receive.
 */
export function removeLocalReceived(target: string, names: readonly string[]): string[] {
  const ferryDir = path.join(target, FERRY_DIR);
  const partialDir = path.join(ferryDir, 'partial');
  const partialsNow = () => (fs.existsSync(partialDir) ? fs.readdirSync(partialDir).sort().join('/') : '');
  // Receiver.partials() takes the receive lock itself: ask before taking it, then check nothing started since.
  const before = partialsNow();
  const held = new Set(targetHeld(target));
  const lock = Lock.acquire(path.join(ferryDir, 'receive.lock'), `prune ${target}`);
  const removed: string[] = [];
  try {
    if (partialsNow() !== before) {
      throw new FerryError('VOLUME_LOCKED', 'a receive into the target started while pruning it', { context: { target }, hint: 'prune again later', retryable: true });
    }
    sweepRemoved(target);
    const catalog = new Catalog(target);
    const s = sys();
    for (const name of names) {
      const e = catalog.findByName(name);
      if (!e) continue; // already gone
      if (held.has(e.receivedUuid)) {
        throw new FerryError('USAGE', `cannot remove ${name}: an interrupted transfer needs it as its parent`, { context: { target }, hint: 'run ferry run (or the same ferry sync) again to finish that transfer first' });
      }
      removeCommitted(s, target, catalog, e);
      removed.push(name);
    }
    return removed;
  } finally {
    lock.release();
  }
}

/** Apply a target plan on a target on this host (no serve session needed). */
export function applyLocalTargetPrune(target: string, r: RetentionResult, out: PruneOutcome, remove: (t: string, names: readonly string[]) => string[]): void {
  if (!r.remove.length) return;
  try {
    out.removed.push(...remove(target, r.remove));
  } catch (e) {
    out.error = errorInfo(e);
  }
}

/** Remove target snapshots the plan marked `remove`, through the destination. */
export async function applyTargetPrune(dest: Destination, r: RetentionResult, out: PruneOutcome): Promise<void> {
  if (!r.remove.length) return;
  try {
    await dest.remove(r.remove);
    out.removed.push(...r.remove);
  } catch (e) {
    out.error = errorInfo(e);
  }
}
