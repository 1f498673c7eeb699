/**
 * The sender's half of a resumed transfer: regenerate the stream (a given
 * (parent, snapshot) pair always gives the same bytes), prove that its first
 * n bytes are the ones the receiver applied, and send only the rest.
 *
 * Owns: the prefix check. The receiver's partial names `appliedBytes` (n) and
 * `prefixSha256`, the plain SHA-256 of stream bytes [0, n) where byte 0 is the
 * stream header (what `head -c n stream | sha256sum` prints; see
 * docs/receive.md, "Resume"). Never: yields a byte before the prefix has been
 * checked, or imports receiver code.
 */
import { createHash } from 'node:crypto';
import { FerryError } from '../errors';

/**
 * Yield `stream` from byte `n` on, after checking that its first `n` bytes
 * hash to `expectSha256`. Chunks are split where n falls inside one. Throws
 * REPLICATE_RESUME_MISMATCH (before yielding anything) when the prefix
 * differs or the stream is shorter than n: the transfer must then restart
 * from byte 0.
 */
export async function* skipPrefix(stream: AsyncIterable<Buffer>, n: number, expectSha256: string): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new FerryError('REPLICATE_RESUME_MISMATCH', `resume failed: ${n} is not a byte offset`, {
      hint: 'send the whole stream again',
    });
  }
  const hash = createHash('sha256');
  let seen = 0;
  let checked = false;
  const check = () => {
    const got = hash.digest('hex');
    checked = true;
    if (got !== expectSha256.toLowerCase()) {
      throw new FerryError('REPLICATE_RESUME_MISMATCH', 'resume failed: the stream differs from the one the receiver applied', {
        context: { fromByte: n, expected: expectSha256, got },
        hint: 'the snapshot or its parent changed since the interrupted transfer; send the whole stream again',
      });
    }
  };
  if (n === 0) check();
  for await (const chunk of stream) {
    if (checked) {
      if (chunk.length) yield chunk;
      continue;
    }
    const take = Math.min(chunk.length, n - seen);
    hash.update(take === chunk.length ? chunk : chunk.subarray(0, take));
    seen += take;
    if (seen < n) continue;
    check();
    if (take < chunk.length) yield chunk.subarray(take);
  }
  if (!checked) {
    throw new FerryError('REPLICATE_RESUME_MISMATCH', `resume failed: the stream has only ${seen} bytes, the receiver applied ${n}`, {
      context: { fromByte: n, streamBytes: seen },
      hint: 'the snapshot or its parent changed since the interrupted transfer; send the whole stream again',
    });
  }
}
