import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SeedResult, seedFromParent } from '../../../src/receive/seed';
import { sys } from '../../../src/sys/linux';

const OLD = new Date('2020-01-02T03:04:05.678Z');

/** Hard-link groups whose names sit in different directories, every directory stamped with an old time. */
function makeParent(root: string): void {
  const n = 12;
  for (let i = 0; i < n; i++) fs.mkdirSync(path.join(root, `d${i}`));
  for (let i = 0; i < n; i++) {
    const f = path.join(root, `d${i}`, `f${i}`);
    fs.writeFileSync(f, `content ${i}\n`);
    fs.linkSync(f, path.join(root, `d${(i + 5) % n}`, `link-of-${i}`));
    fs.linkSync(f, path.join(root, `top-${i}`));
  }
  for (let i = 0; i < n; i++) fs.utimesSync(path.join(root, `d${i}`), OLD, OLD);
  fs.utimesSync(root, OLD, OLD);
}

describe.each(['farm', 'copy'] as const)('seedFromParent (%s)', (method) => {
  let work: string;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-seed-'));
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('keeps every directory time and hard-link group when groups span directories', () => {
    const src = path.join(work, 'parent');
    const dst = path.join(work, 'staging');
    fs.mkdirSync(src);
    makeParent(src);
    fs.mkdirSync(dst);
    seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method);
    for (const name of ['.', ...fs.readdirSync(src)]) {
      const s = fs.lstatSync(path.join(src, name), { bigint: true });
      if (!s.isDirectory()) continue;
      const d = fs.lstatSync(path.join(dst, name), { bigint: true });
      expect([name, d.mtimeNs]).toEqual([name, s.mtimeNs]);
    }
    for (let i = 0; i < 12; i++) {
      const a = fs.statSync(path.join(dst, `d${i}`, `f${i}`));
      expect(fs.statSync(path.join(dst, `d${(i + 5) % 12}`, `link-of-${i}`)).ino).toBe(a.ino);
      expect(fs.statSync(path.join(dst, `top-${i}`)).ino).toBe(a.ino);
      // A group is never shared with the parent: changing it must not reach the parent.
      expect(a.ino).not.toBe(fs.statSync(path.join(src, `d${i}`, `f${i}`)).ino);
      expect(fs.readFileSync(path.join(dst, `top-${i}`), 'utf8')).toBe(`content ${i}\n`);
    }
  });
});

/** Every path under `root` (relative), directories included, root first. */
function walkTree(root: string, rel = '.'): string[] {
  const out = [rel];
  for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
    const r = rel === '.' ? name : path.join(rel, name);
    if (fs.lstatSync(path.join(root, r)).isDirectory()) out.push(...walkTree(root, r));
    else out.push(r);
  }
  return out;
}

/**
 * `dst` is `src` as a seed leaves it: the same names, contents and directory
 * times; the parent's link groups are the staging tree's link groups, each
 * on a private inode; every other file is farm-linked to its parent inode and
 * in `shared` (farm), or a private copy (copy).
 */
function expectSeeded(src: string, dst: string, r: SeedResult, method: 'farm' | 'copy'): void {
  const paths = walkTree(src);
  expect(walkTree(dst)).toEqual(paths);
  const byParentIno = new Map<bigint, string[]>();
  for (const p of paths) {
    const s = fs.lstatSync(path.join(src, p), { bigint: true });
    const d = fs.lstatSync(path.join(dst, p), { bigint: true });
    if (s.isDirectory()) {
      expect([p, d.mtimeNs]).toEqual([p, s.mtimeNs]);
      continue;
    }
    expect([p, fs.readFileSync(path.join(dst, p), 'latin1')]).toEqual([p, fs.readFileSync(path.join(src, p), 'latin1')]);
    byParentIno.set(s.ino, [...(byParentIno.get(s.ino) ?? []), p]);
  }
  const stagingInos = new Set<bigint>();
  let singles = 0;
  for (const [parentIno, names] of byParentIno) {
    const inos = new Set(names.map((p) => fs.lstatSync(path.join(dst, p), { bigint: true }).ino));
    expect([names, inos.size]).toEqual([names, 1]);
    const [ino] = inos;
    expect(stagingInos.has(ino)).toBe(false); // groups never merge
    stagingInos.add(ino);
    const farmed = method === 'farm' && names.length === 1;
    if (farmed) singles++;
    expect([names, ino === parentIno, r.shared.has(parentIno)]).toEqual([names, farmed, farmed]);
  }
  expect(r.shared.size).toBe(singles);
}

/** Stamp every directory under (and including) `root` with OLD. */
function ageDirs(root: string): void {
  for (const p of walkTree(root).reverse()) {
    const full = path.join(root, p);
    if (fs.lstatSync(full).isDirectory()) fs.utimesSync(full, OLD, OLD);
  }
}

describe.each(['farm', 'copy'] as const)('seedFromParent link groups (%s)', (method) => {
  let work: string;
  let src: string;
  let dst: string;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-seed-'));
    src = path.join(work, 'parent');
    dst = path.join(work, 'staging');
    fs.mkdirSync(src);
    fs.mkdirSync(dst);
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it("finds a first name in an earlier, finished directory, behind many other files, and in the same directory", () => {
    // p and q are siblings: whichever the walk takes first is finished when
    // the other is walked, so each p/q group's first name is found in an
    // earlier directory, among 300 other files.
    for (const d of ['p', 'q', 's', 's/deep']) fs.mkdirSync(path.join(src, d));
    for (const d of ['p', 'q', 's']) for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, d, `fill-${i}`), `${d}${i}`);
    for (let k = 0; k < 12; k++) {
      const f = path.join(src, 'p', `g-${k}`);
      fs.writeFileSync(f, `group ${k}\n`);
      fs.linkSync(f, path.join(src, 'q', `g-${k}-b`));
      if (k < 3) fs.linkSync(f, path.join(src, 'q', `g-${k}-c`)); // third name beside the second
      else if (k < 6) fs.linkSync(f, path.join(src, 's', 'deep', `g-${k}-c`)); // third name elsewhere
      else if (k < 9) fs.linkSync(f, path.join(src, `g-${k}-top`)); // a name in an ancestor
    }
    for (let j = 0; j < 8; j++) {
      // Two or three names in one directory.
      const f = path.join(src, 's', `pair-${j}`);
      fs.writeFileSync(f, `pair ${j}`);
      fs.linkSync(f, path.join(src, 's', `pair-${j}-twin`));
      if (j % 2) fs.linkSync(f, path.join(src, 's', `pair-${j}-triplet`));
    }
    // A name in a subdirectory of the first name's (still open) directory.
    fs.writeFileSync(path.join(src, 's', 'up'), 'up');
    fs.linkSync(path.join(src, 's', 'up'), path.join(src, 's', 'deep', 'up-below'));
    ageDirs(src);
    const r = seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method);
    expect(r.entries).toBe(walkTree(src).length - 1);
    expectSeeded(src, dst, r, method);
  });

  it('finds first names right when finished directories are forgotten and read again', () => {
    // Ten sibling directories, groups across them: lookups go to finished
    // directories in turn, and with no names kept each is read again.
    for (let i = 0; i < 10; i++) fs.mkdirSync(path.join(src, `d${i}`));
    for (let i = 0; i < 10; i++) {
      for (let j = 0; j < 30; j++) {
        const f = path.join(src, `d${i}`, `f-${j}`);
        fs.writeFileSync(f, `${i}/${j}`);
        if (j % 3 === 0) fs.linkSync(f, path.join(src, `d${(i + 3) % 10}`, `l-${i}-${j}`));
        if (j % 9 === 0) fs.linkSync(f, path.join(src, `d${(i + 7) % 10}`, `m-${i}-${j}`));
      }
    }
    ageDirs(src);
    for (const keptNames of [0, 40]) {
      fs.rmSync(dst, { recursive: true });
      fs.mkdirSync(dst);
      const r = seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method, { keptNames });
      expectSeeded(src, dst, r, method);
    }
  });

  it('seeds the same tree with the parent prefetched from the first entry', () => {
    for (let i = 0; i < 6; i++) fs.mkdirSync(path.join(src, `d${i}`, 'sub'), { recursive: true });
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 20; j++) fs.writeFileSync(path.join(src, `d${i}`, j % 2 ? 'sub' : '', `f-${j}`), `${i}/${j}`);
      fs.linkSync(path.join(src, `d${i}`, 'f-0'), path.join(src, `d${(i + 1) % 6}`, 'sub', `l-${i}`));
    }
    ageDirs(src);
    const r = seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method, { prefetchAfter: 0 });
    expect(r.entries).toBe(walkTree(src).length - 1);
    expectSeeded(src, dst, r, method);
  });

  it('stays linear in lstat calls when link groups crowd one directory', () => {
    // 1500 groups whose first names share one big directory (whichever of
    // big/ and other/ comes first), and 1500 pairs inside one directory.
    // A scan per group would take about 2.25 million lstat calls.
    const n = 1500;
    for (const d of ['big', 'other', 'flat']) fs.mkdirSync(path.join(src, d));
    for (let i = 0; i < n; i++) {
      fs.writeFileSync(path.join(src, 'big', `b-${i}`), `${i}`);
      fs.linkSync(path.join(src, 'big', `b-${i}`), path.join(src, 'other', `o-${i}`));
      fs.writeFileSync(path.join(src, 'flat', `f-${i}`), `${i}`);
      fs.linkSync(path.join(src, 'flat', `f-${i}`), path.join(src, 'flat', `f-${i}-twin`));
    }
    // Count lstat calls, and stop a quadratic walk early rather than wait for it.
    const entries = 4 * n + 3;
    const nodeFs = require('node:fs') as { lstatSync: (...a: unknown[]) => unknown };
    const real = nodeFs.lstatSync;
    let calls = 0;
    nodeFs.lstatSync = (...a: unknown[]) => {
      if (++calls > 3 * entries) throw new Error(`more than ${3 * entries} lstat calls`);
      return real.apply(nodeFs, a);
    };
    let r: SeedResult;
    try {
      r = seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method);
    } finally {
      nodeFs.lstatSync = real;
    }
    expect(r.entries).toBe(entries);
    expect(calls).toBeGreaterThanOrEqual(entries);
    expectSeeded(src, dst, r, method);
  });
});
