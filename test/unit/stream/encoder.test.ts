import { createHash } from 'node:crypto';
import { FerryError } from '../../../src/errors';
import { Cmd, Command } from '../../../src/model/command';
import { ATTR_SPECS, Attr, CMD_SPECS, FIXED_SIZE, cmdName } from '../../../src/stream/constants';
import { crc32cUpdateJs } from '../../../src/stream/crc32c';
import { StreamEncoder, encodeStream, splitWrite } from '../../../src/stream/encoder';
import { decodeChunks, encodeAll, fixtures, p, rng, sampleCommands, UUID_A } from '../../helpers/streams';

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

/**
 * The encoder as first written: every attribute type visited for every
 * command, Buffer write methods throughout. The fast path must give exactly
 * its bytes, and the same error for the same bad input.
 */
function referenceEncodeParts(version: number, command: Command): Buffer[] {
  const spec = CMD_SPECS[command.cmd];
  if (!spec) throw new FerryError('STREAM_ENCODE', `cannot encode unknown command ${command.cmd}`);
  const tooLong = (attr: string, len: number): never => {
    throw new FerryError(
      'STREAM_ENCODE',
      `cannot encode ${cmdName(command.cmd)}: attribute ${attr} of ${len} bytes does not fit a 16-bit length in stream version ${version}`,
    );
  };
  const extras: number[] = [];
  for (let a = 1; a < ATTR_SPECS.length; a++) if (!spec.attrs.includes(a) && a !== Attr.DATA) extras.push(a);
  const order = [...spec.attrs.filter((a) => a !== Attr.DATA), ...extras, Attr.DATA];
  const bag = command.attrs as Record<string, unknown>;
  let headSize = 10;
  let data: Buffer | undefined;
  for (const a of order) {
    const s = ATTR_SPECS[a]!;
    const v = bag[s.key];
    if (v === undefined) continue;
    if (a === Attr.DATA) {
      data = v as Buffer;
      headSize += version >= 2 ? 2 : 4;
      if (version < 2 && data.length > 0xffff) tooLong(s.name, data.length);
      continue;
    }
    const vlen = FIXED_SIZE[s.kind] ?? (v as Buffer).length;
    if (vlen > 0xffff) tooLong(s.name, vlen);
    headSize += 4 + vlen;
  }
  const head = Buffer.alloc(headSize);
  head.writeUInt32LE(headSize - 10 + (data ? data.length : 0), 0);
  head.writeUInt16LE(command.cmd, 4);
  let pos = 10;
  for (const a of order) {
    const s = ATTR_SPECS[a]!;
    const v = bag[s.key];
    if (v === undefined) continue;
    pos = head.writeUInt16LE(a, pos);
    if (a === Attr.DATA) {
      if (version < 2) pos = head.writeUInt16LE(data!.length, pos);
      continue;
    }
    switch (s.kind) {
      case 'u8':
        pos = head.writeUInt8(v as number, head.writeUInt16LE(1, pos));
        break;
      case 'u32':
        pos = head.writeUInt32LE(v as number, head.writeUInt16LE(4, pos));
        break;
      case 'u64':
        pos = head.writeBigUInt64LE(BigInt.asUintN(64, v as bigint), head.writeUInt16LE(8, pos));
        break;
      case 'timespec': {
        const t = v as { sec: bigint; nsec: number };
        pos = head.writeBigInt64LE(BigInt.asIntN(64, t.sec), head.writeUInt16LE(12, pos));
        pos = head.writeUInt32LE(t.nsec, pos);
        break;
      }
      case 'uuid': {
        const u = v as Buffer;
        if (u.length !== 16) throw new FerryError('STREAM_ENCODE', `${s.name} must be 16 bytes, got ${u.length}`);
        pos = head.writeUInt16LE(16, pos);
        pos += u.copy(head, pos);
        break;
      }
      case 'bytes': {
        const b = v as Buffer;
        pos = head.writeUInt16LE(b.length, pos);
        pos += b.copy(head, pos);
        break;
      }
    }
  }
  let crc = crc32cUpdateJs(0, head);
  if (data) crc = crc32cUpdateJs(crc, data);
  head.writeUInt32LE(crc, 6);
  return data && data.length > 0 ? [head, data] : [head];
}

describe('encoder fast path against the reference encoder', () => {
  const r = rng(5);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const U64 = [0n, 1n, 0xffffffffn, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, 2n ** 70n + 5n, -1n, -(2n ** 53n), -(2n ** 64n) - 3n];
  const I64 = [0n, -1n, 1700000000n, 2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 54n + 3n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n + 7n];
  const bytes = (n: number) => (n > 1000 ? Buffer.alloc(n, n & 0xff) : Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256))));
  /** A value for an attribute kind; `wild` also draws values of the wrong size, range or type. */
  function value(kind: string, wild: boolean): unknown {
    switch (kind) {
      case 'u8':
        return wild && r() < 0.1 ? 300 : Math.floor(r() * 256);
      case 'u32':
        return wild && r() < 0.1 ? pick([-1, 2 ** 32, 1.5]) : Math.floor(r() * 2 ** 32);
      case 'u64':
        return wild && r() < 0.05 ? pick<unknown>([5, '7', true]) : pick(U64);
      case 'timespec':
        return {
          sec: wild && r() < 0.05 ? pick<unknown>([3, undefined]) : pick(I64),
          nsec: wild && r() < 0.2 ? pick<unknown>([1.5, 256.7, NaN, '5', -1, 2 ** 32]) : pick([0, 1, 999999999, 0xffffffff]),
        };
      case 'uuid':
        return wild && r() < 0.1 ? Buffer.alloc(pick([0, 15, 17])) : bytes(16);
      default:
        return bytes(wild && r() < 0.05 ? pick([65535, 65536]) : Math.floor(r() * (r() < 0.1 ? 600 : 40)));
    }
  }
  const outcome = (f: () => Buffer[]) => {
    try {
      return f()
        .map((b) => `${b.length}:${createHash('sha256').update(b).digest('hex')}`)
        .join('|');
    } catch (e) {
      return `error ${(e as FerryError).code ?? (e as Error).name}: ${(e as Error).message}`;
    }
  };

  it('gives the same bytes or the same error for random commands, extra attributes and odd values included', () => {
    const kinds = new Set<string>();
    for (let n = 0; n < 4000; n++) {
      const cmd = 1 + Math.floor(r() * 26);
      const spec = CMD_SPECS[cmd]!;
      const wild = r() < 0.3;
      const nums = spec.attrs.filter(() => r() < 0.9);
      if (r() < 0.25) for (let k = 0; k < 3; k++) nums.push(1 + Math.floor(r() * 35));
      if (r() < 0.3) nums.reverse();
      const attrs: Record<string, unknown> = {};
      for (const a of nums) attrs[ATTR_SPECS[a]!.key] = value(ATTR_SPECS[a]!.kind, wild);
      if (attrs.data && r() < 0.2) attrs.data = Buffer.alloc(pick([0, 1, 65535, 65536, 131072]), 7);
      if (r() < 0.05) attrs.notAnAttribute = 1;
      if (r() < 0.05) attrs[ATTR_SPECS[1 + Math.floor(r() * 35)]!.key] = undefined;
      const version = pick([1, 2, 3]);
      const c = { cmd, attrs } as unknown as Command;
      const want = outcome(() => referenceEncodeParts(version, c));
      expect(outcome(() => new StreamEncoder(version).encodeParts(c))).toBe(want);
      kinds.add(want.startsWith('error ') ? want.slice(6).split(':')[0] : 'ok');
    }
    // success and each kind of refusal were exercised
    expect([...kinds].sort()).toEqual(['ERR_OUT_OF_RANGE', 'STREAM_ENCODE', 'TypeError', 'ok']);
  });

  it('matches the reference on every command of the kernel fixtures', () => {
    for (const f of fixtures()) {
      let version = 1;
      for (const it of decodeChunks(f.stream)) {
        if (it.kind === 'header') version = it.version;
        else expect(Buffer.concat(new StreamEncoder(version).encodeParts(it)).equals(Buffer.concat(referenceEncodeParts(version, it)))).toBe(true);
      }
    }
  });

  it('passes file data through as the caller\'s Buffer, after a head it never reuses', () => {
    const enc = new StreamEncoder(2);
    const data = Buffer.alloc(5000, 3);
    const parts = enc.encodeParts({ cmd: Cmd.WRITE, attrs: { path: p('f'), fileOffset: 0n, data } });
    expect(parts).toHaveLength(2);
    expect(parts[1]).toBe(data);
    const head = Buffer.from(parts[0]);
    for (let i = 0; i < 100; i++) enc.encodeParts({ cmd: Cmd.CHMOD, attrs: { path: p(`x${i}`), mode: 0o644n } });
    expect(parts[0].equals(head)).toBe(true);
  });
});
