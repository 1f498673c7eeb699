/**
 * Durable file writes (small files and whole streams): temp name, fsync,
 * rename, fsync of the directory. A reader sees the old file or the new one,
 * never a torn one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(dir);
}

/**
 * Write a stream durably to `file`: into `.NAME.part-PID-RANDOM` beside it
 * (opened here, not by the write stream: one still opening when the source
 * fails would create the file after the cleanup removed it), fsync, rename
 * into place, fsync the directory. `beforeRename` runs between the fsync and
 * the rename. On any failure the temp file is removed and `file` is as it was.
 */
export async function pipeToFileAtomic(
  file: string,
  stages: Array<NodeJS.ReadableStream | NodeJS.ReadWriteStream>,
  o: { mode?: number; beforeRename?: () => void } = {},
): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.part-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const out = fs.createWriteStream(tmp, { fd: fs.openSync(tmp, 'wx', o.mode ?? 0o600) });
    await pipeline([...stages, out]);
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    o.beforeRename?.();
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}
