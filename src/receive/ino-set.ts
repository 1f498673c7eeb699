/**
 * A set of inode numbers, held as plain numbers where they fit (every ino a
 * real filesystem hands out today). A farm-seeded receive holds one entry
 * per file of the parent snapshot: as bigints, a million of them cost a
 * heap object each on top of the set's own table.
 */
export class InoSet {
  private readonly small = new Set<number>();
  private readonly big = new Set<bigint>();

  get size(): number {
    return this.small.size + this.big.size;
  }

  has(ino: bigint): boolean {
    return ino <= MAX ? this.small.has(Number(ino)) : this.big.has(ino);
  }

  add(ino: bigint): this {
    if (ino <= MAX) this.small.add(Number(ino));
    else this.big.add(ino);
    return this;
  }

  delete(ino: bigint): boolean {
    return ino <= MAX ? this.small.delete(Number(ino)) : this.big.delete(ino);
  }
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** An inode number as a map key: a plain number where it is exact, else the bigint. */
export function inoKey(ino: bigint): number | bigint {
  return ino <= MAX ? Number(ino) : ino;
}
