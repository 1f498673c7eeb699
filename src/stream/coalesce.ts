/**
 * Batching of a byte sequence into larger chunks.
 *
 * The encoder yields many small parts (a 10-byte command header, each
 * attribute, each data slice) so it never copies file data. Handing each
 * part to a pipe or file one at a time costs an event-loop round trip per
 * part; `coalesce` joins consecutive parts into chunks of about `target`
 * bytes, which is what a writer wants. Order and content are unchanged.
 * Never: touches the filesystem, or holds more than one chunk plus one part.
 */

export const DEFAULT_CHUNK = 1024 * 1024;

/**
 * This empty part (this very object; other empty parts are just skipped):
 * pass on what is held now instead of waiting for a full chunk. The sender
 * yields it after a stream's opening command, so the receiver can start on
 * it while the rest is planned. It adds no bytes.
 */
export const FLUSH: Buffer = Buffer.alloc(0);

export async function* coalesce(
  parts: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  target = DEFAULT_CHUNK,
): AsyncGenerator<Buffer> {
  let held: Uint8Array[] = [];
  let size = 0;
  for await (const p of parts) {
    if (p.length === 0) {
      if (p === FLUSH && size) {
        yield Buffer.concat(held, size);
        held = [];
        size = 0;
      }
      continue;
    }
    if (size === 0 && p.length >= target) {
      yield Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.length);
      continue;
    }
    held.push(p);
    size += p.length;
    if (size >= target) {
      yield Buffer.concat(held, size);
      held = [];
      size = 0;
    }
  }
  if (size) yield Buffer.concat(held, size);
}
