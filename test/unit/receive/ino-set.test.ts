import { InoSet } from '../../../src/receive/ino-set';
import { InoTable } from '../../../src/receive/ino-table';

test('InoSet: numbers that fit and inos above 2^53 are both kept exactly, and never confused', () => {
  const s = new InoSet();
  const huge = 2n ** 63n + 5n;
  const justAbove = 2n ** 53n + 1n; // as a Number it would round to 2^53
  s.add(12n).add(huge).add(justAbove);
  expect(s.size).toBe(3);
  expect(s.has(12n)).toBe(true);
  expect(s.has(huge)).toBe(true);
  expect(s.has(justAbove)).toBe(true);
  expect(s.has(2n ** 53n)).toBe(false);
  expect(s.has(13n)).toBe(false);
  expect(s.delete(justAbove)).toBe(true);
  expect(s.has(justAbove)).toBe(false);
  expect(s.delete(12n)).toBe(true);
  expect(s.delete(12n)).toBe(false);
  expect(s.size).toBe(1);
});

test('InoSet: ino 0, inos past 2^32 and many entries, through growth and deletes', () => {
  const s = new InoSet();
  const p32 = 2n ** 32n;
  s.add(0n).add(p32).add(p32 + 1n).add(1n);
  expect(s.size).toBe(4);
  expect([s.has(0n), s.has(p32), s.has(p32 + 1n), s.has(1n), s.has(2n)]).toEqual([true, true, true, true, false]);
  for (let i = 2n; i < 50_000n; i++) s.add(p32 * 7n + i);
  expect(s.size).toBe(4 + 49_998);
  let missing = 0;
  for (let i = 2n; i < 50_000n; i++) if (!s.delete(p32 * 7n + i)) missing++;
  expect(missing).toBe(0);
  expect(s.size).toBe(4);
  expect(s.delete(0n)).toBe(true);
  expect(s.has(0n)).toBe(false);
  expect(s.has(p32 + 1n)).toBe(true);
});

test('InoSet: taking over a table keeps its members and drops its values', () => {
  const t = new InoTable({ values: true });
  t.set(3n, 30).set(2n ** 60n, 60);
  const s = new InoSet(t);
  expect(s.size).toBe(2);
  expect(s.has(3n) && s.has(2n ** 60n)).toBe(true);
  expect(t.get(3n)).toBe(0);
  expect(s.delete(3n)).toBe(true);
  expect(s.size).toBe(1);
});
