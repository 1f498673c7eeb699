import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openIndex, RECORD_KEY_OFFSETS, RecordEncoder, writeIndex } from '../../../src/diff/index-file';
import { KnownInodes } from '../../../src/diff/known-inodes';
import { InodeRecord } from '../../../src/model/inode';

function rec(ino: bigint, birth: bigint, ctimeNs: bigint): InodeRecord {
  return {
    ino,
    birth,
    type: 'file',
    mode: 0o644,
    uid: 1,
    gid: 2,
    size: 3n,
    rdev: 0n,
    atimeNs: 4n,
    mtimeNs: 5n,
    ctimeNs,
    nlink: 1,
    xattrs: [[Buffer.from('user.x'), Buffer.from('y')]],
    links: [{ parent: 1n, name: Buffer.from(`f${ino}`) }],
    generation: 7n,
  };
}

test('RECORD_KEY_OFFSETS point at ino, birth and ctime in an encoded record', () => {
  const r = rec(0x0123456789abcdefn, -5n, 1_700_000_000_123_456_789n);
  const b = new RecordEncoder().encode(r);
  expect(b.readBigUInt64LE(RECORD_KEY_OFFSETS.ino)).toBe(r.ino);
  expect(b.readBigInt64LE(RECORD_KEY_OFFSETS.birth)).toBe(r.birth);
  expect(b.readBigInt64LE(RECORD_KEY_OFFSETS.ctimeNs)).toBe(r.ctimeNs);
});

test('built from an index, it knows each record and only under its exact ino, birth and ctime', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-known-'));
  try {
    const records = Array.from({ length: 5000 }, (_, i) => rec(BigInt(i * 3 + 2), BigInt(i) * 1_000_000_007n, 1_700_000_000_000_000_000n + BigInt(i) * 999n));
    records.push(rec(2n ** 63n + 11n, 2n ** 62n, -1n)); // the top of the ranges: a huge ino, a pre-1970 time
    const file = path.join(dir, 'index');
    await writeIndex(file, { uuid: 'u', transid: '1', parentUuid: null }, records);
    const idx = await openIndex(file);
    let known: KnownInodes;
    try {
      known = KnownInodes.fromIndex(idx);
    } finally {
      await idx.close();
    }
    expect(known.size).toBe(records.length);
    for (const r of records) expect(known.has(r.ino, r.birth, r.ctimeNs)).toBe(true);
    // Fingerprints may collide, so a "yes" for an unknown key is allowed, but not often.
    let wrong = 0;
    for (const r of records) {
      if (known.has(r.ino, r.birth, r.ctimeNs + 1n)) wrong++;
      if (known.has(r.ino, r.birth + 1n, r.ctimeNs)) wrong++;
      if (known.has(r.ino + 1n, r.birth, r.ctimeNs)) wrong++;
    }
    expect(wrong).toBeLessThan(3);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('add() and has() agree with fromIndex() and survive growth', () => {
  const k = new KnownInodes();
  for (let i = 0n; i < 20_000n; i++) k.add(i, i * 7n, i * 13n);
  expect(k.size).toBe(20_000);
  for (let i = 0n; i < 20_000n; i++) expect(k.has(i, i * 7n, i * 13n)).toBe(true);
  k.add(5n, 35n, 65n); // already there
  expect(k.size).toBe(20_000);
});
