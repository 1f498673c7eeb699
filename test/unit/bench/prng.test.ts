import { Prng } from '../../../bench/lib/prng';

const draws = (rng: Prng, n: number) => Array.from({ length: n }, () => rng.u32());

describe('Prng', () => {
  it('gives the same sequence for the same seed, and a different one for another seed', () => {
    expect(draws(new Prng(1), 100)).toEqual(draws(new Prng(1), 100));
    expect(draws(new Prng(1), 100)).not.toEqual(draws(new Prng(2), 100));
  });

  it('is pinned: these values must never change, or every dataset changes', () => {
    expect(draws(new Prng(1), 4)).toEqual([1828152527, 3394835397, 2967886022, 2251045104]);
    expect(draws(new Prng(0xdeadbeef).fork('x'), 2)).toEqual([1391937072, 3193068402]);
  });

  it('forks are deterministic and independent of the parent and of each other', () => {
    const a = new Prng(7);
    const f1 = draws(a.fork('one'), 20);
    a.u32();
    expect(draws(a.fork('one'), 20)).toEqual(f1);
    expect(draws(new Prng(7).fork('two'), 20)).not.toEqual(f1);
    expect(draws(new Prng(7), 20)).not.toEqual(f1);
  });

  it('keeps draws inside their ranges', () => {
    const r = new Prng(3);
    for (let i = 0; i < 10000; i++) {
      const f = r.float();
      expect(f >= 0 && f < 1).toBe(true);
      const n = r.int(-3, 5);
      expect(Number.isInteger(n) && n >= -3 && n <= 5).toBe(true);
      const l = r.logInt(1, 65536);
      expect(Number.isInteger(l) && l >= 1 && l <= 65536).toBe(true);
    }
    expect(() => r.int(2, 1)).toThrow(RangeError);
    expect(() => r.pick([])).toThrow(RangeError);
  });

  it('samples k distinct indices below n', () => {
    const s = new Prng(9).sample(1000, 100);
    expect(s).toHaveLength(100);
    expect(new Set(s).size).toBe(100);
    expect(s.every((x) => Number.isInteger(x) && x >= 0 && x < 1000)).toBe(true);
    expect(new Prng(9).sample(5, 10).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('picks by weight', () => {
    const r = new Prng(11);
    const n = [0, 0, 0];
    for (let i = 0; i < 10000; i++) n[r.weighted([1, 0, 3])]++;
    expect(n[1]).toBe(0);
    expect(n[2] / n[0]).toBeGreaterThan(2.5);
    expect(n[2] / n[0]).toBeLessThan(3.5);
  });

  it('fills buffers of any length deterministically', () => {
    const a = new Prng(5).fill(Buffer.alloc(1027));
    const b = new Prng(5).fill(Buffer.alloc(1027));
    expect(Buffer.compare(a, b)).toBe(0);
    expect(a.subarray(1020).some((x) => x !== 0)).toBe(true);
  });
});
