/**
 * Block hashing: sub-block digests (keyed, only for big enough files), the
 * FIEMAP comparison that lets a reflink snapshot skip blocks still shared
 * with its parent, and the bytes-read accounting.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assignGenerations, BLOCK_SIZE, generations, newGenerationStats, sharedRange } from '../../../src/diff/generations';
import { SUB_KEY_BYTES, SubDigester } from '../../../src/diff/sub-digests';
import { walkTree, WalkEntry } from '../../../src/diff/walker';
import { SUB_BLOCK_SIZE, SUB_DIGEST_BYTES, SUB_DIGEST_MIN_FILE } from '../../../src/model/inode';
import { FiemapExtent, FIEMAP_EXTENT_SHARED, FIEMAP_EXTENT_UNWRITTEN } from '../../../src/sys/linux';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-gen-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const KEY = Buffer.alloc(SUB_KEY_BYTES, 3);
const rec = (entries: WalkEntry[], rel: string) => entries.find((e) => e.rel.toString() === rel)!.rec;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}

test('sub digests are SHA-256(key, 32 zero bytes, slice) cut to 8 bytes, one per 4 KiB slice', () => {
  const block = pattern(BLOCK_SIZE - 1000, 1);
  const got = new SubDigester(KEY).digest(block);
  expect(got.length).toBe(Math.ceil(block.length / SUB_BLOCK_SIZE) * SUB_DIGEST_BYTES);
  for (let k = 0; k * SUB_BLOCK_SIZE < block.length; k++) {
    const slice = block.subarray(k * SUB_BLOCK_SIZE, (k + 1) * SUB_BLOCK_SIZE);
    const want = createHash('sha256').update(KEY).update(Buffer.alloc(32)).update(slice).digest().subarray(0, 8);
    expect(got.subarray(k * 8, k * 8 + 8)).toEqual(want);
  }
  // keyed: another key, other digests
  expect(new SubDigester(Buffer.alloc(SUB_KEY_BYTES, 4)).digest(block).equals(got)).toBe(false);
  expect(() => new SubDigester(Buffer.alloc(16))).toThrow(/32 bytes/);
});

test('files of SUB_DIGEST_MIN_FILE and more get sub digests; a 4 KiB change shows in one digest only', async () => {
  fs.writeFileSync(path.join(root, 'big'), pattern(3 * BLOCK_SIZE + 5000, 2));
  fs.writeFileSync(path.join(root, 'small'), pattern(SUB_DIGEST_MIN_FILE - 1, 3));
  const one = walkTree(root);
  await assignGenerations(one, { transid: 1n, subKey: KEY });
  const big1 = rec(one, 'big');
  expect(big1.extents!.map((x) => x.sub?.length)).toEqual([256, 256, 256, 16]);
  expect(rec(one, 'small').extents!.every((x) => x.sub === undefined)).toBe(true);
  // no key, no digests
  const plain = walkTree(root);
  await assignGenerations(plain, { transid: 1n });
  expect(rec(plain, 'big').extents!.every((x) => x.sub === undefined)).toBe(true);

  const fd = fs.openSync(path.join(root, 'big'), 'r+');
  fs.writeSync(fd, Buffer.alloc(SUB_BLOCK_SIZE, 0xee), 0, SUB_BLOCK_SIZE, BLOCK_SIZE + 5 * SUB_BLOCK_SIZE);
  fs.closeSync(fd);
  const two = walkTree(root);
  await assignGenerations(two, { transid: 2n, parent: () => one.map((e) => e.rec), subKey: KEY });
  const big2 = rec(two, 'big');
  expect(big2.extents!.map((x) => x.generation)).toEqual([1n, 2n, 1n, 1n]);
  // blocks whose hash did not change take the parent's digests rather than computing them again
  expect(big2.extents![0].sub).toBe(big1.extents![0].sub);
  expect(big2.extents![1].sub).not.toBe(big1.extents![1].sub);
  const a = big1.extents![1].sub!;
  const b = big2.extents![1].sub!;
  const differ = [];
  for (let k = 0; k < 32; k++) if (!a.subarray(k * 8, k * 8 + 8).equals(b.subarray(k * 8, k * 8 + 8))) differ.push(k);
  expect(differ).toEqual([5]);
});

test('a big file (its digests made on the helper thread) gets the digests of the construction, block by block', async () => {
  const data = pattern(12 * BLOCK_SIZE + 3 * SUB_BLOCK_SIZE + 17, 5);
  fs.writeFileSync(path.join(root, 'huge'), data);
  const one = walkTree(root);
  await assignGenerations(one, { transid: 1n, subKey: KEY });
  const ext = rec(one, 'huge').extents!;
  expect(ext).toHaveLength(13);
  const local = new SubDigester(KEY, { helper: false });
  for (const [i, x] of ext.entries()) {
    const block = data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
    expect([i, x.sub!.toString('hex')]).toEqual([i, local.digest(block).toString('hex')]);
  }
});

test('bytes read are counted; holes are not read', async () => {
  const fd = fs.openSync(path.join(root, 'sparse'), 'w');
  fs.writeSync(fd, pattern(100, 1), 0, 100, 5 * BLOCK_SIZE);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(root, 'dense'), pattern(BLOCK_SIZE + 7, 5));
  const e = walkTree(root);
  const st = await assignGenerations(e, { transid: 1n, subKey: KEY });
  expect(st.hashedBytes).toBe(BigInt(5 * BLOCK_SIZE + 100 + BLOCK_SIZE + 7));
  // Where FIEMAP works the 5 hole blocks are not read; elsewhere (tmpfs) they are read and found to be zeros.
  const sparseHoles = rec(e, 'sparse').extents!.filter((x) => x.hash === null).length;
  expect(sparseHoles).toBe(5);
  expect(st.readBytes === BigInt(100 + BLOCK_SIZE + 7) || st.readBytes === st.hashedBytes).toBe(true);
  expect(st.sharedBytes).toBe(0n);
});

describe('sharedRange: the parent copy still holds a range when FIEMAP maps it to the same place', () => {
  const S = FIEMAP_EXTENT_SHARED;
  const x = (logical: number, physical: number, length: number, flags = S): FiemapExtent => ({
    logical: BigInt(logical),
    physical: BigInt(physical),
    length: BigInt(length),
    flags,
  });
  const K = 1024;
  test('same mapping, shared: yes', () => {
    expect(sharedRange([x(0, 1000 * K, 512 * K)], [x(0, 1000 * K, 512 * K)], 128n * 1024n, 256n * 1024n)).toBe(true);
  });
  test('the same mapping cut into different extents on each side: yes', () => {
    const mine = [x(0, 1000 * K, 100 * K), x(100 * K, 1100 * K, 412 * K)];
    const theirs = [x(0, 1000 * K, 300 * K), x(300 * K, 1300 * K, 212 * K)];
    expect(sharedRange(mine, theirs, 0n, 512n * 1024n)).toBe(true);
  });
  test('a 4 KiB range rewritten inside the block: no', () => {
    const mine = [x(0, 1000 * K, 132 * K), x(132 * K, 5000 * K, 4 * K, 0), x(136 * K, 1136 * K, 376 * K)];
    expect(sharedRange(mine, [x(0, 1000 * K, 512 * K)], 128n * 1024n, 256n * 1024n)).toBe(false);
    expect(sharedRange(mine, [x(0, 1000 * K, 512 * K)], 256n * 1024n, 384n * 1024n)).toBe(true);
  });
  test('equal addresses without the SHARED flag, a hole, unwritten or a shifted mapping: no', () => {
    expect(sharedRange([x(0, 1000 * K, 128 * K, 0)], [x(0, 1000 * K, 128 * K, 0)], 0n, 128n * 1024n)).toBe(false);
    expect(sharedRange([x(0, 1000 * K, 64 * K)], [x(0, 1000 * K, 128 * K)], 0n, 128n * 1024n)).toBe(false);
    expect(sharedRange([x(0, 1000 * K, 128 * K, S | FIEMAP_EXTENT_UNWRITTEN)], [x(0, 1000 * K, 128 * K)], 0n, 128n * 1024n)).toBe(false);
    expect(sharedRange([x(0, 1004 * K, 128 * K)], [x(0, 1000 * K, 128 * K)], 0n, 128n * 1024n)).toBe(false);
    expect(sharedRange([], [x(0, 1000 * K, 128 * K)], 0n, 128n * 1024n)).toBe(false);
  });
  test('compressed (ENCODED) extents count only when they are the very same extent', () => {
    const ENC = 0x8;
    expect(sharedRange([x(0, 1000 * K, 128 * K, S | ENC)], [x(0, 1000 * K, 128 * K, S | ENC)], 0n, 128n * 1024n)).toBe(true);
    expect(sharedRange([x(64 * K, 1000 * K, 64 * K, S | ENC)], [x(0, 1000 * K, 128 * K, S | ENC)], 64n * 1024n, 128n * 1024n)).toBe(false);
  });
});

describe('files about to be read are hinted to the kernel ahead of their turn', () => {
  const MiB = 1 << 20;
  /**
   * A generations() run that logs each hint as `rel:bytes`. `beforeFirst`:
   * hints given before the first hinted file's record came out; `held`: the
   * most entries taken from the walk and not yet given back.
   */
  const run = (parent: WalkEntry[] | undefined, o: { lookahead?: number; parentCopy?: Buffer } = {}) => {
    const entries = walkTree(root);
    const hints: string[] = [];
    const byPath = new Map(entries.map((e) => [e.path.toString(), e.rel.toString()]));
    let pulled = 0;
    const counted = function* () {
      for (const e of entries) {
        pulled++;
        yield e;
      }
    };
    const g = generations(
      counted(),
      {
        transid: parent ? 2n : 1n,
        parent: parent && (() => parent.map((e) => e.rec)),
        subKey: KEY,
        prefetch: (p, bytes) => hints.push(`${byPath.get(p.toString())}:${bytes}`),
        ...o,
      },
      newGenerationStats(),
    );
    const records = [];
    const hintsAt = new Map<string, number>();
    let held = 0;
    for (const r of g) {
      records.push(r);
      held = Math.max(held, pulled - records.length);
      hintsAt.set(entries.find((e) => e.rec === r)!.rel.toString(), hints.length);
    }
    const firstHinted = entries.find((e) => hints.some((h) => h.startsWith(`${e.rel}:`)));
    const beforeFirst = firstHinted ? hintsAt.get(firstHinted.rel.toString())! : 0;
    return { entries, records, hints, beforeFirst, held };
  };
  const sparse = (rel: string, size: number) => {
    fs.writeFileSync(path.join(root, rel), '');
    fs.truncateSync(path.join(root, rel), size); // a hole only: cheap to hash
  };
  const strip = (rs: { ino: bigint; generation?: bigint; extents?: unknown }[]) => rs.map((r) => [r.ino, r.generation, r.extents]);

  test('new and changed files with data are hinted (the first 4 MiB), before the first record is out; the rest are not', () => {
    fs.writeFileSync(path.join(root, 'same'), pattern(5000, 1));
    fs.writeFileSync(path.join(root, 'changed'), pattern(5000, 2));
    fs.mkdirSync(path.join(root, 'd'));
    fs.symlinkSync('same', path.join(root, 'd/link'));
    const one = run(undefined).entries;
    fs.writeFileSync(path.join(root, 'changed'), pattern(6000, 3));
    fs.writeFileSync(path.join(root, 'new'), pattern(3000, 4));
    fs.writeFileSync(path.join(root, 'empty'), '');
    sparse('big', 6 * MiB);
    const got = run(one);
    expect([...got.hints].sort()).toEqual(['big:4194304', 'changed:6000', 'new:3000']);
    expect(got.beforeFirst).toBe(3);
    // The same records as without looking ahead.
    const plain = run(one, { lookahead: 0 });
    expect(strip(got.records)).toEqual(strip(plain.records));
    expect(plain.beforeFirst).toBe(1);
    expect(plain.held).toBe(0);
    expect([...plain.hints].sort()).toEqual(got.hints.sort());
  });

  test('with nothing to read, no entry is held ahead (long-held records would be promoted by V8)', () => {
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(root, `f${i}`), pattern(100, i));
    const one = run(undefined);
    expect(one.held).toBeGreaterThan(0); // a first snapshot reads every file
    const again = run(one.entries);
    expect(again.hints).toEqual([]);
    expect(again.held).toBe(0);
  });

  test('hints ahead stay within 32 MiB not yet read, and every file is hinted in the end', () => {
    for (let i = 0; i < 12; i++) sparse(`f${String(i).padStart(2, '0')}`, 5 * MiB);
    const got = run(undefined);
    expect(got.beforeFirst).toBe(8);
    expect(got.hints.length).toBe(12);
    expect(got.hints.every((h) => h.endsWith(':4194304'))).toBe(true);
  });

  test('a changed file on a reflink volume is not hinted: its blocks still shared with the parent are not read', () => {
    fs.writeFileSync(path.join(root, 'changed'), pattern(5000, 2));
    const one = run(undefined).entries;
    fs.writeFileSync(path.join(root, 'changed'), pattern(6000, 3));
    fs.writeFileSync(path.join(root, 'new'), pattern(3000, 4));
    const got = run(one, { parentCopy: Buffer.from(path.join(root, 'no-such-copy')) });
    expect(got.hints).toEqual(['new:3000']);
  });
});
