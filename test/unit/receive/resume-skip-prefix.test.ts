/**
 * skipPrefix (src/replicate/resume.ts), the sender's half of a resume: it
 * checks the SHA-256 of the first n bytes, then yields exactly the bytes
 * after n however the input is chunked, and yields nothing when the prefix
 * differs or is short. (It lives here with the other resume tests.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { FerryError } from '../../../src/errors';
import { skipPrefix } from '../../../src/replicate/resume';
import { rng } from '../../helpers/streams';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function* chunked(b: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let k = 0;
  for (let o = 0; o < b.length; ) {
    const n = Math.max(1, sizes[k++ % sizes.length]);
    yield b.subarray(o, o + n);
    o += n;
  }
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

describe('skipPrefix', () => {
  const data = randomBytes(20000);

  it('yields exactly the bytes after n at any chunking', async () => {
    const rand = rng(5);
    for (let trial = 0; trial < 60; trial++) {
      const n = trial < 4 ? [0, 1, data.length - 1, data.length][trial] : Math.floor(rand() * data.length);
      const sizes = [1 + Math.floor(rand() * 3000), 1 + Math.floor(rand() * 10), 4096];
      const got = await collect(skipPrefix(chunked(data, sizes), n, sha(data.subarray(0, n))));
      expect(got.equals(data.subarray(n))).toBe(true);
    }
  });

  it('accepts the hash in upper case', async () => {
    const got = await collect(skipPrefix(chunked(data, [999]), 100, sha(data.subarray(0, 100)).toUpperCase()));
    expect(got.length).toBe(data.length - 100);
  });

  it('refuses a different prefix before yielding anything', async () => {
    const other = Buffer.from(data);
    other[50] ^= 1;
    const yielded: Buffer[] = [];
    const e = await (async () => {
      for await (const c of skipPrefix(chunked(other, [10]), 1000, sha(data.subarray(0, 1000)))) yielded.push(c);
    })().catch((x) => x);
    expect(e).toBeInstanceOf(FerryError);
    expect((e as FerryError).code).toBe('REPLICATE_RESUME_MISMATCH');
    expect((e as FerryError).exitCode).toBe(14);
    expect(yielded).toEqual([]);
  });

  it('refuses a stream shorter than n', async () => {
    const e = await collect(skipPrefix(chunked(data.subarray(0, 500), [64]), 1000, sha(data.subarray(0, 1000)))).catch((x) => x);
    expect((e as FerryError).code).toBe('REPLICATE_RESUME_MISMATCH');
    expect((e as FerryError).message).toMatch(/only 500 bytes/);
  });

  it('refuses a byte offset that is not one', async () => {
    for (const n of [-1, 1.5, Number.NaN]) {
      const e = await collect(skipPrefix(chunked(data, [64]), n, sha(Buffer.alloc(0)))).catch((x) => x);
      expect((e as FerryError).code).toBe('REPLICATE_RESUME_MISMATCH');
    }
  });

  it('the first next() does the whole check (how the sender uses it)', async () => {
    const it = skipPrefix(chunked(data, [100]), 5000, sha(data.subarray(0, 5000)));
    const first = await it.next();
    expect(first.done).toBe(false);
    expect((first.value as Buffer).equals(data.subarray(5000, 5100))).toBe(true);
  });
});
