/**
 * Stream files as a destination ("backup to anything"): a directory of
 * btrfs send streams, one file per snapshot, each with a JSON sidecar; or
 * one file whose name ends in `.btrfs-stream[.zst]`. Plus the way back:
 * replaying a chain of them into a target (`ferry receive TARGET --chain DIR`).
 *
 * Layout of a directory destination:
 *   DIR/<name>.btrfs-stream[.zst]   the stream (zstd frames when .zst)
 *   DIR/<name>.manifest             the snapshot's manifest (optional; src/diff/manifest.ts)
 *   DIR/<name>.json                 the sidecar (StreamSidecar); written last
 * A single-file destination FILE.btrfs-stream[.zst] keeps its sidecar and
 * manifest at FILE.json and FILE.manifest (FILE without the suffix). It
 * always holds one full stream, replaced by each write.
 *
 * Owns: the layout, the sidecar format, writing a stream durably (temp
 * name, fsync, rename; the sidecar last, so a stream without a sidecar was
 * never completed and is invisible), the chain rules (`--full-every`,
 * removal that would orphan an incremental is refused), and the replay
 * order.
 *
 * Never: produces stream bytes (the caller hands them in), imports sender
 * code, or lets a sidecar name a file outside its directory.
 *
 * Invariants: a stream is listed only when its sidecar and its stream file
 * exist; an incremental stream is written only when its parent's stream is
 * in the destination; replay applies parents before children and checks
 * each file's size and SHA-256 (of the uncompressed stream) against its
 * sidecar before the receiver can commit it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { FerryError } from '../errors';
import { ReceivedSnapshot, ReceiveOptions, Receiver } from '../receive/receiver';
import { createZstdCompressor, decompressIfZstd, ZSTD_DEFAULT_LEVEL } from '../transport/zstd-stream';
import { fsyncDir, pipeToFileAtomic, writeFileAtomic } from '../volume/atomic';
import { Catalog } from '../volume/catalog';
import { writeManifestFile } from '../diff/manifest';
import { Destination, RemoteSnapshot, SnapshotIdent } from './destination';
import { storeManifest } from './manifest-store';

export const STREAM_SUFFIX = '.btrfs-stream';
export const ZST_SUFFIX = '.zst';
const SINGLE_RE = /\.btrfs-stream(\.zst)?$/;

/** The JSON sidecar of one stream file. */
export interface StreamSidecar {
  format: 1;
  /** Snapshot name on the sending side. */
  name: string;
  /** The snapshot's uuid on the sending side (the stream's UUID). */
  uuid: string;
  /** Uuid of the stream's parent snapshot; null for a full stream. */
  parentUuid: string | null;
  parentName: string | null;
  /** The stream's CTRANSID (decimal). */
  ctransid: string;
  /** Bytes of the stream (uncompressed). */
  bytes: number;
  /** Bytes of the file on disk. */
  fileBytes: number;
  /** SHA-256 (hex) of the uncompressed stream. */
  sha256: string;
  compressed: boolean;
  /** zstd level, when compressed. */
  level?: number;
  /** The stream file's name, in the sidecar's directory. */
  file: string;
  createdAt: string;
  /** The manifest file's name, in the sidecar's directory, when one was written. */
  manifest?: string;
}

export interface StreamWriteOptions {
  /** zstd-compress the file (directory destinations; a single file follows its `.zst` suffix). */
  compress?: { level: number } | null;
  /** The snapshot's manifest bytes (src/diff/manifest.ts manifestBytes). */
  manifest?: Uint8Array | AsyncIterable<Uint8Array>;
  /** Worker threads for compression (default: CPUs). */
  workers?: number;
  now?: Date;
}

/** True when DEST names a single stream file rather than a directory. */
export function isStreamFileName(dest: string): boolean {
  return SINGLE_RE.test(dest);
}

function destInvalid(summary: string, context: Record<string, string>, hint?: string): FerryError {
  return new FerryError('REPLICATE_DEST_INVALID', summary, { context, hint });
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const plainName = (v: unknown): v is string => isStr(v) && v.length > 0 && !v.includes('/') && v !== '.' && v !== '..' && !v.includes('\0');

/** Parse and check a sidecar; throws naming the file. */
export function parseSidecar(text: string, file: string): StreamSidecar {
  let o: Partial<StreamSidecar>;
  try {
    o = JSON.parse(text) as Partial<StreamSidecar>;
  } catch {
    throw destInvalid('stream sidecar is not JSON', { file });
  }
  const ok =
    o &&
    o.format === 1 &&
    plainName(o.name) &&
    isStr(o.uuid) &&
    (o.parentUuid === null || isStr(o.parentUuid)) &&
    (o.parentName === null || isStr(o.parentName)) &&
    isStr(o.ctransid) &&
    /^\d+$/.test(o.ctransid) &&
    isCount(o.bytes) &&
    isCount(o.fileBytes) &&
    isStr(o.sha256) &&
    /^[0-9a-f]{64}$/.test(o.sha256) &&
    typeof o.compressed === 'boolean' &&
    plainName(o.file) &&
    SINGLE_RE.test(o.file) &&
    isStr(o.createdAt) &&
    (o.manifest === undefined || plainName(o.manifest));
  if (!ok) throw destInvalid('stream sidecar is malformed', { file }, 'move the file away if it is damaged; its stream cannot be used without it');
  return o as StreamSidecar;
}

// ------------------------------------------------------------ chain rules --

export interface ChainLink {
  uuid: string;
  parentUuid: string | null;
}

/**
 * Streams in the chain that ends at `uuid`: 1 for a full stream, 2 for an
 * incremental on a full one, and so on. Infinity when the chain is broken
 * (a parent's stream is not among `chain`) or loops.
 */
export function chainLength(chain: ChainLink[], uuid: string): number {
  const by = new Map(chain.map((c) => [c.uuid, c]));
  let n = 0;
  let cur: string | null = uuid;
  while (cur !== null) {
    const c = by.get(cur);
    if (!c || n > chain.length) return Infinity;
    n++;
    cur = c.parentUuid;
  }
  return n;
}

export interface StreamKindDecision {
  /** The parent to send from; null for a full stream. */
  parentUuid: string | null;
  reason: string;
}

/**
 * `--full-every N` for stream-file destinations: given the streams already
 * there and the parent chosen by the usual parent choice, send a full
 * stream when there is no parent, when the parent's stream is not there, or
 * when its chain already holds N streams (so no chain grows past N: one full
 * stream and at most N-1 incrementals). N = 1 makes every stream full;
 * undefined never forces one. Pure.
 */
export function decideStreamKind(chain: ChainLink[], parentUuid: string | null, fullEvery?: number): StreamKindDecision {
  if (fullEvery !== undefined && (!Number.isInteger(fullEvery) || fullEvery < 1)) {
    throw new FerryError('USAGE', `--full-every must be a whole number of at least 1, got ${fullEvery}`);
  }
  if (parentUuid === null) return { parentUuid: null, reason: 'no common snapshot: full stream' };
  const len = chainLength(chain, parentUuid);
  if (len === Infinity) return { parentUuid: null, reason: `the chain of parent ${parentUuid} is incomplete in the destination: full stream` };
  if (fullEvery !== undefined && len >= fullEvery) {
    return { parentUuid: null, reason: `the parent's chain already has ${len} stream${len === 1 ? '' : 's'} (--full-every ${fullEvery}): full stream` };
  }
  return { parentUuid, reason: `incremental (stream ${len + 1} of its chain${fullEvery !== undefined ? `, at most ${fullEvery}` : ''})` };
}

export interface ReplayPlan {
  /** Streams to apply, in order (each parent before its children). */
  apply: StreamSidecar[];
  /** Streams whose snapshot the target already has. */
  skip: StreamSidecar[];
}

function byCtransid(a: StreamSidecar, b: StreamSidecar): number {
  const x = BigInt(a.ctransid);
  const y = BigInt(b.ctransid);
  return x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Which streams to apply to a target that already has the snapshots
 * `have` (received uuids), and in what order: every chain from its full
 * stream (or from the snapshot the target has), each parent before its
 * children, and among the streams ready to go the oldest ctransid first.
 * With `upTo`, only that snapshot's chain. Throws REPLICATE_NO_PARENT
 * (exit 15) naming the first missing parent uuid when a needed stream's
 * parent is neither in the target nor among the streams. Pure.
 */
export function planReplay(sidecars: StreamSidecar[], have: Set<string>, o: { upTo?: string } = {}): ReplayPlan {
  const by = new Map<string, StreamSidecar>();
  for (const s of [...sidecars].sort(byCtransid)) if (!by.has(s.uuid)) by.set(s.uuid, s);
  let wanted: StreamSidecar[];
  if (o.upTo !== undefined) {
    const top = [...by.values()].find((s) => s.name === o.upTo);
    if (!top) {
      throw new FerryError('SNAPSHOT_NOT_FOUND', `no stream for snapshot ${o.upTo}`, {
        context: { have: [...by.values()].map((s) => s.name).join(', ') || 'none' },
      });
    }
    wanted = [];
    const seen = new Set<string>();
    for (let cur: StreamSidecar | undefined = top; cur && !seen.has(cur.uuid); ) {
      seen.add(cur.uuid);
      wanted.push(cur);
      if (cur.parentUuid === null || have.has(cur.uuid)) break;
      const p: StreamSidecar | undefined = by.get(cur.parentUuid);
      if (!p && !have.has(cur.parentUuid)) throw missingParent(cur);
      cur = p;
    }
  } else {
    wanted = [...by.values()];
  }
  const skip = wanted.filter((s) => have.has(s.uuid)).sort(byCtransid);
  const todo = wanted.filter((s) => !have.has(s.uuid));
  for (const s of todo) {
    if (s.parentUuid !== null && !have.has(s.parentUuid) && !by.has(s.parentUuid)) throw missingParent(s);
  }
  const apply: StreamSidecar[] = [];
  const done = new Set(have);
  const pending = new Set(todo);
  while (pending.size) {
    // The oldest stream whose parent is in place: the order they were sent in.
    const next = [...pending].filter((s) => s.parentUuid === null || done.has(s.parentUuid)).sort(byCtransid)[0];
    if (!next) throw missingParent([...pending].sort(byCtransid)[0]); // the uuids loop
    apply.push(next);
    done.add(next.uuid);
    pending.delete(next);
  }
  return { apply, skip };
}

function missingParent(s: StreamSidecar): FerryError {
  return new FerryError('REPLICATE_NO_PARENT', `broken chain: the stream of ${s.name} needs parent ${s.parentUuid}, which is neither in the target nor among the stream files`, {
    context: { stream: s.file, missingUuid: s.parentUuid ?? '' },
    hint: 'restore the missing stream file (and its sidecar), or receive a later full stream',
  });
}

// ------------------------------------------------------------ destination --

/** Hashes and counts the bytes going through. */
class Tally extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly hashing: boolean) {
    super();
  }
  override _transform(c: Buffer, _e: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    if (this.hashing) this.hash.update(c);
    this.bytes += c.length;
    cb(null, c);
  }
}

export class StreamFileDestination implements Destination {
  readonly kind = 'stream' as const;
  readonly describe: string;
  /** The directory holding the streams (for a single file: its directory). */
  readonly dir: string;
  /** Set for a single-file destination. */
  readonly single: { file: string; base: string; compressed: boolean } | undefined;

  constructor(dest: string) {
    const abs = path.resolve(dest);
    this.describe = abs;
    if (isStreamFileName(abs)) {
      this.dir = path.dirname(abs);
      const base = path.basename(abs).replace(SINGLE_RE, '');
      if (!base) throw destInvalid('stream file name has nothing before .btrfs-stream', { dest });
      this.single = { file: path.basename(abs), base, compressed: abs.endsWith(ZST_SUFFIX) };
    } else {
      this.dir = abs;
      this.single = undefined;
    }
  }

  private sidecarFile(base: string): string {
    return path.join(this.dir, `${base}.json`);
  }

  /** Every complete stream here (sidecar and stream file both present), oldest first. */
  sidecars(): StreamSidecar[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return [];
      if (code === 'ENOTDIR') throw destInvalid('stream-file destination is not a directory', { dest: this.dir });
      throw e;
    }
    const present = new Set(names);
    const bases = this.single ? [this.single.base] : names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5));
    const out: StreamSidecar[] = [];
    for (const base of bases) {
      if (!present.has(`${base}.json`)) continue;
      const candidates = this.single ? [this.single.file] : [`${base}${STREAM_SUFFIX}`, `${base}${STREAM_SUFFIX}${ZST_SUFFIX}`];
      if (!candidates.some((c) => present.has(c))) continue; // some other JSON file
      const file = this.sidecarFile(base);
      const s = parseSidecar(fs.readFileSync(file, 'utf8'), file);
      if (!present.has(s.file)) continue; // a removal was interrupted after the stream file went
      if (!this.single && s.file !== `${base}${STREAM_SUFFIX}${s.compressed ? ZST_SUFFIX : ''}`) {
        throw destInvalid('stream sidecar names another file', { file, names: s.file });
      }
      out.push(s);
    }
    return out.sort(byCtransid);
  }

  /**
   * Snapshots as sync's parent choice sees them. A single file is replaced
   * by every write, so it can never be a parent: it lists nothing.
   */
  async list(): Promise<RemoteSnapshot[]> {
    if (this.single) return [];
    return this.sidecars().map((s) => ({
      name: s.name,
      uuid: s.uuid,
      receivedUuid: s.uuid,
      parentUuid: s.parentUuid,
      ctransid: s.ctransid,
      receivedAt: s.createdAt,
    }));
  }

  /** Stream files are never resumed: nothing is held. */
  async held(): Promise<string[]> {
    return [];
  }

  async close(): Promise<void> {
    /* nothing open between calls */
  }

  /** `--full-every` against the streams here (see decideStreamKind). */
  decide(parentUuid: string | null, fullEvery?: number): StreamKindDecision {
    if (this.single) return { parentUuid: null, reason: 'a single stream file always holds a full stream' };
    return decideStreamKind(this.sidecars(), parentUuid, fullEvery);
  }

  /**
   * Remove streams by snapshot name: sidecar first (the stream disappears
   * at once), then manifest and stream file. Refused when a stream that
   * stays is an incremental on one of them.
   */
  async remove(names: string[]): Promise<void> {
    const all = this.sidecars();
    const going = all.filter((s) => names.includes(s.name));
    const goingUuids = new Set(going.map((s) => s.uuid));
    for (const s of all) {
      if (!goingUuids.has(s.uuid) && s.parentUuid !== null && goingUuids.has(s.parentUuid)) {
        const p = going.find((g) => g.uuid === s.parentUuid)!;
        throw destInvalid(`cannot remove ${p.name}: the stream of ${s.name} is incremental on it`, { dest: this.describe }, `remove ${s.name} (and what depends on it) too, or keep ${p.name}`);
      }
    }
    for (const s of going) {
      const base = this.single ? this.single.base : s.name;
      fs.rmSync(this.sidecarFile(base), { force: true });
      fsyncDir(this.dir);
      if (s.manifest) fs.rmSync(path.join(this.dir, s.manifest), { force: true });
      fs.rmSync(path.join(this.dir, s.file), { force: true });
    }
    if (going.length) fsyncDir(this.dir);
  }

  /**
   * Write one stream. `parent` null means a full stream; otherwise the
   * parent's stream must be here already. Returns the sidecar written.
   */
  async write(snapshot: SnapshotIdent, parent: SnapshotIdent | null, stream: AsyncIterable<Uint8Array>, o: StreamWriteOptions = {}): Promise<StreamSidecar> {
    if (this.single && parent) {
      throw destInvalid('a single stream file holds one full stream; it cannot take an incremental one', { dest: this.describe }, 'use a directory with --format stream for incremental chains');
    }
    fs.mkdirSync(this.dir, { recursive: true });
    const existing = this.sidecars();
    const base = this.single ? this.single.base : snapshot.name;
    if (!plainName(base) || base.startsWith('.')) throw destInvalid('snapshot name cannot be a stream file name', { name: base });
    if (!this.single) {
      const clash = existing.find((s) => s.name === snapshot.name || s.uuid === snapshot.uuid);
      if (clash) {
        throw destInvalid(`the destination already has a stream of ${clash.name}`, { dest: this.describe, uuid: clash.uuid }, 'one directory holds the streams of one volume');
      }
    }
    let parentSidecar: StreamSidecar | undefined;
    if (parent) {
      parentSidecar = existing.find((s) => s.uuid === parent.uuid);
      if (!parentSidecar) {
        throw new FerryError('REPLICATE_NO_PARENT', `parent ${parent.name} has no stream in the destination`, {
          context: { dest: this.describe, parentUuid: parent.uuid },
          hint: 'an incremental stream file could never be replayed without its parent; send a full stream',
        });
      }
    }
    const compressed = this.single ? this.single.compressed : !!o.compress;
    const level = compressed ? (o.compress?.level ?? ZSTD_DEFAULT_LEVEL) : undefined;
    const file = this.single ? this.single.file : `${base}${STREAM_SUFFIX}${compressed ? ZST_SUFFIX : ''}`;
    const final = path.join(this.dir, file);
    const plainTally = new Tally(true);
    const fileTally = new Tally(false);
    const stages: NodeJS.ReadWriteStream[] = [plainTally];
    if (compressed) stages.push(createZstdCompressor({ level: level!, workers: o.workers }));
    stages.push(fileTally);
    let wroteStream = false;
    const manifestName = o.manifest ? `${base}.manifest` : undefined;
    try {
      await pipeToFileAtomic(final, [Readable.from(stream, { objectMode: false }), ...stages], {
        beforeRename: () => {
          if (!this.single) return;
          // The old sidecar goes first: a crash from here on leaves no sidecar, never a wrong one.
          fs.rmSync(this.sidecarFile(base), { force: true });
          fsyncDir(this.dir);
        },
      });
      wroteStream = true;
      if (manifestName) await writeManifestFile(path.join(this.dir, manifestName), o.manifest!);
      else if (this.single) fs.rmSync(path.join(this.dir, `${base}.manifest`), { force: true });
      const sidecar: StreamSidecar = {
        format: 1,
        name: snapshot.name,
        uuid: snapshot.uuid,
        parentUuid: parent ? parent.uuid : null,
        parentName: parent ? parent.name : null,
        ctransid: snapshot.transid,
        bytes: plainTally.bytes,
        fileBytes: fileTally.bytes,
        sha256: plainTally.hash.digest('hex'),
        compressed,
        ...(level !== undefined ? { level } : {}),
        file,
        createdAt: (o.now ?? new Date()).toISOString(),
        ...(manifestName ? { manifest: manifestName } : {}),
      };
      writeFileAtomic(this.sidecarFile(base), JSON.stringify(sidecar, null, 2) + '\n');
      return sidecar;
    } catch (e) {
      if (wroteStream) {
        // No sidecar was written: the stream would be invisible anyway; do not leave it behind.
        fs.rmSync(final, { force: true });
        if (manifestName) fs.rmSync(path.join(this.dir, manifestName), { force: true });
      }
      throw e;
    }
  }
}

// ----------------------------------------------------------------- replay --

/**
 * A stream file's bytes (decompressed), checked against its sidecar: the
 * last chunk is held back until the size and SHA-256 of the whole stream
 * are known to match, so the receiver (which commits on END, at the very
 * end) never commits a damaged or substituted stream.
 */
export async function* sidecarCheckedStream(dir: string, s: StreamSidecar): AsyncGenerator<Buffer> {
  const file = path.join(dir, s.file);
  const rs = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const h = createHash('sha256');
  let n = 0;
  let held: Buffer | undefined;
  try {
    for await (const c of decompressIfZstd(rs)) {
      h.update(c);
      n += c.length;
      if (held) yield held;
      held = c;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FerryError('IO_NOT_FOUND', `stream file is missing: ${s.file}`, { context: { dir }, cause: e });
    }
    throw e;
  } finally {
    rs.destroy();
  }
  const sha = h.digest('hex');
  if (n !== s.bytes || sha !== s.sha256) {
    throw new FerryError('STREAM_BAD_CRC', `stream file does not match its sidecar: ${n} bytes with SHA-256 ${sha.slice(0, 16)}…, the sidecar says ${s.bytes} bytes, ${s.sha256.slice(0, 16)}…`, {
      context: { file },
      hint: 'the file was damaged or replaced; nothing was committed from it',
    });
  }
  if (held) yield held;
}

export interface ReplayOptions {
  target: string;
  /** A directory of stream files (or one `.btrfs-stream[.zst]` file). */
  from: string;
  /** Stop at this snapshot (apply only its chain). */
  upTo?: string;
  /** Passed to each Receiver (devices, setuid, seed, ...). */
  receive?: Omit<ReceiveOptions, 'target'>;
  onSkip?: (s: StreamSidecar) => void;
  onApplied?: (s: StreamSidecar, r: ReceivedSnapshot) => void;
}

export interface ReplayResult {
  applied: ReceivedSnapshot[];
  skipped: StreamSidecar[];
}

/**
 * Apply a chain of stream files to a target, in order, skipping snapshots
 * the target already has; each stream's manifest (if any) is stored beside
 * its catalog entry. The plan is checked before anything is applied.
 */
export async function replayChain(o: ReplayOptions): Promise<ReplayResult> {
  const src = new StreamFileDestination(o.from);
  if (!src.single && !fs.existsSync(src.dir)) {
    throw new FerryError('IO_NOT_FOUND', 'stream-file directory not found', { context: { dir: src.dir } });
  }
  const sidecars = src.sidecars();
  if (!sidecars.length) {
    throw new FerryError('IO_NOT_FOUND', 'no stream files with sidecars here', {
      context: { dir: o.from },
      hint: 'a stream file counts only with its <name>.json sidecar beside it',
    });
  }
  const have = new Set(new Catalog(o.target).list().map((e) => e.receivedUuid));
  const plan = planReplay(sidecars, have, { upTo: o.upTo });
  for (const s of plan.skip) o.onSkip?.(s);
  const applied: ReceivedSnapshot[] = [];
  for (const s of plan.apply) {
    const receiver = new Receiver({ ...o.receive, target: o.target, expectBytes: o.receive?.expectBytes ?? BigInt(s.bytes) });
    const done = await receiver.receive(sidecarCheckedStream(src.dir, s));
    const got = done.find((d) => d.entry.receivedUuid === s.uuid);
    if (done.length !== 1 || !got) {
      throw new FerryError('STREAM_BAD_ORDER', `stream file of ${s.name} holds ${done.length} snapshot(s), not the one its sidecar names`, {
        context: { file: path.join(src.dir, s.file), uuid: s.uuid },
      });
    }
    if (s.manifest) await storeManifest(o.target, got.entry.uuid, fs.createReadStream(path.join(src.dir, s.manifest)));
    applied.push(got);
    o.onApplied?.(s, got);
  }
  return { applied, skipped: plan.skip };
}
