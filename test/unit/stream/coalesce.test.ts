import { randomBytes } from 'node:crypto';
import { coalesce, FLUSH } from '../../../src/stream/coalesce';

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('coalesce', () => {
  it('keeps every byte in order and joins small parts up to the target', async () => {
    const parts = Array.from({ length: 500 }, (_, i) => randomBytes((i * 37) % 300));
    const out = await collect(coalesce(parts, 4096));
    expect(Buffer.concat(out)).toEqual(Buffer.concat(parts));
    for (const c of out.slice(0, -1)) expect(c.length).toBeGreaterThanOrEqual(4096);
    for (const c of out) expect(c.length).toBeLessThan(4096 + 300);
    expect(out.every((c) => c.length > 0)).toBe(true);
  });

  it('passes a large part through without copying when nothing is held', async () => {
    const big = randomBytes(10000);
    const out = await collect(coalesce([big], 4096));
    expect(out).toHaveLength(1);
    expect(out[0].buffer).toBe(big.buffer);
  });

  it('yields nothing for empty input and skips empty parts', async () => {
    expect(await collect(coalesce([], 10))).toEqual([]);
    expect(await collect(coalesce([Buffer.alloc(0), Buffer.from('ab'), Buffer.alloc(0)], 10))).toEqual([Buffer.from('ab')]);
  });

  it('FLUSH hands on what is held at once, and only FLUSH does', async () => {
    const parts = [Buffer.from('head'), Buffer.alloc(0), Buffer.from('more'), FLUSH, FLUSH, Buffer.from('tail')];
    expect(await collect(coalesce(parts, 1024))).toEqual([Buffer.from('headmore'), Buffer.from('tail')]);
    // The consumer sees the head before the source has produced the rest.
    let produced = 0;
    async function* slow() {
      yield Buffer.from('SNAP');
      yield FLUSH;
      produced++;
      yield Buffer.from('rest');
    }
    const it = coalesce(slow(), 1024);
    expect((await it.next()).value).toEqual(Buffer.from('SNAP'));
    expect(produced).toBe(0);
  });

  it('accepts an async source and Uint8Array parts', async () => {
    async function* gen() {
      yield new Uint8Array([1, 2]);
      yield Buffer.from([3]);
    }
    expect(Buffer.concat(await collect(coalesce(gen(), 2)))).toEqual(Buffer.from([1, 2, 3]));
  });
});
