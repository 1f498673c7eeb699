import { linkSync, lutimesSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { compareTrees } from '../../../bench/lib/treecmp';

describe('compareTrees', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'ferry-treecmp-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function tree(name: string): string {
    const root = join(dir, name);
    mkdirSync(join(root, 'd'), { recursive: true });
    writeFileSync(join(root, 'd', 'f'), 'hello');
    linkSync(join(root, 'd', 'f'), join(root, 'g'));
    symlinkSync('d/f', join(root, 'l'));
    mkdirSync(join(root, '.ferry'));
    writeFileSync(join(root, '.ferry', 'x'), name);
    lutimesSync(join(root, 'l'), 1_700_000_000, 1_700_000_000);
    for (const p of ['d/f', 'd', '']) utimesSync(join(root, p), 1_700_000_000, 1_700_000_000);
    return root;
  }

  it('finds equal trees equal, ignoring .ferry', () => {
    expect(compareTrees(tree('a'), tree('b'))).toEqual({ entries: [4, 4], count: 0, first: [] });
  });

  it('reports content, mode, mtime, missing entries and broken link groups', () => {
    const a = tree('a');
    const b = tree('b');
    writeFileSync(join(b, 'g'), 'HELLO'); // through the link: d/f changes too
    rmSync(join(b, 'd', 'f'));
    writeFileSync(join(b, 'd', 'f'), 'HELLO');
    utimesSync(join(b, 'd'), 1, 1);
    writeFileSync(join(b, 'extra'), '');
    const d = compareTrees(a, b);
    expect(d.first).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^d: mtime differ/),
        expect.stringMatching(/^d\/f: .*sha/),
        expect.stringMatching(/^d\/f: hard links differ/),
        'only in received: extra',
      ]),
    );
  });

  it('does not count a name whose other links are outside the tree (a hard-link farm)', () => {
    const a = tree('a');
    const b = tree('b');
    linkSync(join(b, 'd', 'f'), join(dir, 'outside')); // nlink 3, but only d/f and g inside
    const lone = join(dir, 'lone');
    writeFileSync(lone, 'x');
    writeFileSync(join(a, 'solo'), 'x');
    linkSync(lone, join(b, 'solo'));
    utimesSync(join(a, 'solo'), 5, 5);
    utimesSync(join(b, 'solo'), 5, 5);
    utimesSync(a, 1_700_000_000, 1_700_000_000);
    utimesSync(b, 1_700_000_000, 1_700_000_000);
    expect(compareTrees(a, b).count).toBe(0);
  });
});
