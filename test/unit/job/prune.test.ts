/**
 * Removing received snapshots from a target on this host (src/job/prune.ts
 * removeLocalReceived): one rename out of sight, then the catalog entry, then
 * the files; a kill at any point never leaves a usable-looking half tree.
 * Plus snapshot times for retention.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeLocalReceived, snapshotTime } from '../../../src/job/prune';
import { Receiver } from '../../../src/receive/receiver';
import { sendSnapshot } from '../../../src/replicate/send';
import { Catalog } from '../../../src/volume/catalog';
import { Lock } from '../../../src/volume/lock';
import { initVolume, openVolume, snapshot } from '../../../src/volume/volume';
import { rmTree } from '../../helpers/fs';

let tmp: string;
let vol: string;
let target: string;

beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-rm-'));
  vol = path.join(tmp, 'vol');
  target = path.join(tmp, 'target');
  fs.mkdirSync(path.join(vol, 'd'), { recursive: true });
  initVolume(vol, 'index');
  let parent: string | undefined;
  for (const name of ['s1', 's2', 's3']) {
    fs.writeFileSync(path.join(vol, 'd', 'f'), `${name}\n`);
    await snapshot(openVolume(vol), { name });
    const stream = sendSnapshot({ snapshot: { volume: vol, name }, parent: parent ? { volume: vol, name: parent } : undefined, version: 1 });
    await new Receiver({ target }).receive(stream);
    parent = name;
  }
});
afterEach(() => rmTree(tmp));

const visible = () => new Catalog(target).list().map((e) => e.name);

test('removes the trees (immutable roots included) and their catalog entries, leaving nothing behind', () => {
  expect(visible()).toEqual(['s1', 's2', 's3']);
  const attrs = spawnSync('lsattr', ['-d', path.join(target, 's1')], { encoding: 'utf8' });
  if (attrs.status === 0) expect(attrs.stdout.split(' ')[0]).toContain('i'); // the receiver protected it
  expect(removeLocalReceived(target, ['s1', 's2', 'not-there'])).toEqual(['s1', 's2']);
  expect(visible()).toEqual(['s3']);
  expect(fs.readdirSync(target).sort()).toEqual(['.ferry', 's3']);
  expect(fs.readdirSync(path.join(target, '.ferry', 'catalog')).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  expect(fs.readdirSync(path.join(target, '.ferry')).filter((n) => n.startsWith('removing-'))).toEqual([]);
  expect(fs.existsSync(path.join(target, '.ferry', 'receive.lock'))).toBe(false);
  expect(fs.readFileSync(path.join(target, 's3', 'd', 'f'), 'utf8')).toBe('s3\n');
});

test('killed after the rename: the snapshot is already gone, its entry is a trace, and the next prune clears the leftover', () => {
  const e = new Catalog(target).findByName('s1')!;
  // What a kill right after fs.renameSync leaves: the tree under .ferry, the entry still there.
  spawnChattr(path.join(target, 's1'));
  fs.renameSync(path.join(target, 's1'), path.join(target, '.ferry', `removing-${e.uuid}`));
  expect(fs.existsSync(new Catalog(target).entryPath(e.uuid))).toBe(true);
  expect(visible()).toEqual(['s2', 's3']); // not a snapshot any more, so never a parent
  expect(new Catalog(target).findByUuid(e.receivedUuid)).toBeUndefined();
  expect(removeLocalReceived(target, ['s2'])).toEqual(['s2']);
  expect(fs.readdirSync(path.join(target, '.ferry')).filter((n) => n.startsWith('removing-'))).toEqual([]);
  expect(visible()).toEqual(['s3']);
});

test('refuses while a receive holds the target', () => {
  const lock = Lock.acquire(path.join(target, '.ferry', 'receive.lock'), 'receive into target');
  try {
    expect(() => removeLocalReceived(target, ['s1'])).toThrow(expect.objectContaining({ code: 'VOLUME_LOCKED' }));
  } finally {
    lock.release();
  }
  expect(visible()).toEqual(['s1', 's2', 's3']);
});

test('snapshot time: the UTC stamp in the name, else the fallback', () => {
  expect(snapshotTime('20261103T031500Z', '2000-01-01T00:00:00Z').toISOString()).toBe('2026-11-03T03:15:00.000Z');
  expect(snapshotTime('home-20261103T031500Z', 'x').toISOString()).toBe('2026-11-03T03:15:00.000Z');
  expect(snapshotTime('20261103T031500Z_2', 'x').toISOString()).toBe('2026-11-03T03:15:00.000Z');
  expect(snapshotTime('20261399T031500Z', '2001-02-03T04:05:06Z').toISOString()).toBe('2001-02-03T04:05:06.000Z');
  expect(snapshotTime('before-upgrade', '2001-02-03T04:05:06Z').toISOString()).toBe('2001-02-03T04:05:06.000Z');
});

/** Clear the immutable flag the receiver set, as removeLocalReceived would before its rename. */
function spawnChattr(dir: string): void {
  spawnSync('chattr', ['-i', dir], { stdio: 'ignore' });
}
