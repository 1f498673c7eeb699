/**
 * The resumable SHA-256 behind resume records: both engines give the
 * standard digest at any split, their saved states are identical, and a
 * state saved by one continues in the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import { digestOfState, resumableSha256, sha256Engine, streamSha256 } from '../../../src/receive/sha256-state';
import { rng } from '../../helpers/streams';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const engines = (['js', 'native'] as const).filter((e) => e === 'js' || sha256Engine() === 'native');

describe('resumable sha256', () => {
  it('loads the native engine on Linux (OpenSSL symbols exported by node)', () => {
    if (process.platform === 'linux' && process.env.FERRY_NO_NATIVE !== '1') expect(sha256Engine()).toBe('native');
  });

  it.each(engines)('%s: standard digests for every length around block edges', (engine) => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
      const b = randomBytes(n);
      const h = resumableSha256(undefined, engine);
      h.update(b);
      expect(h.digest()).toBe(sha(b));
      expect(h.bytes).toBe(n);
      // digest() does not end the hash
      h.update(Buffer.from('x'));
      expect(h.digest()).toBe(sha(Buffer.concat([b, Buffer.from('x')])));
    }
  });

  it('both engines save the same state at random splits, and each resumes the other', () => {
    const data = randomBytes(300_000);
    const rand = rng(11);
    for (let trial = 0; trial < 40; trial++) {
      const cut = Math.floor(rand() * data.length);
      const states = engines.map((e) => {
        const h = resumableSha256(undefined, e);
        let off = 0;
        while (off < cut) {
          const k = Math.min(cut - off, 1 + Math.floor(rand() * 5000));
          h.update(data.subarray(off, off + k));
          off += k;
        }
        return h.state();
      });
      for (const s of states) expect(s).toEqual(states[0]);
      expect(digestOfState(states[0])).toBe(sha(data.subarray(0, cut)));
      for (const e of engines) {
        const h = resumableSha256(states[0], e);
        h.update(data.subarray(cut));
        expect(h.digest()).toBe(sha(data));
      }
    }
  });

  it('refuses a malformed state', () => {
    expect(() => resumableSha256({ h: 'zz', bytes: 0, tail: '' })).toThrow(/malformed/);
    const ok = resumableSha256();
    ok.update(Buffer.from('abc'));
    expect(() => resumableSha256({ ...ok.state(), tail: '' })).toThrow(/tail length/);
  });

  it('the non-resumable hash gives the same digest', () => {
    const b = randomBytes(5000);
    const h = streamSha256(false);
    h.update(b.subarray(0, 100));
    h.update(b.subarray(100));
    expect(h.digest()).toBe(sha(b));
  });
});
