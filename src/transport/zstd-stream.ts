/**
 * zstd as streams: a compressor that cuts its input into blocks and
 * compresses each block to one zstd frame in worker threads, and a
 * decompressor for any concatenation of zstd frames (ferry's own, or what
 * the `zstd` CLI writes).
 *
 * Owns: the block/frame layout of compressed ferry streams (DESIGN.md
 * "Compression: zstd, frame per block, concatenated"), the worker pool that
 * compresses, the incremental frame walker that feeds the streaming
 * decompressor, and sniffing zstd input (`decompressIfZstd`).
 *
 * Must never: hold more than `inFlight` blocks of input in the compressor,
 * buffer more than one zstd block (128 KiB + 3) of compressed input or
 * decode more than one block ahead of the reader in the decompressor, let a
 * frame ask for a window above ZSTD_STREAM_MAX_WINDOW (the wasm heap is
 * fixed at 16 MiB; a bigger window would abort the runtime), or resolve a
 * promise with an emscripten Module (it is a thenable that never settles).
 *
 * Invariants:
 * - Compressor output is frames in input order; each frame holds one block
 *   of `blockSize` bytes (the last may be shorter) with its content size in
 *   the header, so `zstd -d` and ferry's one-frame decoder both read it. An
 *   empty input gives one empty frame, never zero bytes.
 * - The decompressor hands the streaming zstd context exactly one unit per
 *   call: a frame header, one block (header + body), or a checksum. With
 *   that, one call decodes at most one block, which always fits the
 *   binding's 128 KiB output buffer, so no output is left inside the
 *   context (the binding has no way to flush it without more input).
 *   Skippable frames are skipped here and never fed to zstd.
 * - Every failure is a FerryError naming the compressed byte offset:
 *   STREAM_BAD_MAGIC (not zstd), STREAM_TRUNCATED (input ends inside a
 *   frame), STREAM_TOO_LARGE (window above the limit), STREAM_ZSTD_CORRUPT.
 */
import * as os from 'node:os';
import { pipeline, Readable, Transform, TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../errors';
import { ZSTD_MAGIC, ZSTD_MAX_DECOMPRESS_OUTPUT, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL, zstdMaxCompressInput } from './codec';

/** zstd's own default level; what `--compress zstd` means without `:LEVEL`. */
export const ZSTD_DEFAULT_LEVEL = 3;
/** Default block (= frame) size: large enough for a good ratio, small enough to keep workers busy. */
export const ZSTD_DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024;
/**
 * Largest window the decompressor accepts: what `zstd -1`..`-19` use (the
 * CLI's `--long` and `--ultra` levels ask for 128 MiB and more). The
 * context then needs about 8.3 MiB of the binding's 16 MiB heap.
 */
export const ZSTD_STREAM_MAX_WINDOW = 8 * 1024 * 1024;

const SKIPPABLE_MIN = 0x184d2a50;
const SKIPPABLE_MAX = 0x184d2a5f;
const BLOCK_MAX = 128 * 1024;

/** True when `b` starts with a zstd or skippable frame magic number (needs 4 bytes). */
export function isZstdMagic(b: Uint8Array): boolean {
  if (b.length < 4) return false;
  const m = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  return m === ZSTD_MAGIC || (m >= SKIPPABLE_MIN && m <= SKIPPABLE_MAX);
}

function bindingPath(): string {
  return require.resolve('zstd-codec/lib/zstd-codec-binding-wasm.js');
}

/** A plain Uint8Array view: the binding builds heap views with `new src.constructor(...)`, which is deprecated for Buffer. */
function plain(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b.buffer, b.byteOffset, b.length);
}

// ------------------------------------------------------------ compressor --

/**
 * The worker: its own wasm instance, one message per block. Plain JS (it
 * runs from a string so it works from dist/ and under ts-jest alike); the
 * binding's path comes in workerData. Input buffers go back to the main
 * thread with the result, to be reused.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const factory = require(workerData.binding);
let m; let codec; let dead = null; let src; let dest; const early = [];
function handle(job) {
  if (dead) { parentPort.postMessage({ id: job.id, error: dead, input: job.input }, [job.input]); return; }
  try {
    // Kept between jobs: same-size resizes neither allocate nor zero-fill.
    if (!src) { src = new m.VectorU8(); dest = new m.VectorU8(); }
    m.cloneToVector(src, new Uint8Array(job.input, 0, job.length));
    const bound = codec.compressBound(job.length);
    if (bound < 0) throw new Error('no compress bound for ' + job.length + ' bytes');
    dest.resize(bound, 0);
    const n = codec.compress(dest, src, job.level);
    if (n < 0) throw new Error('ZSTD_compress failed (' + job.length + ' bytes, level ' + job.level + ')');
    const out = new Uint8Array(n);
    out.set(m.toTypedArrayView(dest).subarray(0, n));
    parentPort.postMessage({ id: job.id, output: out.buffer, input: job.input }, [out.buffer, job.input]);
  } catch (e) {
    const why = dead || String((e && e.message) || e);
    parentPort.postMessage({ id: job.id, error: why, input: job.input }, [job.input]);
  }
}
parentPort.on('message', (job) => { if (codec || dead) handle(job); else early.push(job); });
const mod = {
  print() {}, printErr() {},
  onAbort(what) { dead = 'wasm runtime aborted: ' + String(what); if (!codec) { for (const j of early.splice(0)) handle(j); } },
  onRuntimeInitialized() { m = mod; codec = new m.ZstdCodec(); for (const j of early.splice(0)) handle(j); },
};
factory(mod);
`;

interface Job {
  id: number;
  /** Index of the worker compressing it. */
  worker: number;
  /** Frame bytes once compressed. */
  output?: Buffer;
  done: boolean;
}

interface WorkerMessage {
  id: number;
  output?: ArrayBuffer;
  input: ArrayBuffer;
  error?: string;
}

export interface ZstdCompressorOptions {
  /** zstd level, ZSTD_MIN_LEVEL..ZSTD_MAX_LEVEL (3 is zstd's default). */
  level: number;
  /** Worker threads (default: the number of CPUs). */
  workers?: number;
  /** Bytes per frame (default ZSTD_DEFAULT_BLOCK_SIZE, capped by what the level fits in the wasm heap). */
  blockSize?: number;
  /** Blocks being compressed or waiting to be pushed at once (default 2 per worker). */
  inFlight?: number;
}

class ZstdCompressor extends Transform {
  private readonly level: number;
  private readonly blockSize: number;
  private readonly nWorkers: number;
  private readonly maxInFlight: number;
  private workers: Worker[] = [];
  private busy: number[] = [];
  private readonly jobs = new Map<number, Job>();
  /** Jobs in input order, head first; results are pushed only from the head. */
  private order: Job[] = [];
  private nextId = 0;
  private freeBuffers: ArrayBuffer[] = [];
  private block: Buffer | undefined;
  private fill = 0;
  private sawInput = false;
  /** A chunk the transform could not finish because too many blocks were in flight. */
  private paused: { chunk: Buffer; pos: number; cb: TransformCallback } | undefined;
  private flushCb: TransformCallback | undefined;
  private failed = false;

  constructor(o: ZstdCompressorOptions) {
    super();
    if (!Number.isInteger(o.level) || o.level < ZSTD_MIN_LEVEL || o.level > ZSTD_MAX_LEVEL) {
      throw new FerryError('USAGE', `zstd level must be ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}, got ${o.level}`);
    }
    const cap = Math.min(zstdMaxCompressInput(o.level), ZSTD_MAX_DECOMPRESS_OUTPUT);
    const bs = o.blockSize ?? Math.min(ZSTD_DEFAULT_BLOCK_SIZE, cap);
    if (!Number.isInteger(bs) || bs < 1 || bs > cap) {
      throw new FerryError('USAGE', `zstd block size must be 1..${cap} bytes at level ${o.level}, got ${bs}`);
    }
    const n = o.workers ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new FerryError('USAGE', `zstd workers must be 1..256, got ${n}`);
    this.level = o.level;
    this.blockSize = bs;
    this.nWorkers = n;
    this.maxInFlight = Math.max(1, o.inFlight ?? 2 * n);
  }

  private inFlight(): number {
    return this.order.length;
  }

  private spawn(): void {
    for (let i = this.workers.length; i < this.nWorkers; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { binding: bindingPath() } });
      w.on('message', (m: WorkerMessage) => this.onResult(m));
      w.on('error', (e) => this.fail(new FerryError('STREAM_ENCODE', `zstd worker failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => {
        if (code !== 0 && !this.destroyed && this.order.length) {
          this.fail(new FerryError('STREAM_ENCODE', `zstd worker exited with code ${code}`));
        }
      });
      w.unref();
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  /** Keep the process alive exactly while workers have work (a pipeline may have nothing else pending). */
  private refWorkers(on: boolean): void {
    for (const w of this.workers) (on ? w.ref() : w.unref());
  }

  private takeBuffer(): Buffer {
    const ab = this.freeBuffers.pop() ?? new ArrayBuffer(this.blockSize);
    return Buffer.from(ab, 0, this.blockSize);
  }

  private dispatch(length: number): void {
    const block = this.block!;
    this.block = undefined;
    this.fill = 0;
    if (!this.workers.length) this.spawn();
    let wi = 0;
    for (let i = 1; i < this.busy.length; i++) if (this.busy[i] < this.busy[wi]) wi = i;
    this.busy[wi]++;
    const job: Job = { id: this.nextId++, worker: wi, done: false };
    this.jobs.set(job.id, job);
    this.order.push(job);
    if (this.order.length === 1) this.refWorkers(true);
    const ab = block.buffer as ArrayBuffer;
    this.workers[wi].postMessage({ id: job.id, input: ab, length, level: this.level }, [ab]);
  }

  private onResult(m: WorkerMessage): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    this.jobs.delete(m.id);
    this.busy[job.worker]--;
    if (m.input && m.input.byteLength === this.blockSize && this.freeBuffers.length < this.maxInFlight) this.freeBuffers.push(m.input);
    if (m.error !== undefined) {
      this.fail(new FerryError('STREAM_ENCODE', `zstd compression failed: ${m.error}`, { context: { level: this.level, blockSize: this.blockSize } }));
      return;
    }
    job.output = Buffer.from(m.output!);
    job.done = true;
    this.drain();
  }

  /** Push finished frames in order, then continue whatever waited for room. */
  private drain(): void {
    if (this.failed) return;
    while (this.order.length && this.order[0].done) {
      const job = this.order.shift()!;
      this.push(job.output);
    }
    if (!this.order.length) this.refWorkers(false);
    if (this.paused && this.inFlight() < this.maxInFlight) {
      const p = this.paused;
      this.paused = undefined;
      try {
        this.consume(p.chunk, p.pos, p.cb);
      } catch (e) {
        this.fail(e as Error);
      }
    } else if (this.flushCb && !this.order.length) {
      const cb = this.flushCb;
      this.flushCb = undefined;
      this.stop();
      cb();
    }
  }

  private consume(chunk: Buffer, pos: number, cb: TransformCallback): void {
    while (pos < chunk.length) {
      if (this.inFlight() >= this.maxInFlight) {
        this.paused = { chunk, pos, cb };
        return;
      }
      if (!this.block) this.block = this.takeBuffer();
      const n = Math.min(chunk.length - pos, this.blockSize - this.fill);
      chunk.copy(this.block, this.fill, pos, pos + n);
      this.fill += n;
      pos += n;
      if (this.fill === this.blockSize) this.dispatch(this.blockSize);
    }
    cb();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!Buffer.isBuffer(chunk)) chunk = Buffer.from(chunk as Uint8Array);
    if (chunk.length) this.sawInput = true;
    try {
      this.consume(chunk, 0, cb);
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.fill > 0 || !this.sawInput) {
        // A short last block, or one empty frame so the output is a valid zstd file.
        if (!this.block) this.block = this.takeBuffer();
        this.dispatch(this.fill);
      }
    } catch (e) {
      cb(e as Error);
      return;
    }
    this.flushCb = cb;
    this.drain();
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.destroy(e);
  }

  private stop(): void {
    const ws = this.workers;
    this.workers = [];
    this.busy = [];
    for (const w of ws) void w.terminate();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.failed = true;
    this.paused = undefined;
    this.flushCb = undefined;
    this.order = [];
    this.jobs.clear();
    this.freeBuffers = [];
    this.stop();
    cb(err);
  }
}

/**
 * A Transform from plain bytes to concatenated zstd frames, one per block,
 * compressed in a pool of worker threads (each with its own wasm instance).
 * Backpressure: at most `inFlight` blocks are being compressed or waiting
 * for their turn; the writer waits beyond that.
 */
export function createZstdCompressor(o: ZstdCompressorOptions): Transform {
  return new ZstdCompressor(o);
}

// ---------------------------------------------------------- decompressor --

interface DStream {
  begin(): boolean;
  transform(chunk: Uint8Array, cb: (out: Uint8Array) => void): boolean;
  end(cb: (out: Uint8Array) => void): boolean;
  delete(): void;
}
interface DBinding {
  ZstdDecompressStreamBinding: new () => DStream;
}
interface EmModule {
  print: (s: string) => void;
  printErr: (s: string) => void;
  onAbort: (what: unknown) => void;
  onRuntimeInitialized: () => void;
}

/**
 * wasm instances for decompressors, each used by one decompressor at a time
 * (its heap holds the window; sharing it with the codec singleton or with
 * another decompressor could exhaust it). Healthy instances are kept for
 * reuse: a sync run or a test creates many decompressors.
 */
interface DInstance {
  mod: DBinding;
  /** Set by emscripten's abort (out of heap); the instance is never reused then. */
  aborted?: string;
}
const idle: DInstance[] = [];
const MAX_IDLE = 4;

function acquireInstance(): Promise<DInstance> {
  const ready = idle.pop();
  if (ready) return Promise.resolve(ready);
  return new Promise((resolve, reject) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const factory = require(bindingPath()) as (m: EmModule) => unknown;
    let inst: DInstance | undefined;
    const mod: EmModule = {
      print: () => undefined,
      printErr: () => undefined,
      onAbort: (what) => {
        if (inst) inst.aborted = String(what);
        else reject(new Error(`zstd codec failed to load: ${String(what)}`));
      },
      onRuntimeInitialized: () => {
        inst = { mod: mod as unknown as DBinding };
        // Never resolve with the Module itself: it is a thenable.
        resolve(inst);
      },
    };
    try {
      factory(mod);
    } catch (e) {
      reject(e);
    }
  });
}

function releaseInstance(inst: DInstance): void {
  if (!inst.aborted && idle.length < MAX_IDLE) idle.push(inst);
}

const enum St {
  /** Expecting a magic number. */
  Magic,
  /** Inside a skippable frame: `skip` bytes left to drop. */
  Skip,
  /** zstd frame: expecting the header (length known once its descriptor byte is in). */
  Header,
  /** Expecting a block header. */
  Block,
  /** Expecting the 4-byte content checksum. */
  Checksum,
}

class ZstdDecompressor extends Transform {
  private st = St.Magic;
  /** Buffered input not yet consumed, and its start's offset in the whole input. */
  private buf: Buffer = Buffer.alloc(0);
  private bufOffset = 0;
  private skip = 0;
  // the current frame
  private frameOffset = 0;
  private contentSize: number | null = null;
  private blockMax = 0;
  private hasChecksum = false;
  private produced = 0;
  private ds: DStream | undefined;
  private inst: DInstance | undefined;
  private loading: Promise<void> | undefined;
  /** Set while waiting for the reader: the transform callback to call once the buffer is consumed. */
  private waiting: TransformCallback | undefined;
  private pausedForRead = false;
  private out: Buffer[] = [];

  private ensure(): Promise<void> {
    if (this.ds) return Promise.resolve();
    if (!this.loading) {
      this.loading = acquireInstance().then((inst) => {
        if (this.destroyed) {
          releaseInstance(inst);
          return;
        }
        const ds = new inst.mod.ZstdDecompressStreamBinding();
        if (!ds.begin()) {
          ds.delete();
          inst.aborted ??= 'ZSTD_initDStream failed';
          throw new Error('ZSTD_initDStream failed');
        }
        this.inst = inst;
        this.ds = ds;
      });
    }
    return this.loading;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!Buffer.isBuffer(chunk)) chunk = Buffer.from(chunk as Uint8Array);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.ds) {
      this.ensure().then(
        () => this.run(cb),
        (e: unknown) => cb(new FerryError('STREAM_ZSTD_CORRUPT', `zstd decompressor unavailable: ${(e as Error).message}`, { cause: e })),
      );
      return;
    }
    this.run(cb);
  }

  override _read(size: number): void {
    if (this.pausedForRead) {
      this.pausedForRead = false;
      const cb = this.waiting!;
      this.waiting = undefined;
      this.run(cb);
      // Finishing the chunk inside read() can leave Transform's write callback
      // parked for the next _read, which would never come when nothing was
      // pushed (the stream still counts as reading): release it now.
      if (!this.pausedForRead) super._read(size);
      return;
    }
    super._read(size);
  }

  /** Consume buffered input unit by unit; stop when the reader is full (resumed by _read). */
  private run(cb: TransformCallback): void {
    try {
      for (;;) {
        const more = this.step();
        if (!more) break;
        if (this.out.length) {
          let ok = true;
          for (const o of this.out) ok = this.push(o);
          this.out = [];
          if (!ok) {
            this.waiting = cb;
            this.pausedForRead = true;
            return;
          }
        }
      }
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.bufOffset += n;
  }

  /** Handle one unit if it is complete in the buffer; false when more input is needed. */
  private step(): boolean {
    const b = this.buf;
    switch (this.st) {
      case St.Magic: {
        if (b.length < 4) return false;
        const magic = b.readUInt32LE(0);
        this.frameOffset = this.bufOffset;
        if (magic >= SKIPPABLE_MIN && magic <= SKIPPABLE_MAX) {
          if (b.length < 8) return false;
          this.skip = b.readUInt32LE(4);
          this.consume(8);
          this.st = St.Skip;
          return true;
        }
        if (magic !== ZSTD_MAGIC) {
          throw new FerryError('STREAM_BAD_MAGIC', `not zstd data: bad frame magic 0x${magic.toString(16).padStart(8, '0')}`, {
            context: { offset: this.bufOffset },
            hint: this.bufOffset ? 'the data after the last complete frame is not zstd' : 'the input is not zstd-compressed',
          });
        }
        this.st = St.Header;
        return true;
      }
      case St.Skip: {
        if (this.skip === 0) {
          this.st = St.Magic;
          return true;
        }
        if (!b.length) return false;
        const n = Math.min(this.skip, b.length);
        this.consume(n);
        this.skip -= n;
        return true;
      }
      case St.Header:
        return this.header();
      case St.Block:
        return this.block();
      case St.Checksum: {
        if (b.length < 4) return false;
        this.feed(b.subarray(0, 4), 0);
        this.consume(4);
        this.endFrame();
        return true;
      }
    }
  }

  private header(): boolean {
    const b = this.buf;
    if (b.length < 5) return false;
    const fhd = b[4];
    const fcsFlag = fhd >> 6;
    const single = (fhd & 0x20) !== 0;
    const dictFlag = fhd & 3;
    const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
    const len = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] + fcsBytes;
    if (b.length < len) return false;
    if (fhd & 0x08) throw this.corrupt('reserved bit set in the frame header', this.frameOffset);
    let p = 5;
    let window = 0;
    if (!single) {
      const wd = b[p++];
      const wlog = 10 + (wd >> 3);
      const base = 2 ** wlog;
      window = base + (base / 8) * (wd & 7);
    }
    const dictBytes = [0, 1, 2, 4][dictFlag];
    let dictId = 0;
    for (let i = 0; i < dictBytes; i++) dictId += b[p + i] * 2 ** (8 * i);
    p += dictBytes;
    let fcs: number | null = null;
    if (fcsBytes === 1) fcs = b[p];
    else if (fcsBytes === 2) fcs = b.readUInt16LE(p) + 256;
    else if (fcsBytes === 4) fcs = b.readUInt32LE(p);
    else if (fcsBytes === 8) fcs = b.readUInt32LE(p) + b.readUInt32LE(p + 4) * 2 ** 32;
    if (single) window = fcs!;
    if (dictId !== 0) {
      throw new FerryError('STREAM_ZSTD_CORRUPT', `zstd frame needs dictionary ${dictId}, which ferry does not have`, {
        context: { offset: this.frameOffset },
        hint: 'decompress it with `zstd -d -D DICT` first',
      });
    }
    if (window > ZSTD_STREAM_MAX_WINDOW) {
      throw new FerryError('STREAM_TOO_LARGE', `zstd frame needs a ${mib(window)} window, above ferry's ${mib(ZSTD_STREAM_MAX_WINDOW)}`, {
        context: { offset: this.frameOffset, window },
        hint: 'it was made with `zstd --long` or `--ultra`; decompress it with `zstd -d` and pipe the result in',
      });
    }
    this.contentSize = fcs;
    this.blockMax = Math.min(window, BLOCK_MAX);
    this.hasChecksum = (fhd & 0x04) !== 0;
    this.produced = 0;
    this.feed(b.subarray(0, len), 0);
    this.consume(len);
    this.st = St.Block;
    return true;
  }

  private block(): boolean {
    const b = this.buf;
    if (b.length < 3) return false;
    const bh = b[0] | (b[1] << 8) | (b[2] << 16);
    const last = (bh & 1) !== 0;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) throw this.corrupt('reserved block type', this.bufOffset);
    if (size > this.blockMax) throw this.corrupt(`block of ${size} bytes above the frame's block maximum ${this.blockMax}`, this.bufOffset);
    const body = type === 1 ? 1 : size;
    if (b.length < 3 + body) return false;
    // Raw and RLE blocks decode to exactly `size` bytes; compressed ones to at most blockMax.
    const expect = type === 2 ? -1 : size;
    this.feed(b.subarray(0, 3 + body), expect);
    this.consume(3 + body);
    if (last) {
      if (this.hasChecksum) this.st = St.Checksum;
      else this.endFrame();
    }
    return true;
  }

  private endFrame(): void {
    if (this.contentSize !== null && this.produced !== this.contentSize) {
      throw this.corrupt(`frame decoded to ${this.produced} bytes, its header says ${this.contentSize}`, this.frameOffset);
    }
    this.st = St.Magic;
  }

  /** Hand one unit to zstd; `expect` is the exact output size, or -1 for at most blockMax. */
  private feed(unit: Buffer, expect: number): void {
    let got = 0;
    const ok = (() => {
      try {
        return this.ds!.transform(plain(unit), (o: Uint8Array) => {
          if (!o.length) return;
          got += o.length;
          this.out.push(Buffer.from(o.buffer, o.byteOffset, o.length));
        });
      } catch (e) {
        this.inst!.aborted ??= (e as Error).message;
        return false;
      }
    })();
    if (!ok || this.inst!.aborted) {
      const why = this.inst!.aborted ? `the decoder ran out of memory (${this.inst!.aborted})` : 'the data does not decode';
      throw this.corrupt(why, this.bufOffset);
    }
    if ((expect >= 0 && got !== expect) || got > this.blockMax) {
      throw this.corrupt(`block decoded to ${got} bytes, expected ${expect >= 0 ? expect : `at most ${this.blockMax}`}`, this.bufOffset);
    }
    this.produced += got;
    if (this.contentSize !== null && this.produced > this.contentSize) {
      throw this.corrupt(`frame decodes to more than its header's ${this.contentSize} bytes`, this.frameOffset);
    }
  }

  private corrupt(why: string, offset: number): FerryError {
    return new FerryError('STREAM_ZSTD_CORRUPT', `zstd data is corrupt: ${why}`, {
      context: { offset, frame: this.frameOffset },
      hint: 'the compressed stream was damaged in storage or transit',
    });
  }

  override _flush(cb: TransformCallback): void {
    const pending = this.buf.length;
    if (this.st === St.Magic && pending === 0) {
      cb();
      return;
    }
    if (this.st === St.Skip && this.skip === 0 && pending === 0) {
      cb();
      return;
    }
    const where = this.st === St.Magic || this.st === St.Skip ? 'frame' : this.st === St.Header ? 'frame header' : this.st === St.Block ? 'block' : 'checksum';
    cb(
      new FerryError('STREAM_TRUNCATED', `zstd data is truncated: the input ends inside a ${where}`, {
        context: { offset: this.bufOffset + pending, frame: this.frameOffset },
        hint: 'the compressed stream was cut short; nothing after the last complete frame can be used',
      }),
    );
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    if (this.ds && this.inst) {
      try {
        // Frees the context whatever state it was in; only an emscripten abort makes the heap unusable.
        this.ds.delete();
      } catch {
        this.inst.aborted ??= 'heap unusable';
      }
      releaseInstance(this.inst);
    }
    this.ds = undefined;
    this.inst = undefined;
    this.buf = Buffer.alloc(0);
    this.out = [];
    cb(err);
  }
}

function mib(n: number): string {
  return n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) ? 1 : 0)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

/**
 * A Transform from any concatenation of zstd frames (and skippable frames)
 * to the plain bytes. Memory stays bounded: one block of input, one block of
 * output ahead of the reader, and the frame's window (at most
 * ZSTD_STREAM_MAX_WINDOW) inside its own wasm instance.
 */
export function createZstdDecompressor(): Transform {
  return new ZstdDecompressor();
}

/**
 * The bytes of `source`, decompressed when they start with a zstd (or
 * skippable) frame magic, passed through unchanged otherwise. For inputs
 * that may be a `.btrfs-stream.zst` file or a plain stream.
 */
export async function* decompressIfZstd(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let have = 0;
  let ended = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    head.push(b);
    have += b.length;
  }
  async function* rest(): AsyncGenerator<Buffer> {
    for (const b of head) yield b;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    }
  }
  const first = Buffer.concat(head);
  if (!isZstdMagic(first)) {
    try {
      yield* rest();
    } finally {
      if (!ended) await it.return?.();
    }
    return;
  }
  const dec = createZstdDecompressor();
  const out = pipeline(Readable.from(rest(), { objectMode: false }), dec, () => undefined) as unknown as AsyncIterable<Buffer>;
  try {
    for await (const c of out) yield c;
  } finally {
    dec.destroy();
    await it.return?.();
  }
}
