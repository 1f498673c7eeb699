/**
 * Compact stores of inode records, for the walk of a snapshot.
 *
 * Owns: holding the records of a walk between the walk (directory order) and
 * the index (ino order) without a JS object per record. Records are kept in
 * the index's own encoding (src/diff/index-file.ts), packed into large
 * buffers: a record costs its encoded bytes (about 130 for a small file,
 * where an InodeRecord with its bigints, Buffers and arrays costs over 1 KB
 * of heap), and the garbage collector sees a few buffers instead of
 * millions of objects.
 *
 *  - RecordArena: records by position, in memory (the walk's directories).
 *  - RecordSpool: records read back in ino order. An external sort: each
 *    run of RUN_BYTES is sorted when full and, with `spillTo`, written to
 *    that file and dropped from memory; reading merges the runs. Memory is
 *    then one run plus a small window per run, whatever the tree's size.
 *    Without `spillTo` the sorted runs stay in memory.
 *
 * Never: touches any file but `spillTo`. Records come back as fresh objects,
 * decoded one at a time; changing one does not change the store.
 */
import * as fs from 'node:fs';
import { InodeRecord } from '../model/inode';
import { decodeRecord, RecordEncoder } from './index-file';

const CHUNK_BYTES = 4 << 20;
const LEN_BYTES = 4;
/** Bytes of one sorted run. */
const RUN_BYTES = 8 << 20;
/** Read window per spilled run while merging. */
const WINDOW_BYTES = 64 << 10;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Records by position, packed in shared chunks. */
export class RecordArena {
  private readonly enc = new RecordEncoder();
  private readonly chunks: Buffer[] = [];
  private cur: Buffer = Buffer.alloc(0);
  private used = 0;
  private chunkOf = new Uint32Array(256);
  private offset = new Uint32Array(256);
  private n = 0;

  get length(): number {
    return this.n;
  }

  /** Store a record; returns its position. */
  add(r: InodeRecord): number {
    const body = this.enc.encode(r);
    const need = LEN_BYTES + body.length;
    if (this.used + need > this.cur.length) {
      this.cur = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need));
      this.chunks.push(this.cur);
      this.used = 0;
    }
    if (this.n === this.offset.length) {
      this.chunkOf = grown(this.chunkOf);
      this.offset = grown(this.offset);
    }
    this.cur.writeUInt32LE(body.length, this.used);
    body.copy(this.cur, this.used + LEN_BYTES);
    this.chunkOf[this.n] = this.chunks.length - 1;
    this.offset[this.n] = this.used;
    this.used += need;
    return this.n++;
  }

  /** A fresh copy of the record at position i. */
  get(i: number): InodeRecord {
    if (i < 0 || i >= this.n) throw new RangeError(`no record at ${i}`);
    const c = this.chunks[this.chunkOf[i]];
    const at = this.offset[i];
    return decodeRecord(c.subarray(at + LEN_BYTES, at + LEN_BYTES + c.readUInt32LE(at)));
  }
}

function grown(a: Uint32Array): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(a.length * 2);
  b.set(a);
  return b;
}

/** A sorted run: in memory, or [start, end) of the spill file. */
type Run = { buf: Buffer } | { start: number; end: number };

/** Reads one run's records in order. */
class RunReader {
  private buf: Buffer;
  private pos = 0;
  private end: number;
  private filePos = 0;
  private readonly fileEnd: number;
  ino = 0n;
  len = 0;

  constructor(
    run: Run,
    private readonly fd: number,
  ) {
    if ('buf' in run) {
      this.buf = run.buf;
      this.end = run.buf.length;
      this.fileEnd = 0;
    } else {
      this.buf = Buffer.allocUnsafe(WINDOW_BYTES);
      this.end = 0;
      this.filePos = run.start;
      this.fileEnd = run.end;
    }
  }

  /** Make n bytes available at buf[pos]; false at the end of the run. */
  private have(n: number): boolean {
    if (this.end - this.pos >= n) return true;
    if (this.filePos >= this.fileEnd) return false;
    const rest = this.end - this.pos;
    if (n > this.buf.length) {
      const b = Buffer.allocUnsafe(n);
      this.buf.copy(b, 0, this.pos, this.end);
      this.buf = b;
    } else this.buf.copy(this.buf, 0, this.pos, this.end);
    this.pos = 0;
    this.end = rest;
    while (this.end < n && this.filePos < this.fileEnd) {
      const got = fs.readSync(this.fd, this.buf, this.end, Math.min(this.buf.length - this.end, this.fileEnd - this.filePos), this.filePos);
      if (got === 0) throw new Error('walk spool file is shorter than written');
      this.end += got;
      this.filePos += got;
    }
    return this.end - this.pos >= n;
  }

  /** Step to the next record (its ino and length); false at the end. */
  advance(): boolean {
    if (!this.have(LEN_BYTES + 8)) return false;
    this.len = this.buf.readUInt32LE(this.pos);
    if (!this.have(LEN_BYTES + this.len)) throw new Error('walk spool record is cut short');
    this.ino = this.buf.readBigUInt64LE(this.pos + LEN_BYTES); // a record starts with its ino
    return true;
  }

  take(): InodeRecord {
    const r = decodeRecord(this.buf.subarray(this.pos + LEN_BYTES, this.pos + LEN_BYTES + this.len));
    this.pos += LEN_BYTES + this.len;
    return r;
  }
}

/** Records read back in ino order (an external merge sort). */
export class RecordSpool {
  private readonly enc = new RecordEncoder();
  private run: Buffer;
  private used = 0;
  /** Inos and offsets of the records in the current run. */
  private inos = new BigUint64Array(1024);
  private offset = new Uint32Array(1024);
  private inRun = 0;
  private readonly runs: Run[] = [];
  private fd = -1;
  private fileEnd = 0;
  private n = 0;
  private closed = false;
  private sortBuf = Buffer.alloc(0);

  constructor(private readonly opts: { spillTo?: string; runBytes?: number } = {}) {
    this.run = Buffer.allocUnsafe(opts.runBytes ?? RUN_BYTES);
  }

  get length(): number {
    return this.n;
  }

  /** Runs written to the spill file so far. */
  get spilledRuns(): number {
    return this.runs.filter((r) => !('buf' in r)).length;
  }

  add(r: InodeRecord): void {
    if (this.closed) throw new Error('walk spool is closed');
    const body = this.enc.encode(r);
    const need = LEN_BYTES + body.length;
    if (this.used + need > this.run.length) {
      this.endRun();
      if (need > this.run.length) this.run = Buffer.allocUnsafe(need);
    }
    if (this.inRun === this.inos.length) {
      const inos = new BigUint64Array(this.inos.length * 2);
      inos.set(this.inos);
      this.inos = inos;
      this.offset = grown(this.offset);
    }
    this.run.writeUInt32LE(body.length, this.used);
    body.copy(this.run, this.used + LEN_BYTES);
    this.inos[this.inRun] = r.ino;
    this.offset[this.inRun++] = this.used;
    this.used += need;
    this.n++;
  }

  /** Sort the current run into a buffer of its own; spill it when asked. */
  private endRun(): void {
    if (this.inRun === 0) return;
    const order = sortByIno(this.inos, this.inRun);
    const spill = !!this.opts.spillTo;
    // Spilled runs are written from one reused buffer; kept ones need their own.
    if (spill && this.sortBuf.length < this.used) this.sortBuf = Buffer.allocUnsafe(this.run.length);
    const out = spill ? this.sortBuf.subarray(0, this.used) : Buffer.allocUnsafe(this.used);
    let at = 0;
    for (let k = 0; k < order.length; k++) {
      const o = this.offset[order[k]];
      const len = LEN_BYTES + this.run.readUInt32LE(o);
      this.run.copy(out, at, o, o + len);
      at += len;
    }
    if (this.opts.spillTo) {
      if (this.fd < 0) this.fd = fs.openSync(this.opts.spillTo, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      for (let w = 0; w < out.length; ) w += fs.writeSync(this.fd, out, w, out.length - w, this.fileEnd + w);
      this.runs.push({ start: this.fileEnd, end: this.fileEnd + out.length });
      this.fileEnd += out.length;
    } else this.runs.push({ buf: out });
    this.used = 0;
    this.inRun = 0;
  }

  /** Every record in ino order. Ends the current run; no record may be added after. */
  *sorted(): Generator<InodeRecord> {
    if (this.closed) throw new Error('walk spool is closed');
    this.endRun();
    this.closed = true;
    this.run = Buffer.alloc(0);
    this.sortBuf = Buffer.alloc(0);
    this.inos = new BigUint64Array(0);
    this.offset = new Uint32Array(0);
    const readers = this.runs.map((r) => new RunReader(r, this.fd)).filter((r) => r.advance());
    // A binary heap of readers by their next ino.
    const less = (a: RunReader, b: RunReader) => a.ino < b.ino;
    const down = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        if (l >= readers.length) return;
        const c = l + 1 < readers.length && less(readers[l + 1], readers[l]) ? l + 1 : l;
        if (!less(readers[c], readers[i])) return;
        [readers[c], readers[i]] = [readers[i], readers[c]];
        i = c;
      }
    };
    for (let i = (readers.length >> 1) - 1; i >= 0; i--) down(i);
    while (readers.length) {
      const top = readers[0];
      yield top.take();
      if (!top.advance()) {
        const last = readers.pop()!;
        if (readers.length) readers[0] = last;
      }
      down(0);
    }
  }

  /** Release the spill file (removed). Safe to call twice. */
  dispose(): void {
    this.closed = true;
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
      fs.rmSync(this.opts.spillTo!, { force: true });
    }
  }
}

/** Positions 0..n-1 ordered by inos[i]: compared as doubles when all are below 2^53 (exact there). */
function sortByIno(inos: BigUint64Array, n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let exact = true;
  for (let i = 0; i < n && exact; i++) exact = inos[i] <= MAX_SAFE;
  if (exact) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = Number(inos[i]);
    order.sort((a, b) => keys[a] - keys[b]);
  } else {
    order.sort((a, b) => (inos[a] < inos[b] ? -1 : inos[a] > inos[b] ? 1 : 0));
  }
  return order;
}
