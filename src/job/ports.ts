/**
 * What the job runner needs from the rest of ferry, as one small interface
 * (restic's style), so tests can hand it fakes and an injected clock.
 *
 * Owns: the JobDeps shape and the default wiring to the real modules
 * (replicate/sync, replicate/destination), loaded lazily so `ferry prune`
 * of a local volume never loads ssh2. Never: implements replication.
 */
import type { ConnectOptions, Destination } from '../replicate/destination';
import type { SyncOptions, SyncSummary } from '../replicate/sync';
import { removeLocalReceived } from './prune';

export type { Destination, RemoteSnapshot } from '../replicate/destination';
export type { SyncEvent, SyncOptions, SyncSummary } from '../replicate/sync';

export type DestinationOptions = ConnectOptions & { format?: 'tree' | 'stream' };

export interface JobDeps {
  /** The clock: snapshot names, retention ages, metrics times. */
  now(): Date;
  sync(o: SyncOptions): Promise<SyncSummary>;
  openDestination(dest: string, o: DestinationOptions): Promise<Destination>;
  /** Remove received snapshots from a tree target on this host; returns the names removed. */
  removeLocal(target: string, names: readonly string[]): string[];
}

/** The real modules. */
export function defaultDeps(): JobDeps {
  return {
    now: () => new Date(),
    sync: async (o) => (await import('../replicate/sync')).syncVolume(o),
    openDestination: async (dest, o) => (await import('../replicate/destination')).openDestination(dest, o),
    removeLocal: (target, names) => removeLocalReceived(target, names),
  };
}
