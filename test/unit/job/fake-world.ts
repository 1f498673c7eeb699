/**
 * In-memory targets for job-runner tests: a JobDeps whose sync "receives"
 * into a list and whose destinations list, hold and remove from it. The
 * volume side is real (snapshots, holds, locks on disk); only replication is
 * faked, so tests control failures, reachability and the clock.
 */
import { randomUUID } from 'node:crypto';
import { FerryError } from '../../../src/errors';
import { Destination, JobDeps, RemoteSnapshot, SyncOptions, SyncSummary } from '../../../src/job/ports';
import { newestCommon } from '../../../src/retention/protect';
import { listSnapshots, openVolume } from '../../../src/volume/volume';

export interface FakeTarget {
  snaps: RemoteSnapshot[];
  /** Thrown by sync. */
  failSync?: FerryError;
  /** Thrown by openDestination (and by sync). */
  unreachable?: FerryError;
  held: string[];
  removed: string[];
}

export class FakeWorld {
  clock: Date;
  readonly targets = new Map<string, FakeTarget>();
  readonly syncCalls: SyncOptions[] = [];
  /** Every transfer made: destination, snapshot, parent (null: full). */
  readonly transfers: Array<{ dest: string; snapshot: string; parent: string | null }> = [];
  /** Sends that had to be full although the target already held snapshots: a broken chain. */
  readonly brokenChains: Array<{ dest: string; snapshot: string; at: string }> = [];
  opened = 0;

  constructor(start: string) {
    this.clock = new Date(start);
  }

  target(dest: string): FakeTarget {
    let t = this.targets.get(dest);
    if (!t) {
      t = { snaps: [], held: [], removed: [] };
      this.targets.set(dest, t);
    }
    return t;
  }

  advance(ms: number): void {
    this.clock = new Date(this.clock.getTime() + ms);
  }

  deps(): JobDeps {
    return {
      now: () => new Date(this.clock),
      sync: async (o) => this.sync(o),
      openDestination: async (dest) => this.open(dest),
      removeLocal: (dest, names) => {
        const t = this.target(dest);
        const there = names.filter((n) => t.snaps.some((s) => s.name === n));
        t.snaps = t.snaps.filter((s) => !names.includes(s.name));
        t.removed.push(...there);
        return there;
      },
    };
  }

  private async sync(o: SyncOptions): Promise<SyncSummary> {
    this.syncCalls.push(o);
    const t = this.target(o.dest);
    if (t.unreachable) throw t.unreachable;
    if (t.failSync) throw t.failSync;
    const snaps = listSnapshots(openVolume(o.volume));
    const snap = snaps.find((s) => s.meta.name === o.snapshotName);
    if (!snap) throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot not found', { context: { name: String(o.snapshotName) } });
    const base = { volume: o.volume, snapshot: snap.meta.name, target: o.dest, warnings: [], resumedFromByte: 0, seconds: 0.01 };
    if (t.snaps.some((r) => r.receivedUuid === snap.meta.uuid)) return { ...base, parent: null, streamBytes: 0, wireBytes: 0, transfers: [] };
    const older = snaps.filter((s) => BigInt(s.meta.transid) < BigInt(snap.meta.transid)).map((s) => ({ name: s.meta.name, uuid: s.meta.uuid, order: BigInt(s.meta.transid) }));
    const c = newestCommon(older, t.snaps);
    this.transfers.push({ dest: o.dest, snapshot: snap.meta.name, parent: c?.source.name ?? null });
    if (!c && t.snaps.length) this.brokenChains.push({ dest: o.dest, snapshot: snap.meta.name, at: this.clock.toISOString() });
    t.snaps.push({
      name: snap.meta.name,
      uuid: randomUUID(),
      receivedUuid: snap.meta.uuid,
      parentUuid: c ? c.source.uuid : null,
      ctransid: snap.meta.transid,
      receivedAt: this.clock.toISOString(),
    });
    const bytes = c ? 1000 : 5000;
    o.onEvent?.({ event: 'progress', snapshot: snap.meta.name, streamBytes: bytes, totalBytes: bytes, wireBytes: bytes, resumedFromByte: 0, seconds: 0 });
    const tr = { snapshot: snap.meta.name, parent: c?.source.name ?? null, streamBytes: bytes, wireBytes: bytes, resumedFromByte: 0, seconds: 0.01 };
    return { ...base, parent: tr.parent, streamBytes: bytes, wireBytes: bytes, transfers: [tr] };
  }

  private async open(dest: string): Promise<Destination> {
    const t = this.target(dest);
    if (t.unreachable) throw t.unreachable;
    this.opened++;
    return {
      describe: dest,
      list: async () => t.snaps.map((s) => ({ ...s })),
      held: async () => [...t.held],
      remove: async (names: string[]) => {
        t.snaps = t.snaps.filter((s) => !names.includes(s.name));
        t.removed.push(...names);
      },
      close: async () => undefined,
    };
  }
}

export const transportDown = () =>
  new FerryError('SSH_CONNECT_FAILED', 'ssh connect failed: connection refused', { context: { host: 'nas' }, hint: 'is the host up?', retryable: true });
