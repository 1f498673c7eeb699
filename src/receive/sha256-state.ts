/**
 * SHA-256 whose running state can be written down and picked up again in
 * another process: what a resumed receive needs to put the whole stream's
 * plain SHA-256 in the catalog, and to claim "the first X bytes hash to D".
 *
 * Owns: the canonical state format `{ h, bytes, tail }` (the eight chaining
 * words after every full 64-byte block, the count of bytes hashed, and the
 * bytes of the unfinished block), and two engines that share it:
 *   - native: OpenSSL's SHA256_Init/Update/Final, which Node exports from its
 *     own binary, called through koffi on a context buffer we own (the same
 *     speed as crypto.createHash, SHA-NI included);
 *   - JS: a plain implementation, used when the native one cannot load
 *     (FERRY_NO_NATIVE=1, no koffi, a Node without the symbols) or fails the
 *     self-test.
 * State saved by one engine resumes in the other (tests check it).
 *
 * Never: changes what is hashed; a digest is always the standard SHA-256 of
 * exactly the bytes given (`sha256sum` of the same bytes agrees).
 * Invariant: `digest()` does not end the running hash.
 */
import { createHash, Hash } from 'node:crypto';

export interface Sha256State {
  /** The eight chaining words, big-endian hex (64 chars). */
  h: string;
  /** Bytes hashed so far. */
  bytes: number;
  /** The bytes of the unfinished block (bytes % 64 of them), hex. */
  tail: string;
}

export interface StreamHash {
  readonly bytes: number;
  update(b: Buffer): void;
  /** The state after every byte given so far (throws for a non-resumable hash). */
  state(): Sha256State;
  /** Hex digest of every byte given so far; the hash goes on. */
  digest(): string;
}

const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

// ---------------------------------------------------------------------------
// JS engine

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Int32Array(64);

/** Compress every full block of buf[off, end) into h. */
function compress(h: Int32Array, buf: Buffer, off: number, end: number): void {
  let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
  for (; off + 64 <= end; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = buf.readInt32BE(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15];
      const b = W[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, hh = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + hh) | 0;
  }
  h[0] = h0;
  h[1] = h1;
  h[2] = h2;
  h[3] = h3;
  h[4] = h4;
  h[5] = h5;
  h[6] = h6;
  h[7] = h7;
}

class JsSha256 implements StreamHash {
  private h = new Int32Array(IV);
  private block = Buffer.alloc(64);
  private fill = 0;
  private n = 0;

  constructor(from?: Sha256State) {
    if (from) {
      const { words, tail } = checkState(from);
      this.h = new Int32Array(words);
      tail.copy(this.block);
      this.fill = tail.length;
      this.n = from.bytes;
    }
  }

  get bytes(): number {
    return this.n;
  }

  update(b: Buffer): void {
    let off = 0;
    this.n += b.length;
    if (this.fill) {
      const k = Math.min(64 - this.fill, b.length);
      b.copy(this.block, this.fill, 0, k);
      this.fill += k;
      off = k;
      if (this.fill < 64) return;
      compress(this.h, this.block, 0, 64);
      this.fill = 0;
    }
    const full = off + Math.floor((b.length - off) / 64) * 64;
    compress(this.h, b, off, full);
    if (full < b.length) {
      b.copy(this.block, 0, full);
      this.fill = b.length - full;
    }
  }

  state(): Sha256State {
    return { h: wordsHex(Array.from(this.h)), bytes: this.n, tail: this.block.subarray(0, this.fill).toString('hex') };
  }

  digest(): string {
    const h = new Int32Array(this.h);
    const pad = Buffer.alloc(this.fill < 56 ? 64 : 128);
    this.block.copy(pad, 0, 0, this.fill);
    pad[this.fill] = 0x80;
    const bits = BigInt(this.n) * 8n;
    pad.writeBigUInt64BE(bits, pad.length - 8);
    compress(h, pad, 0, pad.length);
    return wordsHex(Array.from(h));
  }
}

// ---------------------------------------------------------------------------
// Native engine (OpenSSL's SHA256_CTX: h[8], Nl, Nh, data[16], num, md_len)

interface NativeFns {
  init(ctx: Buffer): number;
  update(ctx: Buffer, data: Buffer, len: number): number;
  final(md: Buffer, ctx: Buffer): number;
}

const CTX_BYTES = 112;
const OFF_NL = 32;
const OFF_NH = 36;
const OFF_DATA = 40;
const OFF_NUM = 104;

class NativeSha256 implements StreamHash {
  private readonly ctx = Buffer.alloc(CTX_BYTES);

  constructor(
    private readonly fns: NativeFns,
    from?: Sha256State,
  ) {
    fns.init(this.ctx);
    if (from) {
      const { words, tail } = checkState(from);
      for (let i = 0; i < 8; i++) this.ctx.writeInt32LE(words[i], i * 4);
      const bits = BigInt(from.bytes - tail.length) * 8n;
      this.ctx.writeUInt32LE(Number(bits & 0xffffffffn), OFF_NL);
      this.ctx.writeUInt32LE(Number(bits >> 32n), OFF_NH);
      this.ctx.writeUInt32LE(0, OFF_NUM);
      if (tail.length) fns.update(this.ctx, tail, tail.length);
    }
  }

  get bytes(): number {
    return (this.ctx.readUInt32LE(OFF_NH) * 0x100000000 + this.ctx.readUInt32LE(OFF_NL)) / 8;
  }

  update(b: Buffer): void {
    if (b.length) this.fns.update(this.ctx, b, b.length);
  }

  state(): Sha256State {
    // The words are host-endian (little-endian on every platform koffi
    // loads here); the canonical form is big-endian hex.
    const h = Buffer.from(this.ctx.subarray(0, 32)).swap32().toString('hex');
    const num = this.ctx.readUInt32LE(OFF_NUM);
    return { h, bytes: this.bytes, tail: this.ctx.subarray(OFF_DATA, OFF_DATA + num).toString('hex') };
  }

  digest(): string {
    const copy = Buffer.from(this.ctx);
    const md = Buffer.alloc(32);
    this.fns.final(md, copy);
    return md.toString('hex');
  }
}

/** crypto.createHash behind the same interface: fastest where no state is ever saved. */
class PlainSha256 implements StreamHash {
  private readonly hash: Hash = createHash('sha256');
  private n = 0;

  get bytes(): number {
    return this.n;
  }

  update(b: Buffer): void {
    this.n += b.length;
    this.hash.update(b);
  }

  state(): Sha256State {
    throw new Error('this hash was not created resumable');
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

// ---------------------------------------------------------------------------

function wordsHex(words: number[]): string {
  return words.map((w) => (w >>> 0).toString(16).padStart(8, '0')).join('');
}

function checkState(s: Sha256State): { words: number[]; tail: Buffer } {
  if (!/^[0-9a-f]{64}$/.test(s.h) || !Number.isSafeInteger(s.bytes) || s.bytes < 0 || !/^([0-9a-f]{2})*$/.test(s.tail)) {
    throw new Error('malformed sha256 state');
  }
  const tail = Buffer.from(s.tail, 'hex');
  if (tail.length !== s.bytes % 64) throw new Error('malformed sha256 state: tail length does not match the byte count');
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(parseInt(s.h.slice(i * 8, i * 8 + 8), 16) | 0);
  return { words, tail };
}

let native: NativeFns | null | undefined;

function loadNative(): NativeFns | null {
  if (native !== undefined) return native;
  native = null;
  if (process.env.FERRY_NO_NATIVE === '1' || process.platform !== 'linux' || require('node:os').endianness() !== 'LE') return native;
  try {
    const koffi = require('koffi') as typeof import('koffi');
    const lib = koffi.load(null);
    const fns: NativeFns = {
      init: lib.func('int SHA256_Init(void *c)'),
      update: lib.func('int SHA256_Update(void *c, const void *data, size_t len)'),
      final: lib.func('int SHA256_Final(void *md, void *c)'),
    };
    if (selfTest(fns)) native = fns;
  } catch {
    native = null;
  }
  return native;
}

/** The native context layout must be the one we read and write: check it against the JS engine. */
function selfTest(fns: NativeFns): boolean {
  const data = Buffer.alloc(200);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 0xff;
  const n = new NativeSha256(fns);
  const j = new JsSha256();
  n.update(data.subarray(0, 150));
  j.update(data.subarray(0, 150));
  const ns = n.state();
  const js = j.state();
  if (ns.h !== js.h || ns.bytes !== js.bytes || ns.tail !== js.tail) return false;
  const resumed = new NativeSha256(fns, js);
  resumed.update(data.subarray(150));
  return resumed.digest() === createHash('sha256').update(data).digest('hex');
}

/** Which engine resumable hashes use here. */
export function sha256Engine(): 'native' | 'js' {
  return loadNative() ? 'native' : 'js';
}

/** A hash whose state can be saved; `from` continues a saved one. `engine` is for tests. */
export function resumableSha256(from?: Sha256State, engine?: 'native' | 'js'): StreamHash {
  const fns = engine === 'js' ? null : loadNative();
  if (engine === 'native' && !fns) throw new Error('native sha256 is not available');
  return fns ? new NativeSha256(fns, from) : new JsSha256(from);
}

/** A hash that need not be resumable: native when available (same speed), else crypto's. */
export function streamSha256(resumable: boolean): StreamHash {
  if (resumable || loadNative()) return resumableSha256();
  return new PlainSha256();
}

/** The digest a saved state stands for (SHA-256 of exactly `state.bytes` bytes). */
export function digestOfState(s: Sha256State): string {
  return new JsSha256(s).digest();
}
