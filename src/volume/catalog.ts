/**
 * The catalog of a target: what snapshots it holds and where they came from.
 *
 * Owns: TARGET/.ferry/catalog/<uuid>.json, one immutable file per received
 * snapshot, written to a temp name, fsynced and renamed into place. Parent
 * lookup goes by the sender's uuid (received uuid) first and the local uuid
 * second, never by name.
 *
 * Invariant: a snapshot exists when its catalog entry exists AND its
 * directory TARGET/<name> exists. An entry whose directory is missing is the
 * trace of a commit killed between the two steps; it is not a snapshot and
 * `sweep` removes it. A directory without an entry is not a snapshot either.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { writeFileAtomic } from './atomic';

export interface CatalogEntry {
  format: 1;
  name: string;
  /** This target's own uuid for the snapshot. */
  uuid: string;
  /** The sender's uuid of it (the stream's UUID attribute). */
  receivedUuid: string;
  /** The stream's CTRANSID. */
  ctransid: string;
  /** Received uuid of the parent for incremental streams, null for full ones. */
  parentUuid: string | null;
  parentCtransid: string | null;
  streamSha256: string;
  streamBytes: number;
  receivedAt: string;
  /** How the staging tree began: empty, or seeded from the parent (a btrfs snapshot, reflinks, a hard-link farm, copies). */
  method: 'full' | 'snapshot' | 'reflink' | 'farm' | 'copy';
}

export const FERRY_DIR = '.ferry';

export class Catalog {
  readonly dir: string;

  constructor(readonly target: string) {
    this.dir = path.join(target, FERRY_DIR, 'catalog');
  }

  ensure(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private readEntries(): CatalogEntry[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: CatalogEntry[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const file = path.join(this.dir, n);
      let entry: CatalogEntry;
      try {
        entry = JSON.parse(fs.readFileSync(file, 'utf8')) as CatalogEntry;
      } catch (e) {
        throw new FerryError('IO_FAILED', `catalog entry is unreadable: ${(e as Error).message}`, {
          context: { file },
          hint: 'move the file away if it is damaged; the snapshot directory itself is untouched',
        });
      }
      out.push(entry);
    }
    return out;
  }

  /** Committed snapshots, oldest ctransid first. */
  list(): CatalogEntry[] {
    return this.readEntries()
      .filter((e) => fs.existsSync(path.join(this.target, e.name)))
      .sort((a, b) => (BigInt(a.ctransid) < BigInt(b.ctransid) ? -1 : BigInt(a.ctransid) > BigInt(b.ctransid) ? 1 : a.name.localeCompare(b.name)));
  }

  /** The snapshot a stream names by uuid: received uuid first, then own uuid. */
  findByUuid(uuid: string): CatalogEntry | undefined {
    const all = this.list();
    return all.find((e) => e.receivedUuid === uuid) ?? all.find((e) => e.uuid === uuid);
  }

  findByName(name: string): CatalogEntry | undefined {
    return this.list().find((e) => e.name === name);
  }

  entryPath(uuid: string): string {
    return path.join(this.dir, `${uuid}.json`);
  }

  /** Durably write an entry (before the snapshot directory is renamed into place). */
  add(entry: CatalogEntry): void {
    this.ensure();
    writeFileAtomic(this.entryPath(entry.uuid), JSON.stringify(entry, null, 2) + '\n');
  }

  /**
   * Drop an entry and the files kept beside it under its uuid or its
   * received uuid (the sender's manifest, `<uuid>.manifest`).
   */
  remove(uuid: string): void {
    let received: string | undefined;
    try {
      received = (JSON.parse(fs.readFileSync(this.entryPath(uuid), 'utf8')) as CatalogEntry).receivedUuid;
    } catch {
      received = undefined;
    }
    fs.rmSync(this.entryPath(uuid), { force: true });
    for (const u of [uuid, received]) {
      if (u && /^[0-9a-f-]{32,36}$/i.test(u)) fs.rmSync(path.join(this.dir, `${u}.manifest`), { force: true });
    }
  }

  /** Remove entries whose snapshot directory never appeared (killed commits). */
  sweep(keepUuids: Set<string> = new Set()): void {
    for (const e of this.readEntries()) {
      if (!keepUuids.has(e.uuid) && !fs.existsSync(path.join(this.target, e.name))) this.remove(e.uuid);
    }
  }
}
