import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { walkTree, walkVolume } from '../../../src/diff/walker';
import { assignGenerations, BLOCK_SIZE } from '../../../src/diff/generations';
import { sys } from '../../../src/sys/linux';
import { InodeRecord } from '../../../src/model/inode';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-walk-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const ino = (p: string) => fs.lstatSync(path.join(root, p), { bigint: true }).ino;
const byIno = (entries: ReturnType<typeof walkTree>, p: string) => entries.find((e) => e.rec.ino === ino(p))!;

test('records every inode once, sorted by ino, with links, symlinks, xattrs and fifos', () => {
  fs.mkdirSync(path.join(root, 'a/b/c'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a/f'), 'hello');
  fs.linkSync(path.join(root, 'a/f'), path.join(root, 'a/b/g'));
  fs.linkSync(path.join(root, 'a/f'), path.join(root, 'h'));
  fs.symlinkSync('../f', path.join(root, 'a/b/s'));
  spawnSync('mkfifo', [path.join(root, 'a/p')]);
  const weird = Buffer.concat([Buffer.from(path.join(root, 'a/')), Buffer.from([0x6e, 0xff, 0xfe])]);
  fs.writeFileSync(weird, 'x');
  fs.mkdirSync(path.join(root, '.ferry/snapshots'), { recursive: true });
  fs.writeFileSync(path.join(root, '.ferry/secret'), 'x');
  let haveXattr = true;
  try {
    sys().lsetxattr(path.join(root, 'a/f'), Buffer.from('user.z'), Buffer.from('2'));
    sys().lsetxattr(path.join(root, 'a/f'), Buffer.from('user.a'), Buffer.from([0, 255]));
  } catch {
    haveXattr = false;
  }

  const entries = walkTree(root);
  const inos = entries.map((e) => e.rec.ino);
  expect([...inos].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))).toEqual(inos);
  expect(new Set(inos).size).toBe(inos.length);
  // root, a, b, c, f(+2 links), s, p, weird = 8 inodes; nothing under .ferry
  expect(entries).toHaveLength(8);
  expect(entries.some((e) => e.path.toString().includes('.ferry'))).toBe(false);

  const rootE = byIno(entries, '.');
  expect(rootE.rec.links).toEqual([]);
  expect(rootE.rec.type).toBe('dir');

  const f = byIno(entries, 'a/f');
  expect(f.rec.type).toBe('file');
  expect(f.rec.nlink).toBe(3);
  expect(f.rec.size).toBe(5n);
  const names = f.rec.links.map((l) => [l.parent, l.name.toString()]);
  expect(names).toEqual(
    expect.arrayContaining([
      [ino('a'), 'f'],
      [ino('a/b'), 'g'],
      [rootE.rec.ino, 'h'],
    ]),
  );
  expect(names).toHaveLength(3);
  if (haveXattr) {
    expect(f.rec.xattrs.map(([k, v]) => [k.toString(), [...v]])).toEqual([
      ['user.a', [0, 255]],
      ['user.z', [0x32]],
    ]);
  }

  const s = byIno(entries, 'a/b/s');
  expect(s.rec.type).toBe('symlink');
  expect(s.rec.target!.toString()).toBe('../f');
  expect(byIno(entries, 'a/p').rec.type).toBe('fifo');

  const w = entries.find((e) => e.rec.links[0]?.name.equals(Buffer.from([0x6e, 0xff, 0xfe])))!;
  expect(w).toBeDefined();
  expect(w.rec.links[0].parent).toBe(ino('a'));
  expect(w.rec.mode).toBe(fs.statSync(weird).mode & 0o7777);
  for (const e of entries) expect(e.rec.birth).not.toBe(undefined);
});

test('a Walk spells raw-byte paths through nested directories and orders directories parents first', () => {
  const odd = Buffer.from([0xc3, 0x28, 0xff, 0x20, 0x0a]); // not UTF-8, with a space and a newline
  const rootB = Buffer.from(root);
  const dirA = Buffer.concat([rootB, Buffer.from('/'), odd]);
  const dirB = Buffer.concat([dirA, Buffer.from('/'), Buffer.from([0xe9, 0x74, 0xe9])]);
  fs.mkdirSync(dirB, { recursive: true });
  const file = Buffer.concat([dirB, Buffer.from('/'), Buffer.from([0x80, 0x81])]);
  fs.writeFileSync(file, 'x');
  fs.linkSync(file, path.join(root, 'top-link'));
  fs.mkdirSync(path.join(root, 'z/y/x'), { recursive: true });

  const w = walkVolume(root);
  const entries = [...w.entries()];
  // (A walk's readdir may move a directory's atime, relatime: compare the rest.)
  const noAtime = (r: InodeRecord) => ({ ...r, atimeNs: 0n });
  expect(entries.map((e) => noAtime(e.rec))).toEqual(walkTree(root).map((e) => noAtime(e.rec)));
  const f = entries.find((e) => e.rec.ino === BigInt(fs.lstatSync(file).ino))!;
  expect(f.rec.links).toHaveLength(2);
  // The first link (sorted by parent ino, then name) spells rel and path, byte for byte.
  const first = f.rec.links[0];
  const want = first.parent === w.rootIno ? Buffer.from('top-link') : Buffer.concat([odd, Buffer.from('/'), Buffer.from([0xe9, 0x74, 0xe9, 0x2f, 0x80, 0x81])]);
  expect(f.rel.equals(want)).toBe(true);
  expect(f.path.equals(Buffer.concat([rootB, Buffer.from('/'), want]))).toBe(true);
  expect(fs.lstatSync(f.path).ino).toBe(Number(f.rec.ino));
  expect(w.dirPath(BigInt(fs.lstatSync(dirB).ino))!.equals(dirB)).toBe(true);
  expect(w.dirPath(12345678901n)).toBeUndefined();

  // Parents before children, and the reverse for children first; every directory once.
  const seen = new Set<bigint>();
  const dirs = [...w.dirs()];
  expect(dirs.map((d) => d.rec.ino).sort()).toEqual(entries.filter((e) => e.rec.type === 'dir').map((e) => e.rec.ino).sort());
  for (const d of dirs) {
    if (d.rec.links.length) expect(seen.has(d.rec.links[0].parent)).toBe(true);
    seen.add(d.rec.ino);
  }
  expect([...w.dirs(true)].map((d) => d.rec.ino)).toEqual(dirs.map((d) => d.rec.ino).reverse());
});

test('a prefetching, spilling walk gives the same entries and removes its spill file', () => {
  for (let d = 0; d < 20; d++) {
    fs.mkdirSync(path.join(root, `d${d}/e`), { recursive: true });
    for (let f = 0; f < 30; f++) fs.writeFileSync(path.join(root, `d${d}/e/f${f}`), `${d}.${f}`);
  }
  const spill = path.join(os.tmpdir(), `ferry-walk-spill-${process.pid}`);
  const w = walkVolume(root, { prefetch: true, spillTo: spill });
  const got = [...w.entries()].map((e) => ({ ...e.rec, atimeNs: 0n, rel: e.rel.toString() }));
  w.dispose();
  expect(fs.existsSync(spill)).toBe(false);
  const want = walkTree(root).map((e) => ({ ...e.rec, atimeNs: 0n, rel: e.rel.toString() }));
  expect(got).toEqual(want);
  expect(got).toHaveLength(1 + 20 * 2 + 600);
});

test('generations: first snapshot, unchanged, appended, renamed', async () => {
  fs.writeFileSync(path.join(root, 'same'), Buffer.alloc(3 * BLOCK_SIZE, 1));
  fs.writeFileSync(path.join(root, 'grow'), Buffer.alloc(2 * BLOCK_SIZE + 10, 2));
  fs.writeFileSync(path.join(root, 'move'), 'm');
  const one = walkTree(root);
  const moveIno = ino('move');
  await assignGenerations(one, { transid: 1n });
  for (const e of one) expect(e.rec.generation).toBe(1n);
  const grow1 = byIno(one, 'grow').rec;
  expect(grow1.extents!.map((x) => [x.offset, x.length])).toEqual([
    [0n, BLOCK_SIZE],
    [BigInt(BLOCK_SIZE), BLOCK_SIZE],
    [BigInt(2 * BLOCK_SIZE), 10],
  ]);

  fs.appendFileSync(path.join(root, 'grow'), Buffer.alloc(BLOCK_SIZE, 3));
  fs.mkdirSync(path.join(root, 'd'));
  fs.renameSync(path.join(root, 'move'), path.join(root, 'd/moved'));
  const two = walkTree(root);
  const st = await assignGenerations(two, { transid: 2n, parent: () => one.map((e) => e.rec) });
  expect(byIno(two, 'same').rec.generation).toBe(1n);
  expect(byIno(two, 'same').rec.extents).toBe(byIno(one, 'same').rec.extents);
  const grow2 = byIno(two, 'grow').rec;
  expect(grow2.generation).toBe(2n);
  expect(grow2.extents!.map((x) => x.generation)).toEqual([1n, 1n, 2n, 2n]);
  const moved = byIno(two, 'd/moved').rec;
  const before = one.find((e) => e.rec.ino === moveIno)!.rec;
  expect(moved.ino).toBe(moveIno);
  expect(moved.generation).toBe(2n);
  // rename(2) bumps ctime, so the file is re-read, but its unchanged block keeps its generation
  expect(moved.extents).toEqual(before.extents);
  expect(st.hashedFiles).toBeLessThanOrEqual(2); // `grow`, and `move` where rename touched ctime
});

test('all-zero blocks or holes are recorded with a null hash', async () => {
  const fd = fs.openSync(path.join(root, 'sparse'), 'w');
  fs.writeSync(fd, Buffer.from('data'), 0, 4, 3 * BLOCK_SIZE);
  fs.closeSync(fd);
  const e = walkTree(root);
  await assignGenerations(e, { transid: 1n });
  const hashes = byIno(e, 'sparse').rec.extents!.map((x) => x.hash);
  expect(hashes.slice(0, 3)).toEqual([null, null, null]);
  expect(hashes[3]).toHaveLength(16);
});
