/**
 * `ferry send VOLUME@NAME [-p VOLUME@PARENT] [--proto 1|2] [-f FILE]`:
 * write a btrfs send stream to stdout or FILE (atomically: FILE appears only
 * when complete).
 */
import * as fs from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Exit, FerryError } from '../../errors';
import { widenStdPipe } from '../io';
import { pipeToFileAtomic } from '../../volume/atomic';
import { parseSnapshotRef, sendSnapshot, SendResult } from '../../replicate/send';
import { coalesce } from '../../stream/coalesce';

export interface SendCliOptions {
  parent?: string;
  proto?: string;
  file?: string;
  strict?: boolean;
}

export async function runSend(ref: string, o: SendCliOptions): Promise<number> {
  const proto = o.proto ?? '1';
  if (proto !== '1' && proto !== '2') throw new FerryError('USAGE', `--proto must be 1 or 2, got "${proto}"`);
  if (!o.file && process.stdout.isTTY) {
    throw new FerryError('USAGE', 'refusing to write a binary stream to a terminal', { hint: 'pipe it (| ferry receive DIR) or use -f FILE' });
  }
  const result: SendResult = { changed: [] };
  const source = Readable.from(
    coalesce(
      sendSnapshot(
        { snapshot: parseSnapshotRef(ref), parent: o.parent ? parseSnapshotRef(o.parent) : undefined, version: proto === '2' ? 2 : 1, strict: o.strict },
        result,
      ),
    ),
    { objectMode: false },
  );
  const into = o.file ? outputKind(o.file) : undefined;
  if (o.file && into === 'special') {
    // A device or a pipe (-f /dev/null, a FIFO): write straight into it. The
    // temp-file-and-rename below would replace the node with a regular file.
    await pipeline(source, fs.createWriteStream(o.file, { flags: 'w' }));
  } else if (o.file) {
    await pipeToFileAtomic(o.file, [source], { mode: 0o666 });
  } else {
    widenStdPipe(1);
    await pipeline(source, process.stdout as unknown as Writable, { end: false });
  }
  for (const c of result.changed) process.stderr.write(`ferry: warning: ${c}: file changed after the snapshot was taken; sent as read\n`);
  return result.changed.length ? Exit.WARNINGS : Exit.OK;
}

/** What -f names: nothing or a regular file (written whole, then renamed into place), or a device or pipe. */
function outputKind(file: string): 'file' | 'special' {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'file';
    throw e;
  }
  if (st.isDirectory()) throw new FerryError('USAGE', `-f ${file} is a directory; give a file name for the stream`);
  return st.isFile() ? 'file' : 'special';
}
