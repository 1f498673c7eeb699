/**
 * `ferry dump [-f FILE]`: print a stream as `btrfs receive --dump` does.
 * Like progs, only the first stream of a concatenation is printed unless
 * --all is given. zstd-compressed input is detected and decompressed.
 */
import { decodeStream } from '../../stream/decoder';
import { DumpFormatter } from '../../stream/dump';
import { decompressIfZstd } from '../../transport/zstd-stream';
import { openInput, writeAll } from '../io';

export interface DumpOptions {
  file?: string;
  all?: boolean;
}

const FLUSH_BYTES = 64 * 1024;

export async function runDump(opts: DumpOptions): Promise<number> {
  const input = await openInput(opts.file);
  const fmt = new DumpFormatter();
  let pending: Buffer[] = [];
  let size = 0;
  for await (const item of decodeStream(decompressIfZstd(input), { firstStreamOnly: !opts.all })) {
    if (item.kind !== 'command') continue;
    const line = fmt.format(item);
    if (!line) continue;
    pending.push(line);
    size += line.length;
    if (size >= FLUSH_BYTES) {
      await writeAll(process.stdout, Buffer.concat(pending));
      pending = [];
      size = 0;
    }
  }
  if (size > 0) await writeAll(process.stdout, Buffer.concat(pending));
  if (input !== process.stdin) input.destroy();
  return 0;
}
