/**
 * `ferry rollback` on real filesystems, through the built binary: a reflink
 * volume (XFS), an index volume with --from TARGET (ext4; also without
 * RENAME_EXCHANGE), and a btrfs volume. Each is killed (SIGKILL through
 * FERRY_FAULT) at every step; DIR must then be the old tree or the new one,
 * never missing, with its metadata intact; the next ferry command finishes or
 * undoes the rollback and a re-run completes. Also: --keep-old, errors, the
 * lock, and incremental sends after a rollback (from either branch).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs, LoopFs } from '../../helpers/loopfs';
import { ferry } from '../../helpers/cli';
import { compareTrees, treecmp } from '../../helpers/tree-compare';
import { ROLLBACK_INFIX } from '../../../src/volume/rollback';
import { getSnapshot, listSnapshots, openVolume } from '../../../src/volume/volume';

type Kind = 'reflink' | 'index' | 'btrfs';

const BEFORE = ['rollback:after-journal', 'rollback:after-clone', 'rollback:before-exchange'];
const AFTER = ['rollback:after-exchange', 'rollback:after-swapped', 'rollback:after-ferry-move', 'rollback:before-remove-old', 'rollback:after-remove-old'];

function ok(args: string[], env?: Record<string, string>): string {
  const r = ferry(args, { env });
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.toString();
}

function sh(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed in ${cwd}: ${r.stderr}`);
}

/** A copy of a tree without its .ferry (cp -a keeps times, owners, xattrs, hard links). */
function reference(src: string, dst: string): void {
  const [q, d] = [JSON.stringify(src), JSON.stringify(dst)];
  sh(`cp -a ${q} ${d} && (chattr -R -f -i ${d}/.ferry || true); rm -rf ${d}/.ferry && touch -h -r ${q} ${d}`, '/');
}

const same = (a: string, b: string, rootMtime = true) => compareTrees(a, b, { ignore: ['.ferry'], noRootMtime: !rootMtime });

/** Trees beside DIR that a rollback made. */
const beside = (vol: string) => fs.readdirSync(path.dirname(vol)).filter((n) => n.startsWith(`.${path.basename(vol)}${ROLLBACK_INFIX}`));

/** Where the volume's real metadata is: DIR/.ferry or a tree beside it (exactly one place). */
function metadataPlaces(vol: string): string[] {
  const places = [vol, ...beside(vol).map((n) => path.join(path.dirname(vol), n))].filter((d) => fs.existsSync(path.join(d, '.ferry/volume.json')));
  return places;
}

interface Setup {
  vol: string;
  target: string;
  /** The tree at snapshot S, and the tree rolled back from. */
  refS: string;
  refOld: string;
  from: string[];
}

const PARENT_SCRIPT = [
  'mkdir -p docs/old bin empty',
  'echo alpha > docs/a.txt; echo bravo > docs/old/b.txt',
  'head -c 300000 /dev/urandom > big',
  'ln docs/a.txt hard',
  'ln -s docs/a.txt sym',
  'setfattr -n user.k -v v docs/a.txt',
  'chmod 750 bin; chown 1000:1000 bin',
  'touch -d @1000000000 docs/old/b.txt',
].join('\n');
const CHILD_SCRIPT = [
  'mv docs/old moved',
  'printf changed | dd of=big bs=1 seek=1000 conv=notrunc status=none',
  'rm hard; echo new > docs/new; mkdir -p newdir/sub; echo x > newdir/sub/x',
  'setfattr -x user.k docs/a.txt',
  'rmdir empty',
].join('\n');

/** A volume with snapshots S (then the target receives it) and T, changed once more after T. */
function setup(base: string, kind: Kind): Setup {
  fs.mkdirSync(base, { recursive: true });
  const vol = path.join(base, 'vol');
  if (kind === 'btrfs') sh(`btrfs -q subvolume create ${vol}`, base);
  else fs.mkdirSync(vol);
  sh(PARENT_SCRIPT, vol);
  expect(ok(['init', vol]).trim()).toBe(kind);
  ok(['snapshot', vol, '--name', 'S']);
  // Streams are made right after each snapshot: an index volume sends from the live tree.
  const target = path.join(base, 'target');
  ok(['send', `${vol}@S`, '-f', path.join(base, 'S.stream')]);
  ok(['receive', target, '-f', path.join(base, 'S.stream')]);
  const refS = path.join(base, 'refS');
  reference(vol, refS);
  sh(CHILD_SCRIPT, vol);
  ok(['snapshot', vol, '--name', 'T']);
  ok(['send', `${vol}@T`, '-p', `${vol}@S`, '-f', path.join(base, 'T.stream')]);
  sh('echo after-T > after-T', vol);
  const refOld = path.join(base, 'refOld');
  reference(vol, refOld);
  return { vol, target, refS, refOld, from: kind === 'index' ? ['--from', target] : [] };
}

/** Kill a rollback at `point`, check the state, let the next command recover, re-run, check again. */
function killAndRecover(s: Setup, point: string, env: Record<string, string> = {}): void {
  const r = ferry(['rollback', `${s.vol}@S`, ...s.from], { env: { ...env, FERRY_FAULT: point } });
  expect([point, r.code, r.stderr]).toEqual([point, null, '']);
  const committed = AFTER.includes(point) || point === 'rollback:between-renames';
  if (point === 'rollback:between-renames') {
    expect(fs.existsSync(s.vol)).toBe(false); // the documented window of the two-rename fallback
  } else {
    expect(fs.existsSync(s.vol)).toBe(true);
    expect([point, same(s.vol, committed ? s.refS : s.refOld, false)]).toEqual([point, []]);
  }
  expect(metadataPlaces(s.vol)).toHaveLength(1);

  // Any ferry command on the volume finds the metadata (finishing a swapped rollback first).
  const list = ferry(['list', s.vol, '--json'], { env });
  expect([point, list.code, list.stderr]).toEqual([point, 0, '']);
  expect(list.stdout.toString().trim().split('\n').map((l) => JSON.parse(l).name)).toEqual(['S', 'T']);
  expect(metadataPlaces(s.vol)).toEqual([s.vol]);
  expect(same(s.vol, committed ? s.refS : s.refOld, false)).toEqual([]);

  const again = ferry(['rollback', `${s.vol}@S`, ...s.from], { env });
  expect([point, again.code, again.stderr]).toEqual([point, 0, '']);
  expect(same(s.vol, s.refS)).toEqual([]);
  expect(treecmp(s.vol, s.refS).differences).toEqual([]);
  expect(beside(s.vol)).toEqual([]);
  expect(fs.existsSync(path.join(s.vol, '.ferry/lock'))).toBe(false);
  expect(fs.existsSync(path.join(s.vol, '.ferry/rollback.json'))).toBe(false);
  expect(listSnapshots(openVolume(s.vol)).map((x) => x.meta.name)).toEqual(['S', 'T']);
}

/** After a rollback, the next snapshot sends correctly from S and from T (two targets). */
function sendsAfterRollback(s: Setup, base: string, kind: Kind): void {
  const res = JSON.parse(ok(['rollback', `${s.vol}@S`, ...s.from, '--json']));
  expect(res).toEqual(
    expect.objectContaining({ event: 'rollback', volume: s.vol, snapshot: 'S', method: kind, kept: null, mode: 'exchange', recovered: null, warnings: [] }),
  );
  expect(same(s.vol, s.refS)).toEqual([]);
  sh('echo later > later; echo more >> docs/a.txt', s.vol);
  ok(['snapshot', s.vol, '--name', 'N']);
  const n = getSnapshot(openVolume(s.vol), 'N');
  expect(n.meta.parentName).toBe('S'); // the snapshot rolled back to
  expect(openVolume(s.vol).meta.rolledBackTo).toBeUndefined();
  const f = (x: string) => path.join(base, `${x}.stream`);
  ok(['send', `${s.vol}@N`, '-p', `${s.vol}@S`, '-f', f('N-S')]);
  ok(['send', `${s.vol}@N`, '-p', `${s.vol}@T`, '-f', f('N-T')]);
  const t1 = path.join(base, 'from-S');
  ok(['receive', t1, '-f', f('S')]);
  ok(['receive', t1, '-f', f('N-S')]);
  const t2 = path.join(base, 'from-T');
  ok(['receive', t2, '-f', f('S')]);
  ok(['receive', t2, '-f', f('T')]);
  ok(['receive', t2, '-f', f('N-T')]);
  for (const t of [t1, t2]) {
    expect(treecmp(s.vol, path.join(t, 'N'), { farmSharedOk: true, xfsAclOk: true }).differences).toEqual([]);
  }
  // diff between the branches is computed from the indexes
  const d = ok(['diff', `${s.vol}@T`, `${s.vol}@N`]);
  expect(d).toMatch(/\+\tF\t.*\/later\n/);
}

function suite(kind: Kind, fsKind: 'xfs' | 'ext4' | 'btrfs', size: number) {
  describeLoopFs(
    fsKind,
    `rollback of a ${kind} volume (${fsKind})`,
    (mnt: () => LoopFs) => {
      let n = 0;
      const base = () => path.join(mnt().dir, `case${++n}`);

      for (const point of [...BEFORE, ...AFTER]) {
        test(`killed at ${point}: DIR is the old or the new tree, and the next run recovers`, () => {
          killAndRecover(setup(base(), kind), point);
        });
      }

      if (kind === 'index') {
        for (const point of ['rollback:before-exchange', 'rollback:between-renames', 'rollback:after-exchange', 'rollback:after-ferry-move']) {
          test(`without RENAME_EXCHANGE (two renames), killed at ${point}`, () => {
            killAndRecover(setup(base(), kind), point, { FERRY_NO_NATIVE: '1' });
          });
        }
      }

      test('a rollback in progress holds the lock wherever the metadata is', () => {
        const s = setup(base(), kind);
        expect(ferry(['rollback', `${s.vol}@S`, ...s.from], { env: { FERRY_FAULT: 'rollback:after-exchange' } }).code).toBeNull();
        const [away] = beside(s.vol);
        // Pretend the killed rollback is still alive: its lock names a live process (this one).
        const live = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), procStart: null, purpose: 'rollback to S' });
        fs.writeFileSync(path.join(path.dirname(s.vol), away, '.ferry/lock'), live);
        fs.writeFileSync(path.join(s.vol, '.ferry/lock'), live);
        const r = ferry(['list', s.vol]);
        expect(r.code).toBe(11);
        expect(r.stderr).toMatch(/locked by another ferry run/);
        expect(ferry(['snapshot', s.vol]).code).toBe(11);
        fs.rmSync(path.join(path.dirname(s.vol), away, '.ferry/lock'));
        expect(ok(['list', s.vol])).toMatch(/^NAME/);
        expect(same(s.vol, s.refS)).toEqual([]);
      });

      test('--keep-old keeps the tree rolled back from', () => {
        const b = base();
        const s = setup(b, kind);
        const out = ok(['rollback', `${s.vol}@S`, '--keep-old', ...s.from]);
        expect(same(s.vol, s.refS)).toEqual([]);
        if (kind === 'index') {
          const m = /kept as (.*@pre-rollback-\d{8}T\d{6}Z)\n/.exec(out);
          expect(m).not.toBeNull();
          expect(same(m![1], s.refOld)).toEqual([]);
        } else {
          const m = /kept as snapshot .*@(pre-rollback-\d{8}T\d{6}Z)\n/.exec(out);
          expect(m).not.toBeNull();
          const kept = getSnapshot(openVolume(s.vol), m![1]);
          expect(same(kept.dataRoot, s.refOld)).toEqual([]);
          // and back again
          ok(['rollback', `${s.vol}@${m![1]}`]);
          expect(same(s.vol, s.refOld)).toEqual([]);
        }
        expect(beside(s.vol)).toEqual([]);
      });

      test('incremental sends after a rollback are correct from either branch', () => {
        const b = base();
        sendsAfterRollback(setup(b, kind), b, kind);
      });

      test('errors change nothing', () => {
        const s = setup(base(), kind);
        const missing = ferry(['rollback', `${s.vol}@nope`, ...s.from]);
        expect(missing.code).toBe(10);
        expect(missing.stderr).toMatch(/snapshot not found/);
        if (kind === 'index') {
          const noFrom = ferry(['rollback', `${s.vol}@S`]);
          expect(noFrom.code).toBe(2);
          expect(noFrom.stderr).toMatch(/index volume keeps no copy of its snapshots: give --from TARGET/);
          const wrong = ferry(['rollback', `${s.vol}@T`, '--from', s.target]);
          expect(wrong.code).toBe(10);
          expect(wrong.stderr).toMatch(/the target holds no copy of this snapshot/);
          // a received copy that no longer matches the snapshot is refused
          const copy = path.join(s.target, 'S');
          sh(`chattr -i ${copy} && echo tampered > ${copy}/extra && chattr +i ${copy}`, '/');
          const tampered = ferry(['rollback', `${s.vol}@S`, '--from', s.target]);
          expect(tampered.code).toBe(1);
          expect(tampered.stderr).toMatch(/rollback failed: the copy in the target does not match the snapshot/);
        }
        const held = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), procStart: null, purpose: 'test' });
        fs.writeFileSync(path.join(s.vol, '.ferry/lock'), held);
        expect(ferry(['rollback', `${s.vol}@S`, ...s.from]).code).toBe(11);
        fs.rmSync(path.join(s.vol, '.ferry/lock'));
        expect(same(s.vol, s.refOld)).toEqual([]);
        expect(beside(s.vol)).toEqual([]);
      });
    },
    size,
  );
}

suite('reflink', 'xfs', 400);
suite('index', 'ext4', 256);
suite('btrfs', 'btrfs', 400);
