import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import {
  TreeEntry,
  listTree,
  makeImage,
  makeMany,
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
});
