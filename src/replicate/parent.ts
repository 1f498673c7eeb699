/**
 * Parent choice for replication: which snapshot both sides have, and whether
 * the destination has moved on without the source (docs/replication.md
 * "Choosing the parent").
 *
 * Owns: matching source snapshots to destination snapshots by uuid and
 * received uuid (never by name), the newest common snapshot, divergence,
 * and the decision full / incremental / refuse for one transfer.
 *
 * Never: touches the filesystem, the network or the clock, or throws for an
 * expected outcome. Every outcome is a typed result; `transferError` turns a
 * refusal into the FerryError the CLI reports. Same inputs, same answer.
 *
 * Invariants:
 *  - a parent is always a snapshot the destination has (matched by uuid) and
 *    strictly older (lower transid) than the snapshot being sent;
 *  - a destination snapshot that no source snapshot matches and that was
 *    received after the common one is "diverged", and the transfer is refused
 *    rather than sent on top of it;
 *  - with no common snapshot the transfer is full, unless incremental-only.
 */
import { FerryError } from '../errors';
import type { RemoteSnapshot } from './destination';

/** What parent choice needs of a source snapshot (SnapshotMeta fits). */
export interface SourceSnapshot {
  name: string;
  uuid: string;
  /** Decimal string; grows by one per snapshot of a volume. */
  transid: string;
  /** Set when the source snapshot was itself received from elsewhere. */
  receivedUuid?: string | null;
}

export interface CommonSnapshot<S extends SourceSnapshot> {
  source: S;
  dest: RemoteSnapshot;
}

export interface ParentChoice<S extends SourceSnapshot> {
  /** The newest source snapshot the destination has, or null (full send). */
  parent: S | null;
  /** That snapshot on both sides. */
  common: CommonSnapshot<S> | null;
  /** Destination snapshots the source does not know, received after the common one. */
  diverged: RemoteSnapshot[];
  /** Destination snapshots the source does not know (any age), oldest first. */
  unknown: RemoteSnapshot[];
}

const cmpTransid = (a: string, b: string): number => {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The uuids a snapshot is known by. */
function sourceIds(s: SourceSnapshot): string[] {
  return s.receivedUuid ? [s.uuid, s.receivedUuid] : [s.uuid];
}

function destIds(d: RemoteSnapshot): string[] {
  return d.receivedUuid && d.receivedUuid !== d.uuid ? [d.receivedUuid, d.uuid] : [d.uuid];
}

/** Does destination snapshot `d` hold source snapshot `s`? By uuid only. */
export function sameSnapshot(s: SourceSnapshot, d: RemoteSnapshot): boolean {
  const ids = destIds(d);
  return sourceIds(s).some((u) => u !== '' && ids.includes(u));
}

/** Destination order: when it was received, then ctransid, then name (stable). */
function destOrder(a: RemoteSnapshot, b: RemoteSnapshot): number {
  if (a.receivedAt !== b.receivedAt) return a.receivedAt < b.receivedAt ? -1 : 1;
  const c = cmpTransid(a.ctransid, b.ctransid);
  return c !== 0 ? c : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The newest snapshot both sides have, and what the destination has that the
 * source does not know. `source` may be in any order.
 */
export function chooseParent<S extends SourceSnapshot>(source: readonly S[], dest: readonly RemoteSnapshot[]): ParentChoice<S> {
  const newestFirst = [...source].sort((a, b) => cmpTransid(b.transid, a.transid));
  let common: CommonSnapshot<S> | null = null;
  for (const s of newestFirst) {
    const d = dest.find((x) => sameSnapshot(s, x));
    if (d) {
      common = { source: s, dest: d };
      break;
    }
  }
  const unknown = dest.filter((d) => !source.some((s) => sameSnapshot(s, d))).sort(destOrder);
  const diverged = common ? unknown.filter((d) => destOrder(d, common!.dest) > 0) : [];
  return { parent: common?.source ?? null, common, diverged, unknown };
}

export type TransferPlan<S extends SourceSnapshot> =
  /** Send `snapshot`, incremental from `parent` or full when it is null. */
  | { kind: 'send'; snapshot: S; parent: S | null; common: CommonSnapshot<S> | null }
  /** The destination already has `snapshot`: nothing to send. */
  | { kind: 'present'; snapshot: S; existing: RemoteSnapshot }
  /** The destination has snapshots the source does not know, newer than the common one. */
  | { kind: 'diverged'; snapshot: S; common: CommonSnapshot<S>; diverged: RemoteSnapshot[] }
  /** Incremental-only, and no snapshot older than `snapshot` is on both sides. */
  | { kind: 'no-parent'; snapshot: S | null; source: S[]; dest: RemoteSnapshot[] };

export interface PlanOptions {
  /** Refuse a full send when no common snapshot exists. */
  incrementalOnly?: boolean;
}

/**
 * Decide how to send `snapshot` (one of `source`, or newer than all of them)
 * to a destination holding `dest`. Only source snapshots older than
 * `snapshot` can be its parent.
 */
export function planTransfer<S extends SourceSnapshot>(
  source: readonly S[],
  dest: readonly RemoteSnapshot[],
  snapshot: S,
  opts: PlanOptions = {},
): TransferPlan<S> {
  const existing = dest.find((d) => sameSnapshot(snapshot, d));
  if (existing) return { kind: 'present', snapshot, existing };
  const older = source.filter((s) => s.uuid !== snapshot.uuid && cmpTransid(s.transid, snapshot.transid) < 0);
  // Divergence is judged against everything the source knows (newer
  // snapshots included), so a target that is merely ahead is not diverged.
  const all = source.some((s) => s.uuid === snapshot.uuid) ? source : [...source, snapshot];
  const whole = chooseParent(all, dest);
  if (whole.common && whole.diverged.length) return { kind: 'diverged', snapshot, common: whole.common, diverged: whole.diverged };
  const choice = chooseParent(older, dest);
  if (!choice.parent && opts.incrementalOnly) {
    return { kind: 'no-parent', snapshot, source: [...source].sort((a, b) => cmpTransid(a.transid, b.transid)), dest: [...dest].sort(destOrder) };
  }
  return { kind: 'send', snapshot, parent: choice.parent, common: choice.common };
}

const showSource = (s: SourceSnapshot) => `${s.name} (${s.uuid}, transid ${s.transid})`;
const showDest = (d: RemoteSnapshot) => `${d.name} (${d.receivedUuid || d.uuid}, ctransid ${d.ctransid})`;
const list = <T>(xs: readonly T[], f: (x: T) => string) => (xs.length ? xs.map(f).join('; ') : 'none');

/** The refusal for a `diverged` or `no-parent` plan; undefined for the others. */
export function transferError<S extends SourceSnapshot>(plan: TransferPlan<S>, where: { volume: string; dest: string }): FerryError | undefined {
  if (plan.kind === 'diverged') {
    return new FerryError(
      'REPLICATE_DIVERGED',
      `sync refused: ${where.dest} has ${plan.diverged.length === 1 ? 'a snapshot' : `${plan.diverged.length} snapshots`} the source does not know, newer than the common snapshot ${plan.common.source.name}: ${list(plan.diverged, showDest)}`,
      {
        context: { volume: where.volume, dest: where.dest },
        hint: 'nothing was sent; the target changed without this volume (another sender, or snapshots removed here). Remove those snapshots from the target, or sync to another target',
      },
    );
  }
  if (plan.kind === 'no-parent') {
    return new FerryError(
      'REPLICATE_NO_PARENT',
      `sync refused: no common snapshot and --incremental-only was given (source has: ${list(plan.source, showSource)}; destination has: ${list(plan.dest, showDest)})`,
      {
        context: { volume: where.volume, dest: where.dest },
        hint: 'nothing was sent; drop --incremental-only to send a full stream',
      },
    );
  }
  return undefined;
}

/** What a destination reports about an interrupted receive (see destination.ts PartialInfo). */
export interface PartialLike {
  receivedUuid: string;
  parentUuid: string | null;
  ctransid: string;
  appliedBytes: number;
}

export interface Resumable<S extends SourceSnapshot, P extends PartialLike> {
  partial: P;
  snapshot: S;
  parent: S | null;
}

/**
 * The interrupted transfer to finish first, if any: the newest partial whose
 * snapshot the source still has and the destination does not, and whose
 * parent (if incremental) both sides still have. The same (snapshot,
 * parent) pair regenerates the same stream, so it can continue where the
 * receiver stopped.
 */
export function findResumable<S extends SourceSnapshot, P extends PartialLike>(
  source: readonly S[],
  dest: readonly RemoteSnapshot[],
  partials: readonly P[],
): Resumable<S, P> | null {
  const newestFirst = [...partials].sort((a, b) => cmpTransid(b.ctransid, a.ctransid));
  for (const partial of newestFirst) {
    const snapshot = source.find((s) => sourceIds(s).includes(partial.receivedUuid));
    if (!snapshot || dest.some((d) => sameSnapshot(snapshot, d))) continue;
    if (partial.parentUuid === null) return { partial, snapshot, parent: null };
    const parent = source.find((s) => sourceIds(s).includes(partial.parentUuid!));
    if (!parent || !dest.some((d) => sameSnapshot(parent, d))) continue;
    if (cmpTransid(parent.transid, snapshot.transid) >= 0) continue;
    return { partial, snapshot, parent };
  }
  return null;
}
