import { createHash, randomBytes } from 'node:crypto';
import { BlockTable } from '../../../src/diff/block-table';

const h = (i: number) => createHash('sha256').update(String(i)).digest().subarray(0, 16);

test('the first value added for a hash wins; absent hashes give -1', () => {
  const t = new BlockTable(4);
  expect(t.get(h(1))).toBe(-1);
  expect(t.add(h(1), 10)).toBe(true);
  expect(t.add(h(1), 11)).toBe(false);
  expect(t.get(h(1))).toBe(10);
  expect(t.has(h(2))).toBe(false);
  expect(t.size).toBe(1);
});

test('grows past its initial capacity and keeps every entry', () => {
  const t = new BlockTable(2);
  for (let i = 0; i < 20000; i++) expect(t.add(h(i), i)).toBe(true);
  expect(t.size).toBe(20000);
  for (let i = 0; i < 20000; i++) expect(t.get(h(i))).toBe(i);
  expect(t.get(h(20000))).toBe(-1);
});

test('hashes that share a prefix (and a slot) are different keys', () => {
  const t = new BlockTable();
  const a = randomBytes(16);
  const b = Buffer.from(a);
  b[15] ^= 1; // same first 15 bytes, so the same slot word and prefix
  const c = Buffer.from(a);
  c[4] ^= 0x80;
  t.add(a, 1);
  expect(t.get(b)).toBe(-1);
  expect(t.get(c)).toBe(-1);
  t.add(b, 2);
  t.add(c, 3);
  expect([t.get(a), t.get(b), t.get(c)]).toEqual([1, 2, 3]);
});

test('refuses hashes that are not 16 bytes and values it cannot store', () => {
  const t = new BlockTable();
  expect(() => t.get(Buffer.alloc(8))).toThrow(/16|8 bytes/);
  expect(() => t.add(h(1), -1)).toThrow(/value/);
  expect(() => t.add(h(1), 2 ** 31)).toThrow(/value/);
});
