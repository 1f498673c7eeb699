/**
 * Planning from passes over an index instead of the whole of it.
 *
 * Full sends: planFull takes `records` as a function that starts a fresh
 * pass, keeps only the directories between passes, and finds the root
 * itself when not told.
 *
 * Incremental sends: an incremental plan made from only the records
 * selectIncremental keeps is byte-identical to the plan from the whole
 * indexes, and it keeps little when little changed. (Every planner scenario
 * also checks the equality.)
 *
 * Checked by receiving the streams and comparing with the tree.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planFull, planIncremental, PlanSnapshot } from '../../../src/diff/planner';
import { selectIncremental, Selection } from '../../../src/diff/select';
import { Command } from '../../../src/model/command';
import { InodeRecord } from '../../../src/model/inode';
import { StreamEncoder } from '../../../src/stream/encoder';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { capture, dirSource } from '../../helpers/records';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

let work: string;
let live: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-plan-passes-'));
  live = path.join(work, 'live');
  fs.mkdirSync(live);
});
afterEach(() => rmTree(work));

function sh(script: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: live, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed (${r.status}): ${script}\n${r.stderr}`);
}

function encode(cmds: Iterable<Command>): Buffer {
  const enc = new StreamEncoder(2);
  const parts = [enc.header()];
  for (const c of cmds) parts.push(...enc.encodeParts(c));
  return Buffer.concat(parts);
}

const BIG_TREE = 'for d in $(seq 1 10); do mkdir -p t$d/u; for f in $(seq 1 30); do echo $d-$f > t$d/u/f$f; done; done';

interface Planned {
  P: PlanSnapshot;
  C: PlanSnapshot;
  sel: Selection;
  whole: Buffer;
  selected: Buffer;
  full: Buffer;
}

/** Capture the parent, change, capture the child, and plan both ways. */
function plan(parentScript: string, childScript: string): Planned {
  sh(parentScript);
  const P = capture(live, { uuid: randomBytes(16), transid: 10n });
  const opts = { version: 2, name: Buffer.from('c') } as const;
  const full = encode(planFull(P, dirSource(live), { version: 2, name: Buffer.from('p') }));
  sh(childScript);
  const C = capture(live, { uuid: randomBytes(16), transid: 11n, parent: P });
  const sel = selectIncremental({ scan: () => P.records, rootIno: P.rootIno }, { scan: () => C.records, rootIno: C.rootIno }, { since: P.ctransid });
  const whole = encode(planIncremental(P, C, dirSource(live), opts));
  const selected = encode(planIncremental({ ...P, records: sel.parent, rootNames: sel.rootNames }, { ...C, records: sel.snap, rootNames: sel.rootNames }, dirSource(live), opts));
  return { P, C, sel, whole, selected, full };
}

/** Receive one stream into work/target and return the new snapshot's path. */
function receive(stream: Buffer, name: string): string {
  const file = path.join(work, `${name}.stream`);
  fs.writeFileSync(file, stream);
  const target = path.join(work, 'target');
  const r = ferry(['receive', target, '-f', file]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return path.join(target, name);
}

/** Receive the full and the selected incremental stream, and compare the result with the live tree. */
function expectReceived(p: Planned): void {
  receive(p.full, 'p');
  expect(compareTrees(live, receive(p.selected, 'c'))).toEqual([]);
}

const names = (recs: PlanSnapshot['records']) => recs.map((r) => (r.links[0]?.name.toString() ?? '/')).sort();

test('one file changed in a tree of 300: only it, its directories and the roots are kept; same stream', () => {
  const p = plan(BIG_TREE, 'echo more >> t3/u/f7');
  expect(names(p.sel.snap)).toEqual(['/', 'f7', 't3', 'u']);
  expect(names(p.sel.parent)).toEqual(['/', 'f7', 't3', 'u']);
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('a renamed file: only it and the directories up to both roots are kept, not its unchanged neighbours', () => {
  const p = plan(BIG_TREE, 'mv t3/u/f7 t5/u/g7');
  expect(names(p.sel.snap)).toEqual(['/', 'g7', 't3', 't5', 'u', 'u']);
  expect(names(p.sel.parent)).toEqual(['/', 'f7', 't3', 't5', 'u', 'u']);
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('names swapped, replaced and moved among unchanged neighbours: the neighbours are left out and the plan is the same', () => {
  const p = plan(
    `${BIG_TREE}; mkdir -p t2/u/sub; echo s > t2/u/sub/s`,
    'cd t3/u; mv f1 tmp; mv f2 f1; mv tmp f2; rm f3; echo new > f3; mv ../../t2/u/sub f4x; ln f5 ../../t4/u/f5b',
  );
  const kept = names(p.sel.snap);
  expect(kept).toEqual(expect.arrayContaining(['f1', 'f2', 'f3', 'f4x', 'f5']));
  expect(kept).not.toContain('f6'); // an unchanged neighbour in the same (changed) directory
  expect(kept).not.toContain('s'); // inside the moved directory, itself unchanged
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('an unchanged hard link in a changed directory, its other name in an unchanged one: neither is kept', () => {
  const p = plan(`${BIG_TREE}; mkdir -p far/away; echo h > far/away/h; ln far/away/h t2/u/h2`, 'echo x > t2/u/new');
  const kept = p.sel.snap.flatMap((r) => r.links.map((l) => l.name.toString()));
  expect(kept).toContain('new');
  expect(kept).not.toContain('h2');
  expect(kept).not.toContain('far');
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('an unchanged file in an unchanged directory is kept when it holds a block the stream clones', () => {
  const p = plan(`${BIG_TREE}; head -c 400000 /dev/urandom > t9/u/blob`, 'cp t9/u/blob t1/u/copy');
  expect(names(p.sel.parent)).toContain('blob');
  expect(p.selected.equals(p.whole)).toBe(true);
  expect(p.selected.length).toBeLessThan(100000); // cloned, not written
  expectReceived(p);
});

test('a directory both on the way to a change and above a clone source is kept once (the third pass adds no duplicate)', () => {
  // t4 changes (new entry), so t4 is kept in pass 2; the clone source
  // t4/deep/x/blob is found in pass 2 too, which puts t4/deep and x on pass
  // 3's list (t4 itself is left off it, being kept already).
  const p = plan(`${BIG_TREE}; mkdir -p t4/deep/x; head -c 400000 /dev/urandom > t4/deep/x/blob`, 'cp t4/deep/x/blob t4/copy');
  for (const side of [p.sel.parent, p.sel.snap]) {
    const inos = side.map((r) => r.ino);
    expect(new Set(inos).size).toBe(inos.length);
  }
  expect(names(p.sel.parent)).toEqual(expect.arrayContaining(['blob', 'deep', 'x']));
  expect(p.selected.equals(p.whole)).toBe(true);
  expect(p.selected.length).toBeLessThan(100000); // cloned, not written
  expectReceived(p);
});

test('an orphan name never takes the name of a root entry that was left out', () => {
  // The swap in d needs an orphan o<ino>-11-0 for one of the two files: the
  // parent's root already has entries with both candidate names (unchanged, so not kept).
  const p = plan(
    `${BIG_TREE}; mkdir d; echo x > d/x; echo y > d/y; echo a > o$(stat -c %i d/x)-11-0; echo b > o$(stat -c %i d/y)-11-0`,
    'mv d/x d/t; mv d/y d/x; mv d/t d/y',
  );
  expect(p.sel.rootNames.filter((n) => n.startsWith('o')).length).toBe(2);
  expect(names(p.sel.snap).filter((n) => n.startsWith('o'))).toEqual([]);
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

// ---------------------------------------------------------------------------
// Full sends

const TREE = [
  'mkdir -p a/b/c d e',
  'head -c 300000 /dev/urandom > a/b/c/big',
  'echo one > a/f; ln a/f d/hard; ln -s ../a/f e/sym',
  'for i in $(seq 1 40); do echo $i > d/n$i; done',
  'mkdir z; mv a z/a', // a directory whose ino is below its new parent's
].join('; ');

test('records as a pass function: two passes (three without rootIno), same bytes as an array, and the tree arrives whole', () => {
  sh(TREE);
  const S = capture(live, { uuid: randomBytes(16), transid: 4n });
  const opts = { version: 2, name: Buffer.from('s') } as const;
  const fromArray = encode(planFull(S, dirSource(live), opts));
  let passes = 0;
  const records = () => {
    passes++;
    return S.records.values();
  };
  const withRoot = encode(planFull({ uuid: S.uuid, ctransid: S.ctransid, rootIno: S.rootIno, records }, dirSource(live), opts));
  expect(passes).toBe(2);
  passes = 0;
  const noRoot = encode(planFull({ uuid: S.uuid, ctransid: S.ctransid, records }, dirSource(live), opts));
  expect(passes).toBe(3);
  expect(withRoot.equals(fromArray)).toBe(true);
  expect(noRoot.equals(fromArray)).toBe(true);
  const got = receive(noRoot, 's');
  expect(compareTrees(live, got)).toEqual([]);
  expect(treecmp(live, got).differences).toEqual([]);
});

/** The same snapshot with the root's inode number moved above every other (as after a rollback). */
function rootLast(S: PlanSnapshot): PlanSnapshot {
  const top = S.records.reduce((m, r) => (r.ino > m ? r.ino : m), 0n) + 1000n;
  const records: InodeRecord[] = S.records.map((r) => ({
    ...r,
    ino: r.ino === S.rootIno ? top : r.ino,
    links: r.links.map((l) => ({ ...l, parent: l.parent === S.rootIno ? top : l.parent })),
  }));
  records.sort((a, b) => (a.ino < b.ino ? -1 : 1));
  return { ...S, rootIno: top, records };
}

test('a root whose inode comes after every other: its metadata still goes first, and everything lands in place', () => {
  sh(TREE);
  const S = rootLast(capture(live, { uuid: randomBytes(16), transid: 4n }));
  const cmds = [...planFull({ ...S, rootIno: undefined, records: () => S.records }, dirSource(live), { version: 2, name: Buffer.from('s') })];
  // After SUBVOL: the root's own CHOWN/CHMOD (paths ""), before any name is made.
  const firstNamed = cmds.findIndex((c, i) => i > 0 && (c.attrs.path?.length ?? 0) > 0);
  expect(cmds.slice(1, firstNamed).map((c) => c.attrs.path?.toString())).toEqual(expect.arrayContaining(['']));
  const got = receive(encode(cmds), 's');
  expect(compareTrees(live, got)).toEqual([]);
});

test('an index with no root directory, or a root that is not a directory, is refused as corrupt', () => {
  sh('mkdir d; echo x > d/f');
  const S = capture(live, { uuid: randomBytes(16), transid: 4n });
  const noRoot = S.records.filter((r) => r.ino !== S.rootIno);
  expect(() => [...planFull({ ...S, rootIno: undefined, records: () => noRoot }, dirSource(live), { version: 2, name: Buffer.from('s') })]).toThrow(
    /no root directory/,
  );
  const fileIno = S.records.find((r) => r.type === 'file')!.ino;
  expect(() => [...planFull({ ...S, rootIno: fileIno, records: () => S.records }, dirSource(live), { version: 2, name: Buffer.from('s') })]).toThrow(
    /no root directory/,
  );
  const unsorted = [...S.records].reverse();
  expect(() => [...planFull({ ...S, records: () => unsorted }, dirSource(live), { version: 2, name: Buffer.from('s') })]).toThrow(/not sorted/);
});
