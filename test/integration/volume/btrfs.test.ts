/**
 * The `btrfs` snapshot method on a loop-mounted btrfs: init, snapshots as
 * read-only subvolumes whose uuid/transid are what kernel streams carry,
 * `ferry send` delegating to `btrfs send`, and the streams received by
 * `btrfs receive` and by `ferry receive` onto ext4, compared with treecmp.
 * CLI parts run the built binary (npm run build first).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs, LoopFs } from '../../helpers/loopfs';
import { ferry } from '../../helpers/cli';
import { compareTrees, treecmp } from '../../helpers/tree-compare';
import { loadIndex } from '../../../src/diff/index-file';
import { isSubvolume, showSubvolume } from '../../../src/volume/btrfs';
import { getSnapshot, listSnapshots, openVolume, removeSnapshot } from '../../../src/volume/volume';

function ok(args: string[], env?: Record<string, string>): string {
  const r = ferry(args, { env });
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.toString();
}

function sh(script: string, cwd: string): string {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed in ${cwd}: ${r.stderr}`);
  return r.stdout;
}

/** What a kernel stream of this read-only subvolume says about it: uuid and ctransid. */
function kernelIdentity(subvol: string): { uuid: string; transid: string } {
  const send = spawnSync('btrfs', ['-q', 'send', '--no-data', subvol], { maxBuffer: 1 << 26 });
  if (send.status !== 0) throw new Error(`btrfs send: ${send.stderr}`);
  const dump = spawnSync('btrfs', ['receive', '--dump'], { input: send.stdout, encoding: 'utf8', maxBuffer: 1 << 26 });
  const out = dump.stdout.split('\n')[0];
  const m = /uuid=(\S+) transid=(\d+)/.exec(out);
  if (!m) throw new Error(`no subvol line in ${out}`);
  return { uuid: m[1], transid: m[2] };
}

const subvolumes = (mnt: string) => sh('btrfs subvolume list .', mnt);

describeLoopFs(
  'btrfs',
  'btrfs volumes',
  (btrfs: () => LoopFs) => {
    let n = 0;
    let vol: string;
    beforeEach(() => {
      vol = path.join(btrfs().dir, `v${++n}`);
      sh(`btrfs -q subvolume create ${vol}`, '/');
    });

    test('init: auto picks btrfs on a subvolume and makes .ferry a subvolume; elsewhere a clear error', () => {
      expect(ok(['init', vol])).toBe('btrfs\n');
      expect(isSubvolume(path.join(vol, '.ferry'))).toBe(true);
      expect(openVolume(vol).meta.method).toBe('btrfs');
      const plain = path.join(btrfs().dir, `plain${n}`);
      fs.mkdirSync(plain);
      const bad = ferry(['init', plain, '--method', 'btrfs']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/method btrfs does not work here: DIR is not a btrfs subvolume/);
      expect(bad.stderr).toMatch(/hint: make DIR a subvolume/);
      expect(ok(['init', plain])).toBe('reflink\n'); // a plain directory on btrfs still clones
      const sub2 = path.join(btrfs().dir, `forced${n}`);
      sh(`btrfs -q subvolume create ${sub2}`, '/');
      expect(ok(['init', sub2, '--method', 'reflink'])).toBe('reflink\n');
    });

    test("snapshots are read-only subvolumes with the kernel stream's uuid and ctransid; nested subvolumes are left out quietly", async () => {
      sh('echo a > a; mkdir d; echo b > d/b; btrfs -q subvolume create nested; echo n > nested/x', vol);
      ok(['init', vol]);
      const r1 = ferry(['snapshot', vol, '--name', 's1']);
      expect([r1.code, r1.stderr]).toEqual([0, '']);
      ok(['snapshot', vol, '--name', 's2']); // nothing changed: same ctransid as s1
      sh('echo c > c; sync', vol);
      ok(['snapshot', vol, '--name', 's3']);
      const v = openVolume(vol);
      const snaps = listSnapshots(v);
      expect(snaps.map((s) => s.meta.name)).toEqual(['s1', 's2', 's3']);
      for (const s of snaps) {
        expect(s.dataRoot).toBe(path.join(vol, '.ferry/snapshots', s.meta.name, 'tree', s.meta.name));
        const show = showSubvolume(s.dataRoot);
        expect(show.readonly).toBe(true);
        expect(show.uuid).toBe(s.meta.uuid);
        expect(kernelIdentity(s.dataRoot)).toEqual({ uuid: s.meta.uuid, transid: s.meta.transid });
      }
      expect(snaps[1].meta.transid).toBe(snaps[0].meta.transid);
      expect(BigInt(snaps[2].meta.transid)).toBeGreaterThan(BigInt(snaps[1].meta.transid));
      expect(snaps[2].meta.parentName).toBe('s2');
      // The index is the frozen snapshot's, with the live tree's inode numbers; no .ferry, no nested subvolume content.
      const recs = await loadIndex(snaps[2].indexPath);
      const ino = (p: string) => fs.lstatSync(path.join(vol, p), { bigint: true }).ino;
      expect(new Set(recs.map((r) => r.ino))).toEqual(new Set([ino('.'), ino('a'), ino('d'), ino('d/b'), ino('c')]));
      const json = ferry(['list', vol, '--json']).stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
      expect(json.map((j) => [j.name, j.method, j.uuid])).toEqual(snaps.map((s) => [s.meta.name, 'btrfs', s.meta.uuid]));
      // `ferry diff` works from the indexes
      expect(ok(['diff', `${vol}@s1`, `${vol}@s3`])).toBe(`M\t/\t${vol}/\tmtime\n+\tF\t${vol}/c\n`);
    });

    test('a killed snapshot leaves no subvolume behind; removing a snapshot deletes its subvolume', () => {
      sh('echo a > a', vol);
      ok(['init', vol]);
      for (const point of ['snapshot:after-walk', 'snapshot:before-rename']) {
        expect(ferry(['snapshot', vol, '--name', 'k'], { env: { FERRY_FAULT: point } }).code).toBeNull();
        expect(listSnapshots(openVolume(vol))).toEqual([]);
      }
      expect(subvolumes(btrfs().dir)).toMatch(/\.tmp-/);
      ok(['snapshot', vol, '--name', 'k']);
      ok(['snapshot', vol, '--name', 'k2']);
      expect(subvolumes(btrfs().dir)).not.toMatch(/\.tmp-/);
      const k = getSnapshot(openVolume(vol), 'k');
      expect(subvolumes(btrfs().dir)).toContain(`snapshots/k/tree/k`);
      removeSnapshot(openVolume(vol), 'k');
      expect(fs.existsSync(k.dir)).toBe(false);
      expect(subvolumes(btrfs().dir)).not.toContain(`snapshots/k/tree/k`);
      expect(listSnapshots(openVolume(vol)).map((s) => s.meta.name)).toEqual(['k2']);
    });

    test('a failing btrfs send is a clear error', () => {
      sh('echo a > a', vol);
      ok(['init', vol]);
      ok(['snapshot', vol, '--name', 's1']);
      const s = getSnapshot(openVolume(vol), 's1');
      sh(`btrfs property set -ts ${s.dataRoot} ro false`, '/');
      const r = ferry(['send', `${vol}@s1`, '-f', path.join(btrfs().dir, `x${n}.stream`)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ferry: btrfs send failed: .*read-only/m);
      expect(fs.existsSync(path.join(btrfs().dir, `x${n}.stream`))).toBe(false);
      sh(`btrfs property set -ts ${s.dataRoot} ro true`, '/');
    });

    describeLoopFs(
      'ext4',
      'streams from btrfs send, received by btrfs receive and by ferry receive onto ext4',
      (ext4: () => LoopFs) => {
        for (const proto of ['1', '2']) {
          test(`full and incremental, proto ${proto}`, () => {
            sh(
              [
                'mkdir -p docs/old bin',
                'echo alpha > docs/a.txt; echo bravo > docs/old/b.txt',
                'head -c 1000000 /dev/urandom > big',
                'ln docs/a.txt hard',
                'ln -s docs/a.txt sym',
                'setfattr -n user.k -v v docs/a.txt',
                'mkfifo fifo',
                'truncate -s 5M sparse; printf x | dd of=sparse bs=1 seek=3000000 conv=notrunc status=none',
                'chmod 750 bin; touch -d @1000000000 bin',
              ].join('\n'),
              vol,
            );
            ok(['init', vol]);
            ok(['snapshot', vol, '--name', 'p']);
            sh(
              [
                'mv docs/old moved',
                'printf changed | dd of=big bs=1 seek=500000 conv=notrunc status=none',
                'rm hard; echo new > docs/new',
                'setfattr -x user.k docs/a.txt; setfattr -n user.z -v 1 docs/new',
                'cp --reflink=always big big-clone',
                'chown 1234:5678 docs/new',
              ].join('\n'),
              vol,
            );
            ok(['snapshot', vol, '--name', 'c']);
            const base = path.join(btrfs().dir, `out-${n}`);
            fs.mkdirSync(base);
            const full = path.join(base, 'full.stream');
            const incr = path.join(base, 'incr.stream');
            ok(['send', `${vol}@p`, '--proto', proto, '-f', full]);
            ok(['send', `${vol}@c`, '-p', `${vol}@p`, '--proto', proto, '-f', incr]);
            // the stream names the snapshot and carries the volume's uuids
            const dump = ok(['dump', '-f', incr]);
            const v = openVolume(vol);
            const [p, c] = [getSnapshot(v, 'p'), getSnapshot(v, 'c')];
            expect(dump.split('\n')[0]).toMatch(new RegExp(`^snapshot +\\./c +uuid=${c.meta.uuid} transid=${c.meta.transid} parent_uuid=${p.meta.uuid} parent_transid=${p.meta.transid}$`));

            const truth = path.join(base, 'btrfs-receive');
            fs.mkdirSync(truth);
            for (const f of [full, incr]) {
              const r = spawnSync('btrfs', ['receive', '-f', f, truth], { encoding: 'utf8' });
              expect(r.stderr.replace(/^At (subvol|snapshot) \S+\n/gm, '')).toBe('');
              expect(r.status).toBe(0);
            }
            const target = path.join(ext4().dir, `t${n}-${proto}`);
            expect(ok(['receive', target, '-f', full])).toBe('p\n');
            expect(ok(['receive', target, '-f', incr])).toBe('c\n');
            for (const got of [path.join(truth, 'c'), path.join(target, 'c')]) {
              expect(treecmp(vol, got, { farmSharedOk: true }).differences).toEqual([]);
              expect(compareTrees(vol, got, { ignore: ['.ferry'] })).toEqual([]);
            }
            for (const got of [path.join(truth, 'p'), path.join(target, 'p')]) {
              expect(compareTrees(p.dataRoot, got, { ignore: ['.ferry'] })).toEqual([]);
            }
            // the target's catalog agrees with the volume: received uuid and ctransid
            const cat = ferry(['list', target, '--json']).stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
            expect(cat.map((e) => [e.name, e.receivedUuid, e.ctransid])).toEqual([
              ['p', p.meta.uuid, p.meta.transid],
              ['c', c.meta.uuid, c.meta.transid],
            ]);
          });
        }
      },
      256,
    );
  },
  1024,
);
