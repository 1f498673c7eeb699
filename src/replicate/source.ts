/**
 * The sending side of a transfer: a volume here (in this process) or a
 * volume on another host (a `ferry serve` session, pull mode), behind one
 * interface, plus the one function that turns (volume, snapshot, parent)
 * into the bytes that go on the wire: the deterministic send stream, minus
 * a prefix the receiver already applied (resume), coalesced into bounded
 * chunks, optionally zstd-compressed.
 *
 * Owns: the stream size estimate (from the snapshots' counts), the order
 * skip → count → coalesce → compress, and the remote-volume client calls.
 * Never: receives, or decides the parent (parent.ts does).
 */
import { coalesce } from '../stream/coalesce';
import { MAX_DATA, protocolError, throughTransform } from '../transport/control';
import { manifestBytes } from '../diff/manifest';
import { placeHold, releaseHold } from '../volume/holds';
import { getSnapshot, listSnapshots, openVolume, snapshot as takeSnapshot, SnapshotMeta } from '../volume/volume';
import { sendSnapshot, SendResult } from './send';
import { ServeSession } from './session';

/** Bytes of stream per inode beyond file data (headers, paths, attributes): a rough mean. */
const PER_INODE = 200;
const COALESCE = 128 * 1024;

export interface OutgoingRequest {
  snapshot: string;
  parent: string | null;
  proto: 1 | 2;
  compress: { level: number } | null;
  /** Leave out the first fromByte stream bytes, which must hash to sha256. */
  skip: { fromByte: number; sha256: string } | null;
}

/** One transfer's bytes, from a volume here or over a session. */
export interface StreamHandle {
  /** Wire bytes in order (compressed when asked), chunks of at most MAX_DATA. */
  chunks: AsyncIterable<Buffer>;
  /** Give up on the stream without reading it (frees files; a remote session is closed). */
  cancel(): Promise<void>;
  /** Stream bytes produced so far, counting the skipped prefix. */
  streamBytes(): number;
  /** Complete once `chunks` has finished. */
  warnings(): string[];
}

/** A size estimate of the stream for `snap` from `parent` (null: full), from the snapshots' counts. */
export function estimateStreamBytes(all: readonly SnapshotMeta[], snap: SnapshotMeta, parent: SnapshotMeta | null): number {
  const full = Number(snap.counts.bytes) + snap.counts.inodes * PER_INODE;
  if (!parent) return full;
  const lo = BigInt(parent.transid);
  const hi = BigInt(snap.transid);
  let est = 0;
  for (const s of all) {
    const t = BigInt(s.transid);
    if (t > lo && t <= hi) est += Number(s.counts.hashedBytes) + s.counts.changed * PER_INODE;
  }
  if (!all.some((s) => s.uuid === snap.uuid)) est += Number(snap.counts.hashedBytes) + snap.counts.changed * PER_INODE;
  return Math.min(full, Math.max(est, PER_INODE));
}

/** Split anything larger than a data frame (compressor output can be). */
async function* bounded(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const c of src) for (let off = 0; off < c.length; off += MAX_DATA) yield c.subarray(off, off + MAX_DATA);
}

/**
 * The wire bytes for one transfer from a volume on this host. With `skip`,
 * the prefix is regenerated and checked before this returns, so a stream
 * that no longer matches the receiver's partial fails here, before anything
 * is announced to the receiver.
 */
export async function openOutgoing(volumeDir: string, req: OutgoingRequest): Promise<StreamHandle> {
  const result: SendResult = { changed: [] };
  let streamBytes = req.skip?.fromByte ?? 0;
  let src: AsyncGenerator<Buffer> = sendSnapshot(
    {
      snapshot: { volume: volumeDir, name: req.snapshot },
      parent: req.parent ? { volume: volumeDir, name: req.parent } : undefined,
      version: req.proto,
    },
    result,
  );
  let primed: AsyncGenerator<Buffer> | undefined;
  if (req.skip) {
    const { skipPrefix } = await import('./resume');
    const skipped = skipPrefix(src, req.skip.fromByte, req.skip.sha256);
    const first = await skipped.next(); // hashes the whole prefix; throws on a mismatch
    primed = skipped;
    src = (async function* () {
      if (first.done) return;
      yield first.value;
      yield* skipped;
    })();
  }
  const counted = (async function* () {
    for await (const c of src) {
      streamBytes += c.length;
      yield c;
    }
  })();
  // Small parts joined into frames of about COALESCE bytes; FLUSH hands the opening command on at once.
  let chunks: AsyncIterable<Buffer> = bounded(coalesce(counted, COALESCE));
  if (req.compress) {
    const { createZstdCompressor } = await import('../transport/zstd-stream');
    chunks = bounded(throughTransform(chunks, createZstdCompressor({ level: req.compress.level })));
  }
  return {
    chunks,
    // Only a primed stream has started (and holds a file open); the rest of the chain is lazy.
    cancel: async () => void (await primed?.return(undefined)),
    streamBytes: () => streamBytes,
    warnings: () => result.changed.map((p) => `${p}: file changed after the snapshot was taken; sent as read`),
  };
}

// ------------------------------------------------------------ the interface --

/** Where snapshots come from. */
export interface SourceVolume {
  readonly describe: string;
  /** The volume as the summary names it (a path, or host:path). */
  readonly label: string;
  list(): Promise<SnapshotMeta[]>;
  snapshot(name: string | undefined, now?: Date): Promise<{ meta: SnapshotMeta; warnings: string[] }>;
  hold(dest: string, names: string[], reason: string): Promise<void>;
  release(dest: string): Promise<void>;
  open(req: OutgoingRequest): Promise<StreamHandle>;
  /** The snapshot's manifest (src/diff/manifest.ts), for the destination to keep. */
  manifest(name: string): Promise<AsyncIterable<Buffer>>;
  close(): Promise<void>;
}

export class LocalSource implements SourceVolume {
  readonly describe = 'local';
  readonly label: string;

  constructor(readonly dir: string) {
    this.label = openVolume(dir).dir;
  }

  async list(): Promise<SnapshotMeta[]> {
    return listSnapshots(openVolume(this.dir)).map((s) => s.meta);
  }

  async snapshot(name: string | undefined, now?: Date): Promise<{ meta: SnapshotMeta; warnings: string[] }> {
    const r = await takeSnapshot(openVolume(this.dir), { name, now });
    return { meta: r.meta, warnings: r.warnings };
  }

  async hold(dest: string, names: string[], reason: string): Promise<void> {
    placeHold(this.label, dest, names, reason);
  }

  async release(dest: string): Promise<void> {
    releaseHold(this.label, dest);
  }

  open(req: OutgoingRequest): Promise<StreamHandle> {
    return openOutgoing(this.dir, req);
  }

  async manifest(name: string): Promise<AsyncIterable<Buffer>> {
    const info = getSnapshot(openVolume(this.dir), name);
    return manifestBytes(info.indexPath, { name });
  }

  async close(): Promise<void> {
    /* nothing held open */
  }
}

/** A volume on the other end of a `ferry serve` session (pull mode). */
export class RemoteSource implements SourceVolume {
  readonly describe: string;

  constructor(
    private readonly session: ServeSession,
    readonly label: string,
  ) {
    this.describe = session.describe;
  }

  async list(): Promise<SnapshotMeta[]> {
    const r = await this.session.request({ t: 'list' }, 'list');
    if (!Array.isArray(r.snapshots)) throw protocolError('list without snapshots');
    return r.snapshots.map(checkMeta);
  }

  async snapshot(name: string | undefined): Promise<{ meta: SnapshotMeta; warnings: string[] }> {
    const r = await this.session.request({ t: 'snapshot', name: name ?? null }, 'snapshot');
    return { meta: checkMeta(r.snapshot), warnings: strings(r.warnings) };
  }

  async hold(dest: string, names: string[], reason: string): Promise<void> {
    await this.session.request({ t: 'hold', dest, names, reason }, 'ok');
  }

  async release(dest: string): Promise<void> {
    await this.session.request({ t: 'release', dest }, 'ok');
  }

  async open(req: OutgoingRequest): Promise<StreamHandle> {
    await this.session.request({ t: 'send', ...req }, 'stream');
    let streamBytes = req.skip?.fromByte ?? 0;
    let warnings: string[] = [];
    const session = this.session;
    const chunks = (async function* () {
      for (;;) {
        const f = await session.next();
        if (f.kind === 'data') {
          if (!req.compress) streamBytes += f.data.length;
          yield f.data;
          continue;
        }
        const m = f.message;
        if (m.t === 'progress') {
          streamBytes = num(m.streamBytes, 'progress.streamBytes');
          continue;
        }
        session.check(m, 'end');
        streamBytes = num(m.streamBytes, 'end.streamBytes');
        warnings = strings(m.warnings);
        return;
      }
    })();
    // A stream that is not read to its end leaves the session unusable: close it.
    return { chunks, cancel: async () => session.close(), streamBytes: () => streamBytes, warnings: () => warnings };
  }

  /** Lazy: the request is made when the consumer first asks for bytes (it may refuse before that). */
  async manifest(name: string): Promise<AsyncIterable<Buffer>> {
    const session = this.session;
    return (async function* () {
      await session.request({ t: 'manifest', snapshot: name }, 'manifest');
      let bytes = 0;
      for (;;) {
        const f = await session.next();
        if (f.kind === 'data') {
          bytes += f.data.length;
          yield f.data;
          continue;
        }
        session.check(f.message, 'end');
        if (num(f.message.wireBytes, 'end.wireBytes') !== bytes) throw protocolError('manifest size does not match its end message');
        return;
      }
    })();
  }

  async close(): Promise<void> {
    this.session.close();
  }
}

// ------------------------------------------------------------- validation --

export function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw protocolError(`${what} is not a byte count`);
  return v;
}

export function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isDec = (v: unknown): v is string => typeof v === 'string' && /^\d+$/.test(v);

/** A SnapshotMeta from the wire, checked where replication relies on it. */
export function checkMeta(v: unknown): SnapshotMeta {
  const m = v as SnapshotMeta;
  if (!m || typeof m !== 'object' || !isStr(m.name) || !isStr(m.uuid) || !isDec(m.transid) || !m.counts || !isDec(m.counts.bytes) || !isDec(m.counts.hashedBytes)) {
    throw protocolError('snapshot description is malformed');
  }
  return m;
}
