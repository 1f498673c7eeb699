/**
 * The on-disk snapshot index: one immutable binary file per snapshot.
 *
 * Owns: encoding and decoding InodeRecords, the file layout, and the
 * checksum. Never: hands out a record from a file whose checksum or
 * structure is wrong (readers verify the whole file before the first record
 * is yielded; a torn or corrupt file throws DIFF_INDEX_CORRUPT).
 *
 * Layout (all integers little-endian):
 *
 *   magic    "FERRYIDX"                         8 bytes
 *   version  u32 (= 2; 1 is still read)
 *   hlen     u32, then hlen bytes of JSON       IndexHeader
 *   records  repeated: u32 length, then the record body (see encodeRecord)
 *   trailer  "FERRYEND", u64 record count, 32-byte SHA-256 of every byte
 *            before the hash (header, records, "FERRYEND" and the count)
 *
 * Format 2 adds per-extent sub-block digests (Extent.sub) and the header's
 * `subKey`; an extent is offset u64, length u32, generation u64, flags u8
 * (1 = hash, 2 = sub digests), then the 16-byte hash and ceil(length /
 * SUB_BLOCK_SIZE) * SUB_DIGEST_BYTES of digests when flagged. Format 1 had a
 * 0/1 byte and the hash only; such indexes load with `sub` absent. A newer
 * format is refused with DIFF_INDEX_CORRUPT naming both versions. Cost: about
 * 37 bytes per 128 KiB block plus 8 per 4 KiB (2.3 MiB per GiB of file data
 * with sub digests, 0.3 MiB without).
 *
 * Records are sorted by ino, strictly increasing. Writes are streamed in
 * bounded chunks to a temp name, fsynced, renamed into place and the
 * directory fsynced.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { Extent, InodeRecord, InodeType, Link, SUB_BLOCK_SIZE, SUB_DIGEST_BYTES } from '../model/inode';
import { fsyncDir } from '../volume/atomic';

export const INDEX_MAGIC = Buffer.from('FERRYIDX');
export const INDEX_END = Buffer.from('FERRYEND');
export const INDEX_VERSION = 2;
/** Oldest format this code still reads. */
export const INDEX_MIN_VERSION = 1;
const EXT_HASH = 1;
const EXT_SUB = 2;
const HASH_BYTES = 16;

/** Bytes of sub-block digests an extent of `length` bytes carries. */
export function subDigestBytes(length: number): number {
  return Math.ceil(length / SUB_BLOCK_SIZE) * SUB_DIGEST_BYTES;
}
const TRAILER_BYTES = 8 + 8 + 32;
/** A record larger than this is treated as corruption (100 GiB of 128 KiB blocks is ~30 MiB, ~230 MiB with sub digests). */
const MAX_RECORD_BYTES = 1 << 30;
const MAX_HEADER_BYTES = 1 << 20;
const FLUSH_BYTES = 1 << 20;
const READ_CHUNK = 1 << 20;

export interface IndexHeader {
  /** Snapshot uuid (dashed string form). */
  uuid: string;
  /** Snapshot transid, as a decimal string. */
  transid: string;
  parentUuid: string | null;
  volumeUuid?: string;
  /**
   * Format 2: hex of the secret key the sub-block digests are computed with
   * (inherited from the parent index, so digests of one volume compare).
   * Keyed, so nobody without the index can craft colliding 64-bit digests.
   */
  subKey?: string;
  /** Inode number of the snapshot's root directory, as a decimal string (indexes written before it lack it). */
  rootIno?: string;
}

/**
 * Where a record body keeps the fields of its change identity: ino (u64),
 * birth (i64) and ctimeNs (i64), each 8 bytes little-endian (see
 * encodeRecord). Lets a reader take them without decoding the record.
 */
export const RECORD_KEY_OFFSETS = { ino: 0, birth: 8, ctimeNs: 59 } as const;

const TYPES: InodeType[] = ['file', 'dir', 'symlink', 'chr', 'blk', 'fifo', 'sock'];
const NONE = 0xffffffff;

function corrupt(file: string, why: string): FerryError {
  return new FerryError('DIFF_INDEX_CORRUPT', `snapshot index is corrupt: ${why}`, {
    context: { file },
    hint: 'this index is never used; the snapshot must be taken again or removed',
  });
}

/** A growable buffer for encoding one record. */
class Enc {
  buf = Buffer.allocUnsafe(4096);
  len = 0;
  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void {
    this.need(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.need(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.need(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.need(8);
    this.buf.writeBigUInt64LE(v, this.len);
    this.len += 8;
  }
  i64(v: bigint): void {
    this.need(8);
    this.buf.writeBigInt64LE(v, this.len);
    this.len += 8;
  }
  bytes(b: Buffer): void {
    this.need(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
}

/** Encode one record body (without the length prefix) into `e`. */
function encodeRecord(e: Enc, r: InodeRecord): void {
  e.u64(r.ino);
  e.i64(r.birth);
  const t = TYPES.indexOf(r.type);
  if (t < 0) throw new Error(`bad inode type ${String(r.type)}`);
  e.u8(t);
  e.u16(r.mode);
  e.u32(r.uid);
  e.u32(r.gid);
  e.u64(r.size);
  e.u64(r.rdev);
  e.i64(r.atimeNs);
  e.i64(r.mtimeNs);
  e.i64(r.ctimeNs);
  e.u32(r.nlink);
  e.u64(r.generation);
  e.u32(r.xattrs.length);
  for (const [k, v] of r.xattrs) {
    e.u16(k.length);
    e.bytes(k);
    e.u32(v.length);
    e.bytes(v);
  }
  if (r.target === undefined) e.u32(NONE);
  else {
    e.u32(r.target.length);
    e.bytes(r.target);
  }
  e.u32(r.links.length);
  for (const l of r.links) {
    e.u64(l.parent);
    e.u16(l.name.length);
    e.bytes(l.name);
  }
  if (r.extents === undefined) e.u32(NONE);
  else {
    e.u32(r.extents.length);
    for (const x of r.extents) {
      e.u64(x.offset);
      e.u32(x.length);
      e.u64(x.generation);
      if (!x.hash) {
        if (x.sub) throw new Error('a hole has no sub-block digests');
        e.u8(0);
        continue;
      }
      if (x.hash.length !== HASH_BYTES) throw new Error(`block hash of ${x.hash.length} bytes`);
      if (x.sub && x.sub.length !== subDigestBytes(x.length)) throw new Error(`${x.sub.length} bytes of sub-block digests for a ${x.length}-byte block`);
      e.u8(x.sub ? EXT_HASH | EXT_SUB : EXT_HASH);
      e.bytes(x.hash);
      if (x.sub) e.bytes(x.sub);
    }
  }
}

/**
 * Encodes records one at a time into a reused buffer (the index's record
 * encoding, without the length prefix). The returned view is valid until
 * the next call.
 */
export class RecordEncoder {
  private readonly e = new Enc();
  encode(r: InodeRecord): Buffer {
    this.e.len = 0;
    encodeRecord(this.e, r);
    return this.e.buf.subarray(0, this.e.len);
  }
}

/** Decode one record body of format `version`; throws a plain Error on malformed input (callers wrap it). */
export function decodeRecord(b: Buffer, version: number = INDEX_VERSION): InodeRecord {
  let o = 0;
  const need = (n: number) => {
    if (o + n > b.length) throw new Error(`record overruns its length at byte ${o}`);
  };
  const u8 = () => (need(1), b[o++]);
  const u16 = () => (need(2), (o += 2), b.readUInt16LE(o - 2));
  const u32 = () => (need(4), (o += 4), b.readUInt32LE(o - 4));
  const u64 = () => (need(8), (o += 8), b.readBigUInt64LE(o - 8));
  const i64 = () => (need(8), (o += 8), b.readBigInt64LE(o - 8));
  // Copies, so records never pin the big read buffer.
  const bytes = (n: number) => (need(n), (o += n), Buffer.from(b.subarray(o - n, o)));
  const ino = u64();
  const birth = i64();
  const type = TYPES[u8()];
  if (!type) throw new Error('unknown inode type');
  const mode = u16();
  const uid = u32();
  const gid = u32();
  const size = u64();
  const rdev = u64();
  const atimeNs = i64();
  const mtimeNs = i64();
  const ctimeNs = i64();
  const nlink = u32();
  const generation = u64();
  const nx = u32();
  const xattrs: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < nx; i++) {
    const k = bytes(u16());
    xattrs.push([k, bytes(u32())]);
  }
  const tl = u32();
  const target = tl === NONE ? undefined : bytes(tl);
  const nl = u32();
  const links: Link[] = [];
  for (let i = 0; i < nl; i++) {
    const parent = u64();
    links.push({ parent, name: bytes(u16()) });
  }
  const ne = u32();
  let extents: Extent[] | undefined;
  if (ne !== NONE) {
    extents = [];
    for (let i = 0; i < ne; i++) {
      const offset = u64();
      const length = u32();
      const gen = u64();
      const flags = u8();
      if (flags > (version >= 2 ? EXT_HASH | EXT_SUB : EXT_HASH) || flags === EXT_SUB) throw new Error(`bad extent flags ${flags}`);
      const x: Extent = { offset, length, generation: gen, hash: flags & EXT_HASH ? bytes(HASH_BYTES) : null };
      if (flags & EXT_SUB) x.sub = bytes(subDigestBytes(length));
      extents.push(x);
    }
  }
  if (o !== b.length) throw new Error(`record has ${b.length - o} trailing bytes`);
  const r: InodeRecord = { ino, birth, type, mode, uid, gid, size, rdev, atimeNs, mtimeNs, ctimeNs, nlink, xattrs, links, generation };
  if (target !== undefined) r.target = target;
  if (extents !== undefined) r.extents = extents;
  return r;
}

/**
 * Write an index durably: `file` appears complete or not at all.
 * `records` must be sorted by ino (checked).
 */
export async function writeIndex(file: string, header: IndexHeader, records: Iterable<InodeRecord> | AsyncIterable<InodeRecord>): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  const hash: Hash = createHash('sha256');
  // Records are encoded back to back into one buffer, hashed and written
  // when it passes FLUSH_BYTES: bounded memory, few syscalls.
  const e = new Enc();
  const flush = async () => {
    if (e.len === 0) return;
    const chunk = e.buf.subarray(0, e.len);
    hash.update(chunk);
    await fh.write(chunk);
    e.len = 0;
  };
  try {
    const head = Buffer.from(JSON.stringify(header));
    INDEX_MAGIC.forEach((b) => e.u8(b));
    e.u32(INDEX_VERSION);
    e.u32(head.length);
    e.bytes(head);
    let count = 0n;
    let last = -1n;
    for await (const r of records as AsyncIterable<InodeRecord>) {
      if (r.ino <= last) throw new Error(`index records out of order: ino ${r.ino} after ${last}`);
      last = r.ino;
      const at = e.len;
      e.u32(0);
      encodeRecord(e, r);
      e.buf.writeUInt32LE(e.len - at - 4, at);
      count++;
      if (e.len >= FLUSH_BYTES) await flush();
    }
    e.bytes(INDEX_END);
    e.u64(count);
    await flush();
    await fh.write(hash.digest());
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await fs.promises.rename(tmp, file);
  fsyncDir(dir);
}

/** Check the trailing checksum of the whole file; returns its size. */
async function verify(file: string): Promise<number> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot index is missing', { context: { file }, cause: e });
    }
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    if (size < 16 + TRAILER_BYTES) throw corrupt(file, `file too short (${size} bytes)`);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const body = size - 32;
    let pos = 0;
    while (pos < body) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, body - pos), pos);
      if (bytesRead === 0) throw corrupt(file, 'file shrank while read');
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    const want = Buffer.alloc(32);
    await fh.read(want, 0, 32, body);
    if (!hash.digest().equals(want)) throw corrupt(file, 'checksum mismatch');
    return size;
  } finally {
    await fh.close();
  }
}

export interface IndexFile {
  header: IndexHeader;
  /** Format version of the file (INDEX_MIN_VERSION..INDEX_VERSION). */
  version: number;
  /** One-shot stream of records. Use either `records` or `batches`, not both. */
  records: AsyncIterable<InodeRecord>;
  /** The same records in arrays (much cheaper per record for big indexes). */
  batches: AsyncIterable<InodeRecord[]>;
  /**
   * A fresh synchronous pass over every record, in ino order, each time it
   * is called (for planners that must not hold the whole index in memory).
   * Valid until `close()`; the checksum was verified when the file was opened.
   */
  scan(): Iterable<InodeRecord>;
  /**
   * One pass handing `fn` each record's undecoded body in ino order (valid
   * only during the call; read fields at RECORD_KEY_OFFSETS). Much cheaper
   * than scan() where only those fields are wanted.
   */
  scanBodies(fn: (body: Buffer) => void): void;
  /** Release the file when the records are not read to the end. */
  close(): Promise<void>;
}

/**
 * Reads records from an open index synchronously, one buffer at a time.
 * Checks lengths, order, the trailer and the record count as it goes.
 */
class IndexCursor {
  private buf = Buffer.allocUnsafe(READ_CHUNK);
  private start = 0; // first unconsumed byte in buf
  private end = 0; // bytes valid in buf
  private filePos: number;
  private consumed: number;
  private count = 0n;
  private last = -1n;
  private finished = false;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    private readonly recordsEnd: number,
    private readonly version: number,
    from: number,
  ) {
    this.filePos = from;
    this.consumed = from;
  }

  /** Make at least n bytes available at buf[start]. */
  fill(n: number): void {
    if (this.end - this.start >= n) return;
    if (this.start > 0) {
      this.buf.copy(this.buf, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (n > this.buf.length) {
      const b = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(b, 0, 0, this.end);
      this.buf = b;
    }
    while (this.end < n) {
      const got = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.filePos);
      if (got === 0) throw corrupt(this.file, 'unexpected end of file');
      this.end += got;
      this.filePos += got;
    }
  }

  /** True at the end of the records (the trailer checked); false while records remain. */
  private atEnd(): boolean {
    if (this.finished) return true;
    const { file, recordsEnd } = this;
    if (this.consumed < recordsEnd) return false;
    if (this.consumed !== recordsEnd) throw corrupt(file, 'records overrun the trailer');
    this.fill(16);
    if (!this.buf.subarray(this.start, this.start + 8).equals(INDEX_END)) throw corrupt(file, 'bad trailer');
    if (this.buf.readBigUInt64LE(this.start + 8) !== this.count) throw corrupt(file, 'record count mismatch');
    this.finished = true;
    return true;
  }

  /** Length of the record at buf[start] (its 4 length bytes present), checked. */
  private length(): number {
    const len = this.buf.readUInt32LE(this.start);
    if (len > MAX_RECORD_BYTES || this.consumed + 4 + len > this.recordsEnd) throw corrupt(this.file, `bad record length at byte ${this.consumed}`);
    return len;
  }

  /** Decode the record at buf[start] (all `len` bytes present) and step past it. */
  private take(len: number): InodeRecord {
    let r: InodeRecord;
    try {
      r = decodeRecord(this.buf.subarray(this.start + 4, this.start + 4 + len), this.version);
    } catch (e) {
      throw corrupt(this.file, `${(e as Error).message} (record at byte ${this.consumed})`);
    }
    if (r.ino <= this.last) throw corrupt(this.file, `records out of order at byte ${this.consumed}`);
    this.last = r.ino;
    this.start += 4 + len;
    this.consumed += 4 + len;
    this.count++;
    return r;
  }

  /** The next record, or undefined at the end. */
  next(): InodeRecord | undefined {
    if (this.atEnd()) return undefined;
    this.fill(4);
    const len = this.length();
    this.fill(4 + len);
    return this.take(len);
  }

  /**
   * Step past the next record, handing `fn` its body (valid only during the
   * call) without decoding it. False at the end. Lengths and the trailer are
   * checked; the order is not (the whole-file checksum was).
   */
  nextBody(fn: (body: Buffer) => void): boolean {
    if (this.atEnd()) return false;
    this.fill(4);
    const len = this.length();
    this.fill(4 + len);
    if (len < RECORD_KEY_OFFSETS.ctimeNs + 8) throw corrupt(this.file, `record too short at byte ${this.consumed}`);
    fn(this.buf.subarray(this.start + 4, this.start + 4 + len));
    this.start += 4 + len;
    this.consumed += 4 + len;
    this.count++;
    return true;
  }

  /** The next record and every other complete one in the buffer (refilled first where needed). Undefined at the end. */
  nextBatch(): InodeRecord[] | undefined {
    const first = this.next();
    if (!first) return undefined;
    const batch: InodeRecord[] = [first];
    while (this.consumed < this.recordsEnd && this.end - this.start >= 4) {
      const len = this.length();
      if (this.end - this.start < 4 + len) break;
      batch.push(this.take(len));
    }
    return batch;
  }

  /** Read and check the file header; leaves the cursor at the first record. */
  header(): { header: IndexHeader; version: number; recordsAt: number } {
    const { file } = this;
    this.fill(16);
    if (!this.buf.subarray(0, 8).equals(INDEX_MAGIC)) throw corrupt(file, 'bad magic');
    const version = this.buf.readUInt32LE(8);
    if (version > INDEX_VERSION) {
      throw new FerryError('DIFF_INDEX_CORRUPT', `snapshot index has format version ${version}; this ferry reads versions ${INDEX_MIN_VERSION} to ${INDEX_VERSION}`, {
        context: { file },
        hint: 'a newer ferry wrote this index: upgrade ferry to use this snapshot',
      });
    }
    if (version < INDEX_MIN_VERSION) throw corrupt(file, `unsupported format version ${version}`);
    const hlen = this.buf.readUInt32LE(12);
    if (hlen > MAX_HEADER_BYTES || 16 + hlen > this.recordsEnd) throw corrupt(file, 'bad header length');
    this.start = 16;
    this.fill(hlen);
    let header: IndexHeader;
    try {
      header = JSON.parse(this.buf.toString('utf8', this.start, this.start + hlen)) as IndexHeader;
    } catch {
      throw corrupt(file, 'header is not JSON');
    }
    return { header, version, recordsAt: 16 + hlen };
  }
}

/**
 * Open an index: verifies the checksum over the whole file first, then
 * returns the header and a one-shot stream of its records.
 */
export async function openIndex(file: string): Promise<IndexFile> {
  const size = await verify(file);
  const fd = fs.openSync(file, 'r');
  const recordsEnd = size - TRAILER_BYTES;
  let head: ReturnType<IndexCursor['header']>;
  try {
    head = new IndexCursor(fd, file, recordsEnd, INDEX_VERSION, 0).header();
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      fs.closeSync(fd);
    }
  };
  const cursor = () => {
    if (closed) throw new Error('index file is closed');
    return new IndexCursor(fd, file, recordsEnd, head.version, head.recordsAt);
  };
  async function* batches(): AsyncGenerator<InodeRecord[]> {
    try {
      const c = cursor();
      for (let b = c.nextBatch(); b; b = c.nextBatch()) yield b;
    } finally {
      await close();
    }
  }
  async function* records(): AsyncGenerator<InodeRecord> {
    for await (const b of batches()) for (const r of b) yield r;
  }
  function* scan(): Generator<InodeRecord> {
    // One record at a time: a batch of thousands would outlive the young
    // generation and be promoted, growing the heap of a long merge-join.
    const c = cursor();
    for (let r = c.next(); r; r = c.next()) yield r;
  }
  const scanBodies = (fn: (body: Buffer) => void): void => {
    const c = cursor();
    while (c.nextBody(fn));
  };
  return { header: head.header, version: head.version, records: records(), batches: batches(), scan, scanBodies, close };
}

/** Stream the records of an index (verified before the first one is yielded). */
export async function* readIndex(file: string): AsyncIterable<InodeRecord> {
  const f = await openIndex(file);
  try {
    for await (const b of f.batches) for (const r of b) yield r;
  } finally {
    await f.close();
  }
}

/** Read the header of an index (verifies the whole file). */
export async function readIndexHeader(file: string): Promise<IndexHeader> {
  const f = await openIndex(file);
  await f.close();
  return f.header;
}

/** Every record of an index, in ino order. */
export async function loadIndex(file: string): Promise<InodeRecord[]> {
  const f = await openIndex(file);
  const out: InodeRecord[] = [];
  try {
    for await (const b of f.batches) for (const r of b) out.push(r);
  } finally {
    await f.close();
  }
  return out;
}
