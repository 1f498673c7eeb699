/**
 * `ferry verify TARGET@NAME`: check a received snapshot against the
 * manifest its sender wrote (src/diff/manifest.ts).
 *
 * Owns: comparing a tree on disk with a manifest: every path the manifest
 * lists must exist with the same type, permission bits, uid, gid, size and
 * content digest (regular files), target (symlinks) and rdev (devices), and
 * the tree must hold nothing else. Not compared: times, xattrs, hard-link
 * grouping. An extra directory is reported once, without its contents.
 *
 * Never: modifies the target, follows a symlink (lstat and O_NOFOLLOW
 * only), or stops at the first difference (the report lists all of them).
 *
 * Memory: the manifest is held as a map (O(entries)); the tree is walked
 * one directory at a time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { fileDigest, Manifest, ManifestEntry, pathKey, readManifest, ROOT_PATH } from '../diff/manifest';
import { InodeType } from '../model/inode';
import { Catalog, CatalogEntry } from '../volume/catalog';
import { findManifest } from './manifest-store';

export interface VerifyDifference {
  /** Relative path (UTF-8, lossy for other bytes). */
  path: string;
  /** What differs: type, mode, uid, gid, size, content, target, rdev. */
  fields: string[];
  /** "expected → found" per field, for people. */
  detail: string;
}

export interface VerifyReport {
  target: string;
  name: string;
  uuid: string;
  receivedUuid: string;
  manifest: string;
  /** Entries checked (paths in the manifest). */
  entries: number;
  /** Bytes of file data read and hashed. */
  bytes: number;
  missing: string[];
  extra: string[];
  different: VerifyDifference[];
}

export interface VerifyOptions {
  /** Called after each file is hashed (bytes so far). */
  onProgress?: (bytes: number) => void;
}

function typeOf(st: fs.Stats): InodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  if (st.isFIFO()) return 'fifo';
  return 'sock';
}

const show = (p: Buffer) => p.toString('utf8');

/** Find the snapshot and its manifest in a target. */
export async function loadVerifyInput(target: string, name: string): Promise<{ entry: CatalogEntry; manifest: Manifest; file: string }> {
  const entry = new Catalog(target).findByName(name);
  if (!entry) {
    throw new FerryError('SNAPSHOT_NOT_FOUND', `verify failed: no snapshot ${name} in the target`, {
      context: { target },
      hint: '`ferry list TARGET` shows what the target holds',
    });
  }
  const file = findManifest(target, entry);
  if (!file) {
    throw new FerryError('REPLICATE_NO_MANIFEST', `verify failed: the target has no manifest for ${name}`, {
      context: { target, uuid: entry.uuid, receivedUuid: entry.receivedUuid },
      hint: 'manifests are stored when the snapshot arrives by `ferry sync` or from stream files with a manifest (`ferry receive --chain`); a plain `ferry send | ferry receive` carries none',
    });
  }
  const manifest = await readManifest(file);
  if (manifest.header.uuid !== entry.receivedUuid) {
    throw new FerryError('REPLICATE_NO_MANIFEST', `verify failed: the stored manifest describes another snapshot (${manifest.header.uuid})`, {
      context: { target, name, receivedUuid: entry.receivedUuid, manifest: file },
    });
  }
  return { entry, manifest, file };
}

/** Compare one path on disk with its manifest entry; returns the fields that differ and the bytes hashed. */
function compareEntry(abs: Buffer, st: fs.Stats, want: ManifestEntry): { fields: string[]; detail: string[]; bytes: number } {
  const fields: string[] = [];
  const detail: string[] = [];
  const diff = (field: string, expected: string, found: string) => {
    fields.push(field);
    detail.push(`${field} ${expected} → ${found}`);
  };
  const type = typeOf(st);
  if (type !== want.type) {
    diff('type', want.type, type);
    return { fields, detail, bytes: 0 };
  }
  const mode = st.mode & 0o7777;
  if (mode !== want.mode) diff('mode', want.mode.toString(8).padStart(4, '0'), mode.toString(8).padStart(4, '0'));
  if (st.uid !== want.uid) diff('uid', String(want.uid), String(st.uid));
  if (st.gid !== want.gid) diff('gid', String(want.gid), String(st.gid));
  let bytes = 0;
  if (type === 'file') {
    if (st.size !== want.size) diff('size', String(want.size), String(st.size));
    else if (want.digest) {
      const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const got = fileDigest(fd);
        bytes = got.size;
        if (got.size !== want.size) diff('size', String(want.size), String(got.size));
        else if (got.digest !== want.digest) diff('content', want.digest.slice(0, 16), got.digest.slice(0, 16));
      } finally {
        fs.closeSync(fd);
      }
    }
  } else if (type === 'symlink') {
    const t = fs.readlinkSync(abs, { encoding: 'buffer' });
    if (!want.target || !t.equals(want.target)) diff('target', JSON.stringify(show(want.target ?? Buffer.alloc(0))), JSON.stringify(show(t)));
  } else if (type === 'chr' || type === 'blk') {
    if (String(st.rdev) !== want.rdev) diff('rdev', String(want.rdev), String(st.rdev));
  }
  return { fields, detail, bytes };
}

/** Check `root` (a snapshot tree) against `manifest`. */
export function verifyTree(root: string, manifest: Manifest, o: VerifyOptions = {}): Pick<VerifyReport, 'entries' | 'bytes' | 'missing' | 'extra' | 'different'> {
  const seen = new Set<string>();
  const missing: string[] = [];
  const extra: string[] = [];
  const different: VerifyDifference[] = [];
  let bytes = 0;
  const rootBuf = Buffer.from(root);
  const SLASH = Buffer.from('/');
  const visit = (rel: Buffer) => {
    const isRoot = rel.equals(ROOT_PATH);
    const abs = isRoot ? rootBuf : Buffer.concat([rootBuf, SLASH, rel]);
    const st = fs.lstatSync(abs);
    const key = pathKey(rel);
    const want = manifest.entries.get(key);
    if (!want) {
      // An extra directory is reported once, not with everything under it.
      extra.push(show(rel));
      return;
    } else {
      seen.add(key);
      const c = compareEntry(abs, st, want);
      bytes += c.bytes;
      if (c.bytes) o.onProgress?.(bytes);
      if (c.fields.length) different.push({ path: show(rel), fields: c.fields, detail: c.detail.join(', ') });
    }
    if (st.isDirectory()) {
      const names = fs.readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const n of names) visit(isRoot ? n : Buffer.concat([rel, SLASH, n]));
    }
  };
  visit(ROOT_PATH);
  for (const [k, e] of manifest.entries) if (!seen.has(k)) missing.push(show(e.path));
  missing.sort();
  return { entries: manifest.entries.size, bytes, missing, extra, different };
}

/** Verify TARGET/NAME against its stored manifest. Never throws for differences; see the report. */
export async function verifySnapshot(target: string, name: string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const { entry, manifest, file } = await loadVerifyInput(target, name);
  const r = verifyTree(path.join(target, entry.name), manifest, o);
  return { target: path.resolve(target), name: entry.name, uuid: entry.uuid, receivedUuid: entry.receivedUuid, manifest: file, ...r };
}

/** Total differences in a report. */
export function differenceCount(r: Pick<VerifyReport, 'missing' | 'extra' | 'different'>): number {
  return r.missing.length + r.extra.length + r.different.length;
}
