/**
 * Full sends read the snapshot in passes instead of holding it: planFull
 * takes `records` as a function that starts a fresh pass, keeps only the
 * directories between passes, and finds the root itself when not told.
 * Checked by receiving the streams and comparing with the tree.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planFull, PlanSnapshot } from '../../../src/diff/planner';
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

function receive(stream: Buffer, name: string): string {
  const file = path.join(work, `${name}.stream`);
  fs.writeFileSync(file, stream);
  const target = path.join(work, 'target');
  const r = ferry(['receive', target, '-f', file]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return path.join(target, name);
}

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
