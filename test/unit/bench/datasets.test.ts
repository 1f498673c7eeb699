import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import {
  TreeEntry,
  imageAllocated,
  listTree,
  makeImage,
  makeLargeFiles,
  makeMany,
  makeVmImage,
  mixedBuffer,
  mutationSeed,
  planVmImage,
  mutateTree,
  planMutation,
  planScatteredWrites,
  scatterWrites,
  treeStats,
} from '../../../bench/lib/datasets';

/** A synthetic listing: `dirs` directories two levels deep with `per` files each. */
function fakeTree(dirs: number, per: number): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (let d = 0; d < dirs; d++) {
    out.push({ path: `top${d % 3}`, type: 'dir', size: 0, mode: 0o755 });
    out.push({ path: `top${d % 3}/d${d}`, type: 'dir', size: 0, mode: 0o755 });
    for (let f = 0; f < per; f++) out.push({ path: `top${d % 3}/d${d}/f${f}.txt`, type: 'file', size: 100, mode: 0o644 });
    out.push({ path: `top${d % 3}/d${d}/link`, type: 'symlink', size: 5, mode: 0o777 });
  }
  return [...new Map(out.map((e) => [e.path, e])).values()];
}

describe('planMutation', () => {
  const tree = fakeTree(100, 100); // 10,000 files

  it('is the same for the same seed, whatever the input order', () => {
    const a = planMutation(tree, 42);
    expect(planMutation([...tree].reverse(), 42)).toEqual(a);
    expect(planMutation(tree, 43)).not.toEqual(a);
  });

  it('touches about 1% of the files, each at most once, plus two directory renames', () => {
    const plan = planMutation(tree, 1);
    const fileOps = plan.ops.filter((o) => o.kind !== 'rename-dir');
    expect(fileOps).toHaveLength(100);
    const touched = fileOps.filter((o) => o.kind !== 'create').map((o) => ('path' in o ? o.path : o.from));
    expect(new Set(touched).size).toBe(touched.length);
    const files = new Set(tree.filter((e) => e.type === 'file').map((e) => e.path));
    expect(touched.every((p) => files.has(p))).toBe(true);
    const kinds = new Set(plan.ops.map((o) => o.kind));
    for (const k of ['append', 'delete', 'rename', 'chmod', 'create', 'rename-dir']) expect(kinds).toContain(k);
    expect(plan.ops.filter((o) => o.kind === 'rename-dir')).toHaveLength(2);
    expect(planMutation(tree, 1, { fraction: 0.05 }).ops.length).toBe(500 + 2);
  });

  it('renames directories last, below the top level, never one inside another', () => {
    for (let seed = 0; seed < 50; seed++) {
      const ops = planMutation(tree, seed).ops;
      const dirOps = ops.slice(-2);
      expect(dirOps.every((o) => o.kind === 'rename-dir')).toBe(true);
      const [a, b] = dirOps.map((o) => (o.kind === 'rename-dir' ? o.from : ''));
      expect(a.includes('/') && b.includes('/')).toBe(true);
      expect(a.startsWith(b + '/') || b.startsWith(a + '/') || a === b).toBe(false);
    }
  });

  it('only flips group and other mode bits', () => {
    const flips = planMutation(tree, 3).ops.flatMap((o) => (o.kind === 'chmod' ? [o.flip] : []));
    expect(flips.length).toBeGreaterThan(0);
    expect(flips.every((f) => (f & ~0o077) === 0 && f !== 0)).toBe(true);
  });

  it('does nothing to a tree without files', () => {
    expect(planMutation([], 1).ops).toEqual([]);
  });
});

describe('planScatteredWrites', () => {
  it('gives distinct, aligned offsets inside the file, the same for the same seed', () => {
    const size = 64 * 1024 * 1024;
    const offs = planScatteredWrites(size, 1000, 5);
    expect(offs).toHaveLength(1000);
    expect(new Set(offs).size).toBe(1000);
    expect(offs.every((o) => o % 4096 === 0 && o >= 0 && o + 4096 <= size)).toBe(true);
    expect(planScatteredWrites(size, 1000, 5)).toEqual(offs);
    expect(planScatteredWrites(size, 1000, 6)).not.toEqual(offs);
    expect(() => planScatteredWrites(8192, 3, 1)).toThrow(RangeError);
  });
});

describe('datasets on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'ferry-bench-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('makeMany and mutateTree give identical trees for identical seeds', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    const sa = makeMany(a, 1500, 7);
    const sb = makeMany(b, 1500, 7);
    expect(sa).toEqual(sb);
    expect(sa.files + sa.symlinks).toBe(1500);
    expect(sa.dirs).toBeGreaterThan(50);
    expect(treeStats(listTree(a))).toEqual(sa);
    const before = listTree(a);
    const pa = mutateTree(a, 99);
    const pb = mutateTree(b, 99);
    expect(pa).toEqual(pb);
    const la = listTree(a);
    expect(la).toEqual(listTree(b));
    expect(la).not.toEqual(before);
    for (const op of pa.ops) {
      if (op.kind === 'rename-dir') expect(la.some((e) => e.path === op.to && e.type === 'dir')).toBe(true);
    }
  });

  it('makeImage makes a sparse or filled file; scatterWrites writes there', () => {
    const sparse = join(dir, 'sparse.img');
    makeImage(sparse, 32 << 20, 1);
    expect(statSync(sparse).size).toBe(32 << 20);
    expect(statSync(sparse).blocks).toBeLessThan(64);
    scatterWrites(sparse, planScatteredWrites(32 << 20, 10, 1), 1);
    expect(statSync(sparse).size).toBe(32 << 20);
    expect(statSync(sparse).blocks).toBeGreaterThanOrEqual(10 * 8);
    const full = join(dir, 'full.img');
    makeImage(full, 4 << 20, 1, { fill: 'data' });
    expect(statSync(full).blocks * 512).toBeGreaterThanOrEqual(4 << 20);
  });

  it('listTree leaves out top-level names it is told to skip', () => {
    mkdirSync(join(dir, 't', '.ferry', 'x'), { recursive: true });
    mkdirSync(join(dir, 't', 'a', '.ferry'), { recursive: true });
    expect(listTree(join(dir, 't'), ['.ferry']).map((e) => e.path)).toEqual(['a', 'a/.ferry']);
  });

  it('makeMany with usr sizes follows the /usr size shape, capped, and is reproducible', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    const sa = makeMany(a, 800, 3, { sizes: 'usr', maxFileBytes: 64 * 1024 });
    expect(makeMany(b, 800, 3, { sizes: 'usr', maxFileBytes: 64 * 1024 })).toEqual(sa);
    const files = listTree(a).filter((e) => e.type === 'file');
    expect(Math.max(...files.map((f) => f.size))).toBeLessThanOrEqual(64 * 1024);
    expect(files.filter((f) => f.size < 4096).length / files.length).toBeGreaterThan(0.6);
  });

  it('makeVmImage lays out the planned runs, holes between them, the same for the same seed', () => {
    const size = 64 << 20;
    const plan = planVmImage(size, 5);
    expect(planVmImage(size, 5)).toEqual(plan);
    expect(planVmImage(size, 6)).not.toEqual(plan);
    for (let i = 0; i < plan.length; i++) {
      expect(plan[i].offset % 4096).toBe(0);
      expect(plan[i].offset + plan[i].length).toBeLessThanOrEqual(size);
      if (i) expect(plan[i].offset).toBeGreaterThan(plan[i - 1].offset + plan[i - 1].length);
    }
    const share = imageAllocated(plan) / size;
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.8);
    expect(new Set(plan.map((r) => r.kind))).toEqual(new Set(['binary', 'text', 'zero']));
    const f = join(dir, 'vm.img');
    const g = join(dir, 'vm2.img');
    expect(makeVmImage(f, size, 5)).toEqual(plan);
    makeVmImage(g, size, 5);
    expect(statSync(f).size).toBe(size);
    expect(statSync(f).blocks * 512).toBeLessThan(size * 0.9);
    expect(readFileSync(f).equals(readFileSync(g))).toBe(true);
  });

  it('mixedBuffer and makeLargeFiles give seeded, partly compressible data', () => {
    const m = mixedBuffer(4 << 20, 2);
    expect(mixedBuffer(4 << 20, 2).equals(m)).toBe(true);
    const ratio = m.length / gzipSync(m, { level: 1 }).length;
    expect(ratio).toBeGreaterThan(1.1);
    expect(ratio).toBeLessThan(10);
    mkdirSync(join(dir, 'l'));
    expect(makeLargeFiles(join(dir, 'l'), 2, 3 << 20, 2)).toBe(6 << 20);
    expect(listTree(join(dir, 'l')).map((e) => [e.path, e.size])).toEqual([
      ['large-000.bin', 3 << 20],
      ['large-001.bin', 3 << 20],
    ]);
  });

  it('mutationSeed gives a distinct seed for every mutation of a run', () => {
    const seen = new Set<number>();
    for (let k = 1; k <= 100; k++) seen.add(mutationSeed(1, k));
    expect(seen.size).toBe(100);
    expect(mutationSeed(2, 1)).not.toBe(mutationSeed(1, 1));
  });
});
