/**
 * Planner: streams planned from real trees are received by `ferry receive`
 * (and, where btrfs can be mounted, by the real `btrfs receive`) and the
 * results compared with the trees they were planned from.
 *
 * Per scenario: build the parent tree, capture its records, plan and encode
 * the full stream at once (the planner reads data from the live tree), keep a
 * `cp -a` copy as the parent's ground truth, run the child script on the SAME
 * tree (inode numbers must survive), capture again with generations, plan the
 * incremental stream, receive both, compare.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource, planFull, planIncremental, PlanSnapshot } from '../../../src/diff/planner';
import { selectIncremental } from '../../../src/diff/select';
import { Cmd, Command } from '../../../src/model/command';
import { StreamEncoder } from '../../../src/stream/encoder';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { canMount, LoopFs, mountLoopFs, realFsRequired } from '../../helpers/loopfs';
import { capture, dirSource } from '../../helpers/records';
import { Scenario, ScenarioNeed, SCENARIOS } from '../../helpers/scenarios';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const P_TRANSID = 10n;
const C_TRANSID = 11n;

function sh(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed (${r.status}): ${script}\n${r.stderr}`);
}

function encode(cmds: Iterable<Command>, version: number): Buffer {
  const enc = new StreamEncoder(version);
  const parts = [enc.header()];
  for (const c of cmds) parts.push(...enc.encodeParts(c));
  return Buffer.concat(parts);
}

const have = (tool: string) => spawnSync('bash', ['-c', `command -v ${tool}`]).status === 0;

let btrfs: LoopFs | undefined;
beforeAll(() => {
  if (canMount('btrfs')) btrfs = mountLoopFs('btrfs', 2048);
});
afterAll(() => {
  btrfs?.cleanup();
});

const TOOLS: Record<ScenarioNeed, () => boolean> = {
  xfs_io: () => have('xfs_io'),
  setcap: () => have('setcap'),
  setfattr: () => have('setfattr'),
  mkfifo: () => have('mkfifo'),
  mknod: () => have('mknod') && process.getuid?.() === 0,
  // The live tree is on the btrfs mount when there is one.
  reflink: () => canMount('btrfs'),
  btrfs: () => false, // nested subvolumes: not a plain-tree scenario
};
const unmet = (s: Scenario) => (s.needs ?? []).filter((n) => !TOOLS[n]());

/** Our own cases, beside test/helpers/scenarios.ts. */
const OWN: Scenario[] = [
  {
    id: 'p-swap-files',
    title: 'swap two files',
    source: 'planner',
    parent: 'echo aaa > a; echo bbbb > b; mkdir d; echo c > d/c',
    child: 'mv a t; mv b a; mv t b; mv d/c d/c2',
  },
  {
    id: 'p-move-under-child',
    title: 'move a directory under its former child, and back-and-forth nesting',
    source: 'planner',
    parent: 'mkdir -p a/b/c; echo 1 > a/b/c/f; mkdir x y',
    child: 'mv a/b b; mv a b/a; mv b/a/ b/a2; mv x y/x; mv y y2',
  },
  {
    id: 'p-orphan-name-taken',
    title: 'a real file has the orphan name the planner would pick',
    source: 'planner',
    parent: 'echo a > a; echo b > b',
    child: `ia=$(stat -c %i a); mv a t; mv b a; mv t b; echo trap > "o$ia-${C_TRANSID}-0"; echo trap2 > "o$ia-${C_TRANSID}-1"`,
  },
  {
    id: 'p-file-dir-replace',
    title: 'file replaced by a dir of the same name, dir by a file, hard links added and removed',
    source: 'planner',
    parent: 'echo f > x; mkdir y; echo in > y/in; echo h > h; ln h h2; ln h y/h3',
    child: 'rm x; mkdir x; echo new > x/n; rm -r y; echo file > y; rm h2; ln h x/h4; ln h h5',
  },
  {
    id: 'p-sparse',
    title: 'sparse files: holes in full sends, data replaced by a hole, hole filled',
    source: 'planner',
    parent:
      'truncate -s 1M s1; printf "xyz" | dd of=s1 bs=1 seek=300000 conv=notrunc status=none; ' +
      'head -c 600000 /dev/urandom > s2; truncate -s 2M s3',
    child:
      'dd if=/dev/zero of=s2 bs=131072 seek=1 count=2 conv=notrunc status=none; ' +
      'printf "q" | dd of=s3 bs=1 seek=1500000 conv=notrunc status=none; truncate -s 100 s1',
  },
  {
    id: 'p-deep',
    title: 'deep nesting moved wholesale and partly deleted',
    source: 'planner',
    parent: 'p=; for i in $(seq 1 40); do p="$p/d$i"; mkdir ".$p"; echo $i > ".$p/f"; done',
    child: 'mv d1/d2/d3 top; rm -r top/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21; mv d1 top/d4/d5/d1',
  },
  {
    id: 'p-special',
    title: 'symlinks, fifos, devices, sockets-free specials; owner and mode changes',
    source: 'planner',
    needs: ['mkfifo', 'mknod'],
    parent: 'ln -s target l; mkfifo p; mknod c c 1 3; mknod b b 7 0; echo x > f; chown 5:6 f; chmod 640 f',
    child: 'rm l; ln -s other l; mv p p2; chown -h 7:8 l; chmod 4755 f; chown 9:10 c; mkfifo q',
  },
];

const BIG_XATTRS = new Set(['s7-37']);
/** Scenarios with 1 GiB sparse files (reading them back dominates the run). */
const SLOW = new Set(['s7-32', 'f-sparse-1g']);

function scenarioId(s: Scenario): string {
  return s.id.replace(/[^\w-]/g, '_');
}

interface Run {
  base: string;
  live: string;
  pcopy: string;
  full: Buffer;
  inc: Buffer;
  /** The same incremental planned from only the records selectIncremental keeps. */
  selectedInc: Buffer;
  incCmds: Command[];
  P: PlanSnapshot;
  C: PlanSnapshot;
}

function runScenario(s: Scenario, version: 1 | 2): Run {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `ferry-plan-${scenarioId(s)}-`));
  // On btrfs when mounted: big xattrs (btrfs/053) and reflinks work there, not on every os.tmpdir().
  const live = btrfs ? path.join(btrfs.dir, `live-${scenarioId(s)}-v${version}`) : path.join(base, 'live');
  fs.mkdirSync(live);
  try {
    return planScenario(s, version, base, live);
  } catch (e) {
    rmTree(base);
    rmTree(live);
    rmTree(`${live}.pcopy`);
    throw e;
  }
}

function planScenario(s: Scenario, version: 1 | 2, base: string, live: string): Run {
  sh(s.parent, live);
  const P = capture(live, { uuid: randomBytes(16), transid: P_TRANSID });
  const full = encode(planFull(P, dirSource(live), { version, name: Buffer.from('p') }), version);
  // Next to the live tree: `cp -a` onto ext4 silently drops xattrs bigger than a block (btrfs/053).
  const pcopy = `${live}.pcopy`;
  sh(`cp -a '${live}' '${pcopy}'`, base);
  sh(s.child, live);
  const C = capture(live, { uuid: randomBytes(16), transid: C_TRANSID, parent: P });
  const incCmds = [...planIncremental(P, C, dirSource(live), { version, name: Buffer.from('c') })];
  const inc = encode(incCmds, version);
  const sel = selectIncremental({ scan: () => P.records, rootIno: P.rootIno }, { scan: () => C.records, rootIno: C.rootIno }, { since: P.ctransid });
  const selected = planIncremental({ ...P, records: sel.parent, rootNames: sel.rootNames }, { ...C, records: sel.snap, rootNames: sel.rootNames }, dirSource(live), {
    version,
    name: Buffer.from('c'),
  });
  return { base, live, pcopy, full, inc, selectedInc: encode(selected, version), incCmds, P, C };
}

function expectSame(a: string, b: string, opts: { noDirMtime?: boolean } = {}): void {
  expect(compareTrees(a, b, opts)).toEqual([]);
  const t = treecmp(a, b, { farmSharedOk: true, flags: opts.noDirMtime ? ['--no-dir-mtime'] : [] });
  expect(t.differences).toEqual([]);
}

function btrfsReceive(file: string, dir: string): void {
  const r = spawnSync('btrfs', ['receive', '-f', file, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`btrfs receive ${path.basename(file)}: ${r.stderr}`);
}

describe('planner: scenarios through ferry receive and btrfs receive', () => {
  const all = [...OWN, ...SCENARIOS];
  for (const version of [1, 2] as const) {
    for (const s of all) {
      // 1 GiB sparse files: one protocol version is enough (v2 also covers FALLOCATE).
      if (SLOW.has(s.id) && version === 1) continue;
      const missing = unmet(s);
      const name = `v${version} ${s.id}: ${s.title}`;
      if (missing.length) {
        if (missing.some((n) => n !== 'btrfs') && process.env.FERRY_REQUIRE_REAL_FS === '1') {
          test(name, () => expect(`missing tools: ${missing.join(', ')}`).toBe(''));
        } else {
          // 'btrfs' scenarios need nested subvolumes, which a ferry volume cannot have.
          test.skip(`${name} [needs ${missing.join(', ')}]`, () => undefined);
        }
        continue;
      }
      test(name, () => {
        const run = runScenario(s, version);
        try {
          // Planning from the selected records leaves out only what the plan never touches.
          expect(run.selectedInc.equals(run.inc)).toBe(true);
          const fullFile = path.join(run.base, 'full.stream');
          const incFile = path.join(run.base, 'inc.stream');
          fs.writeFileSync(fullFile, run.full);
          fs.writeFileSync(incFile, run.inc);
          // Ground truth first: the real btrfs receive accepts the order and makes the same trees.
          if (btrfs) {
            const dst = path.join(btrfs.dir, `recv-${scenarioId(s)}-v${version}`);
            fs.mkdirSync(dst);
            try {
              btrfsReceive(fullFile, dst);
              btrfsReceive(incFile, dst);
              expectSame(run.pcopy, path.join(dst, 'p'));
              expectSame(run.live, path.join(dst, 'c'));
            } finally {
              spawnSync('btrfs', ['subvolume', 'delete', path.join(dst, 'c'), path.join(dst, 'p')], { stdio: 'ignore' });
            }
          } else if (realFsRequired()) {
            throw new Error('cannot mount btrfs for the btrfs receive cross-check (FERRY_REQUIRE_REAL_FS=1)');
          }
          // ext4 keeps all xattrs of an inode in one block: btrfs/053's 6 KiB values need the btrfs mount.
          const target = BIG_XATTRS.has(s.id) && btrfs ? path.join(btrfs.dir, `target-${scenarioId(s)}-v${version}`) : path.join(run.base, 'target');
          for (const f of [fullFile, incFile]) {
            const r = ferry(['receive', target, '-f', f, '--allow-devices', '--allow-setuid']);
            expect(r.stderr).toBe('');
            expect(r.code).toBe(0);
          }
          expectSame(run.pcopy, path.join(target, 'p'));
          expectSame(run.live, path.join(target, 'c'));
        } finally {
          rmTree(run.base);
          rmTree(run.live);
          rmTree(run.pcopy);
          if (BIG_XATTRS.has(s.id) && btrfs) rmTree(path.join(btrfs.dir, `target-${scenarioId(s)}-v${version}`));
        }
      });
    }
  }
});

describe('planner: stream content', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-plan-unit-'));
  });
  afterEach(() => rmTree(base));

  const writeBytes = (cmds: Command[]) => cmds.filter((c) => c.cmd === Cmd.WRITE).reduce((n, c) => n + c.attrs.data!.length, 0);
  const names = (cmds: Command[]) => cmds.map((c) => Object.entries(Cmd).find(([, v]) => v === c.cmd)![0]);

  test.each([1, 2] as const)('v%i: only changed 4 KiB slices are written; holes punched (v2) or zeroed (v1)', (version) => {
    const f = path.join(base, 'big');
    const content = randomBytes(3 * 1024 * 1024);
    fs.writeFileSync(f, content);
    const P = capture(base, { uuid: randomBytes(16), transid: 1n });
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, randomBytes(70000), 0, 70000, 1_000_000); // slices 244..261 of blocks 7 and 8
    fs.writeSync(fd, randomBytes(100001), 0, 100001, 3 * 1024 * 1024); // append: block 24
    fs.writeSync(fd, Buffer.alloc(131072), 0, 131072, 131072 * 20); // block 20 becomes a hole
    fs.closeSync(fd);
    const C = capture(base, { uuid: randomBytes(16), transid: 2n, parent: P });
    const cmds = [...planIncremental(P, C, dirSource(base), { version, name: Buffer.from('c') })];
    const zeroed = version === 1 ? 131072 : 0;
    expect(writeBytes(cmds)).toBe((262 - 244) * 4096 + 100001 + zeroed);
    expect(cmds.filter((c) => c.cmd === Cmd.FALLOCATE).map((c) => [c.attrs.fallocateMode, c.attrs.fileOffset, c.attrs.size])).toEqual(
      version === 2 ? [[3, 131072n * 20n, 131072n]] : [],
    );
    // The append reaches the new size by itself: no TRUNCATE.
    expect(names(cmds)).not.toContain('TRUNCATE');
    const w = cmds.filter((c) => c.cmd === Cmd.WRITE);
    expect(Math.max(...w.map((c) => c.attrs.data!.length))).toBe(version === 1 ? 49152 : 100001);
  });

  test('full send: holes are not written, TRUNCATE sets the size; kernel order per inode', () => {
    fs.mkdirSync(path.join(base, 'd'));
    const f = path.join(base, 'd', 'sparse');
    fs.writeFileSync(f, 'abc');
    fs.truncateSync(f, 1024 * 1024);
    sh('setfattr -n user.x -v 1 d/sparse 2>/dev/null || true', base);
    const P = capture(base, { uuid: randomBytes(16), transid: 5n });
    const cmds = [...planFull(P, dirSource(base), { version: 1, name: Buffer.from('s') })];
    expect(writeBytes(cmds)).toBe(131072); // block 0 holds the data; blocks 1-7 are holes
    const ino = P.records.find((r) => r.type === 'file')!.ino;
    const dino = P.records.find((r) => r.type === 'dir' && r.ino !== P.rootIno)!.ino;
    const dump = cmds.map((c) => `${names([c])[0]} ${c.attrs.path?.toString() ?? ''}${c.attrs.pathTo ? ' -> ' + c.attrs.pathTo.toString() : ''}`);
    const fileOrphan = `o${ino}-5-0`;
    const dirOrphan = `o${dino}-5-0`;
    // Directory and file created as orphans and renamed into place (whichever ino comes first).
    expect(dump).toContain(`MKFILE ${fileOrphan}`);
    expect(dump).toContain(`MKDIR ${dirOrphan}`);
    expect(dump).toContain(`RENAME ${dirOrphan} -> d`);
    // Inodes go in ino order, and the filesystem may give the file a lower ino than d (ext4 reuses
    // freed numbers): then d is still at its orphan name when the file is renamed and its content sent.
    const fileAt = `${dino < ino ? 'd' : dirOrphan}/sparse`;
    const fileIdx = dump.indexOf(`RENAME ${fileOrphan} -> ${fileAt}`);
    expect(fileIdx).toBeGreaterThan(0);
    const dumpAfter = dump
      .slice(fileIdx + 1)
      .filter((l) => l.endsWith(` ${fileAt}`))
      .map((l) => l.split(' ')[0])
      .filter((c, i, a) => c !== 'WRITE' || a[i - 1] !== 'WRITE');
    const hasX = P.records.find((r) => r.ino === ino)!.xattrs.length > 0;
    expect(dumpAfter).toEqual([...(hasX ? ['SET_XATTR'] : []), 'WRITE', 'TRUNCATE', 'CHOWN', 'CHMOD', 'UTIMES']);
    expect(dump[0]).toBe('SUBVOL s');
    expect(dump[dump.length - 1]).toBe('END ');
    expect(dump[dump.length - 2]).toBe('UTIMES ');
  });

  test('determinism: planning twice gives identical bytes', () => {
    sh('mkdir -p a/b c; echo 1 > a/b/f; ln a/b/f c/g; echo 2 > c/h; ln -s x s', base);
    const P = capture(base, { uuid: Buffer.alloc(16, 1), transid: 1n });
    sh('mv a/b c/b2; mv c a/c; rm a/c/h; echo 3 > h; mkdir a/c/h', base);
    const C = capture(base, { uuid: Buffer.alloc(16, 2), transid: 2n, parent: P });
    const src: DataSource = dirSource(base);
    const opts = { version: 2, name: Buffer.from('c') } as const;
    const one = encode(planIncremental(P, C, src, opts), 2);
    const two = encode(planIncremental(P, C, src, opts), 2);
    expect(one.equals(two)).toBe(true);
    expect(encode(planFull(C, src, opts), 2).equals(encode(planFull(C, src, opts), 2))).toBe(true);
  });

  test('a pure rename is one RENAME plus UTIMES, never delete and recreate', () => {
    sh('mkdir d e; head -c 500000 /dev/urandom > d/f', base);
    const P = capture(base, { uuid: randomBytes(16), transid: 1n });
    sh('mv d/f e/g', base);
    const C = capture(base, { uuid: randomBytes(16), transid: 2n, parent: P });
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 1, name: Buffer.from('c') })];
    expect(names(cmds)).toEqual(['SNAPSHOT', 'RENAME', 'UTIMES', 'UTIMES', 'UTIMES', 'END']);
  });

  // Regression: copying a farm-shared file out of the farm renames a temp file
  // over it, which must not change the directory's mtime.
  test('ferry receive keeps the mtime of a directory whose file it copies out of the farm', () => {
    const live = path.join(base, 'live');
    fs.mkdirSync(live);
    sh('mkdir d; echo x > d/f', live);
    const P = capture(live, { uuid: randomBytes(16), transid: 1n });
    const full = encode(planFull(P, dirSource(live), { version: 1, name: Buffer.from('p') }), 1);
    sh('echo y >> d/f', live);
    const C = capture(live, { uuid: randomBytes(16), transid: 2n, parent: P });
    const inc = encode(planIncremental(P, C, dirSource(live), { version: 1, name: Buffer.from('c') }), 1);
    const target = path.join(base, 'target');
    for (const [n, b] of [['full', full], ['inc', inc]] as const) {
      fs.writeFileSync(path.join(base, n), b);
      expect(ferry(['receive', target, '-f', path.join(base, n)]).code).toBe(0);
    }
    expect(compareTrees(live, path.join(target, 'c'))).toEqual([]);
  });

  test('unchanged snapshot gives SNAPSHOT and END only', () => {
    sh('mkdir -p a/b; echo 1 > a/b/f', base);
    const P = capture(base, { uuid: randomBytes(16), transid: 1n });
    const C = capture(base, { uuid: randomBytes(16), transid: 2n, parent: P });
    const cmds = [...planIncremental(P, C, dirSource(base), { version: 1, name: Buffer.from('c') })];
    expect(names(cmds)).toEqual(['SNAPSHOT', 'END']);
  });
});
