/**
 * A compact map from 16-byte block hashes to non-negative integers, for the
 * planner's clone sources (which block of which file already holds this
 * content on the receiver).
 *
 * Owns: storage only. Never: decides what is cloneable, or compares
 * anything but whole 16-byte hashes (a prefix match is not a match).
 *
 * Invariants: the first value added for a hash is kept (add() of a known
 * hash is a no-op), so lookups are a pure function of the order of adds;
 * memory is at most about 80 bytes per entry (typed arrays, open addressing with
 * linear probing, at most half full), not a JS object per block.
 */

const HASH_BYTES = 16;
const WORDS = HASH_BYTES / 4;

export class BlockTable {
  private keys: Uint32Array;
  /** value + 1 per slot; 0 = empty. */
  private vals: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Uint32Array(cap * WORDS);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The slot holding `hash`, or the empty slot where it would go. */
  private slot(hash: Buffer): number {
    if (hash.length !== HASH_BYTES) throw new Error(`block hash of ${hash.length} bytes`);
    const w0 = hash.readUInt32LE(0);
    const w1 = hash.readUInt32LE(4);
    const w2 = hash.readUInt32LE(8);
    const w3 = hash.readUInt32LE(12);
    // SHA-256 output is uniform: its first word is a fine slot hash.
    for (let i = w0 & this.mask; ; i = (i + 1) & this.mask) {
      if (this.vals[i] === 0) return i;
      const k = i * WORDS;
      if (this.keys[k] === w0 && this.keys[k + 1] === w1 && this.keys[k + 2] === w2 && this.keys[k + 3] === w3) return i;
    }
  }

  /** The value first added for `hash`, or -1. */
  get(hash: Buffer): number {
    return this.vals[this.slot(hash)] - 1;
  }

  has(hash: Buffer): boolean {
    return this.vals[this.slot(hash)] !== 0;
  }

  /** Add `hash` -> `value` unless `hash` is already there; true when added. */
  add(hash: Buffer, value: number): boolean {
    if (!Number.isInteger(value) || value < 0 || value >= 0x7fffffff) throw new Error(`bad block table value ${value}`);
    let i = this.slot(hash);
    if (this.vals[i] !== 0) return false;
    if ((this.count + 1) * 2 > this.vals.length) {
      this.grow();
      i = this.slot(hash);
    }
    const k = i * WORDS;
    this.keys[k] = hash.readUInt32LE(0);
    this.keys[k + 1] = hash.readUInt32LE(4);
    this.keys[k + 2] = hash.readUInt32LE(8);
    this.keys[k + 3] = hash.readUInt32LE(12);
    this.vals[i] = value + 1;
    this.count++;
    return true;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = oldVals.length * 2;
    this.keys = new Uint32Array(cap * WORDS);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
    for (let s = 0; s < oldVals.length; s++) {
      if (oldVals[s] === 0) continue;
      const k = s * WORDS;
      for (let i = oldKeys[k] & this.mask; ; i = (i + 1) & this.mask) {
        if (this.vals[i] !== 0) continue;
        this.keys.set(oldKeys.subarray(k, k + WORDS), i * WORDS);
        this.vals[i] = oldVals[s];
        break;
      }
    }
  }
}
