import { Cmd } from '../../../src/model/command';
import { StreamEncoder, encodeStream, splitWrite } from '../../../src/stream/encoder';
import { decodeChunks, encodeAll, fixtures, p, sampleCommands, UUID_A } from '../../helpers/streams';

describe('encoder', () => {
  it.each(fixtures().map((f) => [f.name, f]))('round-trips %s to identical bytes', (_n, f) => {
    const items = decodeChunks(f.stream);
    const parts: Buffer[] = [];
    let enc: StreamEncoder | undefined;
    for (const it of items) {
      if (it.kind === 'header') {
        enc = new StreamEncoder(it.version);
        parts.push(enc.header());
      } else parts.push(enc!.encode(it));
    }
    expect(Buffer.concat(parts).equals(f.stream)).toBe(true);
  });

  it('writes the documented bytes for a v1 and v2 WRITE', () => {
    const w = { cmd: Cmd.WRITE, attrs: { path: p('a.txt'), fileOffset: 0n, data: p('hello\n') } } as const;
    expect(new StreamEncoder(1).encode(w).toString('hex')).toBe(
      '1f0000000f00c4e644230f000500612e74787412000800000000000000000013000600' + Buffer.from('hello\n').toString('hex'),
    );
    expect(new StreamEncoder(2).encode(w).toString('hex')).toBe(
      '1d0000000f00d41833870f000500612e74787412000800000000000000000013' + '00' + Buffer.from('hello\n').toString('hex'),
    );
  });

  it('writes the documented full v1 stream (header, SUBVOL, MKFILE, RENAME, END)', () => {
    const uuid = Buffer.from('dcd653dc63388645a81ed6cbb0cc321a', 'hex');
    const b = encodeAll(
      [
        { cmd: Cmd.SUBVOL, attrs: { path: p('snap1'), uuid, ctransid: 7n } },
        { cmd: Cmd.MKFILE, attrs: { path: p('o257-7-0'), ino: 257n } },
        { cmd: Cmd.RENAME, attrs: { path: p('o257-7-0'), pathTo: p('a.txt') } },
        { cmd: Cmd.END, attrs: {} },
      ],
      1,
    );
    const hex = b.toString('hex');
    expect(hex.startsWith('62747266732d73747265616d0001000000' + '29000000010071 01befb'.replace(/ /g, ''))).toBe(true);
    expect(hex).toContain('180000000300' + '6c6edb03');
    expect(hex).toContain('150000000900' + '441a9f7b');
    expect(hex.endsWith('00000000150050 6cc99d'.replace(/ /g, ''))).toBe(true);
  });

  it('emits attributes in kernel order whatever order the object has', () => {
    const a = new StreamEncoder(1).encode({
      cmd: Cmd.CLONE,
      attrs: {
        cloneOffset: 5n,
        clonePath: p('src'),
        cloneCtransid: 3n,
        cloneUuid: UUID_A,
        path: p('dst'),
        cloneLen: 4096n,
        fileOffset: 0n,
      },
    });
    const types: number[] = [];
    for (let pos = 10; pos < a.length; ) {
      types.push(a.readUInt16LE(pos));
      pos += 4 + a.readUInt16LE(pos + 2);
    }
    expect(types).toEqual([18, 24, 15, 20, 21, 22, 23]);
  });

  it('splits writes at 48 KiB (v1) and 128 KiB (v2) without copying', () => {
    const data = Buffer.alloc(300 * 1024, 7);
    const v1 = [...splitWrite(p('f'), 10n, data, 1)];
    expect(v1.map((c) => c.attrs.data!.length)).toEqual([49152, 49152, 49152, 49152, 49152, 49152, 12288]);
    expect(v1[1].attrs.fileOffset).toBe(10n + 49152n);
    expect(v1[0].attrs.data!.buffer).toBe(data.buffer);
    const v2 = [...splitWrite(p('f'), 0n, data, 2)];
    expect(v2.map((c) => c.attrs.data!.length)).toEqual([131072, 131072, 45056]);
    for (const c of v1) expect(new StreamEncoder(1).encode(c).length).toBeLessThan(65536);
  });

  it('refuses data over 64 KiB in one v1 WRITE and bad uuids', () => {
    const enc = new StreamEncoder(1);
    expect(() =>
      enc.encode({ cmd: Cmd.WRITE, attrs: { path: p('f'), fileOffset: 0n, data: Buffer.alloc(70000) } }),
    ).toThrow(expect.objectContaining({ code: 'STREAM_ENCODE' }));
    expect(() =>
      enc.encode({ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: Buffer.alloc(3), ctransid: 1n } }),
    ).toThrow(/16 bytes/);
    expect(() => new StreamEncoder(9)).toThrow(/version 9/);
  });

  it('encodeStream adds END and the result decodes back to the same commands', async () => {
    for (const v of [1, 2]) {
      const cmds = sampleCommands(v).slice(0, -1);
      const parts: Buffer[] = [];
      for await (const b of encodeStream(cmds, v)) parts.push(b);
      const items = decodeChunks(Buffer.concat(parts)).filter((i) => i.kind === 'command');
      expect(items.map((i) => ({ cmd: i.cmd, attrs: i.attrs }))).toEqual([...cmds, { cmd: Cmd.END, attrs: {} }]);
    }
  });
});
