/**
 * Sub-block digests (src/diff/sub-digests.ts): the helper thread's digests
 * (begin/end) equal those made in this thread and the construction itself
 * (SHA-256(key ‖ 32 zero bytes ‖ slice), first 8 bytes), for every block
 * length up to a full block, several keys in turn, and a caller that reuses
 * its buffer right after begin(). Misuse throws; a process that used the
 * helper still exits at once.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { SUB_BLOCK_SIZE, SUB_DIGEST_BYTES } from '../../../src/model/inode';
import { SUB_KEY_BYTES, SubDigester } from '../../../src/diff/sub-digests';
import { rng } from '../../helpers/streams';

/** The construction, spelled out with the streaming API. */
function reference(key: Buffer, block: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < block.length; at += SUB_BLOCK_SIZE) {
    const slice = block.subarray(at, at + SUB_BLOCK_SIZE);
    out.push(createHash('sha256').update(key).update(Buffer.alloc(32)).update(slice).digest().subarray(0, SUB_DIGEST_BYTES));
  }
  return Buffer.concat(out);
}

describe('SubDigester', () => {
  it('begin/end on the helper, digest in this thread and the construction agree, for many lengths and keys', () => {
    const r = rng(11);
    const keys = [randomBytes(SUB_KEY_BYTES), Buffer.alloc(SUB_KEY_BYTES, 0), randomBytes(SUB_KEY_BYTES)];
    const lengths = [1, 4095, 4096, 4097, 65536, 128 * 1024 - 1, 128 * 1024, ...Array.from({ length: 20 }, () => 1 + Math.floor(r() * 128 * 1024))];
    const buf = Buffer.alloc(128 * 1024);
    for (const [k, key] of keys.entries()) {
      const d = new SubDigester(key);
      const local = new SubDigester(key, { helper: false });
      for (const len of lengths) {
        for (let i = 0; i < len; i++) buf[i] = (r() * 256) | 0;
        const block = buf.subarray(0, len);
        const want = reference(key, block);
        d.begin(block);
        // The caller may reuse its buffer as soon as begin() returns.
        const copy = Buffer.from(block);
        buf.fill(0xa5, 0, len);
        expect([k, len, d.end().toString('hex')]).toEqual([k, len, want.toString('hex')]);
        expect(d.digest(copy)).toEqual(want);
        local.begin(copy);
        expect(local.end()).toEqual(want);
      }
    }
  });

  it('two digesters take turns on the one helper', () => {
    const a = new SubDigester(Buffer.alloc(SUB_KEY_BYTES, 1));
    const b = new SubDigester(Buffer.alloc(SUB_KEY_BYTES, 2));
    const block = randomBytes(10_000);
    a.begin(block);
    expect(a.end()).toEqual(reference(Buffer.alloc(SUB_KEY_BYTES, 1), block));
    b.begin(block);
    expect(b.end()).toEqual(reference(Buffer.alloc(SUB_KEY_BYTES, 2), block));
  });

  it('misuse throws: a short key, end() without begin(), begin() twice', () => {
    expect(() => new SubDigester(Buffer.alloc(16))).toThrow(/32 bytes/);
    const d = new SubDigester(Buffer.alloc(SUB_KEY_BYTES));
    expect(() => d.end()).toThrow(/without begin/);
    d.begin(Buffer.alloc(10));
    expect(() => d.begin(Buffer.alloc(10))).toThrow(/twice/);
    expect(d.end()).toEqual(reference(Buffer.alloc(SUB_KEY_BYTES), Buffer.alloc(10)));
  });

  it('a process that used the helper exits at once', () => {
    const mod = path.resolve(__dirname, '../../../dist/src/diff/sub-digests.js');
    const script = `
      const { SubDigester } = require(${JSON.stringify(mod)});
      const d = new SubDigester(Buffer.alloc(32, 9));
      d.begin(Buffer.alloc(100000, 1));
      process.stdout.write(d.end().subarray(0, 8).toString('hex'));
    `;
    // A helper that kept the process alive would hit the timeout (status null).
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(reference(Buffer.alloc(32, 9), Buffer.alloc(100000, 1)).subarray(0, 8).toString('hex'));
  });
});
