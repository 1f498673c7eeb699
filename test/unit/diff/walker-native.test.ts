/**
 * The walk's two ways to stat an entry (statx relative to the open directory
 * where the native binding loads, lstat of the path elsewhere) give the same
 * records; and the parent's inodes (KnownInodes) let the walk leave xattrs
 * and symlink targets unread without changing what generations() yields.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generations, newGenerationStats } from '../../../src/diff/generations';
import { KnownInodes } from '../../../src/diff/known-inodes';
import { isUnread, walkTree, WalkEntry } from '../../../src/diff/walker';
import { InodeRecord } from '../../../src/model/inode';
import { createSys, sys } from '../../../src/sys/linux';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-walk-native-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const at = (p: string) => path.join(root, p);
const native = createSys();
/** The same syscalls without statxAt: the walk lstats each path (the birth source stays the native one). */
const lstatOnly = { ...native, statxAt: undefined };
const fallback = createSys({ native: false });

function setXattr(p: string, name: string, value: string): boolean {
  try {
    sys().lsetxattr(at(p), Buffer.from(name), Buffer.from(value));
    return true;
  } catch {
    return false;
  }
}

/** A tree with every inode type the walk tells apart (a device node when root). */
function makeTree(): { xattrs: boolean } {
  fs.mkdirSync(at('d/e/f'), { recursive: true });
  fs.writeFileSync(at('d/one'), 'one');
  fs.writeFileSync(at('d/e/two'), Buffer.alloc(70_000, 7));
  fs.linkSync(at('d/one'), at('d/e/one-again'));
  fs.symlinkSync('../one', at('d/e/sym'));
  fs.symlinkSync('/nowhere/at/all', at('dangling'));
  spawnSync('mkfifo', [at('d/fifo')]);
  fs.writeFileSync(Buffer.concat([Buffer.from(at('d/')), Buffer.from([0x6e, 0xff])]), 'latin');
  if (process.getuid?.() === 0) spawnSync('mknod', [at('d/e/tty'), 'c', '4', '70']);
  const xattrs = setXattr('d/one', 'user.k', 'v') && setXattr('d', 'user.dir', 'x');
  return { xattrs };
}

/** Records without atime (a walk's readdir may move a directory's atime). */
const comparable = (es: WalkEntry[]) => es.map((e) => ({ ...e.rec, atimeNs: 0n }));

test('the statx walk and the lstat walk give the same records', () => {
  if (!native.statxAt) {
    // Without the native binding there is only one way to walk; say so rather than pass silently.
    expect(native.native).toBe(false);
    return;
  }
  const { xattrs } = makeTree();
  const a = walkTree(root, { sys: native });
  const b = walkTree(root, { sys: lstatOnly });
  expect(comparable(a)).toEqual(comparable(b));
  // The portable fallback has no birth times or generations (birth 0), and is otherwise the same.
  const c = walkTree(root, { sys: fallback });
  expect(comparable(c)).toEqual(comparable(a).map((r) => ({ ...r, birth: 0n })));
  expect(a.length).toBeGreaterThanOrEqual(11);
  if (xattrs) expect(a.find((e) => e.rel.toString() === 'd/one')!.rec.xattrs.map(([k]) => k.toString())).toEqual(['user.k']);
  if (process.getuid?.() === 0) {
    const tty = a.find((e) => e.rel.toString() === 'd/e/tty')!;
    expect(tty.rec.type).toBe('chr');
    expect(tty.rec.rdev).toBe(fs.lstatSync(at('d/e/tty'), { bigint: true }).rdev);
  }
  // Birth: statx's btime where the filesystem has one, as Node reports it.
  const one = a.find((e) => e.rel.toString() === 'd/one')!;
  const st = fs.lstatSync(at('d/one'), { bigint: true });
  if (st.birthtimeNs !== 0n) expect(one.rec.birth).toBe(st.birthtimeNs);
});

test('a mount point below the root is skipped the same way by both walks', () => {
  if (process.getuid?.() !== 0 || !native.statxAt) return; // needs mount(8); the statx walk needs the binding
  fs.mkdirSync(at('m'));
  fs.writeFileSync(at('kept'), 'k');
  const r = spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', at('m')]);
  if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
  try {
    fs.writeFileSync(at('m/inside'), 'x');
    for (const s of [native, lstatOnly]) {
      const warnings: string[] = [];
      const names = walkTree(root, { sys: s, onWarning: (m) => warnings.push(m) }).map((e) => e.rel.toString());
      expect(names.sort()).toEqual(['', 'kept']);
      expect(warnings.join('\n')).toMatch(/skipped a mount point.*\/m$/m);
    }
  } finally {
    spawnSync('umount', [at('m')]);
  }
});

/** Generations of a walk against `parent` (records in ino order). */
function resolve(entries: WalkEntry[], parent: InodeRecord[]): InodeRecord[] {
  return [...generations(entries, { transid: 2n, parent: () => parent }, newGenerationStats())];
}

test('inodes the parent had unchanged are left unread by the walk and come back whole from generations()', () => {
  const { xattrs } = makeTree();
  const first = walkTree(root);
  const parent = resolve(first, []);
  const known = new KnownInodes();
  for (const r of parent) known.add(r.ino, r.birth, r.ctimeNs);

  // Change one xattr (moves ctime) and add a symlink; everything else stays.
  if (xattrs) setXattr('d/e/two', 'user.new', 'n');
  fs.symlinkSync('one', at('d/fresh'));

  const walked = walkTree(root, { known });
  const unread = walked.filter((e) => isUnread(e.rec)).map((e) => e.rel.toString());
  expect(unread).toEqual(expect.arrayContaining(['d/one', 'd/e/sym', 'dangling', 'd/e/f']));
  expect(unread).not.toContain('d/fresh');
  if (xattrs) expect(unread).not.toContain('d/e/two');

  const got = resolve(walked, parent);
  const want = resolve(walkTree(root), parent);
  expect(got.map((r) => ({ ...r, atimeNs: 0n }))).toEqual(want.map((r) => ({ ...r, atimeNs: 0n })));
  expect(got.some(isUnread)).toBe(false);
  const sym = got.find((r) => r.type === 'symlink' && r.target?.toString() === '/nowhere/at/all');
  expect(sym).toBeDefined();
});

test('a fingerprint that matches wrongly costs a late read, never a wrong record', () => {
  const { xattrs } = makeTree();
  const parent = resolve(walkTree(root), []);
  // Claim every current inode is known, then give generations() a parent
  // whose ctimes all differ: each record must be read from its path.
  const known = new KnownInodes();
  for (const e of walkTree(root)) known.add(e.rec.ino, e.rec.birth, e.rec.ctimeNs);
  const stale = parent.map((r) => ({ ...r, ctimeNs: r.ctimeNs - 1n, xattrs: [] as Array<[Buffer, Buffer]>, target: r.target && Buffer.from('stale') }));

  const walked = walkTree(root, { known });
  expect(walked.filter((e) => isUnread(e.rec)).length).toBe(walked.length - 1); // all but the root (walked on its own)
  const got = resolve(walked, stale);
  const want = resolve(walkTree(root), stale);
  expect(got.map((r) => ({ ...r, atimeNs: 0n }))).toEqual(want.map((r) => ({ ...r, atimeNs: 0n })));
  const one = got.find((r) => r.type === 'file' && r.nlink === 2)!;
  if (xattrs) expect(one.xattrs.map(([k, v]) => `${k}=${v}`)).toEqual(['user.k=v']);
  expect(got.filter((r) => r.type === 'symlink').map((r) => r.target!.toString()).sort()).toEqual(['../one', '/nowhere/at/all']);
});
