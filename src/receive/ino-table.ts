/**
 * A compact hash table keyed by inode number, optionally mapping each to an
 * int32 value.
 *
 * Owns: membership (and the value) of inode numbers in typed arrays. A
 * farm-seeded receive holds one entry per file of the parent snapshot, a
 * million and more: a JS Set or Map costs a table entry plus, above 2^31, a
 * heap number per ino; here an entry costs 8 bytes of key (12 with values)
 * per slot, at a load of 0.35 to 0.7.
 *
 * Layout: open addressing with linear probing over a Float64Array of keys
 * (every ino up to 2^53 - 1 is exact in a double). Key 0 marks an empty slot,
 * so ino 0 is kept in a flag of its own. Deletion shifts later entries of the
 * probe run back (no tombstones), so a lookup stops at the first empty slot.
 * Inos above Number.MAX_SAFE_INTEGER go to a Map<bigint> beside the table.
 *
 * Invariants: every key in `keys` is reachable from its home slot without
 * crossing an empty slot; `used` counts the non-empty slots; the table grows
 * (doubling) before `used` would pass 0.7 of its slots, and never shrinks.
 * Never: rounds an ino (numbers must be safe integers; bigints above 2^53 - 1
 * never become numbers).
 */

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SLOTS = 64;
const MAX_LOAD = 0.7;

/** An inode number as a plain number or a bigint; numbers must be safe non-negative integers. */
export type Ino = number | bigint;

/** Home slot of a non-zero safe-integer key: murmur3's 32-bit finaliser over its two halves. */
function home(k: number, mask: number): number {
  const lo = k >>> 0;
  const hi = (k - lo) / 4294967296;
  let h = lo ^ Math.imul(hi, 0x27d4eb2d);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

export class InoTable {
  private keys: Float64Array;
  private vals: Int32Array | undefined;
  private mask: number;
  private limit: number;
  private used = 0;
  private zero = false;
  private zeroVal = 0;
  private big: Map<bigint, number> | undefined;

  /** `values`: keep an int32 per ino (read with `get`); else membership only. */
  constructor(opts: { values?: boolean } = {}) {
    this.keys = new Float64Array(MIN_SLOTS);
    this.vals = opts.values ? new Int32Array(MIN_SLOTS) : undefined;
    this.mask = MIN_SLOTS - 1;
    this.limit = Math.floor(MIN_SLOTS * MAX_LOAD);
  }

  get size(): number {
    return this.used + (this.zero ? 1 : 0) + (this.big?.size ?? 0);
  }

  has(ino: Ino): boolean {
    const k = num(ino);
    if (k < 0) return this.big?.has(ino as bigint) ?? false;
    if (k === 0) return this.zero;
    return this.keys[this.find(k)] === k;
  }

  /** The value kept for `ino` (0 in a table without values), or -1 when it is absent. */
  get(ino: Ino): number {
    const k = num(ino);
    if (k < 0) return this.big?.get(ino as bigint) ?? -1;
    if (k === 0) return this.zero ? this.zeroVal : -1;
    const i = this.find(k);
    if (this.keys[i] !== k) return -1;
    return this.vals ? this.vals[i] : 0;
  }

  /** Add `ino`, or replace its value. `value` must fit in an int32 (and is dropped without values). */
  set(ino: Ino, value = 0): this {
    const k = num(ino);
    if (k < 0) {
      (this.big ??= new Map()).set(ino as bigint, this.vals ? value : 0);
      return this;
    }
    if (k === 0) {
      this.zero = true;
      this.zeroVal = this.vals ? value : 0;
      return this;
    }
    let i = this.find(k);
    if (this.keys[i] !== k) {
      if (this.used >= this.limit) {
        this.grow();
        i = this.find(k);
      }
      this.keys[i] = k;
      this.used++;
    }
    if (this.vals) this.vals[i] = value;
    return this;
  }

  delete(ino: Ino): boolean {
    const k = num(ino);
    if (k < 0) return this.big?.delete(ino as bigint) ?? false;
    if (k === 0) {
      const had = this.zero;
      this.zero = false;
      return had;
    }
    const { keys, vals, mask } = this;
    let i = this.find(k);
    if (keys[i] !== k) return false;
    // Backward shift: move each later key of the run whose home is not in
    // (i, j] into the hole, so no key ends up behind an empty slot.
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const h = home(keys[j], mask);
      if (i <= j ? i < h && h <= j : i < h || h <= j) continue;
      keys[i] = keys[j];
      if (vals) vals[i] = vals[j];
      i = j;
    }
    keys[i] = 0;
    this.used--;
    return true;
  }

  /** Free the values (a table that is only asked about membership from now on). */
  dropValues(): void {
    this.vals = undefined;
    this.zeroVal = 0;
    if (this.big) for (const k of this.big.keys()) this.big.set(k, 0);
  }

  /** The slot holding `k`, else the empty slot ending its probe run. */
  private find(k: number): number {
    const { keys, mask } = this;
    let i = home(k, mask);
    for (;;) {
      const x = keys[i];
      if (x === k || x === 0) return i;
      i = (i + 1) & mask;
    }
  }

  private grow(): void {
    const { keys: oldKeys, vals: oldVals } = this;
    const slots = oldKeys.length * 2;
    this.keys = new Float64Array(slots);
    this.vals = oldVals ? new Int32Array(slots) : undefined;
    this.mask = slots - 1;
    this.limit = Math.floor(slots * MAX_LOAD);
    const { keys, vals, mask } = this;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j];
      if (k === 0) continue;
      let i = home(k, mask);
      while (keys[i] !== 0) i = (i + 1) & mask;
      keys[i] = k;
      if (vals) vals[i] = oldVals![j];
    }
  }
}

/** `ino` as a number key, or -1 when it is a bigint above 2^53 - 1 (kept in the Map). */
function num(ino: Ino): number {
  if (typeof ino === 'bigint') {
    if (ino > MAX_SAFE) return -1;
    if (ino < 0n) throw new RangeError(`inode number out of range: ${ino}`);
    return Number(ino);
  }
  if (!Number.isSafeInteger(ino) || ino < 0) throw new RangeError(`inode number out of range: ${ino}`);
  return ino;
}
