/**
 * selectIncremental: an incremental plan made from only the records it keeps
 * is byte-identical to the plan from the whole indexes, and it keeps little
 * when little changed. (Every planner scenario also checks the equality.)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planFull, planIncremental, PlanSnapshot } from '../../../src/diff/planner';
import { selectIncremental, Selection } from '../../../src/diff/select';
import { Command } from '../../../src/model/command';
import { StreamEncoder } from '../../../src/stream/encoder';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { capture, dirSource } from '../../helpers/records';
import { compareTrees } from '../../helpers/tree-compare';

let work: string;
let live: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-select-'));
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

/** Receive the full and the selected incremental stream, and compare the result with the live tree. */
function expectReceived(p: Planned): void {
  const target = path.join(work, 'target');
  for (const [n, b] of [['p', p.full], ['c', p.selected]] as const) {
    fs.writeFileSync(path.join(work, n), b);
    const r = ferry(['receive', target, '-f', path.join(work, n)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
  expect(compareTrees(live, path.join(target, 'c'))).toEqual([]);
}

const names = (recs: PlanSnapshot['records']) => recs.map((r) => (r.links[0]?.name.toString() ?? '/')).sort();

test('one file changed in a tree of 300: only it, its directories and the roots are kept; same stream', () => {
  const p = plan(BIG_TREE, 'echo more >> t3/u/f7');
  expect(names(p.sel.snap)).toEqual(['/', 'f7', 't3', 'u']);
  expect(names(p.sel.parent)).toEqual(['/', 'f7', 't3', 'u']);
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('a renamed file keeps every entry of both directories it touched, and nothing else', () => {
  const p = plan(BIG_TREE, 'mv t3/u/f7 t5/u/g7');
  const kept = names(p.sel.snap);
  expect(kept.filter((n) => /^f/.test(n)).length).toBe(29 + 30); // the rest of t3/u and all of t5/u
  expect(kept).toContain('g7');
  expect(kept).not.toContain('t1');
  expect(p.selected.equals(p.whole)).toBe(true);
  expectReceived(p);
});

test('an unchanged hard link in a changed directory, its other name in an unchanged one: the third pass brings that directory', () => {
  const p = plan(`${BIG_TREE}; mkdir -p far/away; echo h > far/away/h; ln far/away/h t2/u/h2`, 'echo x > t2/u/new');
  const kept = p.sel.snap.flatMap((r) => r.links.map((l) => l.name.toString()));
  expect(kept).toEqual(expect.arrayContaining(['far', 'away', 'h', 'h2', 'new']));
  expect(kept).not.toContain('t1');
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
