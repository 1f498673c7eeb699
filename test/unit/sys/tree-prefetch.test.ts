/**
 * The cache-warming worker (src/sys/tree-prefetch.ts) lists directories in
 * the order of the walk it helps, so it stays just ahead of it: 'preorder'
 * as a recursive copy descends (the receiver's seed), 'stack' as the
 * snapshot walker pops them. It skips the named root entry, never crosses
 * into another filesystem, and changes nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startTreePrefetch, TreePrefetchOptions } from '../../../src/sys/tree-prefetch';
import { rng } from '../../helpers/streams';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-prefetch-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function listed(root: string, opts: Omit<TreePrefetchOptions, 'onListed'>): Promise<string[]> {
  return new Promise((resolve) => {
    startTreePrefetch(Buffer.from(root), { ...opts, onListed: (dirs) => resolve(dirs.map((d) => d.toString())) });
  });
}

/** A random tree of directories and files, some empty, some deep. */
function makeTree(root: string, seed: number): void {
  const r = rng(seed);
  const grow = (dir: string, depth: number) => {
    fs.mkdirSync(dir);
    const n = Math.floor(r() * 6);
    for (let i = 0; i < n; i++) {
      const p = path.join(dir, `e${i}-${Math.floor(r() * 1000)}`);
      if (depth < 5 && r() < 0.5) grow(p, depth + 1);
      else if (r() < 0.8) fs.writeFileSync(p, 'x');
      else fs.symlinkSync('..', p);
    }
  };
  grow(root, 0);
}

/** The receiver's seed walk: descend into each directory as soon as it is met, in readdir order. */
function preorder(dir: string, out: string[] = []): string[] {
  out.push(dir);
  for (const n of fs.readdirSync(dir)) {
    const p = path.join(dir, n);
    if (fs.lstatSync(p).isDirectory()) preorder(p, out);
  }
  return out;
}

/** The snapshot walker: a stack, subdirectories pushed in readdir order. */
function stackOrder(root: string, skip?: string): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    out.push(dir);
    for (const n of fs.readdirSync(dir)) {
      if (dir === root && n === skip) continue;
      const p = path.join(dir, n);
      if (fs.lstatSync(p).isDirectory()) stack.push(p);
    }
  }
  return out;
}

describe('startTreePrefetch', () => {
  it.each([1, 2, 3, 4])('lists directories in the walk orders (tree %i)', async (seed) => {
    const root = path.join(tmp, `tree-${seed}`);
    makeTree(root, seed);
    expect(await listed(root, { order: 'preorder' })).toEqual(preorder(root));
    expect(await listed(root, { order: 'stack' })).toEqual(stackOrder(root));
    // The two orders differ as soon as there are sibling subtrees.
    if (seed === 1) expect(preorder(root)).not.toEqual(stackOrder(root));
  });

  it('skips the named root entry only at the root, and changes nothing', async () => {
    const root = path.join(tmp, 'skip');
    fs.mkdirSync(path.join(root, '.ferry', 'x'), { recursive: true });
    fs.mkdirSync(path.join(root, 'a', '.ferry'), { recursive: true });
    const before = fs.lstatSync(path.join(root, 'a')).mtimeMs;
    const dirs = await listed(root, { order: 'stack', skip: Buffer.from('.ferry') });
    expect(dirs).toEqual(stackOrder(root, '.ferry'));
    expect(dirs).toContain(path.join(root, 'a', '.ferry'));
    expect(dirs.some((d) => d.startsWith(path.join(root, '.ferry')))).toBe(false);
    expect(fs.lstatSync(path.join(root, 'a')).mtimeMs).toBe(before);
  });

  it('a missing root does not throw in the caller', () => {
    const stop = startTreePrefetch(Buffer.from(path.join(tmp, 'missing')), { order: 'preorder' });
    expect(() => stop()).not.toThrow();
  });
});
