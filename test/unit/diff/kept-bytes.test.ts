import { KeptBytes } from '../../../src/diff/kept-bytes';
import { InodeRecord } from '../../../src/model/inode';

/** A small buffer from Node's shared pool, the way decodeRecord makes one. */
const pooled = (s: string) => Buffer.from(Buffer.from(s));

function record(): InodeRecord {
  return {
    ino: 7n,
    birth: 1n,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 5n,
    rdev: 0n,
    atimeNs: 1n,
    mtimeNs: 2n,
    ctimeNs: 3n,
    nlink: 2,
    xattrs: [[pooled('user.a'), pooled('v')]],
    links: [
      { parent: 1n, name: pooled('one') },
      { parent: 2n, name: pooled('two') },
    ],
    generation: 4n,
    extents: [{ offset: 0n, length: 5, generation: 4n, hash: pooled('0123456789abcdef'), sub: pooled('ss') }],
  };
}

describe('KeptBytes', () => {
  test('a small copy shares memory only with other kept bytes, never with the shared pool', () => {
    const kept = new KeptBytes();
    const a = pooled('alpha');
    const b = pooled('beta');
    expect(a.buffer).toBe(b.buffer); // the premise: Node pools small buffers together
    const ka = kept.copy(a);
    const kb = kept.copy(b);
    expect(ka.equals(a)).toBe(true);
    expect(kb.equals(b)).toBe(true);
    expect(ka.buffer).not.toBe(a.buffer);
    expect(ka.buffer).toBe(kb.buffer); // packed together
    a.fill(0);
    expect(ka.toString()).toBe('alpha'); // a copy, not a view
  });

  test('big buffers are copied alone; a buffer alone in its memory is kept as it is; empty stays empty', () => {
    const kept = new KeptBytes();
    const big = Buffer.from(Buffer.alloc(3000, 1).subarray(0, 2000));
    const k = kept.copy(Buffer.concat([pooled('x'), big]).subarray(1));
    expect(k.equals(big)).toBe(true);
    expect(k.buffer.byteLength).toBe(2000);
    const alone = Buffer.allocUnsafeSlow(10).fill(2);
    expect(kept.copy(alone)).toBe(alone);
    expect(kept.copy(Buffer.alloc(0)).length).toBe(0);
  });

  test('a new chunk starts when the current one is full, and every copy stays intact', () => {
    const kept = new KeptBytes();
    const copies = Array.from({ length: 200 }, (_, i) => [i, kept.copy(pooled(String(i).padStart(1000, 'x')))] as const);
    for (const [i, c] of copies) expect(c.toString()).toBe(String(i).padStart(1000, 'x'));
    expect(new Set(copies.map(([, c]) => c.buffer)).size).toBeGreaterThan(1);
    expect(kept.held).toBeGreaterThanOrEqual(200 * 1000);
  });

  test('record() moves every buffer of a record and keeps its content', () => {
    const kept = new KeptBytes();
    const r = record();
    const before = JSON.stringify(record(), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    const pool = r.links[0].name.buffer;
    expect(kept.record(r)).toBe(r);
    expect(JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).toBe(before);
    const bufs = [r.xattrs[0][0], r.xattrs[0][1], ...r.links.map((l) => l.name), r.extents![0].hash!, r.extents![0].sub!];
    for (const b of bufs) expect(b.buffer).not.toBe(pool);
  });
});
