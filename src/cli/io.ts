/**
 * Byte sources and sinks for commands: `-f FILE` or stdin, and stdout with
 * backpressure. Owns the mapping of open errors to FerryError.
 */
import { createReadStream } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { FerryError } from '../errors';

/** Open FILE (or stdin when FILE is undefined or "-") as a byte source. */
export async function openInput(file: string | undefined): Promise<Readable> {
  if (file === undefined || file === '-') return process.stdin;
  const rs = createReadStream(file, { highWaterMark: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    rs.once('open', () => resolve());
    rs.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new FerryError(e.code === 'ENOENT' ? 'IO_NOT_FOUND' : 'IO_FAILED', `cannot open input: ${e.message}`, {
          context: { file },
          cause: e,
        }),
      ),
    );
  });
  return rs;
}

/** Write to a Writable, waiting for drain when its buffer is full. */
export async function writeAll(out: Writable, data: Buffer): Promise<void> {
  if (!out.write(data)) {
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        out.off('error', onError);
        resolve();
      };
      const onError = (e: Error) => {
        out.off('drain', onDrain);
        reject(e);
      };
      out.once('drain', onDrain);
      out.once('error', onError);
    });
  }
}
