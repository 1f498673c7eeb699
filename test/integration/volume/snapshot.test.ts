/**
 * Volumes on real filesystems: method choice, generations across snapshots,
 * inode reuse, reflink trees, killed snapshots, CLI exit codes.
 * e2e parts run the built binary (npm run build first).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs } from '../../helpers/loopfs';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { loadIndex } from '../../../src/diff/index-file';
import { BLOCK_SIZE } from '../../../src/diff/generations';
import { initVolume, listSnapshots, openVolume, removeSnapshot, snapshot } from '../../../src/volume/volume';
import { InodeRecord } from '../../../src/model/inode';

const inoOf = (p: string) => fs.lstatSync(p, { bigint: true }).ino;
async function recs(indexPath: string): Promise<Map<bigint, InodeRecord>> {
  return new Map((await loadIndex(indexPath)).map((r) => [r.ino, r]));
}

function scenario(kind: 'ext4' | 'xfs', expectMethod: 'index' | 'reflink') {
  describeLoopFs(
    kind,
    `volume on ${kind}`,
    (mounted) => {
      let n = 0;
      let vdir: string;
      beforeEach(() => {
        vdir = path.join(mounted().dir, `v${++n}`);
        fs.mkdirSync(vdir);
      });
      afterEach(() => rmTree(vdir));

      test(`init picks ${expectMethod}`, () => {
        expect(initVolume(vdir).meta.method).toBe(expectMethod);
        expect(() => initVolume(vdir)).toThrow(expect.objectContaining({ code: 'VOLUME_EXISTS' }));
      });

      test('generations across two snapshots', async () => {
        fs.writeFileSync(path.join(vdir, 'same'), Buffer.alloc(BLOCK_SIZE * 2, 1));
        fs.writeFileSync(path.join(vdir, 'grow'), Buffer.alloc(BLOCK_SIZE * 2, 2));
        fs.mkdirSync(path.join(vdir, 'd'));
        fs.writeFileSync(path.join(vdir, 'd/old'), 'rename me');
        const vol = initVolume(vdir);
        const s1 = await snapshot(vol, { name: 's1' });
        expect(s1.meta.transid).toBe('1');
        const same = inoOf(path.join(vdir, 'same'));
        const grow = inoOf(path.join(vdir, 'grow'));
        const moved = inoOf(path.join(vdir, 'd/old'));

        fs.appendFileSync(path.join(vdir, 'grow'), Buffer.alloc(100, 3));
        fs.renameSync(path.join(vdir, 'd/old'), path.join(vdir, 'new'));
        const s2 = await snapshot(vol, { name: 's2' });
        expect(s2.meta.transid).toBe('2');
        expect(s2.meta.parentUuid).toBe(s1.meta.uuid);

        const r2 = await recs(s2.indexPath);
        expect(r2.get(same)!.generation).toBe(1n);
        expect(r2.get(same)!.extents!.map((x) => x.generation)).toEqual([1n, 1n]);
        expect(r2.get(grow)!.generation).toBe(2n);
        expect(r2.get(grow)!.extents!.map((x) => x.generation)).toEqual([1n, 1n, 2n]);
        const m = r2.get(moved)!;
        expect(m.generation).toBe(2n);
        expect(m.links.map((l) => l.name.toString())).toEqual(['new']);
        expect(m.extents!.map((x) => x.generation)).toEqual([1n]);

        if (expectMethod === 'reflink') {
          expect(s2.dataRoot).toBe(path.join(s2.dir, 'tree'));
          expect(fs.readFileSync(path.join(s1.dataRoot, 'd/old'), 'utf8')).toBe('rename me');
          expect(fs.statSync(path.join(s1.dataRoot, 'grow')).size).toBe(BLOCK_SIZE * 2);
          expect(fs.statSync(path.join(s2.dataRoot, 'grow')).size).toBe(BLOCK_SIZE * 2 + 100);
          expect(() => fs.writeFileSync(path.join(s2.dataRoot, 'intruder'), 'x')).toThrow(); // immutable root
        } else {
          expect(s2.dataRoot).toBe(vdir);
        }
        removeSnapshot(vol, 's1');
        expect(listSnapshots(vol).map((s) => s.meta.name)).toEqual(['s2']);
      });

      if (expectMethod === 'reflink') {
        test("unchanged files share the parent's frozen inode; changed or tampered ones are cloned", async () => {
          fs.mkdirSync(path.join(vdir, 'd'));
          for (const f of ['same', 'd/same', 'd/gone', 'd/chmod', 'changed']) fs.writeFileSync(path.join(vdir, f), `data of ${f}`);
          fs.linkSync(path.join(vdir, 'd/same'), path.join(vdir, 'd/same2'));
          const vol = initVolume(vdir);
          const s1 = await snapshot(vol, { name: 's1' });
          fs.writeFileSync(path.join(vdir, 'changed'), 'new data');
          // The parent's copies of these no longer match their records: never shared.
          fs.rmSync(path.join(s1.dataRoot, 'd/gone'));
          fs.chmodSync(path.join(s1.dataRoot, 'd/chmod'), 0o600);
          const s2 = await snapshot(vol, { name: 's2' });
          const in1 = (f: string) => inoOf(path.join(s1.dataRoot, f));
          const in2 = (f: string) => inoOf(path.join(s2.dataRoot, f));
          expect(in2('same')).toBe(in1('same'));
          expect(in2('d/same')).toBe(in1('d/same'));
          expect(in2('d/same2')).toBe(in2('d/same'));
          expect(in2('changed')).not.toBe(in1('changed'));
          expect(in2('d/chmod')).not.toBe(in1('d/chmod'));
          expect(fs.statSync(path.join(s2.dataRoot, 'd/chmod')).mode & 0o777).toBe(fs.statSync(path.join(vdir, 'd/chmod')).mode & 0o777);
          // The parent's tree is as it was (its times are not rewritten by the sharing).
          expect(fs.readFileSync(path.join(s1.dataRoot, 'changed'), 'utf8')).toBe('data of changed');
          removeSnapshot(vol, 's1');
          for (const f of ['same', 'd/same', 'd/same2', 'd/gone', 'd/chmod', 'changed']) {
            expect(fs.readFileSync(path.join(s2.dataRoot, f))).toEqual(fs.readFileSync(path.join(vdir, f)));
          }
          const r2 = await recs(s2.indexPath);
          expect(r2.get(inoOf(path.join(vdir, 'same')))!.generation).toBe(1n);
          expect(r2.get(inoOf(path.join(vdir, 'changed')))!.generation).toBe(2n);
        });
      }

      test('a reused inode number is a new inode', async () => {
        fs.writeFileSync(path.join(vdir, 'a'), 'first');
        const vol = initVolume(vdir);
        await snapshot(vol, { name: 's1' });
        const oldIno = inoOf(path.join(vdir, 'a'));
        const r1 = await recs(listSnapshots(vol)[0].indexPath);
        fs.rmSync(path.join(vdir, 'a'));
        let reused = false;
        for (let i = 0; i < 50 && !reused; i++) {
          const p = path.join(vdir, `b${i}`);
          fs.writeFileSync(p, 'second');
          reused = inoOf(p) === oldIno;
          if (!reused) fs.rmSync(p);
        }
        if (kind === 'ext4') expect(reused).toBe(true);
        if (!reused) return;
        const s2 = await snapshot(vol, { name: 's2' });
        const rec = (await recs(s2.indexPath)).get(oldIno)!;
        expect(rec.birth).not.toBe(r1.get(oldIno)!.birth);
        expect(rec.generation).toBe(2n);
        expect(rec.extents!.every((x) => x.generation === 2n)).toBe(true);
      });

      test('a killed snapshot never appears and is cleaned up next time', async () => {
        fs.writeFileSync(path.join(vdir, 'f'), 'x');
        expect(ferry(['init', vdir]).code).toBe(0);
        for (const point of ['snapshot:after-walk', 'snapshot:after-index', 'snapshot:before-rename']) {
          const r = ferry(['snapshot', vdir, '--name', 'k'], { env: { FERRY_FAULT: point } });
          expect(r.code).toBeNull(); // SIGKILL
          expect(listSnapshots(openVolume(vdir))).toEqual([]);
        }
        const snaps = path.join(vdir, '.ferry/snapshots');
        expect(fs.readdirSync(snaps).some((x) => x.startsWith('.tmp-'))).toBe(true);
        const ok = ferry(['snapshot', vdir, '--name', 'k']);
        expect(ok.code).toBe(0);
        expect(ok.stdout.toString()).toBe(`${vdir}@k\n`);
        expect(fs.readdirSync(snaps)).toEqual(['k']);
        // The walk's spill file is gone; only the snapshot's own files remain.
        expect(fs.readdirSync(path.join(snaps, 'k')).filter((x) => x !== 'tree').sort()).toEqual(['index', 'meta.json']);
        const meta = listSnapshots(openVolume(vdir))[0].meta;
        expect(BigInt(meta.transid)).toBeGreaterThan(3n); // killed transids are never reused
      });

      test('CLI: init, snapshot, duplicate name, list', () => {
        const init = ferry(['init', vdir]);
        expect(init.code).toBe(0);
        expect(init.stdout.toString()).toBe(`${expectMethod}\n`);
        expect(ferry(['init', vdir]).code).toBe(2);
        expect(ferry(['init', path.join(vdir, 'missing')]).code).toBe(10);
        expect(ferry(['snapshot', vdir, '--name', 'one']).code).toBe(0);
        const dup = ferry(['snapshot', vdir, '--name', 'one']);
        expect(dup.code).toBe(2);
        expect(dup.stderr).toMatch(/already exists/);
        expect(ferry(['snapshot', vdir, '--name', 'a/b']).code).toBe(2);
        expect(ferry(['snapshot', path.join(vdir, 'nope')]).code).toBe(10);
        const list = ferry(['list', vdir, '--json']);
        expect(list.code).toBe(0);
        const rows = list.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
        expect(rows.map((r) => [r.name, r.transid, r.method])).toEqual([['one', '1', expectMethod]]);
        const text = ferry(['list', vdir]);
        expect(text.stdout.toString()).toMatch(/^NAME +UUID +TRANSID/);
        expect(ferry(['list', path.join(vdir, 'd')]).code).toBe(10);
      });
    },
    kind === 'xfs' ? 300 : 64,
  );
}

scenario('ext4', 'index');
scenario('xfs', 'reflink');
