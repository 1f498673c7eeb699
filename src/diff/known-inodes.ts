/**
 * The parent snapshot's inodes as a set of fingerprints of (ino, birth,
 * ctime), for the walk of the next snapshot.
 *
 * Owns: telling the walker that an inode is *probably* the parent's, with
 * nothing changed that moves ctime, so reading its xattrs and symlink target
 * again can wait: ./generations.ts takes them from the parent's record, and
 * reads them after all when the exact fields differ. Every xattr change and
 * every new inode moves ctime (a symlink's target never changes in place).
 *
 * A hint, never the evidence: two keys can share a fingerprint (about one
 * query in 2^32 / n answers yes wrongly), and that only costs a late read.
 * No false no: the same three fields always give the same fingerprint.
 *
 * Memory: one 32-bit slot per half-empty table cell, 4 to 8 bytes per
 * parent inode (16 MB at 2 million inodes). Built in one pass over the
 * parent index without decoding its records.
 */
import { IndexFile, RECORD_KEY_OFFSETS } from './index-file';

const MIN_SLOTS = 1024;

/** Mix six 32-bit words (the little-endian halves of ino, birth and ctime) into a nonzero 32-bit fingerprint. */
function fingerprint(a: number, b: number, c: number, d: number, e: number, f: number): number {
  let h = 0x9e3779b9;
  h = Math.imul(h ^ a, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ c, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ d, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15) ^ e, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ f, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}

export class KnownInodes {
  private slots: Int32Array;
  private mask: number;
  private n = 0;
  /** The three fields of a query, laid out as in a record body. */
  private readonly scratch = Buffer.alloc(24);

  constructor(expected = 0) {
    let size = MIN_SLOTS;
    while (size < expected * 2) size *= 2;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Every record of an index (one pass over its undecoded bodies). */
  static fromIndex(index: Pick<IndexFile, 'scanBodies'>): KnownInodes {
    const k = new KnownInodes();
    const { ino, birth, ctimeNs } = RECORD_KEY_OFFSETS;
    index.scanBodies((b) => {
      k.insert(fingerprint(b.readUInt32LE(ino), b.readUInt32LE(ino + 4), b.readUInt32LE(birth), b.readUInt32LE(birth + 4), b.readUInt32LE(ctimeNs), b.readUInt32LE(ctimeNs + 4)));
    });
    return k;
  }

  get size(): number {
    return this.n;
  }

  add(ino: bigint, birth: bigint, ctimeNs: bigint): void {
    this.insert(this.fingerprintOf(ino, birth, ctimeNs));
  }

  /** True when a parent inode probably had exactly this ino, birth and ctime; false means it certainly did not. */
  has(ino: bigint, birth: bigint, ctimeNs: bigint): boolean {
    const fp = this.fingerprintOf(ino, birth, ctimeNs);
    const { slots, mask } = this;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const v = slots[i];
      if (v === 0) return false;
      if (v === fp) return true;
    }
  }

  private fingerprintOf(ino: bigint, birth: bigint, ctimeNs: bigint): number {
    const s = this.scratch;
    // The walker's values come from u64/i64 kernel fields, so they fit.
    s.writeBigUInt64LE(ino, 0);
    s.writeBigInt64LE(birth, 8);
    s.writeBigInt64LE(ctimeNs, 16);
    return fingerprint(s.readUInt32LE(0), s.readUInt32LE(4), s.readUInt32LE(8), s.readUInt32LE(12), s.readUInt32LE(16), s.readUInt32LE(20));
  }

  private insert(fp: number): void {
    if ((this.n + 1) * 2 > this.slots.length) this.grow();
    const { slots, mask } = this;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const v = slots[i];
      if (v === fp) return;
      if (v === 0) {
        slots[i] = fp;
        this.n++;
        return;
      }
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    this.mask = this.slots.length - 1;
    this.n = 0;
    for (const v of old) if (v !== 0) this.insert(v);
  }
}
