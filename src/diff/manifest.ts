/**
 * Snapshot manifests: what every path of a snapshot must look like, derived
 * from the snapshot's index without reading file data, so a receiver can be
 * checked against the sender (`ferry verify`).
 *
 * Owns: the manifest file format, building it from an index, reading it,
 * and the content digest of a regular file.
 *
 * Format (NDJSON, one JSON object per line):
 *   line 1   {"format":"ferry-manifest","version":1,"uuid","ctransid","name"?,"blockSize"}
 *   entries  {"path"|"pathHex","type","mode","uid","gid","size"?,"digest"?,"target"|"targetHex"?,"rdev"?}
 *   last     {"end":true,"entries":N}
 * `path` is relative to the snapshot root ("." for the root), one entry per
 * name (hard links appear under every name). Names that are not valid UTF-8
 * are written as hex (`pathHex`, `targetHex`). `mode` is the permission
 * bits (mode & 07777).
 *
 * Content digest of a regular file: SHA-256 over the concatenation of its
 * block hashes, block i covering [i*BLOCK_SIZE, min(size, (i+1)*BLOCK_SIZE)),
 * each hashed with blockHash (src/diff/generations.ts); a hole hashes as
 * that many zero bytes. The index already holds those block hashes, so the
 * sender pays no I/O; a receiver recomputes it by reading the file in
 * BLOCK_SIZE blocks (fileDigest). An empty file's digest is SHA-256 of
 * nothing. When an index record does not tile its file with BLOCK_SIZE
 * blocks, its digest is null and only the size is checked.
 *
 * Never: reads file data on the sending side, or holds the snapshot's
 * records in memory: the index is streamed twice (directories first, for
 * their names; then every record). Memory is O(directories).
 *
 * Invariants: a manifest file is written to a temp name, fsynced and renamed
 * into place; a reader refuses a file without its end line (truncated).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { FerryError } from '../errors';
import { Extent, InodeRecord, InodeType } from '../model/inode';
import { fsyncDir } from '../volume/atomic';
import { BLOCK_SIZE, blockHash } from './generations';
import { IndexHeader, openIndex } from './index-file';

export const MANIFEST_FORMAT = 'ferry-manifest';
export const MANIFEST_VERSION = 1;

export interface ManifestHeader {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  /** The snapshot's uuid on the sending side (a target's received uuid). */
  uuid: string;
  ctransid: string;
  name?: string;
  blockSize: number;
}

export interface ManifestEntry {
  /** Relative to the snapshot root, raw bytes; "." for the root. */
  path: Buffer;
  type: InodeType;
  /** Permission bits (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files. */
  size?: number;
  /** Regular files: hex content digest (see the module comment); null when the index cannot give one. */
  digest?: string | null;
  /** Symlinks. */
  target?: Buffer;
  /** Character and block devices (decimal string). */
  rdev?: string;
}

export interface Manifest {
  header: ManifestHeader;
  /** By path (the raw bytes as a latin1 string, see pathKey). */
  entries: Map<string, ManifestEntry>;
}

export const ROOT_PATH = Buffer.from('.');

/** Map key for a raw path. */
export const pathKey = (p: Buffer): string => p.toString('latin1');

const ZERO_BLOCK_HASH = blockHash(Buffer.alloc(BLOCK_SIZE));

function zeroHash(length: number): Buffer {
  return length === BLOCK_SIZE ? ZERO_BLOCK_HASH : blockHash(Buffer.alloc(length));
}

/**
 * The content digest from a record's extents, or null when they are not
 * the fixed BLOCK_SIZE tiling of [0, size) the definition needs.
 */
export function digestFromExtents(size: bigint, extents: Extent[] | undefined): string | null {
  if (!extents) return size === 0n ? createHash('sha256').digest('hex') : null;
  const bs = BigInt(BLOCK_SIZE);
  const want = Number((size + bs - 1n) / bs);
  if (extents.length !== want) return null;
  const h = createHash('sha256');
  for (let i = 0; i < extents.length; i++) {
    const x = extents[i];
    const off = BigInt(i) * bs;
    const len = Number(size - off < bs ? size - off : bs);
    if (x.offset !== off || x.length !== len) return null;
    h.update(x.hash ?? zeroHash(len));
  }
  return h.digest('hex');
}

/**
 * The content digest of an open file, read in BLOCK_SIZE blocks from 0 to
 * its current size (what a receiver recomputes). Returns the digest and the
 * bytes read.
 */
export function fileDigest(fd: number): { digest: string; size: number } {
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const h = createHash('sha256');
  let size = 0;
  for (;;) {
    let got = 0;
    while (got < BLOCK_SIZE) {
      const n = fs.readSync(fd, buf, got, BLOCK_SIZE - got, size + got);
      if (n === 0) break;
      got += n;
    }
    if (got > 0) h.update(blockHash(buf.subarray(0, got)));
    size += got;
    if (got < BLOCK_SIZE) break;
  }
  return { digest: h.digest('hex'), size };
}

// ------------------------------------------------------------- building --

/** A path's bytes as JSON: a string when it is valid UTF-8, else hex under the other key. */
function bytesField(b: Buffer, key: string, hexKey: string): Record<string, string> {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? { [key]: s } : { [hexKey]: b.toString('hex') };
}

function entryJson(e: ManifestEntry): string {
  const o: Record<string, unknown> = { ...bytesField(e.path, 'path', 'pathHex'), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid };
  if (e.size !== undefined) o.size = e.size;
  if (e.digest !== undefined) o.digest = e.digest;
  if (e.target !== undefined) Object.assign(o, bytesField(e.target, 'target', 'targetHex'));
  if (e.rdev !== undefined) o.rdev = e.rdev;
  return JSON.stringify(o);
}

function entryOf(r: InodeRecord, p: Buffer): ManifestEntry {
  const e: ManifestEntry = { path: p, type: r.type, mode: r.mode & 0o7777, uid: r.uid, gid: r.gid };
  if (r.type === 'file') {
    e.size = Number(r.size);
    e.digest = digestFromExtents(r.size, r.extents);
  } else if (r.type === 'symlink') {
    e.target = r.target ?? Buffer.alloc(0);
  } else if (r.type === 'chr' || r.type === 'blk') {
    e.rdev = r.rdev.toString();
  }
  return e;
}

/**
 * Every entry of the snapshot whose index is `indexPath`, in index (ino)
 * order, one per name. Streams the index twice; keeps only directory names.
 */
export function manifestEntries(indexPath: string): AsyncGenerator<ManifestEntry> {
  return walkIndex(indexPath, {});
}

async function* walkIndex(indexPath: string, seen: { header?: IndexHeader }): AsyncGenerator<ManifestEntry> {
  const dirs = new Map<bigint, { parent: bigint; name: Buffer } | null>();
  let root: bigint | undefined;
  {
    const f = await openIndex(indexPath);
    seen.header = f.header;
    for await (const batch of f.batches) {
      for (const r of batch) {
        if (r.type !== 'dir') continue;
        if (r.links.length === 0) {
          root = r.ino;
          dirs.set(r.ino, null);
        } else dirs.set(r.ino, { parent: r.links[0].parent, name: r.links[0].name });
      }
    }
  }
  if (root === undefined) {
    throw new FerryError('DIFF_INDEX_CORRUPT', 'snapshot index has no root directory', { context: { index: indexPath } });
  }
  const cache = new Map<bigint, Buffer>([[root, Buffer.alloc(0)]]);
  const dirPath = (ino: bigint): Buffer | undefined => {
    const chain: bigint[] = [];
    let cur = ino;
    while (!cache.has(cur)) {
      const d = dirs.get(cur);
      if (!d || chain.length > 4096) return undefined;
      chain.push(cur);
      cur = d.parent;
    }
    let p = cache.get(cur)!;
    for (let i = chain.length - 1; i >= 0; i--) {
      const name = dirs.get(chain[i])!.name;
      p = p.length ? Buffer.concat([p, Buffer.from('/'), name]) : name;
      cache.set(chain[i], p);
    }
    return p;
  };
  const f = await openIndex(indexPath);
  for await (const batch of f.batches) {
    for (const r of batch) {
      if (r.ino === root) {
        yield entryOf(r, ROOT_PATH);
        continue;
      }
      for (const l of r.links) {
        const parent = dirPath(l.parent);
        if (parent === undefined) {
          throw new FerryError('DIFF_INDEX_CORRUPT', `snapshot index names inode ${r.ino} under directory ${l.parent}, which is not in it`, {
            context: { index: indexPath },
          });
        }
        yield entryOf(r, parent.length ? Buffer.concat([parent, Buffer.from('/'), l.name]) : l.name);
      }
    }
  }
}

/**
 * The manifest of a snapshot as file bytes (NDJSON lines, in chunks of
 * about 64 KiB). `info` names the snapshot; uuid and ctransid come from
 * the index header.
 */
export async function* manifestBytes(indexPath: string, info: { name?: string } = {}): AsyncGenerator<Buffer> {
  const seen: { header?: IndexHeader } = {};
  let out = '';
  let n = 0;
  for await (const e of walkIndex(indexPath, seen)) {
    if (n === 0) out = headerLine(seen.header!, info.name);
    out += entryJson(e) + '\n';
    n++;
    if (out.length >= 64 * 1024) {
      yield Buffer.from(out);
      out = '';
    }
  }
  if (n === 0) out = headerLine(seen.header!, info.name);
  out += JSON.stringify({ end: true, entries: n }) + '\n';
  yield Buffer.from(out);
}

function headerLine(h: IndexHeader, name: string | undefined): string {
  const header: ManifestHeader = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    uuid: h.uuid,
    ctransid: h.transid,
    ...(name !== undefined ? { name } : {}),
    blockSize: BLOCK_SIZE,
  };
  return JSON.stringify(header) + '\n';
}

/**
 * Write manifest bytes (from manifestBytes, or received from a sender)
 * durably to `file`: temp name, fsync, rename, fsync of the directory.
 * The bytes are parsed on the way, so a malformed or truncated manifest
 * never lands. Returns the entry count and the file's SHA-256.
 */
export async function writeManifestFile(file: string, bytes: Uint8Array | AsyncIterable<Uint8Array>): Promise<{ entries: number; sha256: string; bytes: number }> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  const parser = new ManifestParser(file);
  const hash = createHash('sha256');
  let total = 0;
  try {
    const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = bytes instanceof Uint8Array ? [bytes] : bytes;
    for await (const c of chunks) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
      parser.feed(b, () => undefined);
      hash.update(b);
      total += b.length;
      await fh.write(b);
    }
    parser.finish();
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await fs.promises.rename(tmp, file);
  fsyncDir(dir);
  return { entries: parser.count, sha256: hash.digest('hex'), bytes: total };
}

// -------------------------------------------------------------- reading --

function bad(file: string, why: string): FerryError {
  return new FerryError('REPLICATE_NO_MANIFEST', `manifest is unusable: ${why}`, {
    context: { file },
    hint: 'the manifest is damaged; send the snapshot again to get a new one',
  });
}

/** Incremental NDJSON parser with format checks. */
class ManifestParser {
  header: ManifestHeader | undefined;
  count = 0;
  private ended = false;
  private rest = '';
  private line = 0;
  private readonly utf8 = new StringDecoder('utf8');

  constructor(private readonly file: string) {}

  feed(b: Buffer, onEntry: (e: ManifestEntry) => void): void {
    const text = this.rest + this.utf8.write(b);
    const lines = text.split('\n');
    this.rest = lines.pop()!;
    for (const l of lines) this.parseLine(l, onEntry);
  }

  finish(): void {
    this.rest += this.utf8.end();
    if (this.rest.length) throw bad(this.file, `line ${this.line + 1} is not terminated`);
    if (!this.header) throw bad(this.file, 'it is empty');
    if (!this.ended) throw bad(this.file, 'it is truncated (no end line)');
  }

  private parseLine(l: string, onEntry: (e: ManifestEntry) => void): void {
    this.line++;
    if (this.ended) throw bad(this.file, `data after the end line (line ${this.line})`);
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw bad(this.file, `line ${this.line} is not JSON`);
    }
    if (!o || typeof o !== 'object') throw bad(this.file, `line ${this.line} is not an object`);
    if (!this.header) {
      if (o.format !== MANIFEST_FORMAT || o.version !== MANIFEST_VERSION) throw bad(this.file, 'not a ferry manifest (version 1)');
      if (typeof o.uuid !== 'string' || typeof o.ctransid !== 'string' || o.blockSize !== BLOCK_SIZE) throw bad(this.file, 'malformed header');
      this.header = o as unknown as ManifestHeader;
      return;
    }
    if (o.end === true) {
      if (o.entries !== this.count) throw bad(this.file, `end line counts ${String(o.entries)} entries, the file has ${this.count}`);
      this.ended = true;
      return;
    }
    onEntry(this.parseEntry(o));
    this.count++;
  }

  private parseEntry(o: Record<string, unknown>): ManifestEntry {
    const bytes = (key: string, hexKey: string): Buffer | undefined => {
      if (typeof o[key] === 'string') return Buffer.from(o[key] as string, 'utf8');
      if (typeof o[hexKey] === 'string' && /^([0-9a-f]{2})*$/.test(o[hexKey] as string)) return Buffer.from(o[hexKey] as string, 'hex');
      return undefined;
    };
    const p = bytes('path', 'pathHex');
    const types: InodeType[] = ['file', 'dir', 'symlink', 'chr', 'blk', 'fifo', 'sock'];
    const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!p || !types.includes(o.type as InodeType) || !int(o.mode) || !int(o.uid) || !int(o.gid)) {
      throw bad(this.file, `malformed entry on line ${this.line}`);
    }
    const e: ManifestEntry = { path: p, type: o.type as InodeType, mode: o.mode as number, uid: o.uid as number, gid: o.gid as number };
    if (e.type === 'file') {
      if (!int(o.size) || !(o.digest === null || (typeof o.digest === 'string' && /^[0-9a-f]{64}$/.test(o.digest)))) {
        throw bad(this.file, `malformed file entry on line ${this.line}`);
      }
      e.size = o.size as number;
      e.digest = o.digest as string | null;
    } else if (e.type === 'symlink') {
      const t = bytes('target', 'targetHex');
      if (!t) throw bad(this.file, `malformed symlink entry on line ${this.line}`);
      e.target = t;
    } else if (e.type === 'chr' || e.type === 'blk') {
      if (typeof o.rdev !== 'string' || !/^\d+$/.test(o.rdev)) throw bad(this.file, `malformed device entry on line ${this.line}`);
      e.rdev = o.rdev;
    }
    return e;
  }
}

/** Read a manifest file into memory (one Map entry per path; O(entries)). */
export async function readManifest(file: string): Promise<Manifest> {
  const parser = new ManifestParser(file);
  const entries = new Map<string, ManifestEntry>();
  let rs: fs.ReadStream;
  try {
    rs = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    for await (const c of rs) {
      parser.feed(c as Buffer, (e) => {
        const k = pathKey(e.path);
        if (entries.has(k)) throw bad(file, `path listed twice: ${e.path.toString()}`);
        entries.set(k, e);
      });
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FerryError('REPLICATE_NO_MANIFEST', 'no manifest for this snapshot', { context: { file }, cause: e });
    }
    throw e;
  }
  parser.finish();
  return { header: parser.header!, entries };
}
