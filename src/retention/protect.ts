/**
 * What retention must never remove, as reasons per snapshot name: the
 * newest snapshot a target still shares with the source (the parent of the
 * next incremental send, on both sides), and snapshots held by an
 * interrupted transfer.
 *
 * Owns: finding the newest common snapshot and wording the reasons. Pure:
 * callers pass listings they read; nothing here touches disk or network.
 * Common means by uuid, never by name: a target snapshot is the source
 * snapshot whose uuid is its received uuid.
 */

export interface SourceSnap {
  name: string;
  uuid: string;
  /** transid: higher is newer. */
  order: bigint;
}

export interface TargetSnap {
  name: string;
  /** The source's uuid of it. */
  receivedUuid: string;
}

/** The newest source snapshot the target also holds, and the target's copy of it. */
export function newestCommon(source: readonly SourceSnap[], target: readonly TargetSnap[]): { source: SourceSnap; target: TargetSnap } | undefined {
  const byUuid = new Map<string, TargetSnap>();
  for (const t of target) byUuid.set(t.receivedUuid, t);
  let best: { source: SourceSnap; target: TargetSnap } | undefined;
  for (const s of source) {
    const t = byUuid.get(s.uuid);
    if (t && (!best || s.order > best.source.order)) best = { source: s, target: t };
  }
  return best;
}

export class ProtectionSet {
  private readonly m = new Map<string, string[]>();

  add(name: string, reason: string): this {
    const r = this.m.get(name);
    if (!r) this.m.set(name, [reason]);
    else if (!r.includes(reason)) r.push(reason);
    return this;
  }

  get map(): ReadonlyMap<string, readonly string[]> {
    return this.m;
  }

  has(name: string): boolean {
    return this.m.has(name);
  }
}

export const reasons = {
  parentForTarget: (dest: string) => `parent for target ${dest}`,
  parentLastKnown: (dest: string) => `parent for target ${dest} (last sent; the target could not be listed)`,
  parentForNextSend: (volume: string) => `parent for the next send from ${volume}`,
  heldOnSource: (dest: string, why: string) => `held by interrupted transfer to ${dest}${why ? ` (${why})` : ''}`,
  heldOnTarget: (dest: string) => `held by interrupted transfer to ${dest}`,
};
