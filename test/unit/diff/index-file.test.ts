import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InodeRecord } from '../../../src/model/inode';
import { loadIndex, openIndex, readIndex, readIndexHeader, writeIndex } from '../../../src/diff/index-file';
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
