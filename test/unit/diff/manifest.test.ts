/**
 * Manifests: the digest definition (block hashes from the index == a fresh
 * read of the file, holes included), building from a real snapshot index
 * (every name, non-UTF-8 names, symlinks, hard links, fifos), the file
 * format's checks, and verifyTree finding every kind of difference.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BLOCK_SIZE, blockHash } from '../../../src/diff/generations';
import { digestFromExtents, fileDigest, manifestBytes, pathKey, readManifest, writeManifestFile } from '../../../src/diff/manifest';
import { Extent } from '../../../src/model/inode';
import { differenceCount, verifyTree } from '../../../src/replicate/verify';
import { initVolume, snapshot } from '../../../src/volume/volume';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-manifest-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

function digestOfFile(f: fs.PathLike): string {
  const fd = fs.openSync(f, 'r');
  try {
    return fileDigest(fd).digest;
  } finally {
    fs.closeSync(fd);
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17 + (i >> 9)) & 0xff;
  return b;
}

describe('content digest', () => {
  it('is SHA-256 over the BLOCK_SIZE block hashes, a hole counting as zeros', () => {
    const size = 3 * BLOCK_SIZE + 1234;
    const data = pattern(size, 1);
    data.fill(0, BLOCK_SIZE, 2 * BLOCK_SIZE); // block 1 is zeros (a hole in the index)
    const ext: Extent[] = [];
    for (let i = 0; i * BLOCK_SIZE < size; i++) {
      const block = data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      ext.push({ offset: BigInt(i * BLOCK_SIZE), length: block.length, generation: 1n, hash: i === 1 ? null : blockHash(block) });
    }
    const want = createHash('sha256');
    for (let i = 0; i * BLOCK_SIZE < size; i++) want.update(blockHash(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)));
    const d = digestFromExtents(BigInt(size), ext);
    expect(d).toBe(want.digest('hex'));
    const f = path.join(root, 'f');
    fs.writeFileSync(f, data);
    expect(digestOfFile(f)).toBe(d);
  });

  it('of an empty file is SHA-256 of nothing, with or without extents', () => {
    const empty = createHash('sha256').digest('hex');
    expect(digestFromExtents(0n, [])).toBe(empty);
    expect(digestFromExtents(0n, undefined)).toBe(empty);
    fs.writeFileSync(path.join(root, 'e'), '');
    expect(digestOfFile(path.join(root, 'e'))).toBe(empty);
  });

  it('is null when the extents are not the fixed block tiling', () => {
    const h = Buffer.alloc(16, 1);
    expect(digestFromExtents(10n, undefined)).toBeNull();
    expect(digestFromExtents(BigInt(BLOCK_SIZE + 1), [{ offset: 0n, length: BLOCK_SIZE, generation: 1n, hash: h }])).toBeNull();
    expect(digestFromExtents(100n, [{ offset: 0n, length: 99, generation: 1n, hash: h }])).toBeNull();
    expect(
      digestFromExtents(BigInt(2 * BLOCK_SIZE), [
        { offset: 0n, length: BLOCK_SIZE, generation: 1n, hash: h },
        { offset: BigInt(BLOCK_SIZE + 1), length: BLOCK_SIZE, generation: 1n, hash: h },
      ]),
    ).toBeNull();
  });
});

describe('manifest of a snapshot', () => {
  /** A volume with every kind of entry; returns the live tree and the snapshot's index. */
  async function volumeWithEverything(): Promise<{ vol: string; index: string; uuid: string; transid: string }> {
    const vol = path.join(root, 'vol');
    fs.mkdirSync(path.join(vol, 'd', 'e'), { recursive: true });
    fs.writeFileSync(path.join(vol, 'small'), 'hello\n');
    fs.writeFileSync(path.join(vol, 'd', 'big'), pattern(2 * BLOCK_SIZE + 77, 3));
    // sparse: a hole in the middle, data at both ends
    const fd = fs.openSync(path.join(vol, 'd', 'e', 'sparse'), 'w');
    fs.writeSync(fd, pattern(1000, 4), 0, 1000, 0);
    fs.writeSync(fd, pattern(1000, 5), 0, 1000, 5 * BLOCK_SIZE);
    fs.closeSync(fd);
    fs.writeFileSync(path.join(vol, 'empty'), '');
    fs.symlinkSync('d/../small', path.join(vol, 'link'));
    fs.linkSync(path.join(vol, 'small'), path.join(vol, 'd', 'small-again'));
    spawnSync('mkfifo', [path.join(vol, 'fifo')]);
    fs.writeFileSync(Buffer.from(path.join(vol, 'bin-\xff-name'), 'latin1'), 'latin1 name');
    fs.chmodSync(path.join(vol, 'd', 'e'), 0o750);
    fs.chmodSync(path.join(vol, 'small'), 0o640);
    const snap = await snapshot(initVolume(vol, 'index'), { name: 's1' });
    return { vol, index: snap.indexPath, uuid: snap.meta.uuid, transid: snap.meta.transid };
  }

  it('lists every name with type, mode, ids, size, digest and target; digests match a fresh read', async () => {
    const { vol, index, uuid, transid } = await volumeWithEverything();
    const file = path.join(root, 'm.manifest');
    const w = await writeManifestFile(file, manifestBytes(index, { name: 's1' }));
    const m = await readManifest(file);
    expect(m.header).toMatchObject({ format: 'ferry-manifest', version: 1, uuid, ctransid: transid, name: 's1', blockSize: BLOCK_SIZE });
    expect(w.entries).toBe(m.entries.size);
    const keys = [...m.entries.keys()].sort();
    expect(keys).toEqual(
      ['.', 'small', 'd', 'd/e', 'd/big', 'd/e/sparse', 'empty', 'link', 'd/small-again', 'fifo', Buffer.from('bin-\xff-name', 'latin1').toString('latin1')].sort(),
    );
    const get = (p: string) => m.entries.get(pathKey(Buffer.from(p, 'latin1')))!;
    expect(get('small')).toMatchObject({ type: 'file', mode: 0o640, size: 6, digest: digestOfFile(path.join(vol, 'small')) });
    expect(get('d/small-again').digest).toBe(get('small').digest);
    expect(get('d/big').digest).toBe(digestOfFile(path.join(vol, 'd', 'big')));
    expect(get('d/e/sparse')).toMatchObject({ size: 5 * BLOCK_SIZE + 1000, digest: digestOfFile(path.join(vol, 'd', 'e', 'sparse')) });
    expect(get('empty').digest).toBe(createHash('sha256').digest('hex'));
    expect(get('d/e')).toMatchObject({ type: 'dir', mode: 0o750 });
    expect(get('link').target!.toString()).toBe('d/../small');
    expect(get('fifo').type).toBe('fifo');
    expect(get('bin-\xff-name').digest).toBe(digestOfFile(Buffer.from(path.join(vol, 'bin-\xff-name'), 'latin1')));
    const st = fs.statSync(vol);
    expect(get('.')).toMatchObject({ type: 'dir', uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 });
    // the non-UTF-8 name is stored as hex
    expect(fs.readFileSync(file, 'utf8')).toContain(`"pathHex":"${Buffer.from('bin-\xff-name', 'latin1').toString('hex')}"`);
  });

  it('verifyTree: the live tree matches; each kind of change is reported, all at once', async () => {
    const { vol, index } = await volumeWithEverything();
    const file = path.join(root, 'm.manifest');
    await writeManifestFile(file, manifestBytes(index));
    const m = await readManifest(file);
    // the volume's own .ferry directory is not in the snapshot
    const clean = verifyTree(vol, m);
    expect([clean.missing, clean.extra, clean.different]).toEqual([[], ['.ferry'], []]);
    fs.rmSync(path.join(vol, '.ferry'), { recursive: true });
    expect(differenceCount(verifyTree(vol, m))).toBe(0);

    const big = path.join(vol, 'd', 'big');
    const fd = fs.openSync(big, 'r+');
    fs.writeSync(fd, Buffer.from([0x55]), 0, 1, BLOCK_SIZE + 5);
    fs.closeSync(fd);
    fs.rmSync(path.join(vol, 'd', 'e', 'sparse'));
    fs.chmodSync(path.join(vol, 'small'), 0o644);
    fs.writeFileSync(path.join(vol, 'd', 'new'), 'x');
    fs.unlinkSync(path.join(vol, 'link'));
    fs.symlinkSync('elsewhere', path.join(vol, 'link'));
    fs.appendFileSync(path.join(vol, 'empty'), 'grown');
    const r = verifyTree(vol, m);
    expect(r.missing).toEqual(['d/e/sparse']);
    expect(r.extra).toEqual(['d/new']);
    const byPath = Object.fromEntries(r.different.map((d) => [d.path, d.fields]));
    expect(byPath).toEqual({ 'd/big': ['content'], small: ['mode'], 'd/small-again': ['mode'], link: ['target'], empty: ['size'] });
    expect(r.different.find((d) => d.path === 'small')!.detail).toBe('mode 0640 → 0644');
  });
});

describe('manifest file checks', () => {
  async function write(text: string): Promise<unknown> {
    return writeManifestFile(path.join(root, 'x.manifest'), Buffer.from(text)).then(
      () => 'ok',
      (e: { code: string }) => e.code,
    );
  }
  const head = JSON.stringify({ format: 'ferry-manifest', version: 1, uuid: 'u', ctransid: '1', blockSize: BLOCK_SIZE });
  const entry = JSON.stringify({ path: 'a', type: 'file', mode: 420, uid: 0, gid: 0, size: 1, digest: 'ab'.repeat(32) });

  it('accepts a complete manifest and refuses truncated or malformed ones without leaving a file', async () => {
    expect(await write(`${head}\n${entry}\n{"end":true,"entries":1}\n`)).toBe('ok');
    fs.rmSync(path.join(root, 'x.manifest'));
    for (const bad of [
      `${head}\n${entry}\n`, // no end line
      `${head}\n${entry}\n{"end":true,"entries":2}\n`, // wrong count
      `${head}\n${entry}`, // cut inside a line
      `${head}\n{"path":"a","type":"file","mode":420,"uid":0,"gid":0,"size":1,"digest":"xyz"}\n{"end":true,"entries":1}\n`,
      `{"format":"other"}\n{"end":true,"entries":0}\n`,
      '',
    ]) {
      expect(await write(bad)).toBe('REPLICATE_NO_MANIFEST');
      expect(fs.readdirSync(root)).toEqual([]);
    }
  });

  it('readManifest of a missing file is REPLICATE_NO_MANIFEST', async () => {
    await expect(readManifest(path.join(root, 'nope'))).rejects.toMatchObject({ code: 'REPLICATE_NO_MANIFEST' });
  });

  it('manifestBytes streams in bounded chunks', async () => {
    const vol = path.join(root, 'v');
    fs.mkdirSync(vol);
    for (let i = 0; i < 1200; i++) fs.writeFileSync(path.join(vol, `${'file-with-a-long-name-'.repeat(5)}${i}`), String(i));
    const v = initVolume(vol, 'index');
    const s = await snapshot(v, { name: 'a' });
    const sizes: number[] = [];
    for await (const c of manifestBytes(s.indexPath)) sizes.push(c.length);
    expect(sizes.length).toBeGreaterThan(3);
    expect(Math.max(...sizes)).toBeLessThan(64 * 1024 + 4096);
    const all = await collect(manifestBytes(s.indexPath));
    expect(all.toString().split('\n').length).toBe(1200 + 1 + 1 + 1 + 1); // header, root, 3000 files, end, trailing ''
  });
});
