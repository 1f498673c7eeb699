/**
 * sendSnapshot puts the stream's opening command (SUBVOL or SNAPSHOT) out,
 * followed by FLUSH, before it loads any index: a receiver starts seeding
 * its staging tree from the parent while the sender is still planning.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sendSnapshot } from '../../../src/replicate/send';
import { FLUSH } from '../../../src/stream/coalesce';
import { StreamDecoder } from '../../../src/stream/decoder';
import { Cmd } from '../../../src/model/command';
import { getSnapshot, initVolume, openVolume, snapshot } from '../../../src/volume/volume';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-send-head-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function headThenRest(vol: string, name: string, parent?: string): Promise<{ head: Buffer; flushed: boolean; rest: Promise<unknown> }> {
  const gen = sendSnapshot({ snapshot: { volume: vol, name }, parent: parent ? { volume: vol, name: parent } : undefined, version: 1 });
  const parts: Buffer[] = [];
  let flushed = false;
  for (;;) {
    const r = await gen.next();
    if (r.done) break;
    if (r.value === FLUSH) {
      flushed = true;
      break;
    }
    parts.push(r.value);
  }
  // Now break every index: the head must already be out; the rest must fail.
  const v = openVolume(vol);
  for (const n of [name, parent].filter(Boolean) as string[]) fs.writeFileSync(getSnapshot(v, n).indexPath, 'not an index');
  const rest = (async () => {
    for (;;) if ((await gen.next()).done) return;
  })();
  return { head: Buffer.concat(parts), flushed, rest };
}

function commands(b: Buffer): { cmd: number; attrs: Record<string, unknown> }[] {
  const d = new StreamDecoder();
  const out: { cmd: number; attrs: Record<string, unknown> }[] = [];
  for (const c of d.push(b)) if (c.kind === 'command') out.push(c as never);
  return out;
}

test('incremental: SNAPSHOT with both uuids and ctransids, then FLUSH, before the indexes are read', async () => {
  const vol = path.join(dir, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'a'), 'one');
  initVolume(vol, 'index');
  const p = await snapshot(openVolume(vol), { name: 'p' });
  fs.writeFileSync(path.join(vol, 'a'), 'two');
  const s = await snapshot(openVolume(vol), { name: 's' });
  const { head, flushed, rest } = await headThenRest(vol, 's', 'p');
  expect(flushed).toBe(true);
  const cmds = commands(head);
  expect(cmds.map((c) => c.cmd)).toEqual([Cmd.SNAPSHOT]);
  const a = cmds[0].attrs as { path: Buffer; uuid: Buffer; ctransid: bigint; cloneUuid: Buffer; cloneCtransid: bigint };
  expect(a.path.toString()).toBe('s');
  expect(a.ctransid).toBe(BigInt(s.meta.transid));
  expect(a.cloneCtransid).toBe(BigInt(p.meta.transid));
  expect(a.uuid.toString('hex')).toBe(s.meta.uuid.replace(/-/g, ''));
  expect(a.cloneUuid.toString('hex')).toBe(p.meta.uuid.replace(/-/g, ''));
  await expect(rest).rejects.toThrow();
});

test('full: SUBVOL, then FLUSH, before the index is read', async () => {
  const vol = path.join(dir, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'a'), 'one');
  initVolume(vol, 'index');
  await snapshot(openVolume(vol), { name: 'f' });
  const { head, flushed, rest } = await headThenRest(vol, 'f');
  expect(flushed).toBe(true);
  expect(commands(head).map((c) => c.cmd)).toEqual([Cmd.SUBVOL]);
  await expect(rest).rejects.toThrow();
});
