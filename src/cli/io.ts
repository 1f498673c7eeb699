/**
 * Byte sources and sinks for commands: `-f FILE` or stdin, and stdout with
 * backpressure. Owns the mapping of open errors to FerryError.
 */
import * as fs from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { FerryError } from '../errors';
import { sys } from '../sys/linux';

/** Open FILE (or stdin when FILE is undefined or "-") as a byte source. */
export async function openInput(file: string | undefined): Promise<Readable> {
  if (file === undefined || file === '-') {
    widenStdPipe(0);
    return process.stdin;
  }
  const rs = fs.createReadStream(file, { highWaterMark: 1 << 20 });
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

/** Pipe capacity asked for on a stream's stdin/stdout (Linux's default limit for unprivileged users, /proc/sys/fs/pipe-max-size). */
const PIPE_BYTES = 1 << 20;

/**
 * Grow the pipe on fd 0 or 1, when it is one, to PIPE_BYTES: a send stream
 * then crosses `ferry send | ssh ... | ferry receive` in 1 MiB steps instead
 * of the default 64 KiB, with far fewer wake-ups of each process. Anything
 * else (a file, a socket, a TTY, no binding) is left as it is.
 */
export function widenStdPipe(fd: 0 | 1): void {
  try {
    if (!fs.fstatSync(fd).isFIFO()) return;
  } catch {
    return;
  }
  sys().widenPipe(fd, PIPE_BYTES);
}
