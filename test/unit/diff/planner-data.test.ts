/**
 * The planner's data commands: changed 4 KiB slices instead of whole blocks,
 * and CLONE of content the receiver already has (from the parent snapshot
 * or from earlier in the stream), with the kernel's clone rules. Stream
 * content is checked command by command here; receiving these trees with
 * `btrfs receive` and `ferry receive` is done for the matching scenarios
 * (f-scattered-4k, f-cp-large, f-dup-in-tree, f-repeated-blocks,
 * f-block-moved) by planner.test.ts and the send-scenarios integration test.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planFull, planIncremental, PlanSnapshot } from '../../../src/diff/planner';
import { Cmd, Command } from '../../../src/model/command';
import { StreamEncoder } from '../../../src/stream/encoder';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { capture, dirSource } from '../../helpers/records';
import { compareTrees } from '../../helpers/tree-compare';

const BLOCK = 131072;
const K4 = 4096;

let base: string;
beforeEach(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-plan-data-'));
});
afterEach(() => rmTree(base));

function sh(script: string, cwd = base): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed: ${script}\n${r.stderr}`);
}

function encode(cmds: Iterable<Command>, version: number): Buffer {
  const enc = new StreamEncoder(version);
  const parts = [enc.header()];
  for (const c of cmds) parts.push(...enc.encodeParts(c));
  return Buffer.concat(parts);
}

const writes = (cmds: Command[], p?: string) =>
  cmds.filter((c) => c.cmd === Cmd.WRITE && (p === undefined || c.attrs.path!.toString() === p));
const clones = (cmds: Command[], p?: string) =>
  cmds.filter((c) => c.cmd === Cmd.CLONE && (p === undefined || c.attrs.path!.toString() === p));
/** WRITE ranges of a path, adjacent ones merged. */
function written(cmds: Command[], p: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const c of writes(cmds, p)) {
    const s = Number(c.attrs.fileOffset!);
    const e = s + c.attrs.data!.length;
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out;
}
const cloneView = (c: Command) => ({
  path: c.attrs.path!.toString(),
  off: Number(c.attrs.fileOffset),
  len: Number(c.attrs.cloneLen),
  src: c.attrs.clonePath!.toString(),
  srcOff: Number(c.attrs.cloneOffset),
  uuid: c.attrs.cloneUuid!.toString('hex'),
});

function pwrite(file: string, data: Buffer, at: number): void {
  const fd = fs.openSync(path.join(base, file), 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, at);
  } finally {
    fs.closeSync(fd);
  }
}

function snapshots(parentScript: string, childScript: string | (() => void)): { P: PlanSnapshot; C: PlanSnapshot } {
  sh(parentScript);
  const P = capture(base, { uuid: randomBytes(16), transid: 10n });
  if (typeof childScript === 'string') sh(childScript);
  else childScript();
  const C = capture(base, { uuid: randomBytes(16), transid: 11n, parent: P });
  return { P, C };
}

describe('changed blocks are sent as their changed 4 KiB slices', () => {
  test.each([1, 2] as const)('v%i: scattered writes send only the slices they touch, merged, split to the WRITE limit', (version) => {
    const { P, C } = snapshots('head -c 3000000 /dev/urandom > img', () => {
      pwrite('img', randomBytes(K4), 10 * K4); // one aligned slice
      pwrite('img', randomBytes(100), BLOCK - 50); // straddles a block boundary: two slices
      pwrite('img', randomBytes(70000), 1_000_000); // spans two blocks, unaligned
      pwrite('img', randomBytes(10), 2_999_990); // the unaligned last slice (3000000 = 732 * 4096 + 1728)
    });
    const cmds = [...planIncremental(P, C, dirSource(base), { version, name: Buffer.from('c') })];
    const lastSlice = Math.floor(3_000_000 / K4) * K4;
    expect(written(cmds, 'img')).toEqual([
      [10 * K4, 11 * K4],
      [BLOCK - K4, BLOCK + K4],
      [Math.floor(1_000_000 / K4) * K4, Math.ceil(1_070_000 / K4) * K4],
      [lastSlice, 3_000_000],
    ]);
    const limit = version === 1 ? 49152 : 131072;
    expect(writes(cmds).every((c) => c.attrs.data!.length <= limit)).toBe(true);
    expect(clones(cmds)).toEqual([]);
  });

  test('an append sends only the bytes after the old end, when the old bytes are unchanged', () => {
    // Files under 64 KiB carry no slice digests: the old block hash decides.
    const { P, C } = snapshots('head -c 5000 /dev/urandom > log && head -c 5000 /dev/urandom > edited && head -c 5000 /dev/urandom > small', () => {
      fs.appendFileSync(path.join(base, 'log'), randomBytes(3000));
      pwrite('edited', randomBytes(1), 4500); // inside the old partial slice
      fs.appendFileSync(path.join(base, 'edited'), randomBytes(3000));
      fs.appendFileSync(path.join(base, 'small'), randomBytes(200000)); // grows past its block
    });
    for (const version of [1, 2] as const) {
      const cmds = [...planIncremental(P, C, dirSource(base), { version, name: Buffer.from('c') })];
      expect(written(cmds, 'log')).toEqual([[5000, 8000]]);
      expect(written(cmds, 'edited')).toEqual([[0, 8000]]); // an old byte changed: the whole block
      expect(written(cmds, 'small')).toEqual([[5000, 205000]]);
    }
  });

  test('a write into a hole of the parent sends only the slices that are not zeros', () => {
    const { P, C } = snapshots('head -c 131072 /dev/urandom > img && truncate -s 1048576 img', () => {
      pwrite('img', randomBytes(K4), 3 * BLOCK + K4);
      pwrite('img', randomBytes(10), 5 * BLOCK + 100);
    });
    const old = P.records.find((r) => r.type === 'file')!;
    expect(old.extents![3].hash).toBeNull();
    for (const version of [1, 2] as const) {
      const cmds = [...planIncremental(P, C, dirSource(base), { version, name: Buffer.from('c') })];
      expect(written(cmds, 'img')).toEqual([
        [3 * BLOCK + K4, 3 * BLOCK + 2 * K4],
        [5 * BLOCK, 5 * BLOCK + K4],
      ]);
    }
  });

  test('without comparable digests (another key) whole changed blocks are sent', () => {
    const { P, C } = snapshots('head -c 1000000 /dev/urandom > img', () => pwrite('img', randomBytes(K4), 3 * BLOCK + K4));
    const other = { ...C, subKey: 'ff'.repeat(32) };
    const cmds = [...planIncremental(P, other, dirSource(base), { version: 2, name: Buffer.from('c') })];
    expect(written(cmds, 'img')).toEqual([[3 * BLOCK, 4 * BLOCK]]);
    const none = { ...C, subKey: undefined };
    expect(written([...planIncremental({ ...P, subKey: undefined }, none, dirSource(base), { version: 2, name: Buffer.from('c') })], 'img')).toEqual([
      [3 * BLOCK, 4 * BLOCK],
    ]);
  });

  test('when no digest differs but the block hash does, the whole block is sent (64 bits never outvote 128)', () => {
    const { P, C } = snapshots('head -c 1000000 /dev/urandom > img', () => pwrite('img', randomBytes(K4), 2 * BLOCK + 7 * K4));
    const rec = C.records.find((r) => r.type === 'file')!;
    const old = P.records.find((r) => r.ino === rec.ino)!;
    // Pretend a 64-bit collision: the changed block's digests equal the parent's.
    rec.extents![2] = { ...rec.extents![2], sub: old.extents![2].sub };
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c') })];
    expect(written(cmds, 'img')).toEqual([[2 * BLOCK, 3 * BLOCK]]);
  });

  test('a block changed and changed back (same hash as the parent) sends nothing', () => {
    const { P, C } = snapshots('head -c 500000 /dev/urandom > img', () => sh('touch img'));
    const rec = C.records.find((r) => r.type === 'file')!;
    rec.generation = 11n;
    rec.extents = rec.extents!.map((x) => ({ ...x, generation: 11n })); // as after an A -> B -> A history
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c') })];
    expect(writes(cmds)).toEqual([]);
    expect(clones(cmds)).toEqual([]);
  });
});

describe('CLONE of content the receiver already has', () => {
  test('cp of a large file: one CLONE from the parent snapshot, unaligned tail included at EOF', () => {
    const size = 3 * 1024 * 1024 + 1000;
    const { P, C } = snapshots(`head -c ${size} /dev/urandom > big; mkdir d`, 'cp big d/copy');
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c') })];
    expect(clones(cmds).map(cloneView)).toEqual([{ path: 'd/copy', off: 0, len: size, src: 'big', srcOff: 0, uuid: P.uuid.toString('hex') }]);
    expect(writes(cmds, 'd/copy')).toEqual([]);
    expect(cmds.filter((c) => c.cmd === Cmd.TRUNCATE)).toEqual([]); // the clone reaches EOF
  });

  test('cp over a bigger file: whole blocks cloned, the unaligned tail written (never cloned into the middle), then TRUNCATE', () => {
    const size = 2 * BLOCK + 1000;
    const { P, C } = snapshots(`head -c ${size} /dev/urandom > src; head -c 900000 /dev/urandom > dst`, 'cp src dst');
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 1, name: Buffer.from('c') })];
    expect(clones(cmds, 'dst').map(cloneView)).toEqual([{ path: 'dst', off: 0, len: 2 * BLOCK, src: 'src', srcOff: 0, uuid: P.uuid.toString('hex') }]);
    expect(written(cmds, 'dst')).toEqual([[2 * BLOCK, size]]);
    expect(cmds.filter((c) => c.cmd === Cmd.TRUNCATE).map((c) => c.attrs.size)).toEqual([BigInt(size)]);
  });

  test('blocks moved within a file are cloned from the parent version of the same file', () => {
    const { P, C } = snapshots(
      'head -c 2097152 /dev/urandom > f',
      'dd if=f of=f bs=128K skip=2 seek=9 count=3 conv=notrunc status=none',
    );
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c') })];
    expect(clones(cmds).map(cloneView)).toEqual([{ path: 'f', off: 9 * BLOCK, len: 3 * BLOCK, src: 'f', srcOff: 2 * BLOCK, uuid: P.uuid.toString('hex') }]);
    expect(writes(cmds)).toEqual([]);
  });

  test('full send: a duplicate is cloned from the file sent earlier; small files (one sector at offset 0) are never cloned', () => {
    sh('head -c 700000 /dev/urandom > a; cp a b; head -c 4096 /dev/urandom > s1; cp s1 s2');
    const S = capture(base, { uuid: randomBytes(16), transid: 3n });
    const cmds = [...planFull(S, dirSource(base), { version: 2, name: Buffer.from('s') })];
    const [first, second] = S.records.filter((r) => r.size === 700000n).map((r) => r.links[0].name.toString());
    expect(clones(cmds).map(cloneView)).toEqual([{ path: second, off: 0, len: 700000, src: first, srcOff: 0, uuid: S.uuid.toString('hex') }]);
    expect(writes(cmds, 's1').length + writes(cmds, 's2').length).toBe(2);
    expect(clones([...planFull(S, dirSource(base), { version: 2, name: Buffer.from('s'), clone: false })])).toEqual([]);
  });

  test('full send: clone sources are bounded (the first blocks and files in stream order), and the plan stays deterministic', () => {
    sh('head -c 300000 /dev/urandom > x1; head -c 300000 /dev/urandom > y1; cp x1 x2; cp y1 y2');
    const S = capture(base, { uuid: randomBytes(16), transid: 3n });
    const opts = { version: 2, name: Buffer.from('s') } as const;
    const byIno = S.records.filter((r) => r.type === 'file').map((r) => r.links[0].name.toString());
    const sources = (cmds: Command[]) => [...new Set(clones(cmds).map((c) => c.attrs.clonePath!.toString()))].sort();
    // Unbounded: each pair's copy is cloned from whichever of the two comes first in ino order. The filesystem may
    // hand the copy a lower ino than the original (ext4 reuses freed inode numbers), so the order is read, not assumed.
    const firstOf = (a: string, b: string) => (byIno.indexOf(a) < byIno.indexOf(b) ? a : b);
    expect(sources([...planFull(S, dirSource(base), opts)])).toEqual([firstOf('x1', 'x2'), firstOf('y1', 'y2')].sort());
    // One file remembered: the first in ino order is the only source, so the other original's copy is written.
    const one = [...planFull(S, dirSource(base), opts, { blocks: 1000, files: 1 })];
    expect(sources(one)).toEqual([byIno[0]]);
    expect(clones(one).length).toBe(1);
    // One block remembered: a clone still runs on through the source's next blocks.
    const oneBlock = [...planFull(S, dirSource(base), opts, { blocks: 1, files: 1000 })];
    expect(clones(oneBlock).map((c) => Number(c.attrs.cloneLen))).toEqual([300000]);
    expect(encode(planFull(S, dirSource(base), opts, { blocks: 1000, files: 1 }), 2).equals(encode(one, 2))).toBe(true);
    // The bounded stream still makes the same tree.
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-plan-bounds-'));
    try {
      fs.writeFileSync(path.join(out, 'stream'), encode(one, 2));
      const r = ferry(['receive', path.join(out, 'target'), '-f', path.join(out, 'stream')]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(compareTrees(base, path.join(out, 'target', 's'))).toEqual([]);
    } finally {
      rmTree(out);
    }
  });

  test('a block repeated within one new file: clones come from earlier blocks and never overlap their source', () => {
    const { P, C } = snapshots('echo x > x', 'head -c 131072 /dev/urandom > a; for i in 1 2 3 4 5 6 7 8; do cat a; done > rep; head -c 5000 /dev/urandom >> rep');
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c') })];
    const rep = clones(cmds, 'rep').map(cloneView);
    expect(rep.length).toBeGreaterThan(0);
    let covered = 0;
    for (const c of rep) {
      if (c.src === 'rep') expect(c.srcOff + c.len <= c.off || c.off + c.len <= c.srcOff).toBe(true);
      expect(c.off % 4096).toBe(0);
      expect(c.len % 4096).toBe(0);
      covered += c.len;
    }
    // `a` is new too, so block 0 of rep is a clone of `a` or written; all 8 blocks are cloned or written once
    expect(covered + written(cmds, 'rep').reduce((n, [s, e]) => n + e - s, 0)).toBe(8 * BLOCK + 5000);
  });

  test('clone: false sends WRITEs only', () => {
    const { P, C } = snapshots('head -c 600000 /dev/urandom > big', 'cp big copy');
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 2, name: Buffer.from('c'), clone: false })];
    expect(clones(cmds)).toEqual([]);
    expect(written(cmds, 'copy')).toEqual([[0, 600000]]);
  });

  test('determinism with clones and slices: the same bytes twice, and ferry receive rebuilds the tree', () => {
    const live = path.join(base, 'live');
    fs.mkdirSync(live);
    sh('head -c 2000000 /dev/urandom > img; head -c 300000 /dev/urandom > other; cp img img0', live);
    const P = capture(live, { uuid: randomBytes(16), transid: 1n });
    const full = encode(planFull(P, dirSource(live), { version: 2, name: Buffer.from('p') }), 2);
    sh('dd if=other of=img bs=4K seek=3 count=5 conv=notrunc status=none; cp img img2; cat other other > o2; dd if=img0 of=img0 bs=128K skip=1 seek=6 count=2 conv=notrunc status=none', live);
    const C = capture(live, { uuid: randomBytes(16), transid: 2n, parent: P });
    const opts = { version: 2, name: Buffer.from('c') } as const;
    const one = encode(planIncremental(P, C, dirSource(live), opts), 2);
    const two = encode(planIncremental(P, C, dirSource(live), opts), 2);
    expect(one.equals(two)).toBe(true);
    const target = path.join(base, 'target');
    for (const [n, b] of [['full', full], ['inc', one]] as const) {
      fs.writeFileSync(path.join(base, n), b);
      const r = ferry(['receive', target, '-f', path.join(base, n)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(compareTrees(live, path.join(target, 'c'))).toEqual([]);
    // the change is small: well under the size of the changed files
    expect(one.length).toBeLessThan(5 * 4096 + 300000 * 2 + 20000);
  });
});
