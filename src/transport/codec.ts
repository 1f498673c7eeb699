/**
 * zstd behind a small interface, so the implementation can be swapped.
 *
 * Owns: the ZstdCodec interface, the one instance over the `zstd-codec` npm
 * package (zstd compiled to WebAssembly by emscripten), and a pure scanner of
 * zstd frame headers and block headers (scanZstdFrame) that finds where a
 * frame ends and bounds what it can decompress to.
 *
 * Must never: allocate from an untrusted length before checking it, let the
 * emscripten runtime write to stdout (stdout carries streams), or hand back a
 * frame's output when it is larger than the caller's bound.
 *
 * Invariants: decompress() takes exactly one frame (no padding, no second
 * frame, no skippable frame) and sizes its output buffer from the frame's
 * content size, or, when the frame has none, from the block headers, never
 * above maxOutput; compress() writes one frame with its content size.
 *
 * Why not the package's `Simple`/`Streaming` classes: Simple.decompress
 * returns null for a frame without content size, for an empty frame and for
 * a frame followed by padding; Streaming.decompress accepts frames without
 * content size but grows its output without any bound (a small frame of RLE
 * blocks can claim gigabytes). The package's raw binding calls
 * ZSTD_decompress() into a buffer we size, which fails instead of
 * overflowing. We also instantiate the binding ourselves, to silence its
 * print hooks (emscripten's abort() writes to stdout via console.log) and to
 * learn of aborts (out of wasm heap), after which the instance is dropped.
 */

export interface ZstdCodec {
  /** One complete zstd frame, with its content size in the header. */
  compress(data: Uint8Array, level: number): Buffer;
  /** Exactly one frame; throws if the output would exceed maxOutput bytes. */
  decompress(frame: Uint8Array, maxOutput: number): Buffer;
}

export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 19;
/** Largest output buffer decompress() will size, and largest frame it takes in. */
export const ZSTD_MAX_DECOMPRESS_OUTPUT = 4 * 1024 * 1024;
export const ZSTD_MAX_FRAME_BYTES = ZSTD_MAX_DECOMPRESS_OUTPUT + 64 * 1024;

/**
 * Largest input compress() accepts at a level. The binding's wasm heap is
 * fixed at 16 MiB (the module declares a 256-page maximum; TOTAL_MEMORY
 * cannot raise it) and an allocation past it aborts the runtime, so these
 * caps keep compression tables + input + output well inside it (measured:
 * level 3 fits 4 MiB, level 9 fits 2 MiB, level 12..19 fit 512 KiB).
 */
export function zstdMaxCompressInput(level: number): number {
  if (level <= 3) return 4 * 1024 * 1024;
  if (level <= 9) return 1024 * 1024;
  return 512 * 1024;
}

export const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MIN = 0x184d2a50;
const SKIPPABLE_MAGIC_MAX = 0x184d2a5f;
const BLOCK_SIZE_MAX = 128 * 1024;

// ---------------------------------------------------------------- frames --

export interface ZstdFrameInfo {
  /** Bytes the frame occupies, from its magic number to its last byte. */
  length: number;
  /** True for a skippable frame (no data; decoders ignore it). */
  skippable: boolean;
  /** Frame_Content_Size from the header, or null when the header omits it. */
  contentSize: number | null;
  /** Upper bound of the decompressed size computed from the block headers. */
  maxContentSize: number;
}

/**
 * Walk one frame (zstd or skippable) starting at `offset`: header fields,
 * then every block header, then the optional checksum. Reads only headers
 * and never looks inside compressed blocks. Throws on a truncated or
 * malformed frame.
 */
export function scanZstdFrame(data: Uint8Array, offset = 0): ZstdFrameInfo {
  const end = data.length;
  const need = (pos: number, n: number, what: string): void => {
    if (pos + n > end) {
      throw new Error(`zstd frame truncated: ${what} needs ${n} bytes at ${pos - offset} (frame at ${offset}, ${end - offset} bytes left)`);
    }
  };
  need(offset, 4, 'magic');
  const magic = readU32(data, offset);
  if (magic >= SKIPPABLE_MAGIC_MIN && magic <= SKIPPABLE_MAGIC_MAX) {
    need(offset + 4, 4, 'skippable frame size');
    const size = readU32(data, offset + 4);
    need(offset + 8, size, 'skippable frame data');
    return { length: 8 + size, skippable: true, contentSize: 0, maxContentSize: 0 };
  }
  if (magic !== ZSTD_MAGIC) {
    throw new Error(`zstd frame invalid: bad magic 0x${magic.toString(16).padStart(8, '0')} (offset ${offset})`);
  }
  let pos = offset + 4;
  need(pos, 1, 'frame header descriptor');
  const fhd = data[pos++];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const checksum = (fhd & 0x04) !== 0;
  const dictIdFlag = fhd & 0x03;
  if (fhd & 0x08) throw new Error(`zstd frame invalid: reserved bit set in frame header (offset ${offset})`);

  let windowSize = 0;
  if (!singleSegment) {
    need(pos, 1, 'window descriptor');
    const wd = data[pos++];
    const windowLog = 10 + (wd >> 3);
    if (windowLog > 31) throw new Error(`zstd frame invalid: window log ${windowLog} (offset ${offset})`);
    const base = 2 ** windowLog;
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictIdBytes = [0, 1, 2, 4][dictIdFlag];
  need(pos, dictIdBytes, 'dictionary id');
  pos += dictIdBytes;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  need(pos, fcsBytes, 'frame content size');
  let contentSize: number | null = null;
  switch (fcsBytes) {
    case 1:
      contentSize = data[pos];
      break;
    case 2:
      contentSize = (data[pos] | (data[pos + 1] << 8)) + 256;
      break;
    case 4:
      contentSize = readU32(data, pos);
      break;
    case 8:
      // Above 2^53 cannot be a size we would ever accept; keep it exact enough
      // to be refused by any bound.
      contentSize = readU32(data, pos) + readU32(data, pos + 4) * 2 ** 32;
      break;
  }
  pos += fcsBytes;
  if (singleSegment) windowSize = contentSize ?? 0;
  const blockMax = Math.min(windowSize, BLOCK_SIZE_MAX);

  let maxContentSize = 0;
  for (;;) {
    need(pos, 3, 'block header');
    const bh = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
    pos += 3;
    const last = (bh & 1) !== 0;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    switch (type) {
      case 0: // raw: `size` bytes copied as they are
        if (size > blockMax) throw blockTooBig(size, blockMax, offset);
        need(pos, size, 'raw block');
        pos += size;
        maxContentSize += size;
        break;
      case 1: // RLE: one byte repeated `size` times
        if (size > blockMax) throw blockTooBig(size, blockMax, offset);
        need(pos, 1, 'RLE block');
        pos += 1;
        maxContentSize += size;
        break;
      case 2: // compressed: `size` bytes that decode to at most blockMax
        if (size > blockMax) throw blockTooBig(size, blockMax, offset);
        need(pos, size, 'compressed block');
        pos += size;
        maxContentSize += blockMax;
        break;
      default:
        throw new Error(`zstd frame invalid: reserved block type (offset ${offset}, block at ${pos - 3 - offset})`);
    }
    if (last) break;
  }
  if (checksum) {
    need(pos, 4, 'content checksum');
    pos += 4;
  }
  if (contentSize !== null && contentSize > maxContentSize) {
    throw new Error(`zstd frame invalid: content size ${contentSize} larger than its blocks can hold (${maxContentSize}, offset ${offset})`);
  }
  return { length: pos - offset, skippable: false, contentSize, maxContentSize };
}

function blockTooBig(size: number, max: number, offset: number): Error {
  return new Error(`zstd frame invalid: block of ${size} bytes over the block maximum ${max} (offset ${offset})`);
}

function readU32(b: Uint8Array, pos: number): number {
  return (b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)) >>> 0;
}

// --------------------------------------------------------------- binding --

/** The parts of the zstd-codec emscripten binding used here. */
interface VectorU8 {
  resize(n: number, value: number): void;
  size(): number;
  delete(): void;
}
interface RawCodec {
  /** ZSTD_compressBound, or < 0. */
  compressBound(n: number): number;
  /** ZSTD_compress into dest (sized by the caller); compressed size or < 0. */
  compress(dest: VectorU8, src: VectorU8, level: number): number;
  /** ZSTD_decompress into dest (sized by the caller); output size or < 0. */
  decompress(dest: VectorU8, src: VectorU8): number;
}
interface Binding {
  ZstdCodec: new () => RawCodec;
  VectorU8: new () => VectorU8;
  cloneToVector(dest: VectorU8, src: Uint8Array): void;
  /** A view of the vector's bytes inside the wasm heap (no copy). */
  toTypedArrayView(v: VectorU8): Uint8Array;
}
interface EmscriptenModule {
  print: (s: string) => void;
  printErr: (s: string) => void;
  onAbort: (what: unknown) => void;
  onRuntimeInitialized: () => void;
}
type BindingFactory = (m: EmscriptenModule) => unknown;

/** One loaded wasm instance. Dead after an emscripten abort (its heap may be inconsistent). */
class WasmZstd {
  dead = false;
  private readonly codec: RawCodec;

  constructor(private readonly b: Binding) {
    this.codec = new b.ZstdCodec();
  }

  compress(data: Uint8Array, level: number): Buffer {
    if (!Number.isInteger(level) || level < ZSTD_MIN_LEVEL || level > ZSTD_MAX_LEVEL) {
      throw new RangeError(`zstd compress refused: level ${level} outside ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}`);
    }
    const max = zstdMaxCompressInput(level);
    if (data.length > max) {
      throw new RangeError(`zstd compress refused: ${data.length} bytes in one frame (at most ${max} at level ${level})`);
    }
    const bound = this.codec.compressBound(data.length);
    if (bound < 0) throw new Error(`zstd compress failed: no bound for ${data.length} bytes`);
    return this.withVectors((src, dest) => {
      this.b.cloneToVector(src, plain(data));
      dest.resize(bound, 0);
      const n = this.codec.compress(dest, src, level);
      if (n < 0) throw new Error(`zstd compress failed (${data.length} bytes, level ${level})`);
      return Buffer.from(this.b.toTypedArrayView(dest).subarray(0, n));
    });
  }

  decompress(frame: Uint8Array, maxOutput: number): Buffer {
    if (!Number.isInteger(maxOutput) || maxOutput < 0) {
      throw new RangeError(`zstd decompress refused: bad output bound ${maxOutput}`);
    }
    if (frame.length > ZSTD_MAX_FRAME_BYTES) {
      throw new RangeError(`zstd decompress refused: frame of ${frame.length} bytes (at most ${ZSTD_MAX_FRAME_BYTES})`);
    }
    const info = scanZstdFrame(frame, 0);
    if (info.skippable) throw new Error('zstd decompress refused: skippable frame where a zstd frame was expected');
    if (info.length !== frame.length) {
      throw new Error(`zstd decompress refused: ${frame.length - info.length} bytes after the frame (frame is ${info.length} bytes)`);
    }
    if (info.contentSize !== null && info.contentSize > maxOutput) {
      throw new Error(`zstd decompress refused: frame content size ${info.contentSize} over the bound ${maxOutput}`);
    }
    // Exact size when the header says it; else the most the blocks can hold,
    // still capped by the caller's bound (ZSTD_decompress fails past it).
    const capacity = info.contentSize ?? Math.min(info.maxContentSize, maxOutput);
    if (capacity > ZSTD_MAX_DECOMPRESS_OUTPUT) {
      throw new RangeError(`zstd decompress refused: output buffer of ${capacity} bytes (at most ${ZSTD_MAX_DECOMPRESS_OUTPUT})`);
    }
    if (capacity === 0 && info.maxContentSize === 0) return Buffer.alloc(0);
    return this.withVectors((src, dest) => {
      this.b.cloneToVector(src, plain(frame));
      // A zero-sized vector has no data pointer; give ZSTD one byte it must not use.
      dest.resize(Math.max(capacity, 1), 0);
      const n = this.codec.decompress(dest, src);
      if (n < 0 || n > capacity) {
        throw new Error(
          `zstd decompress failed: corrupt frame or more than ${capacity} bytes of output (frame ${frame.length} bytes)`,
        );
      }
      if (info.contentSize !== null && n !== info.contentSize) {
        throw new Error(`zstd decompress failed: ${n} bytes of output, header says ${info.contentSize}`);
      }
      return Buffer.from(this.b.toTypedArrayView(dest).subarray(0, n));
    });
  }

  private withVectors<T>(fn: (src: VectorU8, dest: VectorU8) => T): T {
    if (this.dead) throw new Error('zstd codec unusable: the wasm runtime aborted earlier; call loadZstd() again');
    const src = new this.b.VectorU8();
    const dest = new this.b.VectorU8();
    try {
      return fn(src, dest);
    } catch (e) {
      if (this.dead) throw new Error(`zstd codec aborted: ${errText(e)} (wasm heap exhausted?)`);
      throw e;
    } finally {
      src.delete();
      dest.delete();
    }
  }
}

/**
 * A Buffer's constructor is Buffer, and the binding builds its heap view with
 * `new src.constructor(heap, ptr, len)`, which for Buffer is the deprecated
 * Buffer() call. Always hand it a plain Uint8Array view.
 */
function plain(data: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(data) === Uint8Array.prototype
    ? data
    : new Uint8Array(data.buffer, data.byteOffset, data.length);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function instantiate(): Promise<WasmZstd> {
  return new Promise<WasmZstd>((resolve, reject) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const factory = require('zstd-codec/lib/zstd-codec-binding-wasm.js') as BindingFactory;
    let instance: WasmZstd | undefined;
    const mod: EmscriptenModule = {
      print: () => undefined,
      printErr: () => undefined,
      onAbort: (what) => {
        if (instance) instance.dead = true;
        else reject(new Error(`zstd codec failed to load: ${String(what)}`));
      },
      onRuntimeInitialized: () => {
        try {
          instance = new WasmZstd(mod as unknown as Binding);
          resolve(instance);
        } catch (e) {
          reject(e);
        }
      },
    };
    try {
      factory(mod);
    } catch (e) {
      reject(new Error(`zstd codec failed to load: ${errText(e)}`));
    }
  });
}

// ------------------------------------------------------------- singleton --

let current: WasmZstd | undefined;
let loading: Promise<ZstdCodec> | undefined;

const facade: ZstdCodec = Object.freeze({
  compress(data: Uint8Array, level: number): Buffer {
    return loaded().compress(data, level);
  },
  decompress(frame: Uint8Array, maxOutput: number): Buffer {
    return loaded().decompress(frame, maxOutput);
  },
});

function loaded(): WasmZstd {
  if (!current) throw new Error('zstd codec not loaded: await loadZstd() before using it');
  return current;
}

/**
 * The process-wide codec. Its methods are synchronous and throw until
 * loadZstd() has resolved once.
 */
export function zstdCodec(): ZstdCodec {
  return facade;
}

/**
 * Load the wasm module (once; concurrent callers share the load) and return
 * the same object as zstdCodec(). After an emscripten abort the instance is
 * dropped and the next call loads a fresh one.
 */
export function loadZstd(): Promise<ZstdCodec> {
  if (current && !current.dead) return Promise.resolve(facade);
  if (!loading) {
    loading = instantiate().then(
      (inst) => {
        current = inst;
        loading = undefined;
        return facade;
      },
      (e: unknown) => {
        loading = undefined;
        throw e;
      },
    );
  }
  return loading;
}
