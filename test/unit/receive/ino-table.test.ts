import { InoTable } from '../../../src/receive/ino-table';
import { rng as prng } from '../../helpers/streams';

const P32 = 2 ** 32;
const BIG = 2n ** 53n; // the first ino that no longer fits a double exactly

describe('InoTable', () => {
  it('adds, finds, replaces and deletes, counting as it goes', () => {
    const t = new InoTable({ values: true });
    expect(t.size).toBe(0);
    expect(t.has(7)).toBe(false);
    expect(t.get(7)).toBe(-1);
    t.set(7, 70).set(8n, 80);
    expect(t.size).toBe(2);
    expect(t.has(7n)).toBe(true); // a number and a bigint name the same ino
    expect(t.get(8)).toBe(80);
    t.set(7, 71);
    expect(t.size).toBe(2);
    expect(t.get(7)).toBe(71);
    expect(t.delete(7)).toBe(true);
    expect(t.delete(7)).toBe(false);
    expect(t.has(7)).toBe(false);
    expect(t.get(7)).toBe(-1);
    expect(t.size).toBe(1);
  });

  it('keeps ino 0 as a real ino, apart from the empty-slot marker', () => {
    const t = new InoTable({ values: true });
    expect(t.has(0)).toBe(false);
    expect(t.delete(0n)).toBe(false);
    t.set(0n, 5);
    expect(t.has(0)).toBe(true);
    expect(t.get(0)).toBe(5);
    expect(t.size).toBe(1);
    for (let i = 1; i < 200; i++) t.set(i, i);
    expect(t.get(0)).toBe(5);
    expect(t.delete(0)).toBe(true);
    expect(t.has(0)).toBe(false);
    expect(t.size).toBe(199);
    for (let i = 1; i < 200; i++) expect(t.get(i)).toBe(i);
  });

  it('tells apart inos above 2^32 that share their low 32 bits', () => {
    const t = new InoTable({ values: true });
    const inos = [5, P32 + 5, 2 * P32 + 5, 2 ** 52 + 5, Number.MAX_SAFE_INTEGER, P32, 2 ** 40];
    inos.forEach((ino, i) => t.set(ino, i));
    expect(t.size).toBe(inos.length);
    inos.forEach((ino, i) => {
      expect(t.get(ino)).toBe(i);
      expect(t.get(BigInt(ino))).toBe(i);
    });
    expect(t.has(P32 + 6)).toBe(false);
    expect(t.delete(P32 + 5)).toBe(true);
    expect(t.has(5)).toBe(true);
    expect(t.has(2 * P32 + 5)).toBe(true);
    expect(t.has(P32 + 5)).toBe(false);
  });

  it('keeps inos above 2^53 - 1 exactly, as bigints, never confused with their rounded doubles', () => {
    const t = new InoTable({ values: true });
    const top = 2n ** 64n - 1n;
    t.set(BIG + 1n, 1).set(top, 2).set(Number.MAX_SAFE_INTEGER, 3);
    expect(t.size).toBe(3);
    expect(t.get(BIG + 1n)).toBe(1);
    expect(t.get(top)).toBe(2);
    expect(t.has(BIG)).toBe(false); // what 2^53 + 1 rounds to
    expect(t.get(BigInt(Number.MAX_SAFE_INTEGER))).toBe(3);
    expect(t.delete(BIG + 1n)).toBe(true);
    expect(t.delete(BIG + 1n)).toBe(false);
    expect(t.size).toBe(2);
  });

  it('refuses numbers that are not exact inode numbers', () => {
    const t = new InoTable();
    expect(() => t.set(2 ** 53)).toThrow(RangeError);
    expect(() => t.has(1.5)).toThrow(RangeError);
    expect(() => t.delete(-1)).toThrow(RangeError);
    expect(() => t.set(-1n)).toThrow(RangeError);
  });

  it('grows through many entries, values intact, then empties', () => {
    const t = new InoTable({ values: true });
    const n = 200_000;
    // Dense runs (as filesystems hand out inos), and far-apart ones.
    const ino = (i: number) => (i % 2 ? i : P32 * 3 + i);
    for (let i = 1; i <= n; i++) t.set(ino(i), i);
    expect(t.size).toBe(n);
    const wrong: number[] = [];
    for (let i = 1; i <= n; i++) if (t.get(ino(i)) !== i) wrong.push(i);
    expect(wrong).toEqual([]);
    expect(t.has(n + 1)).toBe(false);
    for (let i = 1; i <= n; i++) if (!t.delete(ino(i))) wrong.push(i);
    expect(wrong).toEqual([]);
    expect(t.size).toBe(0);
    for (let i = 1; i <= n; i++) if (t.has(ino(i))) wrong.push(i);
    expect(wrong).toEqual([]);
  });

  it('finds keys past deleted slots of a crowded table, and takes deleted keys back', () => {
    // 44 keys is the most 64 slots hold before growing: long probe runs.
    const t = new InoTable({ values: true });
    const keys = Array.from({ length: 44 }, (_, i) => (i * 64 + 1) * 1021);
    keys.forEach((k, i) => t.set(k, i));
    for (let round = 0; round < 3; round++) {
      for (let i = round % 2; i < keys.length; i += 2) expect(t.delete(keys[i])).toBe(true);
      keys.forEach((k, i) => expect([k, t.get(k)]).toEqual([k, i % 2 === round % 2 ? -1 : i]));
      expect(t.size).toBe(22);
      for (let i = round % 2; i < keys.length; i += 2) t.set(keys[i], i);
      keys.forEach((k, i) => expect(t.get(k)).toBe(i));
      expect(t.size).toBe(44);
    }
  });

  it('without values (or after dropping them) answers membership only', () => {
    const t = new InoTable({ values: true });
    t.set(0, 9).set(3, 4).set(BIG + 2n, 6);
    t.dropValues();
    expect([t.get(0), t.get(3), t.get(BIG + 2n), t.get(4)]).toEqual([0, 0, 0, -1]);
    t.set(5, 77);
    expect(t.get(5)).toBe(0);
    expect(t.size).toBe(4);
  });

  it.each([1, 2, 3])('agrees with a Map on a random sequence of operations (seed %i)', (seed) => {
    const rnd = prng(seed);
    // A small universe, so keys collide, are deleted and come back often;
    // ino 0, inos past 2^32, at the edge of 2^53 and beyond it included.
    const universe: bigint[] = [0n, 1n, BIG - 1n, BIG, BIG + 1n, 2n ** 64n - 1n];
    for (let i = 0; i < 150; i++) universe.push(BigInt(Math.floor(rnd() * 400)));
    for (let i = 0; i < 150; i++) universe.push(BigInt(P32) * BigInt(1 + Math.floor(rnd() * 3)) + BigInt(Math.floor(rnd() * 50)));
    for (let i = 0; i < 50; i++) universe.push(BIG - 1n - BigInt(Math.floor(rnd() * 100)));
    const t = new InoTable({ values: true });
    const ref = new Map<bigint, number>();
    const pick = () => universe[Math.floor(rnd() * universe.length)];
    /** Half the time as a number where that is exact, as the table's callers may. */
    const as = (k: bigint) => (k < BIG && rnd() < 0.5 ? Number(k) : k);
    const wrong: unknown[] = [];
    for (let op = 0; op < 60_000 && wrong.length === 0; op++) {
      const k = pick();
      const r = rnd();
      if (r < 0.45) {
        const v = Math.floor(rnd() * 2 ** 31);
        t.set(as(k), v);
        ref.set(k, v);
      } else if (r < 0.85) {
        if (t.delete(as(k)) !== ref.delete(k)) wrong.push(['delete', op, k]);
      } else if (t.get(as(k)) !== (ref.get(k) ?? -1)) {
        wrong.push(['get', op, k]);
      }
      if (t.size !== ref.size) wrong.push(['size', op, t.size, ref.size]);
      if (op % 1000 === 0) for (const u of universe) if (t.get(u) !== (ref.get(u) ?? -1)) wrong.push(['all', op, u]);
    }
    expect(wrong).toEqual([]);
    for (const u of universe) if (t.has(u) !== ref.has(u)) wrong.push(['has', u]);
    expect(wrong).toEqual([]);
  });

  it('agrees with a Set over a wide random range while growing and deleting (seeded)', () => {
    const rnd = prng(42);
    const t = new InoTable();
    const ref = new Set<number>();
    const wrong: number[] = [];
    for (let op = 0; op < 200_000; op++) {
      const k = rnd() < 0.3 ? Math.floor(rnd() * 2 ** 53) : Math.floor(rnd() * 60_000);
      if (rnd() < 0.65) {
        t.set(k);
        ref.add(k);
      } else if (t.delete(k) !== ref.delete(k)) {
        wrong.push(k);
      }
    }
    expect(t.size).toBe(ref.size);
    for (const k of ref) if (!t.has(k)) wrong.push(k);
    for (let k = 0; k < 60_000; k++) if (t.has(k) !== ref.has(k)) wrong.push(k);
    expect(wrong).toEqual([]);
  });
});
