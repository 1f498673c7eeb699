import { Cmd } from '../../../src/model/command';
import { decodeStream, StreamDecoder } from '../../../src/stream/decoder';
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
