import { FerryError } from '../../../src/errors';
import { Cmd, Command } from '../../../src/model/command';
import { decodeStream, StreamDecoder, StreamItem } from '../../../src/stream/decoder';
import { StreamEncoder } from '../../../src/stream/encoder';
import { crc32c } from '../../../src/stream/crc32c';
import {
  commandBoundaries,
  decodeChunks,
  decodeError,
  encodeAll,
  fixtures,
  p,
  rng,
  sampleCommands,
  UUID_A,
} from '../../helpers/streams';

const FIX = fixtures();

/** Re-checksum a hand-edited command so only the intended defect remains. */
function fixCrc(buf: Buffer, at: number): void {
  const len = buf.readUInt32LE(at);
  buf.writeUInt32LE(0, at + 6);
  buf.writeUInt32LE(crc32c(buf.subarray(at, at + 10 + len)), at + 6);
}

describe('decoder on real kernel streams', () => {
  it('has fixtures to test with', () => {
    expect(FIX.length).toBeGreaterThanOrEqual(9);
  });

  it.each(FIX.map((f) => [f.name, f]))('%s decodes with every CRC checked and ends with END', (_n, f) => {
    const items = decodeChunks(f.stream);
    const cmds = items.filter((i) => i.kind === 'command');
    expect(cmds.length).toBeGreaterThan(3);
    expect(cmds[cmds.length - 1].cmd).toBe(Cmd.END);
    expect([Cmd.SUBVOL, Cmd.SNAPSHOT]).toContain(cmds[0].cmd);
    // offsets and lengths tile the input exactly
    let at = 0;
    for (const it of items) {
      expect(it.offset).toBe(at);
      at += it.kind === 'header' ? 17 : it.length;
    }
    expect(at).toBe(f.stream.length);
  });

  it('decodes both streams of a plain concatenation, and only the first with firstStreamOnly', () => {
    const multi = FIX.find((f) => f.name === 'multi-v1')!;
    const all = decodeChunks(multi.stream);
    expect(all.filter((i) => i.kind === 'header')).toHaveLength(2);
    expect(all.filter((i) => i.kind === 'command' && i.cmd === Cmd.END)).toHaveLength(2);
    const first = decodeChunks(multi.stream, undefined, { firstStreamOnly: true });
    expect(first.filter((i) => i.kind === 'header')).toHaveLength(1);
  });

  it('decodes a send -e stream: one header, two subvolumes, one END', () => {
    const e = FIX.find((f) => f.name === 'multi-e-v1')!;
    const items = decodeChunks(e.stream);
    expect(items.filter((i) => i.kind === 'header')).toHaveLength(1);
    const cmds = items.filter((i) => i.kind === 'command');
    expect(cmds.filter((c) => c.cmd === Cmd.SUBVOL || c.cmd === Cmd.SNAPSHOT).length).toBe(2);
    expect(cmds.filter((c) => c.cmd === Cmd.END)).toHaveLength(1);
  });

  it('gives the same items fed byte by byte and at random splits', () => {
    const f = FIX.find((x) => x.name === 'incr-v2')!;
    const whole = decodeChunks(f.stream);
    const r = rng(42);
    const sizes = Array.from({ length: 97 }, () => 1 + Math.floor(r() * 9000));
    expect(decodeChunks(f.stream, sizes)).toEqual(whole);
    const small = encodeAll(sampleCommands(2), 2);
    expect(decodeChunks(small, [1])).toEqual(decodeChunks(small));
  });

  it('works on an async iterable (Readable)', async () => {
    const f = FIX.find((x) => x.name === 'full-v1')!;
    async function* chunks() {
      for (let i = 0; i < f.stream.length; i += 1000) yield f.stream.subarray(i, i + 1000);
    }
    const out = [];
    for await (const it of decodeStream(chunks())) out.push(it);
    expect(out).toEqual(decodeChunks(f.stream));
  });
});

describe('decoder rejects bad input with the right STREAM_* error', () => {
  const good = encodeAll(sampleCommands(2), 2);

  it('empty input', () => {
    const e = decodeError(Buffer.alloc(0));
    expect(e.code).toBe('STREAM_EMPTY');
    expect(e.exitCode).toBe(14);
  });

  it('bad magic, fails on the first bytes already', () => {
    const dec = new StreamDecoder();
    expect(() => dec.push(Buffer.from('BTRFS'))).toThrow(expect.objectContaining({ code: 'STREAM_BAD_MAGIC' }));
    const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodeError(zstdMagic).code).toBe('STREAM_BAD_MAGIC');
  });

  it('a future version names the version', () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(4, 13);
    const e = decodeError(b);
    expect(e.code).toBe('STREAM_BAD_VERSION');
    expect(e.message).toContain('version 4');
  });

  it('truncation at every command boundary and inside every command', () => {
    for (const f of [good, FIX.find((x) => x.name === 'incr-v1')!.stream]) {
      const bounds = commandBoundaries(f);
      for (const cut of bounds.slice(0, -1)) {
        const e = decodeError(f.subarray(0, cut));
        expect(e.code).toBe('STREAM_TRUNCATED');
        expect(e.message).toContain(`offset ${cut}`);
      }
      for (let i = 0; i + 1 < bounds.length; i++) {
        const mid = bounds[i] + Math.max(1, Math.floor((bounds[i + 1] - bounds[i]) / 2));
        if (mid < bounds[i + 1]) expect(decodeError(f.subarray(0, mid)).code).toBe('STREAM_TRUNCATED');
        expect(decodeError(f.subarray(0, bounds[i] + 3)).code).toBe('STREAM_TRUNCATED');
      }
    }
    for (let cut = 1; cut < 17; cut++) expect(decodeError(good.subarray(0, cut)).code).toBe('STREAM_TRUNCATED');
  });

  it('every single-bit flip is caught, with the error its position calls for', () => {
    const bounds = commandBoundaries(good);
    const starts = new Set(bounds);
    const cmdStartOf = (i: number) => bounds.filter((b) => b <= i).pop()!;
    for (let i = 0; i < good.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Buffer.from(good);
        b[i] ^= 1 << bit;
        if (i === 13 && bit === 0) {
          // Version 2 becomes 3, which is valid: the 17-byte header has no CRC.
          expect(decodeChunks(b)[0]).toMatchObject({ kind: 'header', version: 3 });
          continue;
        }
        const e = decodeError(b);
        if (i < 13) expect(e.code).toBe('STREAM_BAD_MAGIC');
        else if (i < 17) expect(e.code).toBe('STREAM_BAD_VERSION');
        else {
          const rel = i - cmdStartOf(i);
          if (rel < 4) expect(['STREAM_BAD_CRC', 'STREAM_TRUNCATED', 'STREAM_TOO_LARGE']).toContain(e.code);
          else expect(e.code).toBe('STREAM_BAD_CRC');
          expect(e.message).toMatch(/offset \d+/);
        }
      }
    }
    expect(starts.size).toBeGreaterThan(10);
  });

  it('a huge length field is refused before allocating', () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(0xfffffff0, 17);
    const e = decodeError(b);
    expect(e.code).toBe('STREAM_TOO_LARGE');
    expect(e.message).toContain('command 1');
    expect(e.message).toContain('offset 17');
  });

  it('an unknown command names its number, index and offset', () => {
    const enc = new StreamEncoder(1);
    const first = enc.encode({ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: Buffer.alloc(16), ctransid: 1n } });
    const bogus = Buffer.from('00000000630000000000', 'hex'); // cmd 99
    fixCrc(bogus, 0);
    const b = Buffer.concat([enc.header(), first, bogus]);
    const e = decodeError(b);
    expect(e.code).toBe('STREAM_UNKNOWN_COMMAND');
    expect(e.message).toContain('99');
    expect(e.message).toContain('command 2');
    expect(e.message).toContain(`offset ${17 + first.length}`);
  });

  it('invalid attribute type, wrong fixed size, and TLV overrun', () => {
    const enc = new StreamEncoder(1);
    const mk = (payload: Buffer) => {
      const c = Buffer.concat([Buffer.alloc(10), payload]);
      c.writeUInt32LE(payload.length, 0);
      c.writeUInt16LE(Cmd.SUBVOL, 4);
      fixCrc(c, 0);
      return Buffer.concat([enc.header(), c]);
    };
    expect(decodeError(mk(Buffer.from('24000000', 'hex'))).message).toContain('invalid attribute type 36');
    expect(decodeError(mk(Buffer.from('00000000', 'hex'))).message).toContain('invalid attribute type 0');
    const badSize = Buffer.from('0200040001000000', 'hex'); // CTRANSID with 4 bytes
    expect(decodeError(mk(badSize)).message).toContain('expected 8');
    const overrun = Buffer.from('0f00ff00616263', 'hex');
    expect(decodeError(mk(overrun)).code).toBe('STREAM_BAD_ATTRIBUTE');
  });

  it('a missing required attribute names it', () => {
    const enc = new StreamEncoder(1);
    const b = Buffer.concat([
      enc.header(),
      enc.encode({ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: Buffer.alloc(16) } }),
    ]);
    const e = decodeError(b);
    expect(e.code).toBe('STREAM_MISSING_ATTRIBUTE');
    expect(e.message).toContain('CTRANSID');
  });

  it('a stream must start with subvol or snapshot', () => {
    const enc = new StreamEncoder(1);
    const b = Buffer.concat([enc.header(), enc.encode({ cmd: Cmd.MKFILE, attrs: { path: p('x') } })]);
    expect(decodeError(b).code).toBe('STREAM_BAD_ORDER');
  });

  it('paths longer than the limit are refused', () => {
    const long = Buffer.alloc(5000, 0x61);
    const enc = new StreamEncoder(2);
    const b = Buffer.concat([
      enc.header(),
      enc.encode({ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: Buffer.alloc(16), ctransid: 1n } }),
      enc.encode({ cmd: Cmd.MKFILE, attrs: { path: long } }),
    ]);
    expect(decodeError(b).code).toBe('STREAM_TOO_LARGE');
  });

  it('garbage after a complete stream is an error, not ignored', () => {
    const b = Buffer.concat([good, Buffer.from('junk')]);
    expect(decodeError(b).code).toBe('STREAM_BAD_MAGIC');
  });
});

describe('decoder fast path (commands parsed in place) and gather path agree', () => {
  const good = encodeAll(sampleCommands(2), 2);
  const brief = (r: StreamItem[] | FerryError) =>
    r instanceof FerryError
      ? `${r.code} ${r.message}`
      : JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v));
  const outcome = (buf: Buffer, sizes?: number[], opts = {}): StreamItem[] | FerryError => {
    try {
      return decodeChunks(buf, sizes, opts);
    } catch (e) {
      if (e instanceof FerryError) return e;
      throw e;
    }
  };

  it('never writes to its input (the crc field is skipped, not zeroed in place)', () => {
    for (const f of [good, ...FIX.map((x) => x.stream)]) {
      const copy = Buffer.from(f);
      decodeChunks(copy);
      decodeChunks(copy, [1, 3, 10, 17, 4096]);
      expect(copy.equals(f)).toBe(true);
    }
  });

  it('gives the same items for the input cut in two at every byte', () => {
    const whole = decodeChunks(good);
    for (let cut = 1; cut < good.length; cut++) {
      const dec = new StreamDecoder();
      const items = [...dec.push(good.subarray(0, cut)), ...dec.push(good.subarray(cut))];
      dec.end();
      expect(items).toEqual(whole);
    }
  });

  it('hands out paths and data as views of the input chunk, and copies a command split across chunks', () => {
    const items = decodeChunks(good).filter((i) => i.kind === 'command');
    const w = items.find((i) => i.cmd === Cmd.WRITE)!;
    expect(w.attrs.data!.buffer).toBe(good.buffer);
    expect(w.attrs.path!.buffer).toBe(good.buffer);
    expect(w.attrs.data!.byteOffset).toBe(good.byteOffset + w.offset + w.length - 6);
    const split = decodeChunks(good, [w.offset + 12, good.length]).filter((i) => i.kind === 'command');
    const w2 = split.find((i) => i.cmd === Cmd.WRITE)!;
    expect(w2.attrs.data!.buffer).not.toBe(good.buffer);
    expect(w2.attrs).toEqual(w.attrs);
  });

  it('reads u64 and signed timespec seconds exactly at every width', () => {
    const u64s = [0n, 1n, 0xffn, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 54n + 3n, 2n ** 63n, 2n ** 64n - 1n];
    const secs = [0n, -1n, 1700000000n, -(2n ** 32n), 2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 54n + 3n, 2n ** 63n - 1n, -(2n ** 63n)];
    const cmds: Command[] = [{ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: UUID_A, ctransid: 2n ** 64n - 2n } }];
    for (const v of u64s) cmds.push({ cmd: Cmd.TRUNCATE, attrs: { path: p('f'), size: v } });
    for (const sec of secs) {
      const t = { sec, nsec: 0xffffffff };
      cmds.push({ cmd: Cmd.UTIMES, attrs: { path: p('f'), atime: t, mtime: { sec, nsec: 1 }, ctime: t, otime: t } });
    }
    cmds.push({ cmd: Cmd.END, attrs: {} });
    const buf = encodeAll(cmds, 2);
    const got = decodeChunks(buf).filter((i) => i.kind === 'command');
    expect(got.map((i) => ({ cmd: i.cmd, attrs: i.attrs }))).toEqual(cmds);
    // and the same as Node's own readers at those positions
    for (const it of got.filter((i) => i.cmd === Cmd.TRUNCATE)) {
      expect(it.attrs.size).toBe(buf.readBigUInt64LE(it.offset + it.length - 8));
    }
    for (const it of got.filter((i) => i.cmd === Cmd.UTIMES)) {
      expect(it.attrs.atime!.sec).toBe(buf.readBigInt64LE(it.offset + it.length - 64 + 4));
    }
  });

  it('a huge length refused with the header split across chunks names the same command', () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(0xfffffff0, 17);
    const whole = decodeError(b);
    expect(whole.message).toContain('(command 1, cmd "subvol", offset 17)');
    for (const sizes of [[1], [18, 1], [20, 1], [22, 100]]) {
      const e = decodeError(b, sizes);
      expect(e.code).toBe('STREAM_TOO_LARGE');
      expect(e.message).toBe(whole.message);
    }
  });

  it('xattr names and paths are held to their limits, at the limit accepted', () => {
    const enc = new StreamEncoder(2);
    const stream = (name: Buffer, path = p('f')) =>
      Buffer.concat([
        enc.header(),
        enc.encode({ cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: UUID_A, ctransid: 1n } }),
        enc.encode({ cmd: Cmd.SET_XATTR, attrs: { path, xattrName: name, xattrData: p('v') } }),
        enc.encode({ cmd: Cmd.END, attrs: {} }),
      ]);
    expect(decodeChunks(stream(Buffer.alloc(255, 0x61)))).toHaveLength(4);
    const e = decodeError(stream(Buffer.alloc(256, 0x61)));
    expect(e.code).toBe('STREAM_TOO_LARGE');
    expect(e.message).toContain('xattr name of 256 bytes exceeds the limit of 255');
    expect(decodeChunks(stream(p('user.k'), Buffer.alloc(4096, 0x61)))).toHaveLength(4);
    expect(decodeError(stream(p('user.k'), Buffer.alloc(4097, 0x61))).message).toContain('PATH of 4097 bytes exceeds the limit of 4096');
  });

  it('mutated inputs (crc re-fixed) fail or pass the same way fed whole and at random splits', () => {
    const r = rng(99);
    const srcs = [good, encodeAll(sampleCommands(1), 1), FIX.find((x) => x.name === 'incr-v2')!.stream];
    const allBounds = srcs.map((s) => commandBoundaries(s).slice(0, -1));
    const seen = new Set<string>();
    for (let n = 0; n < 300; n++) {
      const src = srcs[n % srcs.length];
      const bounds = allBounds[n % srcs.length];
      const b = Buffer.from(src);
      const at = bounds[Math.floor(r() * bounds.length)];
      const len = b.readUInt32LE(at);
      if (r() < 0.3) b.writeUInt32LE(Math.max(0, len + Math.floor(r() * 9) - 4), at);
      else b[at + 10 + Math.floor(r() * Math.min(len, 40))] ^= 1 << Math.floor(r() * 8);
      for (const c of bounds) {
        const l = b.readUInt32LE(c);
        if (c + 10 + l <= b.length) fixCrc(b, c);
      }
      const opts = n % 5 === 0 ? { limits: { maxPathBytes: 4, maxXattrNameBytes: 3 } } : {};
      const whole = brief(outcome(b, undefined, opts));
      const sizes = Array.from({ length: 5 }, () => 1 + Math.floor(r() * 200));
      expect(brief(outcome(b, sizes, opts))).toBe(whole);
      seen.add(whole.startsWith('STREAM_') ? whole.split(' ')[0] : 'ok');
    }
    // the mutations reached the attribute checks, not only the framing
    for (const code of ['ok', 'STREAM_BAD_ATTRIBUTE', 'STREAM_TOO_LARGE']) expect(seen.has(code)).toBe(true);
  });
});
