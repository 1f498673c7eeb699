import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../../../src/errors';
import { loadZstd, scanZstdFrame } from '../../../src/transport/codec';
import { createZstdCompressor, createZstdDecompressor, decompressIfZstd, isZstdMagic, ZSTD_STREAM_MAX_WINDOW } from '../../../src/transport/zstd-stream';
import { rng } from '../../helpers/streams';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ferry-zstd-stream-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Moderately compressible bytes: words from a small vocabulary, with random runs. */
function textish(n: number, seed = 1): Buffer {
  const r = rng(seed);
  const words = ['ferry', 'btrfs', 'extent', 'send', 'receive', 'snapshot', 'zstd', '\n', ' ', '0123'];
  const out = Buffer.alloc(n);
  let i = 0;
  while (i < n) {
    if (r() < 0.02) {
      const run = Math.min(n - i, Math.floor(r() * 2000));
      for (let k = 0; k < run; k++) out[i++] = Math.floor(r() * 256);
    } else {
      i += out.write(words[Math.floor(r() * words.length)], i);
    }
  }
  return out;
}

/** Cut `data` into chunks of random sizes (1..max). */
function splits(data: Buffer, seed: number, max = 70000): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; ) {
    const n = 1 + Math.floor(r() * max);
    out.push(data.subarray(o, o + n));
    o += n;
  }
  return out;
}

async function run(t: Transform, chunks: Buffer[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

async function runError(t: Transform, chunks: Buffer[]): Promise<FerryError> {
  try {
    await run(t, chunks);
  } catch (e) {
    expect(e).toBeInstanceOf(FerryError);
    return e as FerryError;
  }
  throw new Error('expected an error');
}

/** The frames of a zstd file: [offset, length, contentSize]. */
function frames(z: Buffer): Array<[number, number, number | null]> {
  const out: Array<[number, number, number | null]> = [];
  for (let o = 0; o < z.length; ) {
    const f = scanZstdFrame(z, o);
    out.push([o, f.length, f.contentSize]);
    o += f.length;
  }
  return out;
}

function zstdCli(args: string[], input: Buffer): Buffer {
  const f = join(tmp, `in-${process.hrtime.bigint()}`);
  writeFileSync(f, input);
  try {
    return execFileSync('zstd', ['-q', '-c', ...args, f], { maxBuffer: 1 << 30 });
  } finally {
    rmSync(f, { force: true });
  }
}

function skippable(data: Buffer, magicLow = 0): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a50 + magicLow, 0);
  h.writeUInt32LE(data.length, 4);
  return Buffer.concat([h, data]);
}

describe('createZstdCompressor', () => {
  const BS = 64 * 1024;
  it.each([0, 1, BS - 1, BS, BS + 1, 5 * BS + 123])('round trip of %i bytes: one frame per block, content size set', async (n) => {
    const data = textish(n, n + 3);
    const z = await run(createZstdCompressor({ level: 3, workers: 2, blockSize: BS }), splits(data, n));
    const fs = frames(z);
    expect(fs.length).toBe(Math.max(1, Math.ceil(n / BS)));
    fs.forEach(([, , size], i) => expect(size).toBe(i < fs.length - 1 ? BS : n - (fs.length - 1) * BS));
    // every frame decodes alone with the bounded one-frame codec
    const codec = await loadZstd();
    const back = Buffer.concat(fs.map(([o, len, size]) => codec.decompress(z.subarray(o, o + len), size!)));
    expect(back.equals(data)).toBe(true);
    expect((await run(createZstdDecompressor(), splits(z, n + 1, 5000))).equals(data)).toBe(true);
  });

  it('keeps block order when workers finish out of order', async () => {
    // Incompressible blocks (slow) alternate with zeros (fast), over 4 workers.
    const r = rng(9);
    const blocks: Buffer[] = [];
    for (let i = 0; i < 24; i++) {
      const b = Buffer.alloc(BS, i);
      if (i % 2 === 0) for (let k = 0; k < BS; k++) b[k] = Math.floor(r() * 256);
      blocks.push(b);
    }
    const data = Buffer.concat(blocks);
    const z = await run(createZstdCompressor({ level: 9, workers: 4, blockSize: BS }), splits(data, 4, 3 * BS));
    expect(frames(z)).toHaveLength(24);
    expect((await run(createZstdDecompressor(), [z])).equals(data)).toBe(true);
  });

  it('`zstd -d` decompresses the output to the same bytes', async () => {
    const data = textish(3 * 1024 * 1024 + 77, 5);
    const z = await run(createZstdCompressor({ level: 3, workers: 2 }), splits(data, 5, 1 << 20));
    expect(zstdCli(['-d'], z).equals(data)).toBe(true);
    const empty = await run(createZstdCompressor({ level: 1 }), []);
    expect(zstdCli(['-d'], empty).length).toBe(0);
  });

  it('holds back the writer: at most inFlight blocks are taken while nobody reads', async () => {
    let pulled = 0;
    const r = rng(2);
    const source = new Readable({
      read() {
        const b = Buffer.alloc(BS);
        for (let k = 0; k < BS; k += 4) b.writeUInt32LE(Math.floor(r() * 2 ** 32), k);
        pulled++;
        this.push(b);
      },
    });
    const c = createZstdCompressor({ level: 1, workers: 2, blockSize: BS, inFlight: 2 });
    const sink = new PassThrough({ highWaterMark: 1 });
    const done = pipeline(source, c, sink).catch(() => undefined);
    await new Promise((res) => setTimeout(res, 1500));
    // source buffer (16 KiB hwm: 1 block) + the transform's write buffer + 2 in flight + pushed frames below the readable hwm
    expect(pulled).toBeGreaterThan(2);
    expect(pulled).toBeLessThan(12);
    source.destroy();
    c.destroy();
    sink.destroy();
    await done;
  });

  it('refuses bad options', () => {
    expect(() => createZstdCompressor({ level: 0 })).toThrow(/level/);
    expect(() => createZstdCompressor({ level: 20 })).toThrow(/level/);
    expect(() => createZstdCompressor({ level: 3, blockSize: 8 * 1024 * 1024 })).toThrow(/block size/);
    expect(() => createZstdCompressor({ level: 19, blockSize: 1024 * 1024 })).toThrow(/block size/);
    expect(() => createZstdCompressor({ level: 3, workers: 0 })).toThrow(/workers/);
  });
});

describe('createZstdDecompressor on `zstd` CLI output', () => {
  const data = textish(2 * 1024 * 1024 + 5, 11);

  it.each([
    ['default', []],
    ['-1', ['-1']],
    ['-19', ['-19']],
    ['no content size', ['--no-content-size']],
    ['no checksum', ['--no-check']],
    ['small blocks', ['-B64KiB']],
  ])('%s', async (_n, args) => {
    const z = zstdCli(args as string[], data);
    expect((await run(createZstdDecompressor(), splits(z, 3, 9000))).equals(data)).toBe(true);
  });

  it('decodes byte by byte', async () => {
    const small = textish(20000, 4);
    const z = Buffer.concat([zstdCli([], small), skippable(Buffer.from('x'))]);
    const bytes = [...z].map((b) => Buffer.from([b]));
    expect((await run(createZstdDecompressor(), bytes)).equals(small)).toBe(true);
  });

  it('decodes concatenated frames from several tools, with skippable frames between them', async () => {
    const a = textish(300000, 1);
    const b = textish(100, 2);
    const c = textish(1 << 20, 3);
    const ours = await run(createZstdCompressor({ level: 3, workers: 1, blockSize: 256 * 1024 }), [c]);
    const z = Buffer.concat([skippable(Buffer.alloc(0), 15), zstdCli(['-19'], a), skippable(Buffer.alloc(5000, 7), 3), zstdCli(['--no-content-size'], b), ours, skippable(Buffer.from('end'))]);
    expect((await run(createZstdDecompressor(), splits(z, 8, 4000))).equals(Buffer.concat([a, b, c]))).toBe(true);
  });

  it('`zstd --long` output: a clear STREAM_TOO_LARGE error naming the frame offset', async () => {
    const big = textish(10 * 1024 * 1024, 6);
    const prefix = zstdCli([], Buffer.from('hello'));
    const z = Buffer.concat([prefix, zstdCli(['--long=27'], big)]);
    const e = await runError(createZstdDecompressor(), splits(z, 2, 1 << 20));
    expect(e.code).toBe('STREAM_TOO_LARGE');
    expect(e.context.offset).toBe(prefix.length);
    expect(Number(e.context.window)).toBeGreaterThan(ZSTD_STREAM_MAX_WINDOW);
    expect(e.message).toMatch(/window/);
    expect(e.hint).toMatch(/zstd -d/);
  });

  it('finishes with a slow reader and input in many chunks (no stall between write callback and read)', async () => {
    const big = textish(3 * 1024 * 1024, 13);
    const z = Buffer.concat([zstdCli([], big), await run(createZstdCompressor({ level: 1, workers: 2, blockSize: 128 * 1024 }), [big])]);
    const parts: Buffer[] = [];
    await pipeline(
      Readable.from(splits(z, 6, 20000)),
      createZstdDecompressor(),
      new Writable({
        highWaterMark: 1,
        write(c: Buffer, _e, cb) {
          parts.push(c);
          setImmediate(cb);
        },
      }),
    );
    expect(Buffer.concat(parts).equals(Buffer.concat([big, big]))).toBe(true);
  });

  it('decodes a 64 MiB RLE bomb with bounded buffering when the reader is slow', async () => {
    const bomb = zstdCli([], Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const d = createZstdDecompressor();
    d.write(bomb);
    d.end();
    await new Promise((res) => setTimeout(res, 300));
    // Nothing read yet: at most the readable buffer plus one block of output sits there.
    expect(d.readableLength).toBeLessThanOrEqual(d.readableHighWaterMark + 128 * 1024);
    let total = 0;
    let nonZero = 0;
    for await (const c of d) {
      total += (c as Buffer).length;
      if ((c as Buffer).some((x) => x !== 0)) nonZero++;
    }
    expect(total).toBe(64 * 1024 * 1024);
    expect(nonZero).toBe(0);
  });
});

describe('createZstdDecompressor errors', () => {
  it('truncation at every byte inside a frame is STREAM_TRUNCATED; a cut at a frame boundary is a shorter valid input', async () => {
    const parts = [textish(700, 1), textish(10, 2), textish(1500, 3)];
    const zs = parts.map((p) => zstdCli([], p));
    const z = Buffer.concat(zs);
    const boundaries = new Map<number, Buffer>([[0, Buffer.alloc(0)]]);
    let o = 0;
    zs.forEach((f, i) => {
      o += f.length;
      boundaries.set(o, Buffer.concat(parts.slice(0, i + 1)));
    });
    for (let cut = 0; cut < z.length; cut++) {
      const t = createZstdDecompressor();
      if (boundaries.has(cut)) {
        expect((await run(t, [z.subarray(0, cut)])).equals(boundaries.get(cut)!)).toBe(true);
      } else {
        const e = await runError(t, [z.subarray(0, cut)]);
        expect([e.code, e.context.offset]).toEqual(['STREAM_TRUNCATED', cut]);
        expect(e.message).toMatch(/truncated/);
      }
    }
  });

  it('flipped bytes raise a STREAM_* error naming a byte offset inside the input', async () => {
    const data = textish(200000, 21);
    const z = zstdCli([], data); // with a content checksum, as the CLI writes by default
    const r = rng(5);
    for (let i = 0; i < 60; i++) {
      const bad = Buffer.from(z);
      const at = Math.floor(r() * bad.length);
      bad[at] ^= 1 << Math.floor(r() * 8);
      let out: Buffer | undefined;
      let err: FerryError | undefined;
      try {
        out = await run(createZstdDecompressor(), splits(bad, i, 30000));
      } catch (e) {
        err = e as FerryError;
      }
      if (err) {
        expect(err).toBeInstanceOf(FerryError);
        expect(err.code).toMatch(/^STREAM_/);
        expect(typeof err.context.offset).toBe('number');
        expect(err.context.offset as number).toBeLessThanOrEqual(bad.length);
      } else {
        // only a flip zstd cannot see (e.g. in the window descriptor's unused range) may pass, and then the data is intact
        expect(out!.equals(data)).toBe(true);
      }
    }
  });

  it('a corrupt block is STREAM_ZSTD_CORRUPT naming its offset and frame', async () => {
    const data = textish(100000, 8);
    const z = Buffer.from(zstdCli(['--no-check'], data));
    // Break the first block's header into a reserved block type (3).
    const info = scanZstdFrame(z, 0);
    expect(info.length).toBe(z.length);
    const fhd = z[4];
    const single = (fhd & 0x20) !== 0;
    const hdrLen = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + [single ? 1 : 0, 2, 4, 8][fhd >> 6];
    z[hdrLen] |= 0x06;
    const e = await runError(createZstdDecompressor(), [z]);
    expect(e.code).toBe('STREAM_ZSTD_CORRUPT');
    expect(e.context.offset).toBe(hdrLen);
    expect(e.context.frame).toBe(0);
  });

  it('data that is not zstd is STREAM_BAD_MAGIC at its offset', async () => {
    const good = zstdCli([], Buffer.from('abc'));
    let e = await runError(createZstdDecompressor(), [Buffer.from('btrfs-stream\0junk')]);
    expect([e.code, e.context.offset]).toEqual(['STREAM_BAD_MAGIC', 0]);
    e = await runError(createZstdDecompressor(), [Buffer.concat([good, Buffer.from('garbage!')])]);
    expect([e.code, e.context.offset]).toEqual(['STREAM_BAD_MAGIC', good.length]);
  });
});

describe('decompressIfZstd', () => {
  async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of it) parts.push(c);
    return Buffer.concat(parts);
  }
  async function* gen(chunks: Buffer[]) {
    for (const c of chunks) yield c;
  }

  it('passes plain bytes through and decompresses zstd, whatever the first chunk sizes', async () => {
    const data = textish(100000, 12);
    const z = zstdCli([], data);
    expect(isZstdMagic(z)).toBe(true);
    expect(isZstdMagic(data)).toBe(false);
    for (const seed of [1, 2, 3]) {
      const first = [z.subarray(0, 1), z.subarray(1, 3), ...splits(z.subarray(3), seed, 5000)];
      expect((await collect(decompressIfZstd(gen(first)))).equals(data)).toBe(true);
      expect((await collect(decompressIfZstd(gen([data.subarray(0, 2), ...splits(data.subarray(2), seed)])))).equals(data)).toBe(true);
    }
    expect((await collect(decompressIfZstd(gen([])))).length).toBe(0);
    expect((await collect(decompressIfZstd(gen([Buffer.from('ab')])))).toString()).toBe('ab');
  });

  it('passes the decompressor error on', async () => {
    const z = zstdCli([], textish(50000, 1));
    await expect(collect(decompressIfZstd(gen([z.subarray(0, z.length - 3)])))).rejects.toMatchObject({ code: 'STREAM_TRUNCATED' });
  });
});
