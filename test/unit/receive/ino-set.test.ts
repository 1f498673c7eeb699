import { InoSet } from '../../../src/receive/ino-set';

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
