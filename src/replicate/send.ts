/**
 * `ferry send`: a snapshot (and optionally its parent) as a btrfs send stream.
 *
 * Owns: wiring a volume's snapshot indexes to the planner and the encoder,
 * and reading file data for it. Data comes from the snapshot's frozen
 * reflink copy, or for `index` volumes from the live tree; a live file whose
 * size or mtime no longer matches the index is sent as read and reported as
 * a warning (exit 3), or refused with `strict`. Never writes to the volume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { InodeRecord } from '../model/inode';
import { IndexFile, openIndex } from '../diff/index-file';
import { DataSource, planFull, planIncremental, snapshotCommand, subvolCommand } from '../diff/planner';
import { findRootIno, selectIncremental } from '../diff/select';
import { Command } from '../model/command';
import { FLUSH } from '../stream/coalesce';
import { StreamEncoder } from '../stream/encoder';
import { SnapshotInfo, getSnapshot, openVolume } from '../volume/volume';
import { sendBtrfs } from './send-btrfs';

export interface SnapshotRef {
  volume: string;
  name: string;
}

/** Parse `VOLUME@NAME` (the last '@' separates; names may not contain '@'). */
export function parseSnapshotRef(s: string): SnapshotRef {
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) {
    throw new FerryError('USAGE', `expected VOLUME@NAME, got "${s}"`, { hint: 'for example /srv/data@20261121T031500Z' });
  }
  return { volume: s.slice(0, at), name: s.slice(at + 1) };
}

function uuidBytes(u: string): Buffer {
  const b = Buffer.from(u.replace(/-/g, ''), 'hex');
  if (b.length !== 16) throw new FerryError('DIFF_INDEX_CORRUPT', `snapshot uuid "${u}" is not 16 bytes`);
  return b;
}

/** The uuid and ctransid a stream gives a snapshot (its SUBVOL/SNAPSHOT and CLONE attributes). */
function snapshotIds(info: SnapshotInfo): { uuid: Buffer; ctransid: bigint } {
  return { uuid: uuidBytes(info.meta.uuid), ctransid: BigInt(info.meta.transid) };
}

/** The root directory's ino: from the header, or (older indexes) the directory without names. */
function rootOf(f: IndexFile, info: SnapshotInfo): bigint {
  if (f.header.rootIno !== undefined) return BigInt(f.header.rootIno);
  const root = findRootIno(f.scan());
  if (root !== undefined) return root;
  throw new FerryError('DIFF_INDEX_CORRUPT', 'index has no root directory', { context: { index: info.indexPath } });
}

/** Reads snapshot data by path, keeping one file open at a time. */
class TreeDataSource implements DataSource {
  private open: { key: string; fd: number } | undefined;
  readonly changed: string[] = [];
  /** File data bytes read for the stream. */
  bytesRead = 0;

  constructor(
    private readonly root: string,
    /** Index volumes: the live tree is read, so each file is checked against its record. */
    private readonly verify: boolean,
    private readonly strict: boolean,
  ) {}

  read(rel: Buffer, offset: bigint, length: number, rec?: InodeRecord): Buffer {
    const key = rel.toString('latin1');
    if (!this.open || this.open.key !== key) {
      this.close();
      const abs = Buffer.concat([Buffer.from(this.root), Buffer.from('/'), rel]);
      let fd: number;
      try {
        fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP') throw e;
        throw new FerryError('DIFF_SOURCE_GONE', `send failed: ${rel.toString('utf8')} is no longer where the snapshot recorded it (${code})`, {
          context: { root: this.root },
          hint: this.verify
            ? 'an index volume reads file data from the live tree, so a snapshot can be sent only while the tree still matches it: send right after `ferry snapshot`, or use `ferry sync`'
            : 'the snapshot copy is damaged; take a new snapshot',
        });
      }
      this.open = { key, fd };
      if (this.verify && rec) {
        const st = fs.fstatSync(fd, { bigint: true });
        if (st.size !== rec.size || st.mtimeNs !== rec.mtimeNs) {
          const shown = rel.toString('utf8');
          if (this.strict) {
            this.close();
            throw new FerryError('DIFF_CHANGED_DURING_SEND', `send failed: ${shown} changed after the snapshot was taken`, {
              hint: 'take a new snapshot and send that, or drop --strict to send the file as it is now',
            });
          }
          this.changed.push(shown);
        }
      }
    }
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(this.open.fd, buf, got, length - got, offset + BigInt(got));
      if (n === 0) break;
      got += n;
    }
    this.bytesRead += got;
    // A file that shrank since the snapshot reads short; the stream still
    // promises `length` bytes, so the rest is zeros (and it was reported).
    return buf;
  }

  close(): void {
    if (this.open) {
      fs.closeSync(this.open.fd);
      this.open = undefined;
    }
  }
}

export interface SendOptions {
  snapshot: SnapshotRef;
  parent?: SnapshotRef;
  version: 1 | 2;
  strict?: boolean;
}

export interface SendResult {
  /** Live files that no longer matched the index (index volumes). */
  changed: string[];
  /** File data bytes read to make the stream (set when the generator finishes). */
  dataBytesRead?: number;
}

/** The stream's bytes, in order. `result` is filled in when the generator finishes. */
export async function* sendSnapshot(opts: SendOptions, result: SendResult = { changed: [] }): AsyncGenerator<Buffer> {
  const vol = openVolume(opts.snapshot.volume);
  const info = getSnapshot(vol, opts.snapshot.name);
  let parentInfo: SnapshotInfo | undefined;
  if (opts.parent) {
    if (path.resolve(opts.parent.volume) !== path.resolve(opts.snapshot.volume)) {
      throw new FerryError('USAGE', 'the parent must be a snapshot of the same volume', {
        context: { snapshot: `${opts.snapshot.volume}@${opts.snapshot.name}`, parent: `${opts.parent.volume}@${opts.parent.name}` },
      });
    }
    parentInfo = getSnapshot(vol, opts.parent.name);
    if (info.meta.method !== 'btrfs' && BigInt(parentInfo.meta.transid) >= BigInt(info.meta.transid)) {
      throw new FerryError('USAGE', `parent ${opts.parent.name} is not older than ${opts.snapshot.name}`);
    }
  }
  if (info.meta.method === 'btrfs') {
    // btrfs volumes: the kernel writes the stream (./send-btrfs.ts).
    yield* sendBtrfs({ snapshot: info, parent: parentInfo, version: opts.version });
    return;
  }
  const enc = new StreamEncoder(opts.version);
  const name = Buffer.from(opts.snapshot.name);
  // The opening command needs only the catalog, so it goes out (and is
  // flushed) before the indexes are loaded and the plan is made: the
  // receiver seeds its staging tree from the parent meanwhile.
  yield enc.header();
  const head = parentInfo ? snapshotCommand(name, snapshotIds(info), snapshotIds(parentInfo)) : subvolCommand(name, snapshotIds(info));
  for (const part of enc.encodeParts(head)) yield part;
  yield FLUSH;
  const data = new TreeDataSource(info.dataRoot, info.meta.method === 'index', !!opts.strict);
  const plan = { version: opts.version, name, headSent: true };
  try {
    // Both indexes are read in passes, never held whole: a full send keeps
    // the directories, an incremental one what selectIncremental keeps.
    const f = await openIndex(info.indexPath);
    let pf: IndexFile | undefined;
    try {
      if (parentInfo) pf = await openIndex(parentInfo.indexPath);
      const rootIno = rootOf(f, info);
      let cmds: Iterable<Command>;
      if (pf && parentInfo) {
        const pscan = pf;
        const parentRoot = rootOf(pf, parentInfo);
        const parentIds = snapshotIds(parentInfo);
        const sel = selectIncremental({ scan: () => pscan.scan(), rootIno: parentRoot }, { scan: () => f.scan(), rootIno }, { since: parentIds.ctransid });
        cmds = planIncremental(
          { ...parentIds, rootIno: parentRoot, records: sel.parent, rootNames: sel.rootNames, subKey: pf.header.subKey },
          { ...snapshotIds(info), rootIno, records: sel.snap, rootNames: sel.rootNames, subKey: f.header.subKey },
          data,
          plan,
        );
      } else {
        cmds = planFull({ ...snapshotIds(info), rootIno, records: () => f.scan(), subKey: f.header.subKey }, data, plan);
      }
      for (const c of cmds) for (const part of enc.encodeParts(c)) yield part;
    } finally {
      await pf?.close();
      await f.close();
    }
  } finally {
    data.close();
  }
  result.changed.push(...data.changed);
  result.dataBytesRead = data.bytesRead;
}
