/**
 * `ferry diff`: what changed between two snapshot indexes, as a list of
 * paths in the manner of `zfs diff` (DESIGN.md "Command line").
 *
 * Owns: the rules that turn two index record sequences (sorted by ino)
 * into changes:
 *
 *  - Identity is the inode: same ino, birth and type on both sides (the rule
 *    src/diff/generations.ts uses). A reused inode number (other birth or
 *    type) is a removal plus an addition. The two roots are the same
 *    directory whatever their inode (a rollback gives the root a new one).
 *  - A name is a (parent directory, name) link. A surviving inode's names are
 *    compared link by link, the parent compared by identity too: a name that
 *    left and one that arrived are paired as a rename (R old -> new), sorted
 *    by path so the pairing is deterministic; unpaired ones are a link added
 *    (+) or removed (-). Moving a directory is one R line; what is inside it
 *    keeps its links and is not listed (as in zfs diff).
 *  - A new inode gives one + per name, a removed one one - per name (hard
 *    links: every name is listed).
 *  - A surviving inode whose attributes differ gives one M line at its (first)
 *    new path, saying what: content (file blocks or size; symlink target;
 *    device number), mode, owner, xattr, mtime. ctime, atime and link count
 *    alone are not reported (link changes show as + and -). A directory whose
 *    entries changed shows as M (mtime), as zfs diff does.
 *  - Output is sorted by the first path shown (bytewise), then - R + M.
 *
 * Never: touches the filesystem; reads file data (content is compared by the
 * indexes' block hashes). Pure: same inputs, same output.
 *
 * Paths are raw bytes relative to the volume root with a leading "/" (the
 * root itself is "/").
 *
 * Memory: the records are never held; each side is read in two passes (a
 * function that starts a fresh pass in ino order, as IndexFile.scan gives).
 * The first pass keeps the side's root record and, for every other
 * directory, its inode number, birth, and first name (parent ino and name
 * bytes): enough to spell any path. The second pass merge-joins both sides
 * on ino and looks at one pair of records at a time. Held besides: the paths
 * of the directories that changes were spelled under (cached as spelled) and
 * the changes themselves, which are sorted at the end: about 200 bytes per
 * directory of each side plus about 400 per change, whatever the file count.
 * The price is decoding each index twice.
 */
import { FerryError } from '../errors';
import { InodeRecord, InodeType } from '../model/inode';
import { mergeJoin } from './select';

export type ChangeOp = '+' | '-' | 'M' | 'R';
export type ChangeWhat = 'content' | 'mode' | 'owner' | 'xattr' | 'mtime';

export interface Change {
  op: ChangeOp;
  type: InodeType;
  /** The path in the newer side (+, M, R) or in the older side (-). */
  path: Buffer;
  /** R: the path in the older side. */
  from?: Buffer;
  /** M: what differs, in a fixed order. */
  what?: ChangeWhat[];
  /** M of a hard-linked inode: its other names in the newer side. */
  also?: Buffer[];
}

const SLASH = Buffer.from('/');
const OP_RANK: Record<ChangeOp, number> = { '-': 0, R: 1, '+': 2, M: 3 };
const MAX_DEPTH = 4096;

function corrupt(why: string, ino: bigint): FerryError {
  return new FerryError('DIFF_INDEX_CORRUPT', `snapshot index is inconsistent: ${why}`, { context: { ino } });
}

/** A directory as the second pass needs it: its identity and its first name. */
interface Dir {
  birth: bigint;
  parent: bigint;
  /** The name's bytes as a latin1 string (compact, and pins no shared buffer). */
  name: string;
}

/**
 * One side between passes: its root record and the first name of every
 * directory (the first pass), the directory paths spelled so far, and the
 * check that the second pass sees the records the first one did.
 */
class Side {
  readonly root: InodeRecord;
  private readonly dirs = new Map<bigint, Dir>();
  private readonly dirPaths = new Map<bigint, Buffer>();
  private readonly count: number;

  constructor(
    private readonly scan: () => Iterable<InodeRecord>,
    private readonly what: string,
  ) {
    let root: InodeRecord | undefined;
    let last = -1n;
    let count = 0;
    for (const r of scan()) {
      if (r.ino <= last) throw corrupt(`${what} index is not sorted by inode`, r.ino);
      last = r.ino;
      count++;
      if (r.type !== 'dir') continue;
      if (r.links.length === 0) {
        if (root) throw corrupt(`${what} index has two roots`, r.ino);
        root = r;
      } else {
        this.dirs.set(r.ino, { birth: r.birth, parent: r.links[0].parent, name: r.links[0].name.toString('latin1') });
      }
    }
    if (!root) throw corrupt(`${what} index has no root directory`, -1n);
    this.root = root;
    this.count = count;
    this.dirPaths.set(root.ino, SLASH);
  }

  /** A second pass: every record but the root, in ino order (checked against the first pass). */
  *rest(): Generator<InodeRecord> {
    let last = -1n;
    let count = 0;
    for (const r of this.scan()) {
      if (r.ino <= last) throw corrupt(`${this.what} index is not sorted by inode`, r.ino);
      last = r.ino;
      count++;
      if (r.ino !== this.root.ino) yield r;
    }
    if (count !== this.count) throw corrupt(`${this.what} index changed between passes (${this.count} records, then ${count})`, last);
  }

  /** Path of a directory ("/" for the root), or undefined when it hangs off nothing. */
  dirPath(ino: bigint, depth = 0): Buffer | undefined {
    const known = this.dirPaths.get(ino);
    if (known) return known;
    const d = this.dirs.get(ino);
    if (!d || depth > MAX_DEPTH) return undefined;
    const parent = this.dirPath(d.parent, depth + 1);
    if (parent === undefined) return undefined;
    const p = join(parent, Buffer.from(d.name, 'latin1'));
    this.dirPaths.set(ino, p);
    return p;
  }

  /**
   * Identity of a link's parent directory ("" when it is no directory: such a
   * link has no path on this side, so it is never listed whatever it pairs with).
   */
  parentId(parent: bigint): string {
    if (parent === this.root.ino) return 'root';
    const d = this.dirs.get(parent);
    return d ? `${parent}:${d.birth}:dir` : '';
  }

  linkPath(parent: bigint, name: Buffer): Buffer | undefined {
    const p = this.dirPath(parent);
    return p === undefined ? undefined : join(p, name);
  }

  /** Every path of an inode, sorted bytewise. */
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

function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]);
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}

function sameXattrs(a: InodeRecord, b: InodeRecord): boolean {
  if (a.xattrs.length !== b.xattrs.length) return false;
  return a.xattrs.every(([k, v], i) => k.equals(b.xattrs[i][0]) && v.equals(b.xattrs[i][1]));
}

function sameContent(a: InodeRecord, b: InodeRecord): boolean {
  switch (a.type) {
    case 'file': {
      if (a.size !== b.size) return false;
      const x = a.extents;
      const y = b.extents;
      // Without block hashes (never written by ferry) only the size and mtime can tell.
      if (!x || !y) return a.mtimeNs === b.mtimeNs;
      if (x.length !== y.length) return false;
      return x.every((e, i) => e.offset === y[i].offset && e.length === y[i].length && sameBytes(e.hash ?? undefined, y[i].hash ?? undefined));
    }
    case 'symlink':
      return sameBytes(a.target, b.target);
    case 'chr':
    case 'blk':
      return a.rdev === b.rdev;
    default:
      return true;
  }
}

/** What differs between two records of the same inode (empty when nothing reportable). */
export function attributeChanges(a: InodeRecord, b: InodeRecord): ChangeWhat[] {
  const what: ChangeWhat[] = [];
  if (!sameContent(a, b)) what.push('content');
  if (a.mode !== b.mode) what.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid) what.push('owner');
  if (!sameXattrs(a, b)) what.push('xattr');
  if (a.mtimeNs !== b.mtimeNs) what.push('mtime');
  return what;
}

/**
 * The changes from snapshot A (older, usually) to snapshot B, each side
 * given as a function that starts a fresh pass over its records, sorted by
 * ino, every time it is called (IndexFile.scan). Two passes over each side:
 * one for its directories, then one merge-join of both.
 */
export function diffScans(scanA: () => Iterable<InodeRecord>, scanB: () => Iterable<InodeRecord>): Change[] {
  const A = new Side(scanA, 'first');
  const B = new Side(scanB, 'second');
  const out: Change[] = [];
  const removed = (r: InodeRecord) => {
    if (!A.reachable(r)) return;
    for (const p of A.paths(r)) out.push({ op: '-', type: r.type, path: p });
  };
  const added = (r: InodeRecord) => {
    if (!B.reachable(r)) return;
    for (const p of B.paths(r)) out.push({ op: '+', type: r.type, path: p });
  };
  const both = (o: InodeRecord, n: InodeRecord, roots: boolean) => {
    if (!roots) {
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
  // The roots pair by role (a rolled-back volume's root is a new inode); the rest merge-join on ino.
  both(A.root, B.root, true);
  for (const [o, n] of mergeJoin(A.rest(), B.rest())) {
    if (!n) removed(o!);
    else if (!o) added(n);
    else if (A.reachable(o) && B.reachable(n) && o.birth === n.birth && o.type === n.type) both(o, n, false);
    else {
      removed(o);
      added(n);
    }
  }
  return sortChanges(out);
}

/** diffScans over two record arrays sorted by ino (tests, and callers that hold them anyway). */
export function diffIndexes(aRecords: InodeRecord[], bRecords: InodeRecord[]): Change[] {
  return diffScans(() => aRecords, () => bRecords);
}

/** Sort by the first path shown (R: the old one), then - R + M. */
export function sortChanges(changes: Change[]): Change[] {
  const first = (c: Change) => (c.op === 'R' ? c.from! : c.path);
  return changes.sort((x, y) => Buffer.compare(first(x), first(y)) || OP_RANK[x.op] - OP_RANK[y.op] || Buffer.compare(x.path, y.path));
}

// ---------------------------------------------------------------------------
// Presentation helpers shared by the text and JSON renderers (no I/O).

/** zfs diff -F type letters. */
export const TYPE_CHAR: Record<InodeType, string> = { file: 'F', dir: '/', symlink: '@', blk: 'B', chr: 'C', fifo: '|', sock: '=' };
export const OP_NAME: Record<ChangeOp, string> = { '+': 'added', '-': 'removed', M: 'modified', R: 'renamed' };

/**
 * A path as zfs diff prints it: bytes that are not printable (control
 * characters, DEL, invalid UTF-8), backslash, and space when `spaces` is set,
 * become `\0ooo` (four octal digits); valid UTF-8 text stays as it is.
 */
export function escapePath(p: Buffer, spaces = true): string {
  let out = '';
  let i = 0;
  const oct = (b: number) => '\\' + b.toString(8).padStart(4, '0');
  while (i < p.length) {
    const b = p[i];
    if (b < 0x80) {
      if (b < 0x20 || b === 0x7f || b === 0x5c || (spaces && b === 0x20)) out += oct(b);
      else out += String.fromCharCode(b);
      i++;
      continue;
    }
    // A valid UTF-8 sequence of 2-4 bytes is kept; anything else is escaped byte by byte.
    const len = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b <= 0xdf ? 2 : 0;
    const seq = len && i + len <= p.length ? p.subarray(i, i + len) : undefined;
    const text = seq?.toString('utf8');
    if (seq && text && !text.includes('\ufffd') && Buffer.from(text, 'utf8').equals(seq)) {
      out += text;
      i += len;
    } else {
      out += oct(b);
      i++;
    }
  }
  return out;
}
