import { InodeRecord } from '../../../src/model/inode';
import { RecordSpool } from '../../../src/diff/record-spool';

function rec(ino: bigint, name = `f${ino}`, xattr?: Buffer): InodeRecord {
  return {
    ino,
    birth: 7n,
    type: 'file',
    mode: 0o644,
    uid: 1,
    gid: 2,
    size: 5n,
    rdev: 0n,
    atimeNs: 1n,
    mtimeNs: -2n,
    ctimeNs: 3n,
    nlink: 1,
    xattrs: xattr ? [[Buffer.from('user.big'), xattr]] : [],
    links: [{ parent: 1n, name: Buffer.from(name) }],
    generation: 0n,
  };
}

test('records come back equal, as fresh copies, in ino order', () => {
  const s = new RecordSpool();
  const inos = [50n, 3n, 2n ** 40n, 9n, 1n, 400000n];
  const originals = inos.map((i) => rec(i));
  const at = originals.map((r) => s.add(r));
  expect(at).toEqual([0, 1, 2, 3, 4, 5]);
  expect(s.length).toBe(6);
  for (let i = 0; i < originals.length; i++) {
    expect(s.get(i)).toEqual(originals[i]);
    expect(s.inoAt(i)).toBe(inos[i]);
  }
  const got = s.get(0);
  got.links[0].name[0] = 0x7a;
  got.mode = 0;
  expect(s.get(0)).toEqual(originals[0]);
  const order = [...s.sorted()].map((i) => s.inoAt(i));
  expect(order).toEqual([...inos].sort((a, b) => (a < b ? -1 : 1)));
  expect(() => s.add(rec(2n))).toThrow(/after the spool was sorted/);
  expect(() => s.get(6)).toThrow(RangeError);
});

test('inos beyond 2^53 sort exactly (bigint comparison)', () => {
  const s = new RecordSpool();
  const big = 2n ** 60n;
  const inos = [big + 3n, big + 1n, 5n, big + 2n, big];
  for (const i of inos) s.add(rec(i));
  expect([...s.sorted()].map((i) => s.inoAt(i))).toEqual([5n, big, big + 1n, big + 2n, big + 3n]);
});

test('many records across chunks, and a record bigger than a chunk', () => {
  const s = new RecordSpool();
  const n = 60000;
  // Inos in a scrambled but known order: i * 7919 mod a prime > n.
  const p = 60013n;
  for (let i = 1; i <= n; i++) s.add(rec((BigInt(i) * 7919n) % p, `name-${i}-${'x'.repeat(i % 50)}`));
  const big = Buffer.alloc(5 << 20, 0xab);
  const bigPos = s.add(rec(p + 1n, 'big', big));
  expect(s.bytes()).toBeGreaterThan(5 << 20);
  const order = s.sorted();
  expect(order).toHaveLength(n + 1);
  let last = -1n;
  for (const i of order) {
    expect(s.inoAt(i) > last).toBe(true);
    last = s.inoAt(i);
  }
  expect(order[n]).toBe(bigPos);
  expect(s.get(bigPos).xattrs[0][1].equals(big)).toBe(true);
  const k = 12345;
  expect(s.get(k - 1).links[0].name.toString()).toBe(`name-${k}-${'x'.repeat(k % 50)}`);
});
