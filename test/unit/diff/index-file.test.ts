import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InodeRecord } from '../../../src/model/inode';
import { INDEX_VERSION, loadIndex, openIndex, readIndex, readIndexHeader, subDigestBytes, writeIndex } from '../../../src/diff/index-file';
import { FerryError } from '../../../src/errors';

function rec(ino: bigint, extra: Partial<InodeRecord> = {}): InodeRecord {
  return {
    ino,
    birth: 1_700_000_000_123_456_789n,
    type: 'file',
    mode: 0o644,
    uid: 1000,
    gid: 100,
    size: 300_000n,
    rdev: 0n,
    atimeNs: -5n,
    mtimeNs: 1_700_000_001_000_000_001n,
    ctimeNs: 1_700_000_002_000_000_002n,
    nlink: 2,
    xattrs: [[Buffer.from('user.a'), Buffer.from([0, 1, 255])]],
    links: [
      { parent: 2n, name: Buffer.from([0x66, 0xff]) },
      { parent: 7n, name: Buffer.from('x') },
    ],
    generation: 3n,
    extents: [
      { offset: 0n, length: 131072, generation: 1n, hash: Buffer.alloc(16, 1) },
      { offset: 131072n, length: 131072, generation: 3n, hash: null },
      { offset: 262144n, length: 37856, generation: 2n, hash: Buffer.alloc(16, 9) },
    ],
    ...extra,
  };
}

const records: InodeRecord[] = [
  rec(2n, { type: 'dir', size: 0n, nlink: 3, links: [], extents: undefined, xattrs: [] }),
  rec(5n),
  rec(9n, { type: 'symlink', target: Buffer.from('../t\xff', 'latin1'), extents: undefined, mode: 0o777 }),
  rec(12n, { type: 'chr', rdev: 0x0103n, extents: undefined }),
  rec(2n ** 63n + 5n, { type: 'file', size: 0n, extents: [] }),
];

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-index-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const header = { uuid: '11111111-2222-3333-4444-555555555555', transid: '7', parentUuid: null };

async function expectCorrupt(file: string): Promise<void> {
  const seen: InodeRecord[] = [];
  let err: unknown;
  try {
    for await (const r of readIndex(file)) seen.push(r);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FerryError);
  expect((err as FerryError).code).toBe('DIFF_INDEX_CORRUPT');
  expect(seen).toEqual([]); // nothing from a corrupt file is ever handed out
}

test('round trip keeps every field', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, records);
  expect(await loadIndex(file)).toEqual(records);
  expect(await readIndexHeader(file)).toEqual(header);
  expect(fs.readdirSync(dir)).toEqual(['index']); // no temp file left
});

test('round trip of many records across read chunks', async () => {
  const file = path.join(dir, 'index');
  const many = Array.from({ length: 20000 }, (_, i) => rec(BigInt(i + 1)));
  await writeIndex(file, header, many);
  let n = 0;
  for await (const r of readIndex(file)) {
    expect(r.ino).toBe(BigInt(++n));
  }
  expect(n).toBe(20000);
});

test('scan() makes a fresh synchronous pass each time, across read chunks, until the file is closed', async () => {
  const file = path.join(dir, 'index');
  const many = Array.from({ length: 20000 }, (_, i) => rec(BigInt(i + 1)));
  await writeIndex(file, header, many);
  const f = await openIndex(file);
  const first = [...f.scan()];
  const second = [...f.scan()];
  expect(first).toEqual(many);
  expect(second).toEqual(many);
  // Two passes side by side do not disturb each other (a merge-join reads two at once).
  const a = f.scan()[Symbol.iterator]();
  const b = f.scan()[Symbol.iterator]();
  expect(a.next().value).toEqual(many[0]);
  expect(b.next().value).toEqual(many[0]);
  expect(a.next().value).toEqual(many[1]);
  await f.close();
  expect(() => [...f.scan()]).toThrow(/closed/);
});

test('an empty index round-trips', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, []);
  expect(await loadIndex(file)).toEqual([]);
});

test('records out of order are refused at write time and nothing appears', async () => {
  const file = path.join(dir, 'index');
  await expect(writeIndex(file, header, [rec(5n), rec(3n)])).rejects.toThrow(/out of order/);
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('truncation at any point is detected', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, records);
  const full = fs.readFileSync(file);
  const cuts = new Set([0, 1, 8, 16, 40, full.length >> 1, full.length - 49, full.length - 33, full.length - 32, full.length - 1]);
  for (let i = 0; i < full.length; i += 37) cuts.add(i);
  for (const cut of cuts) {
    fs.writeFileSync(file, full.subarray(0, cut));
    await expectCorrupt(file);
  }
});

test('a flipped byte anywhere is detected', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, records);
  const full = fs.readFileSync(file);
  for (let i = 0; i < full.length; i += 13) {
    const b = Buffer.from(full);
    b[i] ^= 0x20;
    fs.writeFileSync(file, b);
    await expectCorrupt(file);
  }
});

test('a missing index is SNAPSHOT_NOT_FOUND', async () => {
  await expect(loadIndex(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
});

test('openIndex can be closed without reading', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, records);
  const f = await openIndex(file);
  expect(f.header.transid).toBe('7');
  await f.close();
});

// ---------------------------------------------------------------------------
// Format 2: sub-block digests, and reading format 1.

const FIXTURE_V1 = path.join(__dirname, '..', '..', 'fixtures', 'index', 'format1.index');

/** Rewrite the version field and the trailing checksum, so only the version differs. */
function withVersion(file: string, version: number): void {
  const b = fs.readFileSync(file);
  b.writeUInt32LE(version, 8);
  createHash('sha256').update(b.subarray(0, b.length - 32)).digest().copy(b, b.length - 32);
  fs.writeFileSync(file, b);
}

test('format 2 round-trips sub-block digests and the sub-digest key', async () => {
  const file = path.join(dir, 'index');
  const withSubs = rec(5n, {
    extents: [
      { offset: 0n, length: 131072, generation: 1n, hash: Buffer.alloc(16, 1), sub: randomBytes(32 * 8) },
      { offset: 131072n, length: 131072, generation: 3n, hash: null },
      { offset: 262144n, length: 37856, generation: 2n, hash: Buffer.alloc(16, 9), sub: randomBytes(10 * 8) },
    ],
  });
  const h = { ...header, subKey: 'ab'.repeat(32) };
  await writeIndex(file, h, [records[0], withSubs, records[2]]);
  const f = await openIndex(file);
  await f.close();
  expect(f.version).toBe(INDEX_VERSION);
  expect(f.header).toEqual(h);
  expect(await loadIndex(file)).toEqual([records[0], withSubs, records[2]]);
  expect(subDigestBytes(37856)).toBe(80);
});

test('a format-1 index written by the old code still loads, without sub digests', async () => {
  const f = await openIndex(FIXTURE_V1);
  await f.close();
  expect(f.version).toBe(1);
  expect(f.header.subKey).toBeUndefined();
  const recs = await loadIndex(FIXTURE_V1);
  expect(recs.map((r) => [r.ino, r.type])).toEqual([
    [256n, 'dir'],
    [257n, 'file'],
    [258n, 'symlink'],
  ]);
  expect(recs[1].xattrs.map(([k, v]) => `${k}=${v}`)).toEqual(['user.k=v']);
  expect(recs[1].extents).toEqual([
    { offset: 0n, length: 131072, generation: 1n, hash: Buffer.alloc(16, 0xab) },
    { offset: 131072n, length: 131072, generation: 1n, hash: null },
    { offset: 262144n, length: 37856, generation: 1n, hash: Buffer.alloc(16, 0xcd) },
  ]);
  expect(recs[2].target!.toString()).toBe('f');
});

test('a format-1 index may not carry format-2 extent flags', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, [rec(5n, { extents: [{ offset: 0n, length: 4096, generation: 1n, hash: Buffer.alloc(16, 1), sub: Buffer.alloc(8) }], size: 4096n })]);
  withVersion(file, 1);
  await expectCorrupt(file);
});

test('an index from a newer ferry is refused with a message that says so', async () => {
  const file = path.join(dir, 'index');
  await writeIndex(file, header, records);
  withVersion(file, INDEX_VERSION + 1);
  const err = await loadIndex(file).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FerryError);
  expect((err as FerryError).code).toBe('DIFF_INDEX_CORRUPT');
  expect((err as FerryError).message).toMatch(new RegExp(`format version ${INDEX_VERSION + 1}.*reads versions 1 to ${INDEX_VERSION}`));
  expect((err as FerryError).hint).toMatch(/upgrade ferry/);
});

test('sub digests of the wrong length, or on a hole, are refused at write time', async () => {
  const file = path.join(dir, 'index');
  const bad = rec(5n, { extents: [{ offset: 0n, length: 131072, generation: 1n, hash: Buffer.alloc(16, 1), sub: Buffer.alloc(31 * 8) }] });
  await expect(writeIndex(file, header, [bad])).rejects.toThrow(/sub-block digests/);
  const hole = rec(5n, { extents: [{ offset: 0n, length: 131072, generation: 1n, hash: null, sub: Buffer.alloc(32 * 8) }] });
  await expect(writeIndex(file, header, [hole])).rejects.toThrow(/hole/);
  expect(fs.readdirSync(dir)).toEqual([]);
});
