/**
 * A set of inode numbers: the farm's `shared` set, held for a whole receive.
 *
 * Owns: the set API the staging tree and the receiver use (size, has, add,
 * delete, over bigint inos). Storage is an InoTable (ino-table.ts): typed
 * arrays for every ino a real filesystem hands out today, a Map<bigint> for
 * inos above 2^53 - 1. A farm-seeded receive holds one entry per file of the
 * parent snapshot, about 11 to 23 bytes each instead of a JS Set's entry
 * plus a heap number.
 *
 * Invariant: a set made from a table (seed.ts) owns it; the table's values
 * are dropped and nothing else may change it.
 */
import { InoTable } from './ino-table';

export class InoSet {
  private readonly table: InoTable;

  /** An empty set, or one taking over `table` (its values are dropped). */
  constructor(table?: InoTable) {
    this.table = table ?? new InoTable();
    this.table.dropValues();
  }

  get size(): number {
    return this.table.size;
  }

  has(ino: bigint): boolean {
    return this.table.has(ino);
  }

  add(ino: bigint): this {
    this.table.set(ino);
    return this;
  }

  delete(ino: bigint): boolean {
    return this.table.delete(ino);
  }
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** An inode number as a map key: a plain number where it is exact, else the bigint. */
export function inoKey(ino: bigint): number | bigint {
  return ino <= MAX ? Number(ino) : ino;
}
