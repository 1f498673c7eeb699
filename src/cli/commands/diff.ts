/**
 * `ferry diff VOLUME@A VOLUME@B [--json]`: the paths that changed between two
 * snapshots of one volume, like `zfs diff -F` (computed by src/diff/changes.ts
 * from two passes over each index, which is never loaded whole; no file data
 * is read).
 *
 * Text: one line per change, fields separated by tabs:
 *   <op> <type> <path>[ -> <new path>][ <what>]
 * op: + added, - removed, M modified, R renamed; type: F file, / directory,
 * @ symlink, B block device, C char device, | fifo, = socket; paths under the
 * volume directory, with space, backslash and unprintable bytes written as
 * \0ooo; what (M only): content,mode,owner,xattr,mtime.
 * --json: one object per line: {op, change, type, path, from?, what?, also?},
 * paths relative to the volume root ("/" is the root); a path that is not
 * valid UTF-8 is given escaped, plus its bytes as pathHex/fromHex.
 */
import * as path from 'node:path';
import { Exit, FerryError } from '../../errors';
import { openIndex } from '../../diff/index-file';
import { Change, diffScans, escapePath, OP_NAME, TYPE_CHAR } from '../../diff/changes';
import { parseSnapshotRef } from '../../replicate/send';
import { getSnapshot, openVolume } from '../../volume/volume';
import { writeAll } from '../io';

const FLUSH_BYTES = 64 * 1024;

function isUtf8(p: Buffer): boolean {
  return Buffer.from(p.toString('utf8'), 'utf8').equals(p);
}

function jsonLine(c: Change): string {
  const o: Record<string, unknown> = { op: c.op, change: OP_NAME[c.op], type: c.type };
  const put = (key: string, p: Buffer) => {
    if (isUtf8(p)) o[key] = p.toString('utf8');
    else {
      o[key] = escapePath(p, false);
      o[`${key}Hex`] = p.toString('hex');
    }
  };
  put('path', c.path);
  if (c.from) put('from', c.from);
  if (c.what) o.what = c.what;
  if (c.also) o.also = c.also.map((p) => (isUtf8(p) ? p.toString('utf8') : escapePath(p, false)));
  return JSON.stringify(o) + '\n';
}

function textLine(c: Change, root: string): string {
  const show = (p: Buffer) => escapePath(Buffer.concat([Buffer.from(root === '/' ? '' : root), p]));
  let line = `${c.op}\t${TYPE_CHAR[c.type]}\t`;
  line += c.op === 'R' ? `${show(c.from!)} -> ${show(c.path)}` : show(c.path);
  if (c.what) line += `\t${c.what.join(',')}`;
  return line + '\n';
}

export async function runDiff(a: string, b: string, o: { json?: boolean }): Promise<number> {
  const ra = parseSnapshotRef(a);
  const rb = parseSnapshotRef(b);
  if (path.resolve(ra.volume) !== path.resolve(rb.volume)) {
    throw new FerryError('USAGE', 'both snapshots must belong to the same volume', { context: { first: a, second: b } });
  }
  const vol = openVolume(ra.volume);
  const sa = getSnapshot(vol, ra.name);
  const sb = getSnapshot(vol, rb.name);
  // Read in passes (two over each index), never held whole.
  const fa = await openIndex(sa.indexPath);
  let changes: Change[];
  try {
    const fb = await openIndex(sb.indexPath);
    try {
      changes = diffScans(() => fa.scan(), () => fb.scan());
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
  let pending: string[] = [];
  let size = 0;
  for (const c of changes) {
    const line = o.json ? jsonLine(c) : textLine(c, vol.dir);
    pending.push(line);
    size += line.length;
    if (size >= FLUSH_BYTES) {
      await writeAll(process.stdout, Buffer.from(pending.join('')));
      pending = [];
      size = 0;
    }
  }
  if (pending.length) await writeAll(process.stdout, Buffer.from(pending.join('')));
  return Exit.OK;
}
