/**
 * A compact in-memory store of inode records, read back in ino order.
 *
 * Owns: holding the records of a walk between the walk (directory order) and
 * the index (ino order) without a JS object per record. Each record is kept
 * in the index's own encoding (src/diff/index-file.ts), packed into large
 * shared chunks, and its ino in a typed array. A record costs its encoded
 * bytes plus 16 bytes of bookkeeping (about 150 bytes for a small file, where
 * an InodeRecord with its bigints, Buffers and arrays costs over 1 KB of
 * heap), and the garbage collector sees a few dozen chunks instead of
 * millions of objects.
 *
 * Never: touches the filesystem. Records come back as fresh objects, decoded
 * one at a time; changing one does not change the spool.
 */
import { InodeRecord } from '../model/inode';
import { decodeRecord, RecordEncoder } from './index-file';

/** Bytes per chunk; a record bigger than this gets a chunk of its own. */
const CHUNK_BYTES = 4 << 20;
const LEN_BYTES = 4;

export class RecordSpool {
  private readonly enc = new RecordEncoder();
  private readonly chunks: Buffer[] = [];
  private cur: Buffer = Buffer.alloc(0);
  private used = 0;
  private inos = new BigUint64Array(1024);
  private chunkOf = new Uint32Array(1024);
  private offset = new Uint32Array(1024);
  private n = 0;
  private order: Uint32Array | undefined;

  get length(): number {
    return this.n;
  }

  /** Store a record; returns its position (stable: sorting does not move records). */
  add(r: InodeRecord): number {
    if (this.order) throw new Error('records added after the spool was sorted');
    const body = this.enc.encode(r);
    const need = LEN_BYTES + body.length;
    if (this.used + need > this.cur.length) {
      this.cur = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need));
      this.chunks.push(this.cur);
      this.used = 0;
    }
    if (this.n === this.inos.length) this.grow();
    this.cur.writeUInt32LE(body.length, this.used);
    body.copy(this.cur, this.used + LEN_BYTES);
    this.inos[this.n] = r.ino;
    this.chunkOf[this.n] = this.chunks.length - 1;
    this.offset[this.n] = this.used;
    this.used += need;
    return this.n++;
  }

  private grow(): void {
    const size = this.inos.length * 2;
    const inos = new BigUint64Array(size);
    inos.set(this.inos);
    this.inos = inos;
    const chunkOf = new Uint32Array(size);
    chunkOf.set(this.chunkOf);
    this.chunkOf = chunkOf;
    const offset = new Uint32Array(size);
    offset.set(this.offset);
    this.offset = offset;
  }

  /** The ino of the record at position i. */
  inoAt(i: number): bigint {
    return this.inos[i];
  }

  /** A fresh copy of the record at position i. */
  get(i: number): InodeRecord {
    if (i < 0 || i >= this.n) throw new RangeError(`no record at ${i}`);
    const c = this.chunks[this.chunkOf[i]];
    const at = this.offset[i];
    const len = c.readUInt32LE(at);
    return decodeRecord(c.subarray(at + LEN_BYTES, at + LEN_BYTES + len));
  }

  /**
   * Positions in ino order (computed once; no record may be added after).
   * Inos are compared as doubles when every one is below 2^53 (exact
   * there), as bigints otherwise.
   */
  sorted(): Uint32Array {
    if (this.order) return this.order;
    const n = this.n;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const inos = this.inos;
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    let exact = true;
    for (let i = 0; i < n && exact; i++) exact = inos[i] <= max;
    if (exact) {
      const keys = new Float64Array(n);
      for (let i = 0; i < n; i++) keys[i] = Number(inos[i]);
      order.sort((a, b) => keys[a] - keys[b]);
    } else {
      order.sort((a, b) => (inos[a] < inos[b] ? -1 : inos[a] > inos[b] ? 1 : 0));
    }
    this.order = order;
    return order;
  }

  /** Bytes held (chunks and bookkeeping), for the report. */
  bytes(): number {
    return this.chunks.reduce((s, c) => s + c.length, 0) + this.inos.length * 16 + (this.order?.length ?? 0) * 4;
  }
}
