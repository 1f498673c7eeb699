/**
 * `syncVolume` to a local target, through a real `ferry serve` child process
 * (the built dist/ binary: run `npx tsc -p tsconfig.json` first). Trees are
 * compared with our comparison and with the independent treecmp.py.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../../../src/errors';
import { localMainJs } from '../../../src/replicate/destination';
import { syncVolume, SyncEvent } from '../../../src/replicate/sync';
import { shellJoin } from '../../../src/transport/local';
import { Catalog } from '../../../src/volume/catalog';
import { listHolds } from '../../../src/volume/holds';
import { initVolume, listSnapshots, openVolume, removeSnapshot } from '../../../src/volume/volume';
import { rmTree } from '../../helpers/fs';
import { mutate, noise, populate } from '../../helpers/sync-trees';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const SERVE = shellJoin([process.execPath, localMainJs(), 'serve']);

let work: string;
let n = 0;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sync-'));
  expect(fs.existsSync(localMainJs())).toBe(true);
});
afterAll(() => rmTree(work));

function fresh(): { vol: string; target: string } {
  const base = path.join(work, `c${++n}`);
  const vol = path.join(base, 'vol');
  fs.mkdirSync(vol, { recursive: true });
  populate(vol);
  initVolume(vol);
  return { vol, target: path.join(base, 'target') };
}

/** A snapshot in the target equals the volume's live tree (index volumes: the live tree is the snapshot). */
function expectSame(vol: string, snap: string): void {
  expect(compareTrees(vol, snap, { ignore: ['.ferry'] })).toEqual([]);
  const t = treecmp(vol, snap, { farmSharedOk: true });
  expect(t.differences).toEqual([]);
}

async function rejects(p: Promise<unknown>): Promise<FerryError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FerryError);
    return e as FerryError;
  }
  throw new Error('expected a rejection');
}

const visible = (target: string) => ({
  dirs: fs.existsSync(target) ? fs.readdirSync(target).filter((x) => x !== '.ferry').sort() : [],
  catalog: new Catalog(target).list().map((e) => e.name),
});

test('full, then incremental, then a second incremental: trees equal each time', async () => {
  const { vol, target } = fresh();
  const events: SyncEvent[] = [];
  const s1 = await syncVolume({ volume: vol, dest: target, name: 's1', onEvent: (e) => events.push(e) });
  expect(s1).toMatchObject({ volume: vol, snapshot: 's1', parent: null, resumedFromByte: 0, target, warnings: [] });
  expect(s1.streamBytes).toBeGreaterThan(1536 * 1024);
  expect(s1.wireBytes).toBe(s1.streamBytes);
  expectSame(vol, path.join(target, 's1'));
  // Progress carried a total from the snapshot's counts and ended at the stream's size.
  const prog = events.filter((e): e is Extract<SyncEvent, { event: 'progress' }> => e.event === 'progress');
  expect(prog.length).toBeGreaterThanOrEqual(2);
  expect(prog[0].totalBytes).toBeGreaterThan(1536 * 1024);
  expect(prog[prog.length - 1].streamBytes).toBe(s1.streamBytes);
  expect(events.map((e) => e.event === 'phase' && e.phase).filter(Boolean)).toEqual(['connect', 'list', 'snapshot', 'plan', 'send', 'commit', 'done']);
  // The hold was released after the ack.
  expect(listHolds(vol)).toEqual([]);

  mutate(vol, 1);
  const s2 = await syncVolume({ volume: vol, dest: target, name: 's2' });
  expect(s2).toMatchObject({ snapshot: 's2', parent: 's1' });
  expect(s2.streamBytes).toBeLessThan(s1.streamBytes / 3);
  expectSame(vol, path.join(target, 's2'));

  mutate(vol, 2);
  const s3 = await syncVolume({ volume: vol, dest: target, name: 's3', proto: 2 });
  expect(s3).toMatchObject({ snapshot: 's3', parent: 's2' });
  expectSame(vol, path.join(target, 's3'));
  expect(visible(target)).toEqual({ dirs: ['s1', 's2', 's3'], catalog: ['s1', 's2', 's3'] });
});

test('--snapshot sends an existing snapshot; one already there is not sent again', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 'a' });
  const again = await syncVolume({ volume: vol, dest: target, snapshotName: 'a' });
  expect(again).toMatchObject({ snapshot: 'a', parent: null, streamBytes: 0, wireBytes: 0, transfers: [] });
  await expect(syncVolume({ volume: vol, dest: target, snapshotName: 'nope' })).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
});

test('a diverged target is refused (exit 15) before a snapshot is taken, and left alone', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  mutate(vol, 1);
  await syncVolume({ volume: vol, dest: target, name: 's2' });
  // s2 disappears at the source: the target now has a snapshot the source does not know, newer than s1.
  removeSnapshot(openVolume(vol), 's2');
  const before = visible(target);
  const e = await rejects(syncVolume({ volume: vol, dest: target, name: 's3' }));
  expect(e.code).toBe('REPLICATE_DIVERGED');
  expect(e.exitCode).toBe(15);
  expect(e.message).toContain('s2');
  expect(e.message).toContain('common snapshot s1');
  expect(visible(target)).toEqual(before);
  expect(listSnapshots(openVolume(vol)).map((s) => s.meta.name)).toEqual(['s1']);
});

test('--incremental-only with no common snapshot: exit 15 listing both sides; without it, a full send', async () => {
  const a = fresh();
  const b = fresh();
  await syncVolume({ volume: b.vol, dest: a.target, name: 'theirs' });
  await syncVolume({ volume: a.vol, dest: a.target, name: 'old-mine' }); // a full send next to theirs
  // A third volume whose snapshots the target never saw.
  const c = fresh();
  await syncVolume({ volume: c.vol, dest: c.target, name: 'c1' });
  const e = await rejects(syncVolume({ volume: c.vol, dest: a.target, name: 'c2', incrementalOnly: true }));
  expect(e.code).toBe('REPLICATE_NO_PARENT');
  expect(e.exitCode).toBe(15);
  expect(e.message).toMatch(/source has: c1 \(/);
  expect(e.message).toMatch(/destination has: .*theirs \(/);
  expect(e.message).toMatch(/old-mine \(/);
  // Refused before snapshotting.
  expect(listSnapshots(openVolume(c.vol)).map((s) => s.meta.name)).toEqual(['c1']);
  const full = await syncVolume({ volume: c.vol, dest: a.target, name: 'c2' });
  expect(full.parent).toBeNull();
  expectSame(c.vol, path.join(a.target, 'c2'));
});

test('serve --restrict-to refuses targets outside PATH, symlinks included (exit 16)', async () => {
  const { vol } = fresh();
  const allowed = path.join(work, `allowed-${n}`);
  const outside = path.join(work, `outside-${n}`);
  fs.mkdirSync(allowed);
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(allowed, 'escape'));
  const remoteCommand = `${SERVE} --restrict-to ${allowed}`;
  for (const dest of [path.join(outside, 't'), path.join(allowed, 'escape', 't'), path.join(allowed, '..', path.basename(outside), 't')]) {
    const e = await rejects(syncVolume({ volume: vol, dest, name: `x${dest.length}`, remoteCommand }));
    expect(e.code).toBe('TRANSPORT_RESTRICTED');
    expect(e.exitCode).toBe(16);
  }
  expect(fs.readdirSync(outside)).toEqual([]);
  // Refused at open, before any snapshot was taken; inside is fine.
  expect(listSnapshots(openVolume(vol))).toEqual([]);
  const r = await syncVolume({ volume: vol, dest: path.join(allowed, 'inside'), name: 'in', remoteCommand });
  expect(r.snapshot).toBe('in');
  expect(visible(path.join(allowed, 'inside')).dirs.length).toBe(1);
});

test('a remote error comes back with its own code, hint and exit code', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  // Another receive holds the target's lock (this live process).
  const lockFile = path.join(target, '.ferry', 'receive.lock');
  const procStart = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ')[19];
  fs.writeFileSync(lockFile, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), procStart, purpose: 'test' }));
  try {
    mutate(vol, 1);
    const e = await rejects(syncVolume({ volume: vol, dest: target, name: 's2' }));
    expect(e.code).toBe('VOLUME_LOCKED');
    expect(e.exitCode).toBe(11);
    expect(e.retryable).toBe(true);
    expect(e.hint).toMatch(/wait for it to finish/);
    expect(e.context.remote).toBe('local');
    expect(e.message).toContain(lockFile);
  } finally {
    fs.rmSync(lockFile);
  }
  const r = await syncVolume({ volume: vol, dest: target, name: 's2' });
  expect(r).toMatchObject({ snapshot: 's2', parent: 's1' });
  expectSame(vol, path.join(target, 's2'));
});

test('serve killed mid-stream: nothing new is visible, exit 13 (retryable); the next run resumes from the partial, then goes on', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  mutate(vol, 1);
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'more'));
  const before = visible(target);
  const e = await rejects(syncVolume({ volume: vol, dest: target, name: 's2', remoteCommand: `FERRY_FAULT=serve:data:20 exec ${SERVE}` }));
  expect(e.code).toBe('TRANSPORT_REMOTE_FAILED');
  expect(e.exitCode).toBe(13);
  expect(e.retryable).toBe(true);
  expect(e.message).toMatch(/ended unexpectedly \(killed by SIGKILL\)/);
  expect(visible(target)).toEqual(before);
  // Both ends of the interrupted step are held on the source.
  expect(listHolds(vol).map((h) => h.snapshots.sort())).toEqual([['s1', 's2']]);

  const events: SyncEvent[] = [];
  const r = await syncVolume({ volume: vol, dest: target, name: 's3', onEvent: (ev) => events.push(ev) });
  expect(r.transfers.map((t) => [t.snapshot, t.parent])).toEqual([
    ['s2', 's1'],
    ['s3', 's2'],
  ]);
  const [t2] = r.transfers;
  expect(t2.resumedFromByte).toBeGreaterThan(1024 * 1024);
  expect(r.resumedFromByte).toBe(t2.resumedFromByte);
  // Only the rest went on the wire.
  expect(t2.wireBytes).toBe(t2.streamBytes - t2.resumedFromByte);
  expect(events.some((ev) => ev.event === 'phase' && ev.phase === 'resume')).toBe(true);
  expect(listHolds(vol)).toEqual([]);
  expectSame(vol, path.join(target, 's2'));
  expectSame(vol, path.join(target, 's3'));
  // The resumed snapshot's catalog entry hashes the whole stream, like an uninterrupted one.
  const entry = new Catalog(target).findByName('s2')!;
  expect(entry.streamBytes).toBe(t2.streamBytes);
});

test('killed after commit, before the ack: the next run sees the snapshot there and goes on incrementally', async () => {
  const { vol, target } = fresh();
  const e = await rejects(syncVolume({ volume: vol, dest: target, name: 's1', remoteCommand: `FERRY_FAULT=serve:before-ack ${SERVE}` }));
  expect(e.code).toBe('TRANSPORT_REMOTE_FAILED');
  expect(visible(target).dirs).toEqual(['s1']);
  mutate(vol, 1);
  const r = await syncVolume({ volume: vol, dest: target, name: 's2' });
  expect(r).toMatchObject({ snapshot: 's2', parent: 's1' });
  expectSame(vol, path.join(target, 's2'));
});

test('--compress zstd: fewer bytes on the wire, the same trees, a resumable compressed transfer', async () => {
  const { vol, target } = fresh();
  fs.writeFileSync(path.join(vol, 'text.log'), 'the same line again and again\n'.repeat(100000));
  const s1 = await syncVolume({ volume: vol, dest: target, name: 's1', compress: { level: 3 } });
  expect(s1.wireBytes).toBeLessThan(s1.streamBytes * 0.7);
  expectSame(vol, path.join(target, 's1'));
  mutate(vol, 1);
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'zmore'));
  // Killed mid-stream with compression on, then resumed with compression on.
  const e = await rejects(syncVolume({ volume: vol, dest: target, name: 's2', compress: { level: 1 }, remoteCommand: `FERRY_FAULT=serve:data:12 exec ${SERVE}` }));
  expect(e.code).toBe('TRANSPORT_REMOTE_FAILED');
  const r = await syncVolume({ volume: vol, dest: target, snapshotName: 's2', compress: { level: 19 } });
  expect(r.transfers).toHaveLength(1);
  expect(r.resumedFromByte).toBeGreaterThan(0);
  expectSame(vol, path.join(target, 's2'));
});

test('the sender\'s manifest is stored with each received snapshot, so ferry verify can check it', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  const { verifySnapshot, differenceCount } = await import('../../../src/replicate/verify');
  const report = await verifySnapshot(target, 's1');
  expect(report.entries).toBeGreaterThan(5);
  expect(differenceCount(report)).toBe(0);
  // Tamper with the received copy: verify notices.
  const f = path.join(target, 's1', 'script.sh');
  fs.chmodSync(f, 0o644);
  fs.writeFileSync(f, 'tampered');
  expect(differenceCount(await verifySnapshot(target, 's1'))).toBeGreaterThan(0);
});

test('stream files: a chain with sidecars, --full-every bounding it, replayed into a target', async () => {
  const { vol } = fresh();
  const dir = path.join(work, `streams-${n}`);
  const a = await syncVolume({ volume: vol, dest: dir, name: 's1', format: 'stream', fullEvery: 2 });
  expect(a).toMatchObject({ snapshot: 's1', parent: null });
  mutate(vol, 1);
  const b = await syncVolume({ volume: vol, dest: dir, name: 's2', format: 'stream', fullEvery: 2, compress: { level: 3 } });
  expect(b).toMatchObject({ snapshot: 's2', parent: 's1' });
  mutate(vol, 2);
  const c = await syncVolume({ volume: vol, dest: dir, name: 's3', format: 'stream', fullEvery: 2 });
  expect(c).toMatchObject({ snapshot: 's3', parent: null }); // the chain s1 → s2 already has 2 streams
  const side = (name: string) => JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
  const vols = listSnapshots(openVolume(vol)).map((s) => s.meta);
  expect(side('s1')).toMatchObject({ uuid: vols[0].uuid, parentUuid: null, compressed: false, bytes: a.streamBytes });
  expect(side('s2')).toMatchObject({ uuid: vols[1].uuid, parentUuid: vols[0].uuid, compressed: true, file: 's2.btrfs-stream.zst' });
  expect(side('s3')).toMatchObject({ parentUuid: null });
  expect(listHolds(vol)).toEqual([]);
  const { replayChain } = await import('../../../src/replicate/stream-files');
  const t = path.join(work, `replayed-${n}`);
  const r = await replayChain({ target: t, from: dir });
  const order = r.applied.map((x) => x.name);
  expect([...order].sort()).toEqual(['s1', 's2', 's3']);
  expect(order.indexOf('s2')).toBeGreaterThan(order.indexOf('s1')); // a parent before its child
  expectSame(vol, path.join(t, 's3'));
  // A single-file destination holds one full stream, replaced each time.
  const single = path.join(work, `single-${n}.btrfs-stream.zst`);
  const s = await syncVolume({ volume: vol, dest: single, snapshotName: 's3' });
  expect(s).toMatchObject({ snapshot: 's3', parent: null });
  expect(fs.readFileSync(single).readUInt32LE(0)).toBe(0xfd2fb528);
  await expect(syncVolume({ volume: vol, dest: path.join(work, 'x'), name: 'bad', fullEvery: 3 })).rejects.toMatchObject({ code: 'USAGE' });
});

test('the destination interface: held() names what a partial needs, remove() refuses it and removes the rest', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  mutate(vol, 1);
  await syncVolume({ volume: vol, dest: target, name: 's2' });
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'held'));
  await rejects(syncVolume({ volume: vol, dest: target, name: 's3', remoteCommand: `FERRY_FAULT=serve:data:20 exec ${SERVE}` }));
  const { openDestination } = await import('../../../src/replicate/destination');
  const d = await openDestination(target);
  try {
    const s2 = new Catalog(target).findByName('s2')!;
    expect(await d.held()).toEqual([s2.receivedUuid]);
    expect((await d.list()).map((x) => x.name)).toEqual(['s1', 's2']);
    await expect(d.remove(['s2'])).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('an interrupted transfer needs it') });
    await d.remove(['s1']);
    expect((await d.list()).map((x) => x.name)).toEqual(['s2']);
    expect(fs.existsSync(path.join(target, 's1'))).toBe(false);
    await expect(d.remove(['nope'])).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
  } finally {
    await d.close();
  }
  // s1 is gone from the target but the partial (s3 from s2) still resumes.
  const r = await syncVolume({ volume: vol, dest: target, snapshotName: 's3' });
  expect(r.resumedFromByte).toBeGreaterThan(0);
  expectSame(vol, path.join(target, 's3'));
});

test('--snapshot of a newer snapshot (how ferry run calls sync) still finishes the interrupted transfer first', async () => {
  const { vol, target } = fresh();
  await syncVolume({ volume: vol, dest: target, name: 's1' });
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'run'));
  await rejects(syncVolume({ volume: vol, dest: target, name: 's2', remoteCommand: `FERRY_FAULT=serve:data:20 exec ${SERVE}` }));
  const { snapshot } = await import('../../../src/volume/volume');
  await snapshot(openVolume(vol), { name: 's3' });
  const r = await syncVolume({ volume: vol, dest: target, snapshotName: 's3' });
  expect(r.transfers.map((t) => [t.snapshot, t.parent, t.resumedFromByte > 0])).toEqual([
    ['s2', 's1', true],
    ['s3', 's2', false],
  ]);
  expectSame(vol, path.join(target, 's3'));
  // An older --snapshot does not trigger it.
  await expect(syncVolume({ volume: vol, dest: target, snapshotName: 's1' })).resolves.toMatchObject({ transfers: [] });
});
