/**
 * `ferry diff`'s rules (src/diff/changes.ts) over indexes of real snapshots:
 * a volume in a temp dir (an `index` volume on the test machine's /tmp),
 * changed between two snapshots taken with src/volume/volume.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Change, diffIndexes, escapePath, TYPE_CHAR } from '../../../src/diff/changes';
import { loadIndex } from '../../../src/diff/index-file';
import { BLOCK_SIZE } from '../../../src/diff/generations';
import { InodeRecord } from '../../../src/model/inode';
import { sys } from '../../../src/sys/linux';
import { initVolume, snapshot, Volume } from '../../../src/volume/volume';

let root: string;
let vol: Volume;
let n = 0;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-diff-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const p = (rel: string) => path.join(root, rel);
const write = (rel: string, data: string | Buffer) => fs.writeFileSync(p(rel), data);

async function snap(): Promise<InodeRecord[]> {
  if (!vol) throw new Error('init first');
  const s = await snapshot(vol, { name: `s${++n}` });
  return loadIndex(s.indexPath);
}

function show(changes: Change[]): string[] {
  return changes.map((c) => {
    let line = `${c.op} ${TYPE_CHAR[c.type]} ${c.op === 'R' ? `${escapePath(c.from!)} -> ${escapePath(c.path)}` : escapePath(c.path)}`;
    if (c.what) line += ` ${c.what.join(',')}`;
    return line;
  });
}

/** Directory lines (M of a directory's mtime) say only that entries changed; many tests look past them. */
const noDirMtime = (lines: string[]) => lines.filter((l) => !/^M \/ \S+ mtime$/.test(l));

test('adds, removals, modifications of every kind, renames and moves, sorted', async () => {
  fs.mkdirSync(p('docs/old'), { recursive: true });
  fs.mkdirSync(p('gone/deep'), { recursive: true });
  write('docs/a.txt', 'alpha');
  write('docs/old/b.txt', 'bravo');
  write('gone/deep/x', 'x');
  write('gone/y', 'y');
  write('content', Buffer.alloc(BLOCK_SIZE * 2, 1));
  write('mode', 'm');
  write('owner', 'o');
  write('xattr', 'x');
  write('touched', 't');
  write('same-content', 's');
  write('replaced', 'first inode');
  fs.symlinkSync('docs/a.txt', p('link'));
  vol = initVolume(root, 'index');
  const a = await snap();

  write('new file', 'hi'); // a space: escaped as \0040
  fs.mkdirSync(p('newdir'));
  write('newdir/inner', 'in');
  fs.rmSync(p('gone'), { recursive: true });
  const fd = fs.openSync(p('content'), 'r+');
  fs.writeSync(fd, Buffer.alloc(10, 2), 0, 10, BLOCK_SIZE + 5); // second block only
  fs.closeSync(fd);
  fs.chmodSync(p('mode'), 0o600);
  fs.chownSync(p('owner'), 1234, 4321);
  sys().lsetxattr(p('xattr'), Buffer.from('user.k'), Buffer.from('v'));
  fs.utimesSync(p('touched'), new Date(1_000_000_000), new Date(1_000_000_000));
  // rewritten with identical bytes: mtime changes, content does not
  fs.writeFileSync(p('same-content'), 's');
  fs.renameSync(p('docs/a.txt'), p('docs/A.txt')); // rename in place
  fs.renameSync(p('docs/old'), p('moved')); // a directory move is one line; b.txt inside is not listed
  fs.rmSync(p('replaced'));
  write('replaced', 'second inode, same name');
  const b = await snap();

  expect(noDirMtime(show(diffIndexes(a, b)))).toEqual([
    'M F /content content,mtime',
    'R F /docs/a.txt -> /docs/A.txt',
    'R / /docs/old -> /moved',
    '- / /gone',
    '- / /gone/deep',
    '- F /gone/deep/x',
    '- F /gone/y',
    'M F /mode mode',
    '+ F /new\\0040file',
    '+ / /newdir',
    '+ F /newdir/inner',
    'M F /owner owner',
    '- F /replaced',
    '+ F /replaced',
    'M F /same-content mtime',
    'M F /touched mtime',
    'M F /xattr xattr',
  ]);
  // Directories whose entries changed are M (mtime), the root included.
  expect(show(diffIndexes(a, b)).filter((l) => / mtime$/.test(l) && l.startsWith('M / '))).toEqual(['M / / mtime', 'M / /docs mtime']);
  // Identical snapshots: nothing.
  expect(diffIndexes(b, b)).toEqual([]);
});

test('the reverse diff swaps + and -, and renames run backwards', async () => {
  fs.mkdirSync(p('d'));
  write('d/f', 'f');
  write('keep', 'k');
  vol = initVolume(root, 'index');
  const a = await snap();
  fs.renameSync(p('d/f'), p('f2'));
  write('added', 'a');
  fs.rmSync(p('keep'));
  const b = await snap();
  expect(noDirMtime(show(diffIndexes(a, b)))).toEqual(['+ F /added', 'R F /d/f -> /f2', '- F /keep']);
  expect(noDirMtime(show(diffIndexes(b, a)))).toEqual(['- F /added', 'R F /f2 -> /d/f', '+ F /keep']);
});

test('hard links: every name of a new or removed inode, added and removed names, renamed names', async () => {
  write('one', '1');
  fs.linkSync(p('one'), p('one-b'));
  write('two', '2');
  write('three', '3');
  fs.linkSync(p('three'), p('three-b'));
  fs.linkSync(p('three'), p('three-c'));
  write('dead', 'd');
  fs.linkSync(p('dead'), p('dead-b'));
  vol = initVolume(root, 'index');
  const a = await snap();

  fs.linkSync(p('two'), p('two-b')); // a name added to an existing inode
  fs.rmSync(p('one-b')); // a name removed, the inode survives
  fs.renameSync(p('three-c'), p('three-z')); // one of three names renamed
  write('fresh', 'f');
  fs.linkSync(p('fresh'), p('fresh-b')); // a new inode with two names
  fs.rmSync(p('dead'));
  fs.rmSync(p('dead-b')); // an inode with two names removed
  fs.appendFileSync(p('three'), 'more'); // modified through one name: one M, at its first name
  const b = await snap();

  const changes = diffIndexes(a, b);
  expect(noDirMtime(show(changes))).toEqual([
    '- F /dead',
    '- F /dead-b',
    '+ F /fresh',
    '+ F /fresh-b',
    '- F /one-b',
    'M F /three content,mtime',
    'R F /three-c -> /three-z',
    '+ F /two-b',
  ]);
  expect(changes.find((c) => c.op === 'M' && c.type === 'file')!.also!.map(String)).toEqual(['/three-b', '/three-z']);
});

test('a reused inode number is a removal and an addition, never a modification', async () => {
  write('a', 'first');
  vol = initVolume(root, 'index');
  const a = await snap();
  const oldIno = fs.lstatSync(p('a'), { bigint: true }).ino;
  fs.rmSync(p('a'));
  let name: string | undefined;
  for (let i = 0; i < 50 && !name; i++) {
    write(`b${i}`, 'second');
    if (fs.lstatSync(p(`b${i}`), { bigint: true }).ino === oldIno) name = `b${i}`;
    else fs.rmSync(p(`b${i}`));
  }
  const b = await snap();
  const lines = noDirMtime(show(diffIndexes(a, b)));
  expect(lines).toEqual(name ? ['- F /a', `+ F /${name}`] : expect.arrayContaining(['- F /a']));
  // Even under the same name a new inode (other birth) is - and +.
  if (name) {
    fs.renameSync(p(name), p('a'));
    const c = await snap();
    expect(noDirMtime(show(diffIndexes(a, c)))).toEqual(['- F /a', '+ F /a']);
  }
});

test('types, symlinks, a file replaced by a directory, a directory tree moved under a new one', async () => {
  write('x', 'file');
  fs.symlinkSync('target-1', p('sl'));
  fs.mkdirSync(p('tree/sub'), { recursive: true });
  write('tree/sub/leaf', 'leaf');
  vol = initVolume(root, 'index');
  const a = await snap();
  fs.rmSync(p('x'));
  fs.mkdirSync(p('x'));
  fs.rmSync(p('sl'));
  fs.symlinkSync('target-2', p('sl'));
  fs.mkdirSync(p('new/deeper'), { recursive: true });
  fs.renameSync(p('tree'), p('new/deeper/tree'));
  write('new/deeper/tree/sub/leaf', 'changed leaf');
  const b = await snap();
  expect(noDirMtime(show(diffIndexes(a, b)))).toEqual([
    '+ / /new',
    '+ / /new/deeper',
    'M F /new/deeper/tree/sub/leaf content,mtime',
    '- @ /sl',
    '+ @ /sl',
    'R / /tree -> /new/deeper/tree',
    '- F /x',
    '+ / /x',
  ]);
});

test('names that are not printable are escaped; corrupt input is refused', async () => {
  const odd = Buffer.concat([Buffer.from(root + '/'), Buffer.from('tab\there\\ é '), Buffer.from([0xff])]);
  vol = initVolume(root, 'index');
  const a = await snap();
  fs.writeFileSync(odd, 'x');
  const b = await snap();
  expect(noDirMtime(show(diffIndexes(a, b)))).toEqual(['+ F /tab\\0011here\\0134\\0040é\\0040\\0377']);
  expect(() => diffIndexes(a, [...b].reverse())).toThrow(expect.objectContaining({ code: 'DIFF_INDEX_CORRUPT' }));
  expect(() => diffIndexes(a, b.filter((r) => r.links.length > 0))).toThrow(/no root/);
});

test('the roots pair by role whatever their inode (a rolled-back tree): other inodes are new', async () => {
  write('f', 'f');
  fs.mkdirSync(p('d'));
  vol = initVolume(root, 'index');
  const a = await snap();
  // Another tree with the same content: every inode, the root's included, is another one.
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-diff-copy-'));
  try {
    fs.cpSync(root, other, { recursive: true, preserveTimestamps: true, filter: (src) => !src.includes('.ferry') });
    const v2 = initVolume(other, 'index');
    const t = fs.statSync(root, { bigint: true });
    sys().lutimens(other, { sec: t.atimeNs / 1_000_000_000n, nsec: Number(t.atimeNs % 1_000_000_000n) }, { sec: t.mtimeNs / 1_000_000_000n, nsec: Number(t.mtimeNs % 1_000_000_000n) });
    const b = await loadIndex((await snapshot(v2, { name: 'x' })).indexPath);
    expect(b.find((r) => r.links.length === 0)!.ino).not.toBe(a.find((r) => r.links.length === 0)!.ino);
    expect(show(diffIndexes(a, b))).toEqual(['- / /d', '+ / /d', '- F /f', '+ F /f']);
  } finally {
    fs.rmSync(other, { recursive: true, force: true });
  }
});
