/**
 * Stream-file destinations without a receiver: the chain rules
 * (--full-every, replay order, broken chains) as pure functions, and the
 * destination's files: sidecar contents, atomic writes, refusals, removal,
 * single-file mode, and the sidecar check on the way back.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Exit, FerryError } from '../../../src/errors';
import {
  chainLength,
  decideStreamKind,
  parseSidecar,
  planReplay,
  sidecarCheckedStream,
  StreamFileDestination,
  StreamSidecar,
} from '../../../src/replicate/stream-files';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-streamfiles-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function sc(name: string, uuid: string, parentUuid: string | null, ctransid: number): StreamSidecar {
  return {
    format: 1,
    name,
    uuid,
    parentUuid,
    parentName: null,
    ctransid: String(ctransid),
    bytes: 1,
    fileBytes: 1,
    sha256: '0'.repeat(64),
    compressed: false,
    file: `${name}.btrfs-stream`,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

function thrown(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FerryError);
    return e as FerryError;
  }
  throw new Error('expected a FerryError');
}

describe('chain rules (pure)', () => {
  // full A ← B ← C, full D ← E
  const chain = [sc('a', 'A', null, 1), sc('b', 'B', 'A', 2), sc('c', 'C', 'B', 3), sc('d', 'D', null, 4), sc('e', 'E', 'D', 5)];

  it('chainLength counts streams back to the full one; a broken or looping chain is Infinity', () => {
    expect(['A', 'B', 'C', 'D', 'E'].map((u) => chainLength(chain, u))).toEqual([1, 2, 3, 1, 2]);
    expect(chainLength(chain, 'X')).toBe(Infinity);
    expect(chainLength([sc('b', 'B', 'A', 2)], 'B')).toBe(Infinity);
    expect(chainLength([sc('p', 'P', 'Q', 1), sc('q', 'Q', 'P', 2)], 'P')).toBe(Infinity);
  });

  it('decideStreamKind: --full-every N keeps every chain at N streams or fewer', () => {
    expect(decideStreamKind(chain, null, 3).parentUuid).toBeNull();
    expect(decideStreamKind(chain, 'B', 3)).toMatchObject({ parentUuid: 'B' }); // C would be stream 3 of 3
    expect(decideStreamKind(chain, 'C', 3).parentUuid).toBeNull(); // a 4th would exceed 3
    expect(decideStreamKind(chain, 'C', 3).reason).toMatch(/already has 3 streams.*--full-every 3/);
    expect(decideStreamKind(chain, 'C', undefined).parentUuid).toBe('C'); // no bound
    expect(decideStreamKind(chain, 'A', 1).parentUuid).toBeNull(); // every stream full
    expect(decideStreamKind(chain, 'E', 3).parentUuid).toBe('E');
    expect(decideStreamKind(chain, 'X', 3).parentUuid).toBeNull(); // parent's stream not there
    // simulate a run of syncs with N = 3: full, incr, incr, full, incr, incr, full
    const made: StreamSidecar[] = [];
    const kinds: string[] = [];
    let last: string | null = null;
    for (let i = 0; i < 7; i++) {
      const d = decideStreamKind(made, last, 3);
      kinds.push(d.parentUuid === null ? 'full' : 'incr');
      made.push(sc(`s${i}`, `S${i}`, d.parentUuid, i + 1));
      last = `S${i}`;
    }
    expect(kinds).toEqual(['full', 'incr', 'incr', 'full', 'incr', 'incr', 'full']);
    for (const n of [0, -1, 1.5]) expect(() => decideStreamKind(chain, 'A', n)).toThrow(/--full-every/);
  });

  it('planReplay: each chain from its base, parents before children, oldest ready stream first; skips what the target has', () => {
    const shuffled = [chain[4], chain[2], chain[0], chain[3], chain[1]];
    expect(planReplay(shuffled, new Set()).apply.map((s) => s.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const p = planReplay(shuffled, new Set(['A', 'B']));
    expect(p.apply.map((s) => s.name)).toEqual(['c', 'd', 'e']);
    expect(p.skip.map((s) => s.name)).toEqual(['a', 'b']);
    expect(planReplay(shuffled, new Set(['A', 'B', 'C', 'D', 'E'])).apply).toEqual([]);
  });

  it('planReplay with upTo applies only that snapshot chain', () => {
    expect(planReplay(chain, new Set(), { upTo: 'b' }).apply.map((s) => s.name)).toEqual(['a', 'b']);
    expect(planReplay(chain, new Set(['A']), { upTo: 'c' })).toMatchObject({ apply: [{ name: 'b' }, { name: 'c' }], skip: [{ name: 'a' }] });
    expect(planReplay(chain, new Set(['A', 'B']), { upTo: 'b' })).toMatchObject({ apply: [], skip: [{ name: 'b' }] });
    expect(thrown(() => planReplay(chain, new Set(), { upTo: 'zz' })).code).toBe('SNAPSHOT_NOT_FOUND');
  });

  it('a broken chain is REPLICATE_NO_PARENT (exit 15) naming the missing uuid, before anything is applied', () => {
    const broken = [chain[1], chain[2], chain[3]]; // b and c without a
    const e = thrown(() => planReplay(broken, new Set()));
    expect(e.code).toBe('REPLICATE_NO_PARENT');
    expect(e.exitCode).toBe(Exit.NO_PARENT);
    expect(e.message).toMatch(/needs parent A/);
    expect(e.context.missingUuid).toBe('A');
    // the target having the parent mends it
    expect(planReplay(broken, new Set(['A'])).apply.map((s) => s.name)).toEqual(['b', 'c', 'd']);
    // upTo a snapshot of an intact chain is fine
    expect(planReplay([...broken, chain[4]], new Set(), { upTo: 'e' }).apply.map((s) => s.name)).toEqual(['d', 'e']);
    expect(thrown(() => planReplay(broken, new Set(), { upTo: 'c' })).context.missingUuid).toBe('A');
  });

  it('parseSidecar refuses sidecars that name files elsewhere or miss fields', () => {
    const good = sc('a', 'A', null, 1);
    expect(parseSidecar(JSON.stringify(good), 'f')).toEqual(good);
    for (const bad of [{ file: '../etc/passwd.btrfs-stream' }, { file: 'x.txt' }, { manifest: 'a/b' }, { sha256: 'x' }, { ctransid: '-1' }, { format: 2 }, { name: '' }]) {
      expect(thrown(() => parseSidecar(JSON.stringify({ ...good, ...bad }), 'f')).code).toBe('REPLICATE_DEST_INVALID');
    }
    expect(thrown(() => parseSidecar('{', 'f')).code).toBe('REPLICATE_DEST_INVALID');
  });
});

describe('StreamFileDestination', () => {
  const snap = (name: string, uuid: string, transid: number) => ({ name, uuid, transid: String(transid) });
  async function* bytes(chunks: Buffer[]) {
    for (const c of chunks) yield c;
  }
  const data1 = Buffer.concat([Buffer.from('btrfs-stream\0'), Buffer.alloc(300000, 7), Buffer.from('first')]);
  const data2 = Buffer.from('btrfs-stream\0 second, incremental');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('writes stream, manifest and sidecar; lists them; leaves no temp files', async () => {
    const dir = path.join(root, 'dest');
    const d = new StreamFileDestination(dir);
    expect(await d.list()).toEqual([]);
    const m = Buffer.from(`${JSON.stringify({ format: 'ferry-manifest', version: 1, uuid: 'U1', ctransid: '1', blockSize: 131072 })}\n{"end":true,"entries":0}\n`);
    const s1 = await d.write(snap('one', 'U1', 1), null, bytes([data1.subarray(0, 1000), data1.subarray(1000)]), { compress: { level: 3 }, manifest: m, now: new Date('2026-02-03T04:05:06Z') });
    expect(s1).toEqual({
      format: 1,
      name: 'one',
      uuid: 'U1',
      parentUuid: null,
      parentName: null,
      ctransid: '1',
      bytes: data1.length,
      fileBytes: fs.statSync(path.join(dir, 'one.btrfs-stream.zst')).size,
      sha256: sha(data1),
      compressed: true,
      level: 3,
      file: 'one.btrfs-stream.zst',
      createdAt: '2026-02-03T04:05:06.000Z',
      manifest: 'one.manifest',
    });
    expect(s1.fileBytes).toBeLessThan(data1.length / 10);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'one.json'), 'utf8'))).toEqual(s1);
    expect(fs.readFileSync(path.join(dir, 'one.manifest')).equals(m)).toBe(true);
    // `zstd -d` gives the stream back
    expect(execFileSync('zstd', ['-d', '-c', path.join(dir, 'one.btrfs-stream.zst')]).equals(data1)).toBe(true);

    const s2 = await d.write(snap('two', 'U2', 2), snap('one', 'U1', 1), bytes([data2]));
    expect(s2).toMatchObject({ parentUuid: 'U1', parentName: 'one', compressed: false, file: 'two.btrfs-stream', bytes: data2.length, fileBytes: data2.length });
    expect(s2.manifest).toBeUndefined();
    expect(fs.readdirSync(dir).sort()).toEqual(['one.btrfs-stream.zst', 'one.json', 'one.manifest', 'two.btrfs-stream', 'two.json']);
    expect(await d.list()).toEqual([
      { name: 'one', uuid: 'U1', receivedUuid: 'U1', parentUuid: null, ctransid: '1', receivedAt: s1.createdAt },
      { name: 'two', uuid: 'U2', receivedUuid: 'U2', parentUuid: 'U1', ctransid: '2', receivedAt: s2.createdAt },
    ]);
    expect(await d.held()).toEqual([]);
    expect(d.decide('U2', 2).parentUuid).toBeNull();
    expect(d.decide('U2', 3).parentUuid).toBe('U2');

    // the way back: checked against the sidecar
    const back: Buffer[] = [];
    for await (const c of sidecarCheckedStream(dir, s1)) back.push(c);
    expect(Buffer.concat(back).equals(data1)).toBe(true);
  });

  it('refuses an incremental whose parent has no stream here, and a second stream of a snapshot', async () => {
    const d = new StreamFileDestination(path.join(root, 'dest'));
    const e = (await d.write(snap('two', 'U2', 2), snap('one', 'U1', 1), bytes([data2])).catch((x: FerryError) => x)) as FerryError;
    expect([e.code, e.exitCode]).toEqual(['REPLICATE_NO_PARENT', Exit.NO_PARENT]);
    await d.write(snap('one', 'U1', 1), null, bytes([data1]));
    await expect(d.write(snap('one', 'U9', 9), null, bytes([data1]))).rejects.toMatchObject({ code: 'REPLICATE_DEST_INVALID' });
    await expect(d.write(snap('other', 'U1', 1), null, bytes([data1]))).rejects.toMatchObject({ code: 'REPLICATE_DEST_INVALID' });
  });

  it('a failing source leaves nothing behind', async () => {
    const dir = path.join(root, 'dest');
    const d = new StreamFileDestination(dir);
    async function* failing() {
      yield Buffer.alloc(100000, 1);
      throw new Error('source broke');
    }
    await expect(d.write(snap('one', 'U1', 1), null, failing(), { compress: { level: 1 } })).rejects.toThrow('source broke');
    expect(fs.readdirSync(dir)).toEqual([]);
    const badManifest = bytes([Buffer.from('not a manifest\n')]);
    await expect(d.write(snap('one', 'U1', 1), null, bytes([data1]), { manifest: badManifest })).rejects.toMatchObject({ code: 'REPLICATE_NO_MANIFEST' });
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('remove: sidecar, manifest and file go; removing a parent that a kept stream needs is refused', async () => {
    const dir = path.join(root, 'dest');
    const d = new StreamFileDestination(dir);
    await d.write(snap('one', 'U1', 1), null, bytes([data1]));
    await d.write(snap('two', 'U2', 2), snap('one', 'U1', 1), bytes([data2]));
    await d.write(snap('three', 'U3', 3), null, bytes([data2]));
    const e = await d.remove(['one']).catch((x: FerryError) => x);
    expect(e).toBeInstanceOf(FerryError);
    expect((e as FerryError).message).toMatch(/cannot remove one: the stream of two is incremental on it/);
    expect((await d.list()).map((s) => s.name)).toEqual(['one', 'two', 'three']);
    await d.remove(['one', 'two']);
    expect(fs.readdirSync(dir).sort()).toEqual(['three.btrfs-stream', 'three.json']);
  });

  it('ignores unrelated files, temp files and streams without a sidecar', async () => {
    const dir = path.join(root, 'dest');
    const d = new StreamFileDestination(dir);
    await d.write(snap('one', 'U1', 1), null, bytes([data1]));
    fs.writeFileSync(path.join(dir, 'notes.json'), '{"hello":1}');
    fs.writeFileSync(path.join(dir, 'orphan.btrfs-stream'), 'x');
    fs.writeFileSync(path.join(dir, '.two.btrfs-stream.part-1-abcd'), 'x');
    expect((await d.list()).map((s) => s.name)).toEqual(['one']);
    fs.writeFileSync(path.join(dir, 'orphan.json'), '{broken');
    await expect(d.list()).rejects.toMatchObject({ code: 'REPLICATE_DEST_INVALID' });
  });

  it('a single .btrfs-stream.zst file holds one full stream, replaced by each write, and lists nothing', async () => {
    const file = path.join(root, 'backup', 'home.btrfs-stream.zst');
    const d = new StreamFileDestination(file);
    expect(d.single).toEqual({ file: 'home.btrfs-stream.zst', base: 'home', compressed: true });
    await d.write(snap('one', 'U1', 1), null, bytes([data1]));
    const s = await d.write(snap('two', 'U2', 2), null, bytes([data2]));
    expect(s).toMatchObject({ name: 'two', file: 'home.btrfs-stream.zst', compressed: true, sha256: sha(data2) });
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual(['home.btrfs-stream.zst', 'home.json']);
    expect(execFileSync('zstd', ['-d', '-c', file]).equals(data2)).toBe(true);
    expect(await d.list()).toEqual([]);
    expect(d.sidecars().map((x) => x.name)).toEqual(['two']);
    expect(d.decide('U2', undefined).parentUuid).toBeNull();
    await expect(d.write(snap('three', 'U3', 3), snap('two', 'U2', 2), bytes([data2]))).rejects.toMatchObject({ code: 'REPLICATE_DEST_INVALID' });
    const plain = new StreamFileDestination(path.join(root, 'x.btrfs-stream'));
    expect((await plain.write(snap('one', 'U1', 1), null, bytes([data1]), { compress: { level: 3 } })).compressed).toBe(false);
    expect(fs.readFileSync(path.join(root, 'x.btrfs-stream')).equals(data1)).toBe(true);
  });

  it('sidecarCheckedStream refuses a damaged or substituted file before its last chunk', async () => {
    const dir = path.join(root, 'dest');
    const d = new StreamFileDestination(dir);
    const big = Buffer.alloc(3 * 1024 * 1024, 9);
    const s = await d.write(snap('one', 'U1', 1), null, bytes([big]));
    const f = path.join(dir, s.file);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.from([1]), 0, 1, 10);
    fs.closeSync(fd);
    let seen = 0;
    const err = await (async () => {
      for await (const c of sidecarCheckedStream(dir, s)) seen += c.length;
    })().catch((e: FerryError) => e);
    expect(err).toMatchObject({ code: 'STREAM_BAD_CRC' });
    expect(seen).toBeLessThan(big.length);
    fs.truncateSync(f, 1000);
    await expect(
      (async () => {
        for await (const c of sidecarCheckedStream(dir, s)) void c;
      })(),
    ).rejects.toMatchObject({ code: 'STREAM_BAD_CRC' });
  });
});
