import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import {
  decodeExtent,
  EncodedCompression,
  initDecompressors,
  lzo1xDecompressSafe,
  MAX_UNENCODED_LEN,
} from '../../../src/receive/decompress';
import { Cmd } from '../../../src/model/command';
import { StreamDecoder } from '../../../src/stream/decoder';
import { scanZstdFrame, zstdCodec } from '../../../src/transport/codec';
import { fixtures as streamFixtures, rng } from '../../helpers/streams';

const ENCODED_DIR = join(__dirname, '..', '..', 'fixtures', 'encoded');

interface ManifestEntry {
  file: string;
  path: string;
  algo: 'zlib' | 'zstd' | 'lzo';
  compression: number;
  encryption: number;
  fileOffset: number;
  unencodedFileLen: number;
  unencodedLen: number;
  unencodedOffset: number;
  dataLen: number;
  sha256: string;
}
const MANIFEST = JSON.parse(readFileSync(join(ENCODED_DIR, 'manifest.json'), 'utf8')) as {
  kernel: string;
  extents: ManifestEntry[];
};
const extentData = (e: ManifestEntry): Buffer => readFileSync(join(ENCODED_DIR, e.file));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let tmp: string;
beforeAll(async () => {
  await initDecompressors();
  tmp = mkdtempSync(join(tmpdir(), 'ferry-decompress-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function textish(n: number, seed = 1): Buffer {
  const r = rng(seed);
  const words = ['ferry ', 'btrfs ', 'extent ', 'send\n', 'receive ', 'snapshot ', 'lzo ', '0123 '];
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = words[Math.floor(r() * words.length)];
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

function randomBytes(n: number, seed = 7): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

function padTo(b: Buffer, sector = 4096): Buffer {
  const len = Math.max(sector, Math.ceil(b.length / sector) * sector);
  return Buffer.concat([b, Buffer.alloc(len - b.length)]);
}

function zstdCli(data: Buffer, args: string[] = []): Buffer {
  const f = join(tmp, 'in');
  writeFileSync(f, data);
  return execFileSync('zstd', ['-q', '-c', ...args, f]);
}

/** Length of the compressed payload inside an extent (where the padding starts). */
function payloadLength(e: ManifestEntry, data: Buffer): number {
  if (e.algo === 'zstd') return scanZstdFrame(data).length;
  if (e.algo === 'lzo') return data.readUInt32LE(0);
  const r = zlib.inflateSync(data, { info: true } as zlib.ZlibOptions) as unknown as { engine: { bytesWritten: number } };
  return r.engine.bytesWritten;
}

// ------------------------------------------------------------------ LZO helpers

/** LZO1X stream made only of one literal run (valid input for any LZO1X decoder). */
function lzoStored(data: Buffer): Buffer {
  const n = data.length;
  const eof = Buffer.from([0x11, 0, 0]);
  if (n === 0) return eof;
  if (n <= 238) return Buffer.concat([Buffer.from([17 + n]), data, eof]);
  // 0x00, then zero bytes adding 255 each and a final byte: length = 18 + 255 * zeros + last
  const rest = n - 18;
  const zeros = Math.floor((rest - 1) / 255);
  const last = rest - 255 * zeros;
  return Buffer.concat([Buffer.from([0]), Buffer.alloc(zeros), Buffer.from([last]), data, eof]);
}

/** btrfs LZO framing around ready-made LZO1X segments, as fs/btrfs/lzo.c writes it. */
function btrfsLzo(segments: Buffer[], sector = 4096): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  let pos = 4;
  for (const s of segments) {
    const h = Buffer.alloc(4);
    h.writeUInt32LE(s.length);
    parts.push(h, s);
    pos += 4 + s.length;
    const left = sector - (pos % sector);
    if (left < 4) {
      parts.push(Buffer.alloc(left));
      pos += left;
    }
  }
  const out = padTo(Buffer.concat(parts), sector);
  out.writeUInt32LE(pos, 0);
  return out;
}

/** Split `data` into per-sector stored segments. */
function storedSegments(data: Buffer, sector = 4096): Buffer[] {
  const segs: Buffer[] = [];
  for (let i = 0; i < data.length; i += sector) segs.push(lzoStored(data.subarray(i, i + sector)));
  return segs;
}

function lzoSegments(extent: Buffer, sector = 4096): Buffer[] {
  const total = extent.readUInt32LE(0);
  const segs: Buffer[] = [];
  let p = 4;
  while (p < total) {
    const n = extent.readUInt32LE(p);
    segs.push(extent.subarray(p + 4, p + 4 + n));
    p += 4 + n;
    const left = sector - (p % sector);
    if (left < 4) p += left;
  }
  return segs;
}

const lzo = (src: Uint8Array, room: number): Buffer => {
  const out = Buffer.alloc(room);
  const n = lzo1xDecompressSafe(src, 0, src.length, out, 0, room);
  return out.subarray(0, n);
};

// ====================================================================== tests

describe('real btrfs encoded extents (test/fixtures/encoded)', () => {
  const entries = MANIFEST.extents;

  it('cover zlib, zstd and lzo, a non-zero unencoded_offset, LZO segments across sectors and LZO sector padding', () => {
    for (const algo of ['zlib', 'zstd', 'lzo']) {
      expect(entries.filter((e) => e.algo === algo).length).toBeGreaterThanOrEqual(5);
    }
    expect(entries.some((e) => e.unencodedOffset > 0)).toBe(true);
    expect(entries.some((e) => e.unencodedFileLen + e.unencodedOffset < e.unencodedLen)).toBe(true);
    const lzoEntries = entries.filter((e) => e.algo === 'lzo');
    expect(lzoEntries.some((e) => lzoSegments(extentData(e)).some((s) => s.length > 4092))).toBe(true);
    const pad = lzoEntries.find((e) => e.path.startsWith('pad-'));
    expect(pad).toBeDefined();
    // the padded extent really skips 1..3 bytes before a sector boundary
    const d = extentData(pad!);
    let p = 4;
    let skips = 0;
    while (p < d.readUInt32LE(0)) {
      p += 4 + d.readUInt32LE(p);
      if (4096 - (p % 4096) < 4) {
        p += 4096 - (p % 4096);
        skips++;
      }
    }
    expect(skips).toBeGreaterThan(0);
  });

  it.each(entries.map((e) => [`${e.file} (${e.path} @${e.fileOffset})`, e]))(
    '%s decodes to unencoded_len bytes holding the file range',
    (_n, e) => {
      const data = extentData(e);
      expect(data.length).toBe(e.dataLen);
      expect(data.length % 4096).toBe(0); // sector-padded on disk
      const out = decodeExtent(data, e.compression, e.unencodedLen, e.encryption);
      expect(out.length).toBe(e.unencodedLen);
      expect(sha256(out.subarray(e.unencodedOffset, e.unencodedOffset + e.unencodedFileLen))).toBe(e.sha256);
    },
  );

  it('an extent past i_size is zero-filled after the compressed bytes (big: 18928 of 20480)', () => {
    for (const e of entries.filter((x) => x.path === 'big' && x.fileOffset === 131072)) {
      expect(e.unencodedFileLen).toBe(18928);
      expect(e.unencodedLen).toBe(20480);
      const out = decodeExtent(extentData(e), e.compression, e.unencodedLen);
      expect(out.subarray(18928).every((b) => b === 0)).toBe(true);
    }
  });

  it('zstd extents are one frame with its content size, then zeros', () => {
    for (const e of entries.filter((x) => x.algo === 'zstd')) {
      const d = extentData(e);
      const info = scanZstdFrame(d);
      expect(info.contentSize).not.toBeNull();
      expect(info.contentSize!).toBeLessThanOrEqual(e.unencodedLen);
      expect(d.subarray(info.length).every((b) => b === 0)).toBe(true);
    }
  });

  it.each(entries.map((e) => [e.file, e]))('%s: every cut inside the compressed bytes throws', (_n, e) => {
    const data = extentData(e);
    const payload = payloadLength(e, data);
    const step = Math.max(1, Math.floor(payload / 300));
    for (let n = 0; n < payload; n += step) {
      expect(() => decodeExtent(data.subarray(0, n), e.compression, e.unencodedLen)).toThrow(Error);
    }
  });

  it.each(entries.map((e) => [e.file, e]))('%s: bit flips throw an Error or decode to unencoded_len bytes', (_n, e) => {
    const data = extentData(e);
    const good = decodeExtent(data, e.compression, e.unencodedLen);
    const payload = payloadLength(e, data);
    const r = rng(payload);
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(data);
      bad[Math.floor(r() * payload)] ^= 1 << Math.floor(r() * 8);
      let out: Buffer;
      try {
        out = decodeExtent(bad, e.compression, e.unencodedLen);
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        continue;
      }
      expect(out.length).toBe(e.unencodedLen);
      // zlib has adler32: a flip it does not catch (unused Huffman code
      // lengths, say) cannot change the output. zstd frames from btrfs have
      // no checksum and LZO has none, so there a flip may change the bytes.
      if (e.algo === 'zlib') expect(out.equals(good)).toBe(true);
    }
  });

  it('a smaller unencoded_len than the data decodes to is refused', () => {
    for (const e of entries.filter((x) => x.path === 'big' && x.fileOffset === 0)) {
      expect(() => decodeExtent(extentData(e), e.compression, e.unencodedLen - 1)).toThrow(/encoded extent corrupt/);
    }
  });
});

describe('ENCODED_WRITE commands of the kernel stream fixtures (test/fixtures/streams)', () => {
  const writes = streamFixtures().flatMap((f) => {
    const dec = new StreamDecoder();
    const items = dec.push(f.stream);
    dec.end();
    return items.flatMap((it) =>
      it.kind === 'command' && it.cmd === Cmd.ENCODED_WRITE ? [{ name: f.name, attrs: it.attrs }] : [],
    );
  });

  it('exist', () => {
    expect(writes.length).toBeGreaterThan(3);
  });

  it('all decode; the sparse.bin islands are 0xab / 0xcd bytes', () => {
    for (const { attrs } of writes) {
      const len = Number(attrs.unencodedLen);
      const out = decodeExtent(attrs.data!, attrs.compression ?? 0, len, attrs.encryption ?? 0);
      expect(out.length).toBe(len);
      if (attrs.path!.toString() === 'sparse.bin') {
        const byte = attrs.fileOffset === 262144n ? 0xab : 0xcd;
        expect(out.equals(Buffer.alloc(len, byte))).toBe(true);
      }
    }
  });
});

describe('arguments', () => {
  it('refuses unknown compression values, naming them', () => {
    for (const c of [8, 9, 255, -1, 1.5, Number.NaN]) {
      expect(() => decodeExtent(Buffer.alloc(10), c, 10)).toThrow(`unknown compression ${c}`);
    }
  });

  it('refuses encryption, naming the value', () => {
    expect(() => decodeExtent(Buffer.alloc(10), 0, 10, 1)).toThrow('encryption 1 is not supported');
  });

  it('refuses bad or huge unencoded lengths before allocating', () => {
    for (const n of [-1, 1.5, Number.NaN, MAX_UNENCODED_LEN + 1, 2 ** 53]) {
      expect(() => decodeExtent(Buffer.alloc(10), 0, n)).toThrow(`unencoded length ${n}`);
    }
  });

  it('compression 0 returns the data, zero-filled to unencoded_len; longer data is refused', () => {
    const d = Buffer.from('hello');
    expect(decodeExtent(d, EncodedCompression.NONE, 5)).toEqual(d);
    expect(decodeExtent(d, EncodedCompression.NONE, 8)).toEqual(Buffer.from('hello\0\0\0'));
    expect(() => decodeExtent(d, EncodedCompression.NONE, 4)).toThrow(/5 bytes of data for an extent of 4/);
  });
});

describe('zlib', () => {
  const data = textish(100_000, 3);

  it.each([1, 6, 9])('deflateSync level %i, padded to 4 KiB with zeros', (level) => {
    const c = padTo(zlib.deflateSync(data, { level }));
    expect(decodeExtent(c, 1, 100_000)).toEqual(data);
  });

  it('zero-fills up to unencoded_len', () => {
    const out = decodeExtent(padTo(zlib.deflateSync(data)), 1, 102_400);
    expect(out.length).toBe(102_400);
    expect(out.subarray(0, 100_000)).toEqual(data);
    expect(out.subarray(100_000).every((b) => b === 0)).toBe(true);
  });

  it('refuses output over unencoded_len, truncation, non-zero padding, raw deflate and garbage', () => {
    const c = zlib.deflateSync(data);
    expect(() => decodeExtent(padTo(c), 1, 99_999)).toThrow(/more than 99999 bytes/);
    expect(() => decodeExtent(c.subarray(0, c.length - 1), 1, 100_000)).toThrow(/zlib/);
    const dirty = padTo(c);
    dirty[dirty.length - 1] = 1;
    expect(() => decodeExtent(dirty, 1, 100_000)).toThrow(/non-zero byte after the zlib stream/);
    expect(() => decodeExtent(padTo(zlib.deflateRawSync(data)), 1, 100_000)).toThrow(/zlib/);
    expect(() => decodeExtent(Buffer.alloc(4096), 1, 100_000)).toThrow(/zlib/);
    expect(() => decodeExtent(Buffer.alloc(0), 1, 100_000)).toThrow(/zlib/);
  });

  it('a zlib bomb is stopped at unencoded_len', () => {
    const bomb = zlib.deflateSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(128 * 1024);
    expect(() => decodeExtent(padTo(bomb), 1, 128 * 1024)).toThrow(/more than 131072 bytes/);
  });
});

describe('zstd', () => {
  const data = textish(100_000, 4);

  it.each([
    ['zstd CLI, content size in the header', () => zstdCli(data)],
    ['zstd CLI --no-content-size', () => zstdCli(data, ['--no-content-size'])],
    ['zstd CLI -19 --no-check', () => zstdCli(data, ['-19', '--no-check'])],
    ['the codec', () => zstdCodec().compress(data, 3)],
  ])('%s, padded to 4 KiB', (_n, make) => {
    const frame = make();
    expect(decodeExtent(padTo(frame), 2, 100_000)).toEqual(data);
    expect(decodeExtent(frame, 2, 100_000)).toEqual(data); // no padding at all
  });

  it('zero-fills up to unencoded_len, with and without content size', () => {
    for (const frame of [zstdCli(data), zstdCli(data, ['--no-content-size'])]) {
      const out = decodeExtent(padTo(frame), 2, 131072);
      expect(out.length).toBe(131072);
      expect(out.subarray(0, 100_000)).toEqual(data);
      expect(out.subarray(100_000).every((b) => b === 0)).toBe(true);
    }
  });

  it('skips skippable frames before and after the data frame', () => {
    const skippable = Buffer.from('542a4d1806000000666572727921', 'hex');
    const ext = padTo(Buffer.concat([skippable, zstdCli(data), skippable]));
    expect(decodeExtent(ext, 2, 100_000)).toEqual(data);
  });

  it('refuses output over unencoded_len, with and without content size', () => {
    expect(() => decodeExtent(padTo(zstdCli(data)), 2, 99_999)).toThrow(/content size 100000 over the extent size 99999/);
    expect(() => decodeExtent(padTo(zstdCli(data, ['--no-content-size'])), 2, 99_999)).toThrow(
      /more than 99999 bytes of output/,
    );
    const bomb = zstdCli(Buffer.alloc(16 * 1024 * 1024), ['--no-content-size']);
    expect(() => decodeExtent(padTo(bomb), 2, 128 * 1024)).toThrow(/more than 131072 bytes/);
  });

  it('refuses non-zero bytes after the frame, a second frame, truncation and corruption', () => {
    const frame = zstdCli(data);
    const dirty = padTo(frame);
    dirty[frame.length + 10] = 0xff;
    expect(() => decodeExtent(dirty, 2, 100_000)).toThrow(/non-zero byte after the zstd frame/);
    expect(() => decodeExtent(padTo(Buffer.concat([frame, frame])), 2, 200_000)).toThrow(/non-zero byte/);
    expect(() => decodeExtent(frame.subarray(0, frame.length - 3), 2, 100_000)).toThrow(/truncated/);
    expect(() => decodeExtent(Buffer.alloc(4096), 2, 100_000)).toThrow(/bad magic/);
    const corrupt = padTo(frame);
    for (let i = 20; i < 60; i++) corrupt[i] ^= 0x5a;
    expect(() => decodeExtent(corrupt, 2, 100_000)).toThrow(/encoded extent corrupt/);
  });

  it('says so when the codec was never loaded', () => {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../../../src/receive/decompress') as typeof import('../../../src/receive/decompress');
      expect(() => fresh.decodeExtent(padTo(zstdCli(data)), 2, 100_000)).toThrow(/not loaded/);
    });
  });
});

describe('btrfs LZO framing', () => {
  it('stored segments, one per sector, decode', () => {
    const data = randomBytes(3 * 4096 + 100);
    const ext = btrfsLzo(storedSegments(data));
    expect(decodeExtent(ext, 3, data.length)).toEqual(data);
    expect(decodeExtent(ext, 3, 4 * 4096).subarray(0, data.length)).toEqual(data);
  });

  it('skips the 1..3 padding bytes when a segment header would cross a sector', () => {
    for (const left of [1, 2, 3]) {
      // extent header 4 + segment header 4 + first segment = 4096 - left
      let m = 4096;
      while (lzoStored(Buffer.alloc(m)).length > 4096 - left - 8) m--;
      expect(lzoStored(Buffer.alloc(m)).length).toBe(4096 - left - 8);
      const payload = randomBytes(m, left);
      const second = lzoStored(Buffer.from('second sector'));
      const ext = btrfsLzo([lzoStored(payload), second]);
      expect(ext.readUInt32LE(4096)).toBe(second.length); // next header at the sector start
      const out = decodeExtent(ext, 3, 8192);
      expect(out.subarray(0, m)).toEqual(payload);
      expect(out.subarray(m, m + 13).toString()).toBe('second sector');
      expect(out.subarray(m + 13).every((b) => b === 0)).toBe(true);
      const dirty = Buffer.from(ext);
      dirty[4095] = 7;
      expect(() => decodeExtent(dirty, 3, 8192)).toThrow(/non-zero byte after the lzo segment/);
    }
  });

  it.each([4, 5, 6, 7])('compression %i: segments of up to one larger sector', (c) => {
    const sector = 4096 << (c - 3);
    const data = textish(sector + 1234, c); // btrfs extents hold at most 128 KiB
    const ext = btrfsLzo(storedSegments(data, sector), sector);
    expect(decodeExtent(ext, c, data.length)).toEqual(data);
    // with 4 KiB sectors the same segments decode to more than a sector each
    expect(() => decodeExtent(ext, 3, data.length)).toThrow(Error);
  });

  it('refuses bad headers and segment lengths', () => {
    const good = btrfsLzo(storedSegments(textish(10_000)));
    const withTotal = (t: number): Buffer => {
      const b = Buffer.from(good);
      b.writeUInt32LE(t, 0);
      return b;
    };
    expect(() => decodeExtent(good.subarray(0, 3), 3, 10_000)).toThrow(/no header/);
    expect(() => decodeExtent(withTotal(0), 3, 10_000)).toThrow(/lzo header says 0 bytes/);
    expect(() => decodeExtent(withTotal(good.length + 1), 3, 10_000)).toThrow(/lzo header says/);
    expect(() => decodeExtent(withTotal(0xffffffff), 3, 10_000)).toThrow(/lzo header says/);
    // data longer than the sectors the header accounts for
    expect(() => decodeExtent(Buffer.concat([good, Buffer.alloc(4096)]), 3, 10_000)).toThrow(/lzo header says/);
    const segLen = (n: number): Buffer => {
      const b = Buffer.from(good);
      b.writeUInt32LE(n, 4);
      return b;
    };
    expect(() => decodeExtent(segLen(5000), 3, 10_000)).toThrow(/lzo segment of 5000 bytes/);
    expect(() => decodeExtent(segLen(0xffffffff), 3, 10_000)).toThrow(/lzo segment of 4294967295 bytes/);
    expect(() => decodeExtent(segLen(0), 3, 10_000)).toThrow(/input overrun/);
    // total ends inside a segment header
    expect(() => decodeExtent(withTotal(good.readUInt32LE(0) - 2), 3, 10_000)).toThrow(Error);
    // non-zero bytes after the data
    const dirty = Buffer.from(good);
    dirty[dirty.length - 1] = 1;
    expect(() => decodeExtent(dirty, 3, 10_000)).toThrow(/non-zero byte after the lzo data/);
  });

  it('refuses data that decodes to more than unencoded_len', () => {
    const ext = btrfsLzo(storedSegments(textish(10_000)));
    expect(() => decodeExtent(ext, 3, 9_999)).toThrow(/output overrun.*extent of 9999 bytes/);
    expect(() => decodeExtent(ext, 3, 0)).toThrow(/output overrun/);
  });

  it('a segment decoding to more than one sector is refused even with room left', () => {
    const big = lzoStored(textish(4300)); // 4320 bytes: within lzo1x_worst_compress(4096)
    const ext = btrfsLzo([big]);
    expect(() => decodeExtent(ext, 3, 8192)).toThrow(/output overrun/);
  });
});

describe('lzo1xDecompressSafe', () => {
  const abcd = Buffer.from('abcd');
  const EOF = [0x11, 0, 0];

  it('stored runs of every length class', () => {
    for (const n of [0, 1, 3, 4, 17, 238, 239, 255, 256, 273, 274, 529, 4096, 70_000]) {
      const d = randomBytes(n, n);
      expect(lzo(lzoStored(d), n)).toEqual(d);
    }
  });

  it('overlapping M2 match repeats the last bytes', () => {
    // 'ab', then M2 length 6 distance 2, then end
    const src = Buffer.from([17 + 2, 0x61, 0x62, 0xa4, 0x00, ...EOF]);
    expect(lzo(src, 100).toString()).toBe('abababab');
  });

  it('M4 match at distance 16385 and more', () => {
    const lit = randomBytes(20_000, 3);
    for (const dist of [16385, 16386, 20_000]) {
      const v = ((dist - 16384) & 0x3fff) << 2;
      const high = (dist - 16384) >> 14 ? 0x08 : 0;
      const src = Buffer.concat([lzoStored(lit).subarray(0, -3), Buffer.from([0x10 | high | 3, v & 0xff, v >> 8]), Buffer.from(EOF)]);
      const out = lzo(src, 30_000);
      expect(out.length).toBe(20_005);
      expect(out.subarray(20_000)).toEqual(lit.subarray(20_000 - dist, 20_000 - dist + 5));
    }
  });

  it('LZO-RLE bitstream: a run of zeros', () => {
    // version header 17, 1; 'abcd'; zero run of 20 (t=0x18, le16=0xfffc, 16>>3); end
    const src = Buffer.from([17, 1, 17 + 4, ...abcd, 0x18, 0xfc, 0xff, 0x02, ...EOF]);
    expect(lzo(src, 100)).toEqual(Buffer.concat([abcd, Buffer.alloc(20)]));
    expect(() => lzo(src, 10)).toThrow(/output overrun/);
  });

  it('input shorter than 3 bytes, truncated input and a missing end marker throw', () => {
    expect(() => lzo(Buffer.alloc(0), 10)).toThrow(/input overrun/);
    expect(() => lzo(Buffer.from([0x11, 0]), 10)).toThrow(/input overrun/);
    const src = lzoStored(randomBytes(300));
    for (let n = 0; n < src.length; n++) expect(() => lzo(src.subarray(0, n), 300)).toThrow(Error);
  });

  it('match distances before the start of the output throw', () => {
    // M2 at distance 100 after 4 literals
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, 0x4c, 12, ...EOF]), 100)).toThrow(/match distance 100 before start/);
    // M1 (after 1..3 literals): distance 1 + 3 + (255 << 2)
    expect(() => lzo(Buffer.from([17 + 2, 0x61, 0x62, 0x0c, 0xff, ...EOF]), 100)).toThrow(/before start/);
    // 3-byte match after a long literal run: distance >= 2049
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, 0x00, 0x00, ...EOF]), 100)).toThrow(/distance 2049/);
    // M3 at distance 1 + 0x3fff
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, 0x21, 0xfc, 0xff, ...EOF]), 100)).toThrow(/distance 16384/);
    // M4 at distance 16385
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, 0x13, 0x04, 0x00, ...EOF]), 100)).toThrow(/distance 16385/);
    // a match first thing, with no output at all: a first byte over 17 is a
    // literal run and a leading 17 starts the LZO-RLE header, so use M4 with
    // t = 16 (extended length 9 + 1)
    expect(() => lzo(Buffer.from([0x10, 0x01, 0x04, 0x00, ...EOF]), 100)).toThrow(/distance 16385 before start/);
  });

  it('output overruns throw, also inside a larger buffer', () => {
    const src = lzoStored(randomBytes(1000));
    expect(() => lzo(src, 999)).toThrow(/output overrun/);
    const match = Buffer.from([17 + 2, 0x61, 0x62, 0xa4, 0x00, ...EOF]); // 8 bytes out
    expect(() => lzo(match, 7)).toThrow(/output overrun/);
    // dst has room, but the window [10, 15) does not
    const dst = Buffer.alloc(100, 0xee);
    expect(() => lzo1xDecompressSafe(match, 0, match.length, dst, 10, 15)).toThrow(/output overrun/);
    expect(dst.subarray(0, 10).every((b) => b === 0xee)).toBe(true);
    expect(dst.subarray(15).every((b) => b === 0xee)).toBe(true);
  });

  it('a bad end marker or input after it throws', () => {
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, 0x12, 0, 0]), 100)).toThrow(/bad end marker/);
    expect(() => lzo(Buffer.from([17 + 4, ...abcd, ...EOF, 0]), 100)).toThrow(/1 bytes of input after the end marker/);
  });

  it('a huge extended length is refused quickly, not looped over', () => {
    const src = Buffer.concat([Buffer.from([0]), Buffer.alloc(1_000_000), Buffer.from([1]), ...[Buffer.from(EOF)]]);
    const t0 = Date.now();
    expect(() => lzo(src, 4096)).toThrow(/output overrun/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('rejects ranges outside its buffers', () => {
    const src = lzoStored(abcd);
    expect(() => lzo1xDecompressSafe(src, 0, src.length + 1, Buffer.alloc(10), 0, 10)).toThrow(RangeError);
    expect(() => lzo1xDecompressSafe(src, 0, src.length, Buffer.alloc(10), 0, 11)).toThrow(RangeError);
    expect(() => lzo1xDecompressSafe(src, 2, 1, Buffer.alloc(10), 0, 10)).toThrow(RangeError);
  });

  it('random inputs and bit-flipped real segments throw an Error or stay inside the output window', () => {
    const r = rng(99);
    const real = MANIFEST.extents.filter((e) => e.algo === 'lzo').flatMap((e) => lzoSegments(extentData(e)));
    expect(real.length).toBeGreaterThan(50);
    const dst = Buffer.alloc(4096 + 64);
    for (let i = 0; i < 20_000; i++) {
      let src: Buffer;
      if (i % 2) {
        src = randomBytes(3 + Math.floor(r() * 60), i);
      } else {
        src = Buffer.from(real[i % real.length]);
        for (let k = 1 + Math.floor(r() * 3); k > 0; k--) src[Math.floor(r() * src.length)] ^= 1 << Math.floor(r() * 8);
      }
      dst.fill(0xee);
      try {
        const n = lzo1xDecompressSafe(src, 0, src.length, dst, 32, 32 + 4096);
        expect(n).toBeLessThanOrEqual(4096);
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
      }
      // never a byte outside [32, 32 + 4096)
      for (let k = 0; k < 32; k++) {
        if (dst[k] !== 0xee || dst[dst.length - 1 - k] !== 0xee) throw new Error(`write outside the window (case ${i})`);
      }
    }
  });
});

// Differential test against the reference LZO library, when the machine has it.
const PY_LZO = `
import ctypes, struct, sys
lib = ctypes.CDLL('liblzo2.so.2')
wrk = ctypes.create_string_buffer(1 << 20)
data = sys.stdin.buffer.read()
pos = 0
while pos < len(data):
    algo, n = struct.unpack_from('<BI', data, pos); pos += 5
    src = data[pos:pos + n]; pos += n
    dst = ctypes.create_string_buffer(n + n // 16 + 64 + 3 + 16)
    dlen = ctypes.c_size_t(len(dst))
    fn = lib.lzo1x_1_compress if algo == 1 else lib.lzo1x_999_compress
    if fn(src, ctypes.c_size_t(n), dst, ctypes.byref(dlen), wrk) != 0:
        sys.exit('lzo error')
    sys.stdout.buffer.write(struct.pack('<I', dlen.value) + dst.raw[:dlen.value])
`;
const haveLiblzo = spawnSync('python3', ['-c', "import ctypes; ctypes.CDLL('liblzo2.so.2')"]).status === 0;

(haveLiblzo ? describe : describe.skip)('lzo1xDecompressSafe against liblzo2 (lzo1x_1 and lzo1x_999)', () => {
  it('decodes what the reference compressors produce', () => {
    const inputs: Buffer[] = [];
    for (let i = 0; i < 160; i++) {
      const n = [0, 1, 3, 4, 100, 4096, 9000, 65_536][i % 8] + (i % 5) * 37;
      const kind = Math.floor(i / 8) % 5;
      inputs.push(
        kind === 0
          ? randomBytes(n, i)
          : kind === 1
            ? Buffer.alloc(n, i)
            : kind === 2
              ? textish(n, i)
              : kind === 3
                ? Buffer.concat([randomBytes(n >> 2, i), Buffer.alloc(n >> 2), textish(n - 2 * (n >> 2), i)])
                : Buffer.from(textish(n, i).toString().replace(/e/g, '\0')),
      );
    }
    const req = Buffer.concat(
      inputs.flatMap((b, i) => {
        const h = Buffer.alloc(5);
        h[0] = i % 2 ? 1 : 9; // 1: lzo1x_1_compress (what btrfs uses), 9: lzo1x_999_compress
        h.writeUInt32LE(b.length, 1);
        return [h, b];
      }),
    );
    const res = execFileSync('python3', ['-c', PY_LZO], { input: req, maxBuffer: 1 << 28 });
    let p = 0;
    for (const b of inputs) {
      const n = res.readUInt32LE(p);
      const c = res.subarray(p + 4, p + 4 + n);
      p += 4 + n;
      expect(lzo(c, b.length)).toEqual(b);
      if (b.length > 0) expect(() => lzo(c, b.length - 1)).toThrow(/output overrun/);
    }
    expect(p).toBe(res.length);
  });
});

describe('throughput on 128 KiB extents', () => {
  it('reports MB/s for zstd, lzo and zlib', () => {
    const rows: string[] = [];
    for (const algo of ['zstd', 'lzo', 'zlib'] as const) {
      const e = MANIFEST.extents.find((x) => x.algo === algo && x.path === 'big' && x.fileOffset === 0)!;
      expect(e.unencodedLen).toBe(131072);
      const data = extentData(e);
      for (let i = 0; i < 20; i++) decodeExtent(data, e.compression, e.unencodedLen); // warm up
      let n = 0;
      const t0 = process.hrtime.bigint();
      let elapsed = 0;
      while (elapsed < 0.5) {
        decodeExtent(data, e.compression, e.unencodedLen);
        n++;
        elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      }
      const mbs = (n * e.unencodedLen) / 1e6 / elapsed;
      rows.push(`${algo}: ${mbs.toFixed(0)} MB/s (${(elapsed / n * 1e6).toFixed(0)} us per extent, ${data.length} B encoded)`);
      expect(mbs).toBeGreaterThan(5);
    }
    console.log(`decodeExtent, 128 KiB extents of text (${MANIFEST.kernel}):\n  ${rows.join('\n  ')}`);
  });
});
