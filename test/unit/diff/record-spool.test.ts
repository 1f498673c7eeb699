import { InodeRecord } from '../../../src/model/inode';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecordArena, RecordSpool } from '../../../src/diff/record-spool';

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

const byIno = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

test('the arena gives records back by position, equal and as fresh copies', () => {
  const a = new RecordArena();
  const originals = [50n, 3n, 2n ** 40n].map((i) => rec(i));
  expect(originals.map((r) => a.add(r))).toEqual([0, 1, 2]);
  expect(a.length).toBe(3);
  originals.forEach((r, i) => expect(a.get(i)).toEqual(r));
  const got = a.get(0);
  got.links[0].name[0] = 0x7a;
  got.mode = 0;
  expect(a.get(0)).toEqual(originals[0]);
  expect(() => a.get(3)).toThrow(RangeError);
});

describe.each([
  ['in memory', false],
  ['spilled to a file', true],
])('the spool, %s', (_what, spill) => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-spool-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const spillTo = () => (spill ? path.join(dir, 'walk.spool') : undefined);

  test('merges many small runs back into ino order, every record intact', () => {
    const s = new RecordSpool({ spillTo: spillTo(), runBytes: 16 << 10 });
    const n = 20000;
    const p = 20011n; // prime > n: i * 7919 mod p visits 1..n in scrambled order
    const want = new Map<bigint, InodeRecord>();
    for (let i = 1; i <= n; i++) {
      const r = rec((BigInt(i) * 7919n) % p, `name-${i}-${'x'.repeat(i % 50)}`);
      want.set(r.ino, r);
      s.add(r);
    }
    expect(s.length).toBe(n);
    expect(s.spilledRuns > 10).toBe(spill);
    if (spill) expect(fs.statSync(path.join(dir, 'walk.spool')).size).toBeGreaterThan(n * 100);
    const got = [...s.sorted()];
    expect(got.map((r) => r.ino)).toEqual([...want.keys()].sort(byIno));
    for (const r of got) expect(r).toEqual(want.get(r.ino));
    expect(() => s.add(rec(1n))).toThrow(/closed/);
    s.dispose();
    s.dispose();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('inos beyond 2^53 sort exactly, and a record bigger than a run', () => {
    const s = new RecordSpool({ spillTo: spillTo(), runBytes: 64 << 10 });
    const big = 2n ** 60n;
    const value = Buffer.alloc(200 << 10, 0xab);
    const inos = [big + 3n, big + 1n, 5n, big + 2n, big];
    for (const i of inos) s.add(rec(i, `f${i}`, i === big + 1n ? value : undefined));
    const got = [...s.sorted()];
    expect(got.map((r) => r.ino)).toEqual([5n, big, big + 1n, big + 2n, big + 3n]);
    expect(got[2].xattrs[0][1].equals(value)).toBe(true);
    s.dispose();
  });

  test('an empty spool yields nothing', () => {
    const s = new RecordSpool({ spillTo: spillTo() });
    expect([...s.sorted()]).toEqual([]);
    s.dispose();
  });
});

test('a spill file that exists is refused (O_EXCL), not overwritten', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-spool-'));
  try {
    const f = path.join(dir, 'walk.spool');
    fs.writeFileSync(f, 'keep');
    const s = new RecordSpool({ spillTo: f, runBytes: 1024 });
    expect(() => {
      for (let i = 0; i < 100; i++) s.add(rec(BigInt(i)));
    }).toThrow(/EEXIST/);
    expect(fs.readFileSync(f, 'utf8')).toBe('keep');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
