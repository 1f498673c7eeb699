/**
 * Receiving onto a btrfs target (src/receive/snapshot-trees.ts): every
 * snapshot is a subvolume, as btrfs receive makes it. A full stream starts
 * from an empty subvolume, an incremental one from a writable snapshot of
 * its parent's (nothing copied); the committed subvolume carries the
 * sender's uuid and ctransid as its received uuid and stransid and is
 * read-only, so the real `btrfs receive` finds it as a parent. Kills around
 * the commit leave nothing visible, or a complete snapshot made read-only by
 * the next run; a resumed partial is a subvolume too; pruning deletes the
 * read-only subvolume. Trees are checked against a receive onto the
 * ordinary filesystem with our comparison and treecmp.py.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeLocalReceived } from '../../../src/job/prune';
import { Receiver } from '../../../src/receive/receiver';
import { sys } from '../../../src/sys/linux';
import { isSubvolume, showSubvolume } from '../../../src/volume/btrfs';
import { Catalog } from '../../../src/volume/catalog';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { describeLoopFs } from '../../helpers/loopfs';
import { FIXTURE_DIR } from '../../helpers/streams';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const S = (n: string) => path.join(FIXTURE_DIR, `${n}.stream`);
const ALLOW = ['--allow-devices', '--allow-setuid'];

let work: string;
let reference: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-btrfs-target-'));
  reference = path.join(work, 'reference');
  expect(ferry(['receive', reference, '-f', S('full-v1'), '--seed', 'copy', ...ALLOW]).code).toBe(0);
  expect(ferry(['receive', reference, '-f', S('incr-v1'), '--seed', 'copy', ...ALLOW]).code).toBe(0);
});

afterAll(() => rmTree(work));

function readonly(p: string): boolean | undefined {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    return sys().subvolReadonly(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function sameAsReference(t: string, name: string): void {
  expect(compareTrees(path.join(reference, name), path.join(t, name))).toEqual([]);
  expect(treecmp(path.join(reference, name), path.join(t, name)).differences).toEqual([]);
}

/** What a user can see: snapshot dirs and effective catalog entries. */
function visible(t: string): { dirs: string[]; catalog: string[] } {
  return {
    dirs: fs.readdirSync(t).filter((n) => n !== '.ferry').sort(),
    catalog: new Catalog(t).list().map((e) => `${e.name} ${e.receivedUuid}`),
  };
}

describeLoopFs('btrfs', 'ferry receive onto a btrfs target', (mounted) => {
  let n = 0;
  const target = () => path.join(mounted().dir, `t${++n}`);
  /** Paths of the filesystem's live subvolumes, relative to its top (deleted ones drop out at once). */
  const subvolumes = () =>
    spawnSync('btrfs', ['subvolume', 'list', mounted().dir], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^.* path /, ''))
      .sort();

  it('full then incremental: read-only subvolumes with the received uuid, the child a snapshot of its parent', () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).stdout.toString()).toBe('snap1\n');
    expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).stdout.toString()).toBe('snap2\n');
    const cat = new Catalog(t);
    const [e1, e2] = [cat.findByName('snap1')!, cat.findByName('snap2')!];
    expect([e1.method, e2.method]).toEqual(['full', 'snapshot']);
    for (const [name, e] of [['snap1', e1], ['snap2', e2]] as const) {
      const p = path.join(t, name);
      expect(isSubvolume(p)).toBe(true);
      expect(readonly(p)).toBe(true);
      const show = showSubvolume(p);
      expect(show.readonly).toBe(true);
      expect(show.receivedUuid).toBe(e.receivedUuid);
      sameAsReference(t, name);
    }
    // Seeded as a snapshot of the parent's subvolume: nothing was copied.
    expect(showSubvolume(path.join(t, 'snap2')).parentUuid).toBe(showSubvolume(path.join(t, 'snap1')).uuid);
    expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
    // A received snapshot cannot be changed by accident.
    expect(() => fs.writeFileSync(path.join(t, 'snap1', 'new-file'), 'x')).toThrow(/EROFS/);
  });

  it('the real btrfs receive finds a snapshot ferry received as the parent of an incremental stream', () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
    const r = spawnSync('btrfs', ['receive', '-f', S('incr-v1'), t], { encoding: 'utf8' });
    expect(r.stderr).not.toMatch(/ERROR/);
    expect(r.status).toBe(0);
    sameAsReference(t, 'snap2');
  });

  it('--seed reflink keeps plain directories; an incremental on top of one seeds a subvolume by reflink', () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), '--seed', 'reflink', ...ALLOW]).code).toBe(0);
    expect(isSubvolume(path.join(t, 'snap1'))).toBe(false);
    expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).code).toBe(0);
    expect(isSubvolume(path.join(t, 'snap2'))).toBe(true);
    expect(readonly(path.join(t, 'snap2'))).toBe(true);
    expect(new Catalog(t).findByName('snap2')!.method).toBe('reflink');
    sameAsReference(t, 'snap1');
    sameAsReference(t, 'snap2');
  });

  it.each(['receive:seeded', 'receive:command:20', 'receive:before-catalog', 'receive:after-catalog'])(
    'killed at %s: nothing visible, the staging subvolume is deleted by the next run',
    (point) => {
      const t = target();
      expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
      const before = visible(t);
      expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW], { env: { FERRY_FAULT: point } }).code).toBeNull();
      expect(visible(t)).toEqual(before);
      const partials = fs.readdirSync(path.join(t, '.ferry', 'partial'));
      expect(partials).toHaveLength(1);
      expect(isSubvolume(path.join(t, '.ferry', 'partial', partials[0], 'tree'))).toBe(true);
      expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).code).toBe(0);
      expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
      expect(subvolumes().filter((l) => l.startsWith(`${path.basename(t)}/`))).toEqual([`${path.basename(t)}/snap1`, `${path.basename(t)}/snap2`]);
      sameAsReference(t, 'snap2');
      expect(readonly(path.join(t, 'snap2'))).toBe(true);
    },
  );

  it('killed after the rename: the snapshot is complete, and the next run makes it read-only', () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
    expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW], { env: { FERRY_FAULT: 'receive:after-rename' } }).code).toBeNull();
    expect(visible(t).dirs).toEqual(['snap1', 'snap2']);
    expect(readonly(path.join(t, 'snap2'))).toBe(false);
    sameAsReference(t, 'snap2');
    // Any later receive into the target mends it (this one is refused: already there).
    expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).code).toBe(2);
    expect(readonly(path.join(t, 'snap2'))).toBe(true);
    expect(showSubvolume(path.join(t, 'snap2')).receivedUuid).toBe(new Catalog(t).findByName('snap2')!.receivedUuid);
  });

  it('a kept partial is a subvolume and resumes into the same snapshot', async () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
    const bytes = fs.readFileSync(S('incr-v1'));
    const cut = Math.floor(bytes.length / 2);
    const rx = new Receiver({ target: t, allowDevices: true, allowSetuid: true, keepPartial: true });
    async function* first() {
      yield bytes.subarray(0, cut);
      throw new Error('disconnected');
    }
    await expect(rx.receive(first())).rejects.toThrow('disconnected');
    const [part] = rx.partials();
    expect(part.appliedBytes).toBeGreaterThan(0);
    expect(isSubvolume(path.join(t, '.ferry', 'partial', part.id, 'tree'))).toBe(true);
    async function* rest() {
      yield bytes.subarray(part.appliedBytes);
    }
    const done = await rx.receive(rest(), { resume: { id: part.id, fromByte: part.appliedBytes } });
    expect(done.map((d) => d.name)).toEqual(['snap2']);
    expect(readonly(path.join(t, 'snap2'))).toBe(true);
    sameAsReference(t, 'snap2');
  });

  it('pruning deletes the read-only subvolume and its catalog entry; the rest stay intact', () => {
    const t = target();
    expect(ferry(['receive', t, '-f', S('full-v1'), ...ALLOW]).code).toBe(0);
    expect(ferry(['receive', t, '-f', S('incr-v1'), ...ALLOW]).code).toBe(0);
    expect(removeLocalReceived(t, ['snap1'])).toEqual(['snap1']);
    expect(visible(t).dirs).toEqual(['snap2']);
    expect(new Catalog(t).list().map((e) => e.name)).toEqual(['snap2']);
    expect(fs.readdirSync(path.join(t, '.ferry')).filter((x) => x.startsWith('removing-'))).toEqual([]);
    const list = subvolumes().filter((l) => l.startsWith(`${path.basename(t)}/`));
    expect(list).toEqual([`${path.basename(t)}/snap2`]);
    sameAsReference(t, 'snap2');
  });
}, 1024);

describe('--seed snapshot where subvolumes cannot be used', () => {
  it('is a usage error that names the reason, and nothing is received', () => {
    const t = path.join(work, 'not-btrfs');
    const r = ferry(['receive', t, '-f', S('full-v1'), '--seed', 'snapshot', ...ALLOW]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--seed snapshot cannot be used here: the target is not on btrfs/);
    expect(new Catalog(t).list()).toEqual([]);
  });
});
