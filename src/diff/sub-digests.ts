/**
 * Keyed sub-block digests (Extent.sub): for each SUB_BLOCK_SIZE slice of a
 * block, the first SUB_DIGEST_BYTES of SHA-256(key ‖ 32 zero bytes ‖ slice).
 * The key makes crafted 64-bit collisions impossible for anyone who cannot
 * read the index.
 *
 * They cost more than the block hash (one SHA-256 per 4 KiB slice, against
 * one per 128 KiB block), and a new block needs both. `begin(block)` hands
 * the slices to a helper thread and returns at once, so the caller can hash
 * the block meanwhile; `end()` collects the digests. The helper shares one
 * buffer with this thread and is driven with Atomics, so neither side copies
 * more than the block itself or waits on the event loop.
 *
 * Owns: the digest construction and the helper thread. Never: gives digests
 * that differ from `digest()` (the helper is a second implementation of the
 * same construction, checked by tests), keeps the process alive, or fails a
 * snapshot because the helper is missing (it then digests in this thread).
 */
import * as crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { SUB_BLOCK_SIZE, SUB_DIGEST_BYTES } from '../model/inode';

/** Bytes of a sub-digest key. */
export const SUB_KEY_BYTES = 32;
/** The largest block a helper takes (the index's BLOCK_SIZE). */
const MAX_BLOCK = 128 * 1024;
const MAX_SLICES = MAX_BLOCK / SUB_BLOCK_SIZE;

// The shared buffer: control words, the key, the block, the digests.
const CTRL_BYTES = 16;
const KEY_AT = CTRL_BYTES;
const BLOCK_AT = KEY_AT + 64;
const OUT_AT = BLOCK_AT + MAX_BLOCK;
const SHARED_BYTES = OUT_AT + MAX_SLICES * SUB_DIGEST_BYTES;
/** ctrl[STATE]: IDLE → (this thread) WORK → (helper) DONE → (this thread) IDLE; STOP ends the helper. */
const STATE = 0;
const LEN = 1;
const IDLE = 0;
const WORK = 1;
const DONE = 2;
const STOP = 3;
/**
 * Slices of a full block the helper takes; this thread digests the rest in
 * end(), after hashing the whole block (one block hash costs about as much
 * as 17 slices), so both threads finish at about the same time.
 */
const HELPER_SLICES = 24;
/** How long `end()` waits on the helper before giving up on it (a stuck or dead helper). */
const HELPER_TIMEOUT_MS = 10_000;

/** SHA-256 of one message; the one-shot API (Node ≥ 20.12) where there is one. */
const sha256: (m: Buffer) => Buffer =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (m) => (crypto as unknown as { hash(a: string, d: Buffer, e: 'buffer'): Buffer }).hash('sha256', m, 'buffer')
    : (m) => crypto.createHash('sha256').update(m).digest();

const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const { shared, c } = workerData;
const ctrl = new Int32Array(shared, 0, 4);
const key = Buffer.from(shared, c.KEY_AT, 64);
const block = Buffer.from(shared, c.BLOCK_AT, c.MAX_BLOCK);
const out = Buffer.from(shared, c.OUT_AT, c.OUT_BYTES);
const msg = Buffer.alloc(64 + c.SLICE);
const sha256 = typeof crypto.hash === 'function'
  ? (m) => crypto.hash('sha256', m, 'buffer')
  : (m) => crypto.createHash('sha256').update(m).digest();
for (;;) {
  // Sleep through IDLE and DONE: begin() wakes this thread with WORK.
  let state = Atomics.load(ctrl, c.STATE);
  while (state === c.IDLE || state === c.DONE) {
    Atomics.wait(ctrl, c.STATE, state);
    state = Atomics.load(ctrl, c.STATE);
  }
  if (state !== c.WORK) break;
  const len = ctrl[c.LEN];
  key.copy(msg, 0, 0, 64);
  for (let i = 0, at = 0; at < len; i++, at += c.SLICE) {
    const n = Math.min(c.SLICE, len - at);
    block.copy(msg, 64, at, at + n);
    sha256(msg.subarray(0, 64 + n)).copy(out, i * c.DIGEST, 0, c.DIGEST);
  }
  Atomics.store(ctrl, c.STATE, c.DONE);
  Atomics.notify(ctrl, c.STATE);
}
`;

interface Helper {
  ctrl: Int32Array;
  key: Buffer;
  block: Buffer;
  out: Buffer;
}

/** The process's helper: made on first use, undefined where it cannot be (then, and after a failure, digests are made in this thread). */
let helper: Helper | undefined | null = null;

function getHelper(): Helper | undefined {
  if (helper !== null) return helper;
  helper = undefined;
  try {
    const shared = new SharedArrayBuffer(SHARED_BYTES);
    const c = { STATE, LEN, IDLE, WORK, DONE, STOP, KEY_AT, BLOCK_AT, OUT_AT, MAX_BLOCK, OUT_BYTES: MAX_SLICES * SUB_DIGEST_BYTES, SLICE: SUB_BLOCK_SIZE, DIGEST: SUB_DIGEST_BYTES };
    const w = new Worker(HELPER_SOURCE, { eval: true, workerData: { shared, c } });
    w.unref();
    const h: Helper = {
      ctrl: new Int32Array(shared, 0, 4),
      key: Buffer.from(shared, KEY_AT, 64),
      block: Buffer.from(shared, BLOCK_AT, MAX_BLOCK),
      out: Buffer.from(shared, OUT_AT, MAX_SLICES * SUB_DIGEST_BYTES),
    };
    w.on('error', () => {
      if (helper === h) helper = undefined;
    });
    helper = h;
  } catch {
    helper = undefined;
  }
  return helper;
}

export class SubDigester {
  /** key ‖ 32 zero bytes: the first SHA-256 block of every slice's message. */
  private readonly prefix: Buffer;
  private readonly msg: Buffer;
  /** The block given to begin(), until end(); `split`: the helper digests [0, split). */
  private pending: { block: Buffer; helper: Helper | undefined; split: number } | undefined;

  constructor(
    readonly key: Buffer,
    private readonly opts: { helper?: boolean } = {},
  ) {
    if (key.length !== SUB_KEY_BYTES) throw new Error(`sub-digest key must be ${SUB_KEY_BYTES} bytes`);
    this.prefix = Buffer.concat([key, Buffer.alloc(64 - SUB_KEY_BYTES)]);
    this.msg = Buffer.alloc(64 + SUB_BLOCK_SIZE);
    this.prefix.copy(this.msg);
  }

  /** The digests of `block`'s slices, made in this thread. */
  digest(block: Buffer): Buffer {
    const out = Buffer.allocUnsafe(Math.ceil(block.length / SUB_BLOCK_SIZE) * SUB_DIGEST_BYTES);
    this.digestInto(block, 0, Math.ceil(block.length / SUB_BLOCK_SIZE), out);
    return out;
  }

  /** Digests of `block`'s slices [first, end), into `out` at their places. */
  private digestInto(block: Buffer, first: number, end: number, out: Buffer): void {
    for (let i = first; i < end; i++) {
      const at = i * SUB_BLOCK_SIZE;
      const len = Math.min(SUB_BLOCK_SIZE, block.length - at);
      block.copy(this.msg, 64, at, at + len);
      sha256(this.msg.subarray(0, 64 + len)).copy(out, i * SUB_DIGEST_BYTES, 0, SUB_DIGEST_BYTES);
    }
  }

  /**
   * Start digesting `block`'s first slices on the helper thread; `end()`
   * digests the others here and returns them all. The block is copied: the
   * caller may reuse its buffer at once. One block at a time (a second
   * begin() before end() throws).
   */
  begin(block: Buffer): void {
    if (this.pending) throw new Error('SubDigester.begin() twice without end()');
    const h = this.opts.helper === false || block.length > MAX_BLOCK ? undefined : getHelper();
    if (!h) {
      this.pending = { block: Buffer.from(block), helper: undefined, split: 0 };
      return;
    }
    const split = Math.min(block.length, HELPER_SLICES * SUB_BLOCK_SIZE);
    this.prefix.copy(h.key);
    block.copy(h.block);
    h.ctrl[LEN] = split;
    Atomics.store(h.ctrl, STATE, WORK);
    Atomics.notify(h.ctrl, STATE);
    this.pending = { block: h.block.subarray(0, block.length), helper: h, split };
  }

  /** The digests of the block given to begin(). */
  end(): Buffer {
    const p = this.pending;
    if (!p) throw new Error('SubDigester.end() without begin()');
    this.pending = undefined;
    const h = p.helper;
    if (!h) return this.digest(p.block);
    // The helper only reads the shared block, so this thread may too.
    const n = Math.ceil(p.block.length / SUB_BLOCK_SIZE);
    const out = Buffer.allocUnsafe(n * SUB_DIGEST_BYTES);
    const first = Math.ceil(p.split / SUB_BLOCK_SIZE);
    this.digestInto(p.block, first, n, out);
    if (Atomics.load(h.ctrl, STATE) === WORK) Atomics.wait(h.ctrl, STATE, WORK, HELPER_TIMEOUT_MS);
    if (Atomics.load(h.ctrl, STATE) !== DONE) {
      // Never answered: stop using it, and digest its part here.
      if (helper === h) helper = undefined;
      Atomics.store(h.ctrl, STATE, STOP);
      Atomics.notify(h.ctrl, STATE);
      this.digestInto(p.block, 0, first, out);
      return out;
    }
    h.out.copy(out, 0, 0, first * SUB_DIGEST_BYTES);
    Atomics.store(h.ctrl, STATE, IDLE);
    return out;
  }
}
