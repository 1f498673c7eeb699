/**
 * Where a target keeps the manifests of its received snapshots:
 * TARGET/.ferry/catalog/<uuid>.manifest, beside the catalog entry
 * <uuid>.json (the target's own uuid once the snapshot is committed; the
 * sender's uuid when stored before the entry exists).
 *
 * Owns: the manifest's place in a target. Never: writes into a snapshot
 * directory, or touches the catalog entries themselves (the catalog reads
 * only *.json, so manifests never look like entries).
 *
 * Invariants: a stored manifest is complete and well-formed (written
 * atomically by writeManifestFile, which parses it on the way).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeManifestFile } from '../diff/manifest';
import { Catalog, CatalogEntry } from '../volume/catalog';

export const MANIFEST_SUFFIX = '.manifest';

export function manifestPath(target: string, uuid: string): string {
  return path.join(new Catalog(target).dir, `${uuid}${MANIFEST_SUFFIX}`);
}

/**
 * Store the manifest of a received snapshot. `uuid` may be the target's
 * own uuid of it or the sender's (received) uuid; when the catalog already
 * has the snapshot the file is keyed by its own uuid. `manifest` is the
 * manifest file's bytes (src/diff/manifest.ts manifestBytes).
 */
export async function storeManifest(target: string, uuid: string, manifest: Uint8Array | AsyncIterable<Uint8Array>): Promise<string> {
  const catalog = new Catalog(target);
  catalog.ensure();
  const entry = catalog.findByUuid(uuid);
  const file = manifestPath(target, entry ? entry.uuid : uuid);
  await writeManifestFile(file, manifest);
  return file;
}

/** The stored manifest of a catalog entry, if any. */
export function findManifest(target: string, entry: CatalogEntry): string | undefined {
  for (const u of [entry.uuid, entry.receivedUuid]) {
    const f = manifestPath(target, u);
    if (fs.existsSync(f)) return f;
  }
  return undefined;
}
