/**
 * `ferry diff` from passes over the indexes (src/diff/changes.ts diffScans):
 * the records are read twice per side and never held.
 *
 *  - Scenarios built from literal records (renames, hard links, directory
 *    moves, reused inode numbers, a root with another ino, every attribute,
 *    a deep tree): the streaming result is the expected change list, written
 *    out by hand, and the array wrapper and the implementation this replaced
 *    (a frozen copy below) give the same list.
 *  - Random trees, with corrupt ones among them: the streaming result equals
 *    the replaced implementation's, errors included.
 *  - 20,000 records through real index files: two passes per side, the
 *    second pass reads both sides in step, and the list is the one built by
 *    construction.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { attributeChanges, Change, diffIndexes, diffScans, escapePath, sortChanges, TYPE_CHAR } from '../../../src/diff/changes';
import { openIndex, writeIndex } from '../../../src/diff/index-file';
import { FerryError } from '../../../src/errors';
import { InodeRecord, InodeType } from '../../../src/model/inode';

// ---------------------------------------------------------------------------
// The implementation before diff read in passes (whole arrays, a map of every
// record), frozen as the oracle for random and corrupt inputs.

const SLASH = Buffer.from('/');
const MAX_DEPTH = 4096;
const oldCorrupt = (why: string, ino: bigint) => new FerryError('DIFF_INDEX_CORRUPT', `snapshot index is inconsistent: ${why}`, { context: { ino } });
const idKey = (r: InodeRecord) => `${r.ino}:${r.birth}:${r.type}`;
const joinPath = (dir: Buffer, name: Buffer) => (dir.length === 1 ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]));

class OldSide {
  readonly byIno = new Map<bigint, InodeRecord>();
  readonly root: InodeRecord;
  private readonly dirPaths = new Map<bigint, Buffer>();
  constructor(records: InodeRecord[], what: string) {
    let root: InodeRecord | undefined;
    let last = -1n;
    for (const r of records) {
      if (r.ino <= last) throw oldCorrupt(`${what} index is not sorted by inode`, r.ino);
      last = r.ino;
      this.byIno.set(r.ino, r);
      if (r.type === 'dir' && r.links.length === 0) {
        if (root) throw oldCorrupt(`${what} index has two roots`, r.ino);
        root = r;
      }
    }
    if (!root) throw oldCorrupt(`${what} index has no root directory`, -1n);
    this.root = root;
    this.dirPaths.set(root.ino, SLASH);
  }
  dirPath(ino: bigint, depth = 0): Buffer | undefined {
    const known = this.dirPaths.get(ino);
    if (known) return known;
    const r = this.byIno.get(ino);
    if (!r || r.type !== 'dir' || r.links.length === 0 || depth > MAX_DEPTH) return undefined;
    const parent = this.dirPath(r.links[0].parent, depth + 1);
    if (parent === undefined) return undefined;
    const p = joinPath(parent, r.links[0].name);
    this.dirPaths.set(ino, p);
    return p;
  }
  parentId(parent: bigint): string {
    if (parent === this.root.ino) return 'root';
    const r = this.byIno.get(parent);
    return r ? idKey(r) : '';
  }
  linkPath(parent: bigint, name: Buffer): Buffer | undefined {
    const p = this.dirPath(parent);
    return p === undefined ? undefined : joinPath(p, name);
  }
  paths(r: InodeRecord): Buffer[] {
    if (r === this.root) return [SLASH];
    const out: Buffer[] = [];
    for (const l of r.links) {
      const p = this.linkPath(l.parent, l.name);
      if (p) out.push(p);
    }
    return out.sort(Buffer.compare);
  }
  reachable(r: InodeRecord): boolean {
    return r === this.root || r.links.length > 0;
  }
}

function oldDiffIndexes(aRecords: InodeRecord[], bRecords: InodeRecord[]): Change[] {
  const A = new OldSide(aRecords, 'first');
  const B = new OldSide(bRecords, 'second');
  const out: Change[] = [];
  const removed = (r: InodeRecord) => {
    if (!A.reachable(r)) return;
    for (const p of A.paths(r)) out.push({ op: '-', type: r.type, path: p });
  };
  const added = (r: InodeRecord) => {
    if (!B.reachable(r)) return;
    for (const p of B.paths(r)) out.push({ op: '+', type: r.type, path: p });
  };
  const both = (o: InodeRecord, n: InodeRecord) => {
    const isRoot = o === A.root && n === B.root;
    if (!isRoot) {
      const key = (parentId: string, name: Buffer) => `${parentId}/${name.toString('latin1')}`;
      const oldKeys = new Map(o.links.map((l) => [key(A.parentId(l.parent), l.name), l]));
      const newKeys = new Map(n.links.map((l) => [key(B.parentId(l.parent), l.name), l]));
      const gone = [...oldKeys].filter(([k]) => !newKeys.has(k)).map(([, l]) => A.linkPath(l.parent, l.name));
      const came = [...newKeys].filter(([k]) => !oldKeys.has(k)).map(([, l]) => B.linkPath(l.parent, l.name));
      const g = gone.filter((p): p is Buffer => p !== undefined).sort(Buffer.compare);
      const c = came.filter((p): p is Buffer => p !== undefined).sort(Buffer.compare);
      const pairs = Math.min(g.length, c.length);
      for (let i = 0; i < pairs; i++) out.push({ op: 'R', type: n.type, path: c[i], from: g[i] });
      for (let i = pairs; i < g.length; i++) out.push({ op: '-', type: o.type, path: g[i] });
      for (let i = pairs; i < c.length; i++) out.push({ op: '+', type: n.type, path: c[i] });
    }
    const what = attributeChanges(o, n);
    if (what.length) {
      const paths = B.paths(n);
      if (paths.length) {
        const ch: Change = { op: 'M', type: n.type, path: paths[0], what };
        if (paths.length > 1) ch.also = paths.slice(1);
        out.push(ch);
      }
    }
  };
  both(A.root, B.root);
  const aRest = aRecords.filter((r) => r !== A.root);
  const bRest = bRecords.filter((r) => r !== B.root);
  let i = 0;
  let j = 0;
  while (i < aRest.length || j < bRest.length) {
    const o = aRest[i];
    const n = bRest[j];
    if (o && (!n || o.ino < n.ino)) {
      removed(o);
      i++;
    } else if (n && (!o || n.ino < o.ino)) {
      added(n);
      j++;
    } else {
      i++;
      j++;
      const live = A.reachable(o) && B.reachable(n);
      if (live && o.birth === n.birth && o.type === n.type) both(o, n);
      else {
        removed(o);
        added(n);
      }
    }
  }
  return sortChanges(out);
}

// ---------------------------------------------------------------------------
// Literal records.

type L = [parent: number, name: string];

/** A record: `links` as [parent ino, name]; everything else fixed unless given. */
function r(ino: number, type: InodeType, links: L[], extra: Partial<InodeRecord> = {}): InodeRecord {
  const rec: InodeRecord = {
    ino: BigInt(ino),
    birth: 1n,
    type,
    mode: type === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: 0n,
    rdev: 0n,
    atimeNs: 0n,
    mtimeNs: 0n,
    ctimeNs: 0n,
    nlink: links.length,
    xattrs: [],
    links: links.map(([p, n]) => ({ parent: BigInt(p), name: Buffer.from(n, 'latin1') })),
    generation: 1n,
  };
  if (type === 'file') rec.extents = [];
  return { ...rec, ...extra };
}

/** File content as one block whose hash is `h` repeated. */
const content = (h: number, size = 100): Partial<InodeRecord> => ({
  size: BigInt(size),
  extents: [{ offset: 0n, length: size, generation: 1n, hash: Buffer.alloc(16, h) }],
});

const sorted = (recs: InodeRecord[]) => [...recs].sort((x, y) => (x.ino < y.ino ? -1 : x.ino > y.ino ? 1 : 0));

function show(changes: Change[]): string[] {
  return changes.map((c) => {
    let line = `${c.op} ${TYPE_CHAR[c.type]} ${c.op === 'R' ? `${escapePath(c.from!)} -> ${escapePath(c.path)}` : escapePath(c.path)}`;
    if (c.what) line += ` ${c.what.join(',')}`;
    return line;
  });
}

/** A scan function over an array that counts its passes. */
function counted(recs: InodeRecord[]): { scan: () => Iterable<InodeRecord>; passes: () => number } {
  let n = 0;
  return {
    scan: () => {
      n++;
      return recs;
    },
    passes: () => n,
  };
}

/** The streaming result, checked against the array wrapper and the replaced implementation. */
function diffChecked(a: InodeRecord[], b: InodeRecord[]): Change[] {
  const sa = counted(a);
  const sb = counted(b);
  const got = diffScans(sa.scan, sb.scan);
  expect([sa.passes(), sb.passes()]).toEqual([2, 2]);
  expect(diffIndexes(a, b)).toEqual(got);
  expect(oldDiffIndexes(a, b)).toEqual(got);
  return got;
}

const ROOT = 2;

test('renames: in place, into another directory, and hard-link names paired by path', () => {
  const a = sorted([
    r(ROOT, 'dir', []),
    r(10, 'dir', [[ROOT, 'docs']]),
    r(11, 'file', [[10, 'a.txt']]),
    r(12, 'dir', [[10, 'sub']]),
    r(13, 'file', [[ROOT, 'x']]),
    r(14, 'file', [[12, 'y']]),
    r(15, 'file', [[ROOT, 'h1'], [ROOT, 'h2'], [ROOT, 'h3']]),
  ]);
  const b = sorted([
    r(ROOT, 'dir', []),
    r(10, 'dir', [[ROOT, 'docs']]),
    r(11, 'file', [[10, 'A.txt']]),
    r(12, 'dir', [[10, 'sub']]),
    r(13, 'file', [[12, 'x']]),
    r(14, 'file', [[12, 'y']]),
    r(15, 'file', [[ROOT, 'h1'], [ROOT, 'z2'], [10, 'a3']]),
  ]);
  expect(show(diffChecked(a, b))).toEqual([
    'R F /docs/a.txt -> /docs/A.txt',
    'R F /h2 -> /docs/a3', // gone names sorted, arrived names sorted, paired in order
    'R F /h3 -> /z2',
    'R F /x -> /docs/sub/x',
  ]);
  expect(show(diffChecked(b, a))).toEqual(['R F /docs/A.txt -> /docs/a.txt', 'R F /docs/a3 -> /h2', 'R F /docs/sub/x -> /x', 'R F /z2 -> /h3']);
});

test('hard links added and removed, inodes with several names born and gone, M with its other names', () => {
  const a = sorted([
    r(ROOT, 'dir', []),
    r(20, 'file', [[ROOT, 'one'], [ROOT, 'one-b']]),
    r(21, 'file', [[ROOT, 'two']]),
    r(22, 'file', [[ROOT, 'dead'], [ROOT, 'dead-b']]),
    r(23, 'file', [[ROOT, 'three'], [ROOT, 'three-b']], content(1)),
  ]);
  const b = sorted([
    r(ROOT, 'dir', []),
    r(20, 'file', [[ROOT, 'one']]),
    r(21, 'file', [[ROOT, 'two'], [ROOT, 'two-b']]),
    r(23, 'file', [[ROOT, 'three-b'], [ROOT, 'three']], content(2)),
    r(24, 'file', [[ROOT, 'fresh'], [ROOT, 'fresh-b']]),
  ]);
  const got = diffChecked(a, b);
  expect(show(got)).toEqual(['- F /dead', '- F /dead-b', '+ F /fresh', '+ F /fresh-b', '- F /one-b', 'M F /three content', '+ F /two-b']);
  expect(got.find((c) => c.op === 'M')!.also!.map(String)).toEqual(['/three-b']);
});

test('directory moves are one line; a removed tree lists everything in it; new directories and their entries', () => {
  const a = sorted([
    r(ROOT, 'dir', []),
    r(30, 'dir', [[ROOT, 'tree']]),
    r(31, 'dir', [[30, 'sub']]),
    r(32, 'file', [[31, 'leaf']], content(1)),
    r(33, 'dir', [[ROOT, 'new']]),
    r(36, 'dir', [[ROOT, 'gone']]),
    r(37, 'file', [[36, 'g']]),
  ]);
  const b = sorted([
    r(ROOT, 'dir', []),
    r(30, 'dir', [[33, 'tree']]),
    r(31, 'dir', [[30, 'sub']]),
    r(32, 'file', [[31, 'leaf']], content(2)),
    r(33, 'dir', [[ROOT, 'new']]),
    r(34, 'dir', [[33, 'deeper']]),
    r(35, 'file', [[34, 'in']]),
  ]);
  expect(show(diffChecked(a, b))).toEqual([
    '- / /gone',
    '- F /gone/g',
    '+ / /new/deeper',
    '+ F /new/deeper/in',
    'M F /new/tree/sub/leaf content',
    'R / /tree -> /new/tree',
  ]);
});

test('a reused inode number (other birth, other type) is - and +; a name on one side only of an unreachable record', () => {
  const a = sorted([
    r(ROOT, 'dir', []),
    r(40, 'file', [[ROOT, 'a']]),
    r(41, 'file', [[ROOT, 'b']]),
    r(42, 'dir', [[ROOT, 'c']]),
    r(43, 'file', [[42, 'in']]),
    r(44, 'file', [[ROOT, 'u']]),
  ]);
  const b = sorted([
    r(ROOT, 'dir', []),
    r(40, 'file', [[ROOT, 'a']], { birth: 2n }),
    r(41, 'symlink', [[ROOT, 'b']], { target: Buffer.from('x') }),
    r(42, 'file', [[ROOT, 'c2']]),
    r(44, 'file', []), // no name: not reachable, so only its old name is listed
  ]);
  expect(show(diffChecked(a, b))).toEqual(['- F /a', '+ F /a', '- F /b', '+ @ /b', '- / /c', '- F /c/in', '+ F /c2', '- F /u']);
});

test('the roots pair by role whatever their inode; their numbers are other inodes on the other side', () => {
  const a = sorted([
    r(ROOT, 'dir', [], { mtimeNs: 5n }),
    r(3, 'file', [[ROOT, 'three']]),
    r(50, 'file', [[ROOT, 'f']]),
    r(51, 'dir', [[ROOT, 'd']]),
    r(52, 'file', [[51, 'e']]),
  ]);
  const b = sorted([
    r(ROOT, 'file', [[3, 'two']]),
    r(3, 'dir', [], { mtimeNs: 6n }),
    r(50, 'file', [[3, 'f']]),
    r(51, 'dir', [[3, 'd']]),
    r(52, 'file', [[51, 'e']]),
  ]);
  expect(show(diffChecked(a, b))).toEqual(['M / / mtime', '- F /three', '+ F /two']);
});

test('every attribute: content (blocks, size, symlink target, device), mode, owner, xattr, mtime; not atime, ctime, nlink', () => {
  const a = sorted([
    r(ROOT, 'dir', []),
    r(60, 'file', [[ROOT, 'content']], content(1)),
    r(61, 'file', [[ROOT, 'mode']]),
    r(62, 'file', [[ROOT, 'owner']]),
    r(63, 'file', [[ROOT, 'xattr']]),
    r(64, 'file', [[ROOT, 'mtime']]),
    r(65, 'symlink', [[ROOT, 'sl']], { target: Buffer.from('t1') }),
    r(66, 'chr', [[ROOT, 'dev']], { rdev: 1n }),
    r(67, 'file', [[ROOT, 'all']], content(1)),
    r(68, 'file', [[ROOT, 'same']]),
    r(69, 'file', [[ROOT, 'nohash']], { extents: undefined, size: 3n, mtimeNs: 1n }),
    r(70, 'file', [[ROOT, 'size']], content(1, 100)),
  ]);
  const b = sorted([
    r(ROOT, 'dir', []),
    r(60, 'file', [[ROOT, 'content']], content(2)),
    r(61, 'file', [[ROOT, 'mode']], { mode: 0o600 }),
    r(62, 'file', [[ROOT, 'owner']], { gid: 5 }),
    r(63, 'file', [[ROOT, 'xattr']], { xattrs: [[Buffer.from('user.k'), Buffer.from('v')]] }),
    r(64, 'file', [[ROOT, 'mtime']], { mtimeNs: 9n }),
    r(65, 'symlink', [[ROOT, 'sl']], { target: Buffer.from('t2') }),
    r(66, 'chr', [[ROOT, 'dev']], { rdev: 2n }),
    r(67, 'file', [[ROOT, 'all']], { ...content(2), mode: 0o600, uid: 7, xattrs: [[Buffer.from('user.k'), Buffer.from('v')]], mtimeNs: 3n }),
    r(68, 'file', [[ROOT, 'same']], { atimeNs: 4n, ctimeNs: 4n, nlink: 9, generation: 8n }),
    r(69, 'file', [[ROOT, 'nohash']], { extents: undefined, size: 3n, mtimeNs: 2n }),
    r(70, 'file', [[ROOT, 'size']], content(1, 101)),
  ]);
  expect(show(diffChecked(a, b))).toEqual([
    'M F /all content,mode,owner,xattr,mtime',
    'M F /content content',
    'M C /dev content',
    'M F /mode mode',
    'M F /mtime mtime',
    'M F /nohash content,mtime',
    'M F /owner owner',
    'M F /size content',
    'M @ /sl content',
    'M F /xattr xattr',
  ]);
});

test('a deep tree: a directory moved halfway down, a change and an addition at the bottom', () => {
  const depth = 200;
  const chain = (parentOf: (i: number) => L) => Array.from({ length: depth }, (_, i) => r(100 + i, 'dir', [parentOf(i)]));
  const down = (i: number): L => [i === 0 ? ROOT : 100 + i - 1, 'd'];
  const a = sorted([r(ROOT, 'dir', []), ...chain(down), r(1000, 'file', [[100 + depth - 1, 'leaf']], content(1))]);
  const b = sorted([
    r(ROOT, 'dir', []),
    ...chain((i) => (i === 100 ? [199, 'moved'] : down(i))),
    r(1000, 'file', [[100 + depth - 1, 'leaf']], content(2)),
    r(1001, 'file', [[100 + depth - 1, 'new']]),
  ]);
  const d = (n: number) => '/d'.repeat(n);
  expect(show(diffChecked(a, b))).toEqual([
    `R / ${d(101)} -> ${d(100)}/moved`,
    `M F ${d(100)}/moved${d(99)}/leaf content`,
    `+ F ${d(100)}/moved${d(99)}/new`,
  ]);
});

test('deeper than paths are spelled (4096 levels): the same as before, whatever order paths are asked for in', () => {
  const depth = 5000;
  const dirs = (name: (i: number) => string) => Array.from({ length: depth }, (_, i) => r(100 + i, 'dir', [[i === 0 ? ROOT : 99 + i, name(i)]]));
  const files = (at: number[], h: number) => at.map((i, k) => r(10_000 + k, 'file', [[100 + i, 'f']], content(h)));
  const at = [4999, 10, 4500, 4096, 4095, 3000];
  const a = sorted([r(ROOT, 'dir', []), ...dirs(() => 'd'), ...files(at, 1)]);
  const b = sorted([r(ROOT, 'dir', []), ...dirs((i) => (i === 50 ? 'e' : 'd')), ...files(at, 2)]);
  const got = diffChecked(a, b);
  expect(got.length).toBeGreaterThan(1);
});

test('corrupt input is refused the same way as before, and a scan that changes between passes too', () => {
  const ok = sorted([r(ROOT, 'dir', []), r(5, 'file', [[ROOT, 'f']])]);
  const cases: Array<[InodeRecord[], InodeRecord[]]> = [
    [ok, [...ok].reverse()],
    [[...ok].reverse(), ok],
    [ok, ok.filter((x) => x.links.length > 0)],
    [[...ok, r(9, 'dir', [])], ok],
  ];
  for (const [a, b] of cases) {
    const err = (() => {
      try {
        oldDiffIndexes(a, b);
      } catch (e) {
        return e as FerryError;
      }
      throw new Error('the old implementation accepted it');
    })();
    expect(() => diffScans(() => a, () => b)).toThrow(expect.objectContaining({ code: 'DIFF_INDEX_CORRUPT', message: err.message }));
  }
  let pass = 0;
  const shrinking = () => (++pass === 1 ? ok : ok.slice(0, 1));
  expect(() => diffScans(() => ok, shrinking)).toThrow(expect.objectContaining({ code: 'DIFF_INDEX_CORRUPT', message: expect.stringMatching(/changed between passes/) }));
});

// ---------------------------------------------------------------------------
// Random trees, corrupt ones included, against the replaced implementation.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['a', 'b', 'c', 'a b', '\xff', 'zz'];
const TYPES: InodeType[] = ['file', 'file', 'file', 'dir', 'symlink', 'chr'];

function randomPair(seed: number): [InodeRecord[], InodeRecord[]] {
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  const chance = (p: number) => rand() < p;
  const inos = new Set<number>();
  const freshIno = () => {
    for (;;) {
      const i = 1 + int(60);
      if (!inos.has(i)) {
        inos.add(i);
        return i;
      }
    }
  };
  const rootIno = freshIno();
  const a: InodeRecord[] = [r(rootIno, 'dir', [], { mtimeNs: BigInt(int(2)) })];
  const dirs = [rootIno];
  const nDirs = int(10);
  for (let i = 0; i < nDirs; i++) {
    const ino = freshIno();
    a.push(r(ino, 'dir', [[pick(dirs), pick(NAMES)]], { mtimeNs: BigInt(int(2)) }));
    dirs.push(ino);
  }
  const nOther = int(20);
  for (let i = 0; i < nOther; i++) {
    const type = pick(TYPES.filter((t) => t !== 'dir'));
    const links: L[] = Array.from({ length: 1 + int(3) }, () => [pick(dirs), pick(NAMES)]);
    a.push(r(freshIno(), type, links, { ...(type === 'file' ? content(1 + int(2)) : {}), ...(type === 'symlink' ? { target: Buffer.from(pick(NAMES)) } : {}), rdev: BigInt(int(2)) }));
  }
  // Corruption now and then: a parent that is a file or nothing, a directory cycle, a nameless record.
  if (chance(0.15)) pick(a).links.push({ parent: BigInt(1 + int(70)), name: Buffer.from(pick(NAMES)) });
  if (chance(0.1) && dirs.length > 2) {
    const d = a.find((x) => x.ino === BigInt(dirs[dirs.length - 1]))!;
    const top = a.find((x) => x.ino === BigInt(dirs[1]))!;
    top.links[0] = { parent: d.ino, name: top.links[0].name };
  }
  if (chance(0.05)) a.push(r(freshIno(), 'dir', []));

  const copy = (x: InodeRecord): InodeRecord => ({ ...x, links: x.links.map((l) => ({ ...l })), xattrs: [...x.xattrs] });
  let b = a.map(copy);
  const mutations = int(8);
  for (let m = 0; m < mutations && b.length > 1; m++) {
    const x = pick(b.filter((y) => y.ino !== BigInt(rootIno)));
    switch (int(12)) {
      case 0: // rename a name
        if (x.links.length) pick(x.links).name = Buffer.from(pick(NAMES));
        break;
      case 1: // move a name
        if (x.links.length) pick(x.links).parent = BigInt(pick(dirs));
        break;
      case 2: // another name
        x.links.push({ parent: BigInt(pick(dirs)), name: Buffer.from(pick(NAMES)) });
        break;
      case 3: // a name removed (maybe the last)
        x.links.splice(int(x.links.length), 1);
        break;
      case 4: // the number reused
        x.birth += 1n;
        break;
      case 5:
        x.type = pick(TYPES);
        break;
      case 6:
        Object.assign(x, pick([{ mode: 0o600 }, { uid: 3 }, { mtimeNs: 7n }, { xattrs: [[Buffer.from('user.k'), Buffer.from('v')]] }, content(3), { rdev: 5n }]));
        break;
      case 7: // removed
        b = b.filter((y) => y !== x);
        break;
      case 8: {
        const ino = freshIno();
        b.push(r(ino, pick(TYPES), [[pick(dirs), pick(NAMES)]]));
        if (b[b.length - 1].type === 'dir') dirs.push(ino);
        break;
      }
      case 9: {
        // the root gets another inode: its entries follow it
        const old = b.find((y) => y.ino === BigInt(rootIno));
        if (!old) break;
        const ino = BigInt(freshIno());
        old.ino = ino;
        for (const y of b) for (const l of y.links) if (l.parent === BigInt(rootIno)) l.parent = ino;
        break;
      }
      case 10: // links in another order
        x.links.reverse();
        break;
      default: // a directory moved
        {
          const d = b.filter((y) => y.type === 'dir' && y.links.length);
          if (d.length) pick(d).links[0].parent = BigInt(pick(dirs));
        }
        break;
    }
  }
  return [sorted(a), sorted(b)];
}

test('random trees (corrupt ones among them): the same changes, or the same error, as before', () => {
  let compared = 0;
  let refused = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const [a, b] = randomPair(seed);
    const both: Array<[InodeRecord[], InodeRecord[]]> = [[a, b], [b, a]];
    for (const [x, y] of both) {
      let want: Change[] | Error;
      try {
        want = oldDiffIndexes(x, y);
      } catch (e) {
        want = e as Error;
      }
      if (want instanceof Error) {
        refused++;
        expect(() => diffScans(() => x, () => y)).toThrow(want.message);
      } else {
        compared++;
        const got = diffScans(() => x, () => y);
        if (show(got).join('\n') !== show(want).join('\n')) {
          throw new Error(`seed ${seed}: ${JSON.stringify(show(want))} != ${JSON.stringify(show(got))}`);
        }
        expect(got).toEqual(want);
      }
    }
  }
  expect(compared).toBeGreaterThan(5000);
  expect(refused).toBeGreaterThan(10);
});

// ---------------------------------------------------------------------------
// Passes over real index files.

describe('20,000 records in index files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-diff-passes-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const DIRS = 200;
  const FILES = 19_799; // + DIRS + the root = 20,000
  const fileIno = (k: number) => 1000 + k;
  const dirOf = (k: number) => k % DIRS;

  /** Side A, or side B with its changes: made afresh on every pass, as a decoder does. */
  function* side(changed: boolean): Generator<InodeRecord> {
    yield r(1, 'dir', []);
    for (let i = 0; i < DIRS; i++) yield r(10 + i, 'dir', [changed && i === 7 ? [10 + 8, 'd7'] : [1, `d${i}`]]);
    for (let k = 0; k < FILES; k++) {
      if (changed && k % 1500 === 0) continue; // removed
      const name = changed && k % 1000 === 1 ? `r${k}` : `f${k}`;
      yield r(fileIno(k), 'file', [[10 + dirOf(k), name]], content(changed && k % 97 === 3 ? 2 : 1));
    }
    if (changed) for (let k = 0; k < 50; k++) yield r(fileIno(FILES) + k, 'file', [[10 + k, `new${k}`]]);
  }

  /** The change list, by construction. */
  function expected(): string[] {
    const at = (i: number, moved: boolean) => (moved && i === 7 ? '/d8/d7' : `/d${i}`);
    const lines: Array<[string, number, string]> = [['/d7', 1, 'R / /d7 -> /d8/d7']];
    for (let k = 0; k < FILES; k++) {
      const [was, now] = [`${at(dirOf(k), false)}/f${k}`, `${at(dirOf(k), true)}/${k % 1000 === 1 ? `r${k}` : `f${k}`}`];
      if (k % 1500 === 0) lines.push([was, 0, `- F ${was}`]);
      else {
        if (k % 1000 === 1) lines.push([was, 1, `R F ${was} -> ${now}`]);
        if (k % 97 === 3) lines.push([now, 3, `M F ${now} content`]);
      }
    }
    for (let k = 0; k < 50; k++) lines.push([`${at(k, true)}/new${k}`, 2, `+ F ${at(k, true)}/new${k}`]);
    return lines.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1])).map((l) => l[2]);
  }

  test('two passes over each index, both sides read in step, the list as built', async () => {
    const header = { uuid: '11111111-2222-3333-4444-555555555555', transid: '1', parentUuid: null };
    await writeIndex(path.join(dir, 'a'), header, side(false));
    await writeIndex(path.join(dir, 'b'), header, side(true));
    const fa = await openIndex(path.join(dir, 'a'));
    const fb = await openIndex(path.join(dir, 'b'));
    try {
      let [passesA, passesB] = [0, 0];
      const got = diffScans(
        () => (passesA++, fa.scan()),
        () => (passesB++, fb.scan()),
      );
      expect([passesA, passesB]).toEqual([2, 2]);
      const want = expected();
      expect(want.length).toBeGreaterThan(200);
      expect(show(got)).toEqual(want);
    } finally {
      await fa.close();
      await fb.close();
    }
  });

  test('the join pass holds no side: each record is taken when the other side reaches its ino', () => {
    let [seenA, seenB, pass] = [0, 0, 0];
    let lag = 0;
    const watch = (gen: () => Generator<InodeRecord>, count: (n: number) => void) =>
      function* () {
        pass++;
        let n = 0;
        for (const x of gen()) {
          count(++n);
          lag = Math.max(lag, pass === 4 ? Math.abs(seenA - seenB) : 0); // both sides in the join pass
          yield x;
        }
      };
    const got = diffScans(
      watch(() => side(false), (n) => (seenA = n)),
      watch(() => side(true), (n) => (seenB = n)),
    );
    expect(pass).toBe(4);
    expect(seenA).toBe(1 + DIRS + FILES);
    // The sides drift apart only by what one has and the other lacks: the
    // 14 files removed from B and the 50 it adds at the end.
    expect(lag).toBeLessThanOrEqual(Math.ceil(FILES / 1500) + 50);
    expect(show(got)).toEqual(expected());
  });
});
