import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadZstd,
  scanZstdFrame,
  zstdCodec,
  zstdMaxCompressInput,
  ZSTD_MAX_FRAME_BYTES,
  ZstdCodec,
} from '../../../src/transport/codec';
import { rng } from '../../helpers/streams';

let zstd: ZstdCodec;
let tmp: string;

beforeAll(async () => {
  zstd = await loadZstd();
  tmp = mkdtempSync(join(tmpdir(), 'ferry-codec-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Deterministic, moderately compressible bytes. */
function textish(n: number, seed = 1): Buffer {
  const r = rng(seed);
  const words = ['ferry', 'btrfs', 'extent', 'send', 'receive', 'snapshot', 'zstd', '\n', ' ', '0123'];
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

/** The zstd CLI; `args` e.g. ['--no-content-size']. Input from a file so the CLI knows its size. */
function zstdCli(data: Buffer, args: string[] = []): Buffer {
  const f = join(tmp, 'in');
  writeFileSync(f, data);
  return execFileSync('zstd', ['-q', '-c', ...args, f]);
}

describe('loading', () => {
  it('loadZstd resolves to the zstdCodec() singleton, also when called concurrently', async () => {
    const [a, b] = await Promise.all([loadZstd(), loadZstd()]);
    expect(a).toBe(b);
    expect(a).toBe(zstdCodec());
    expect(await loadZstd()).toBe(zstd);
  });
});

describe('round trip', () => {
  it.each([0, 1, 100, 4096, 131072, 1_000_003])('%i bytes of text at level 3', (n) => {
    const data = textish(n);
    const frame = zstd.compress(data, 3);
    expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
    const info = scanZstdFrame(frame);
    expect(info.length).toBe(frame.length);
    expect(info.contentSize).toBe(n); // compress() always writes the content size
    expect(zstd.decompress(frame, n).equals(data)).toBe(true);
  });

  it.each([1, 2, 9, 12, 19])('level %i at its largest accepted input', (level) => {
    const n = Math.min(zstdMaxCompressInput(level), 600 * 1024);
    const data = Buffer.concat([textish(n >> 1, level), randomBytes(n - (n >> 1), level)]);
    const frame = zstd.compress(data, level);
    expect(zstd.decompress(frame, n).equals(data)).toBe(true);
  });

  it('the largest input at level 1 and 3 (4 MiB), incompressible', () => {
    const data = randomBytes(zstdMaxCompressInput(3));
    for (const level of [1, 3]) {
      const frame = zstd.compress(data, level);
      expect(frame.length).toBeLessThanOrEqual(ZSTD_MAX_FRAME_BYTES);
      expect(zstd.decompress(frame, data.length).equals(data)).toBe(true);
    }
  });

  it('accepts Buffers, plain Uint8Arrays and views at an offset', () => {
    const data = textish(5000);
    const backing = new Uint8Array(6000);
    backing.set(data, 333);
    const view = backing.subarray(333, 5333);
    const frame = zstd.compress(view, 3);
    const u8frame = new Uint8Array(frame);
    expect(zstd.decompress(u8frame, 5000).equals(data)).toBe(true);
  });

  it('writes nothing to stdout or stderr', () => {
    const out = jest.spyOn(process.stdout, 'write');
    const err = jest.spyOn(process.stderr, 'write');
    try {
      const frame = zstd.compress(textish(10000), 3);
      zstd.decompress(frame, 10000);
      expect(() => zstd.decompress(frame.subarray(0, 50), 10000)).toThrow();
      expect(out).not.toHaveBeenCalled();
      expect(err).not.toHaveBeenCalled();
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});

describe('frames from the zstd CLI', () => {
  const data = textish(200_000, 3);

  it.each([
    ['with content size and checksum', []],
    ['without content size', ['--no-content-size']],
    ['without checksum', ['--no-check']],
    ['at level 19 with a long window', ['-19', '--long=24']],
  ])('%s', (_name, args) => {
    const frame = zstdCli(data, args as string[]);
    const info = scanZstdFrame(frame);
    expect(info.length).toBe(frame.length);
    if ((args as string[]).includes('--no-content-size')) expect(info.contentSize).toBeNull();
    else expect(info.contentSize).toBe(data.length);
    expect(info.maxContentSize).toBeGreaterThanOrEqual(data.length);
    expect(zstd.decompress(frame, data.length).equals(data)).toBe(true);
  });

  it('an empty input', () => {
    expect(zstd.decompress(zstdCli(Buffer.alloc(0)), 0).length).toBe(0);
    expect(zstd.decompress(zstdCli(Buffer.alloc(0), ['--no-content-size']), 10).length).toBe(0);
  });

  it('raw and RLE blocks are measured from their headers', () => {
    const rnd = randomBytes(50_000);
    const raw = zstdCli(rnd, ['--no-content-size']);
    expect(scanZstdFrame(raw).maxContentSize).toBe(50_000); // one raw block: exact
    expect(zstd.decompress(raw, 50_000).equals(rnd)).toBe(true);
    const zeros = Buffer.alloc(300_000);
    const rle = zstdCli(zeros, ['--no-content-size']);
    expect(rle.length).toBeLessThan(40);
    expect(scanZstdFrame(rle).maxContentSize).toBe(300_000); // RLE blocks: exact
    expect(zstd.decompress(rle, 300_000).equals(zeros)).toBe(true);
  });
});

describe('refusals', () => {
  const data = textish(20_000, 5);

  it('output over maxOutput, with and without content size in the header', () => {
    const withSize = zstd.compress(data, 3);
    expect(() => zstd.decompress(withSize, 19_999)).toThrow(/content size 20000 over the bound 19999/);
    const noSize = zstdCli(data, ['--no-content-size']);
    expect(() => zstd.decompress(noSize, 19_999)).toThrow(/more than 19999 bytes/);
    expect(zstd.decompress(noSize, 20_000).equals(data)).toBe(true);
  });

  it('a frame of RLE blocks claiming far more than maxOutput', () => {
    const frame = zstdCli(Buffer.alloc(3_000_000), ['--no-content-size']);
    expect(() => zstd.decompress(frame, 128 * 1024)).toThrow(/more than 131072 bytes/);
  });

  it('anything but exactly one frame', () => {
    const frame = zstd.compress(data, 3);
    expect(() => zstd.decompress(Buffer.concat([frame, Buffer.alloc(100)]), 20_000)).toThrow(/100 bytes after the frame/);
    expect(() => zstd.decompress(Buffer.concat([frame, frame]), 40_000)).toThrow(/after the frame/);
    const skippable = Buffer.from('502a4d1803000000616263', 'hex');
    expect(() => zstd.decompress(skippable, 100)).toThrow(/skippable/);
    expect(() => zstd.decompress(Buffer.alloc(0), 100)).toThrow(/truncated/);
    expect(() => zstd.decompress(Buffer.alloc(4096), 100)).toThrow(/bad magic/);
  });

  it('every truncation', () => {
    const frame = zstdCli(data);
    for (let n = 0; n < frame.length; n++) {
      expect(() => zstd.decompress(frame.subarray(0, n), 20_000)).toThrow();
    }
  });

  it('bit flips: throw, or (flips the decoder ignores) give back the same bytes', () => {
    const frame = zstdCli(data); // with checksum: a changed output cannot pass
    const r = rng(42);
    let threw = 0;
    for (let i = 0; i < 1500; i++) {
      const bad = Buffer.from(frame);
      const at = Math.floor(r() * bad.length);
      bad[at] ^= 1 << Math.floor(r() * 8);
      let out: Buffer | undefined;
      try {
        out = zstd.decompress(bad, 20_000);
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        threw++;
        continue;
      }
      expect(out.equals(data)).toBe(true);
    }
    expect(threw).toBeGreaterThan(1200);
    // still healthy afterwards
    expect(zstd.decompress(frame, 20_000).equals(data)).toBe(true);
  });

  it('reserved bits and block types', () => {
    const frame = zstd.compress(data, 3);
    const reserved = Buffer.from(frame);
    reserved[4] |= 0x08;
    expect(() => scanZstdFrame(reserved)).toThrow(/reserved bit/);
    // frame header: magic, FHD, window descriptor unless single-segment, FCS;
    // then make the first block's type 3 (reserved)
    const fhd = frame[4];
    const single = (fhd & 0x20) !== 0;
    const fcsBytes = [single ? 1 : 0, 2, 4, 8][fhd >> 6];
    const blockAt = 5 + (single ? 0 : 1) + fcsBytes;
    const badType = Buffer.from(frame);
    badType[blockAt] |= 0x06;
    expect(() => scanZstdFrame(badType)).toThrow(/reserved block type/);
  });

  it('bad arguments', () => {
    expect(() => zstd.compress(data, 0)).toThrow(RangeError);
    expect(() => zstd.compress(data, 20)).toThrow(RangeError);
    expect(() => zstd.compress(data, 2.5)).toThrow(RangeError);
    expect(() => zstd.compress(Buffer.alloc(zstdMaxCompressInput(19) + 1), 19)).toThrow(/at most 524288 at level 19/);
    expect(() => zstd.decompress(zstd.compress(data, 3), -1)).toThrow(RangeError);
    expect(() => zstd.decompress(Buffer.alloc(ZSTD_MAX_FRAME_BYTES + 1), 10)).toThrow(RangeError);
  });
});

describe('scanZstdFrame', () => {
  it('reads skippable frames', () => {
    const sk = Buffer.from('5f2a4d180500000001020304059999', 'hex');
    expect(scanZstdFrame(sk)).toEqual({ length: 13, skippable: true, contentSize: 0, maxContentSize: 0 });
    expect(() => scanZstdFrame(sk.subarray(0, 12))).toThrow(/truncated/);
  });

  it('scans a frame at an offset', () => {
    const frame = zstd.compress(textish(1000), 3);
    const buf = Buffer.concat([Buffer.alloc(10, 0xee), frame, Buffer.alloc(10)]);
    expect(scanZstdFrame(buf, 10).length).toBe(frame.length);
  });
});

describe('the zstd-codec Simple API (why the raw binding is used)', () => {
  type Simple = { decompress(b: Uint8Array): Uint8Array | null };
  let simple: Simple;
  beforeAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ZstdCodec: Z } = require('zstd-codec') as {
      ZstdCodec: { run(cb: (z: { Simple: new () => Simple }) => void): void };
    };
    simple = await new Promise<Simple>((resolve) => Z.run((z) => resolve(new z.Simple())));
  });

  it('returns null for padded frames, frames without content size and empty frames', () => {
    const data = textish(5000);
    const frame = zstdCli(data);
    expect(Buffer.from(simple.decompress(frame)!).equals(data)).toBe(true);
    expect(simple.decompress(Buffer.concat([frame, Buffer.alloc(4096 - frame.length)]))).toBeNull();
    expect(simple.decompress(zstdCli(data, ['--no-content-size']))).toBeNull();
    expect(simple.decompress(zstdCli(Buffer.alloc(0)))).toBeNull();
  });
});
