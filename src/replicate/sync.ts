/**
 * `ferry sync`: the one place where a sending side and a receiving side are
 * wired together (docs/replication.md). Push: a volume here → a target here
 * or over ssh. Pull: a volume over ssh → a target here. Both ends speak to
 * their far side through the same control protocol.
 *
 *   connect → list both sides → finish an interrupted transfer (resume) →
 *   refuse a diverged target → snapshot → choose the parent → hold →
 *   stream (estimate, bwlimit, progress) → receiver commits and acks → release
 *
 * Owns: the order of those steps, holds on the source (placed before a
 * send, released after the ack, left in place when a transfer fails so the
 * pair can be resumed), the summary, and progress events. Never: touches a
 * target directly, or chooses a parent by name (parent.ts).
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../errors';
import type { SshOptions } from '../transport/ssh';
import { Lock } from '../volume/lock';
import { openVolume, SnapshotMeta } from '../volume/volume';
import { connectServe, Destination, looksRemote, openDestination, openTreeDestination, parseLocation, RemoteSnapshot, ServeTarget, SnapshotIdent } from './destination';
import { chooseParent, findResumable, planTransfer, transferError } from './parent';
import { TokenBucket } from './rate-limit';
import { interrupted } from './session';
import { isStreamFileName, StreamFileDestination } from './stream-files';
import { estimateStreamBytes, LocalSource, RemoteSource, SourceVolume, StreamHandle } from './source';

export interface SyncOptions {
  volume: string;
  dest: string;
  /** Send this existing snapshot instead of taking one. */
  snapshotName?: string;
  /** Name for the snapshot taken (default: UTC time). */
  name?: string;
  proto?: 1 | 2;
  compress?: { level: number };
  /** Bytes per second on the wire. */
  bwlimit?: number;
  ssh?: SshOptions;
  remoteCommand?: string;
  incrementalOnly?: boolean;
  format?: 'tree' | 'stream';
  fullEvery?: number;
  onEvent?: (e: SyncEvent) => void;
  signal?: AbortSignal;
  now?: Date;
}

export type SyncPhase = 'connect' | 'list' | 'resume' | 'snapshot' | 'plan' | 'send' | 'commit' | 'done';

export type SyncEvent =
  | { event: 'phase'; phase: SyncPhase; message: string }
  | {
      event: 'progress';
      snapshot: string;
      /** Stream bytes produced so far (including a resumed prefix). */
      streamBytes: number;
      /** The estimate of the whole stream (grows if the stream outruns it). */
      totalBytes: number;
      wireBytes: number;
      resumedFromByte: number;
      seconds: number;
    }
  | { event: 'warning'; message: string }
  | ({ event: 'transfer' } & TransferSummary);

export interface TransferSummary {
  snapshot: string;
  parent: string | null;
  streamBytes: number;
  wireBytes: number;
  resumedFromByte: number;
  seconds: number;
}

export interface SyncSummary {
  volume: string;
  /** The newest snapshot now at the destination (sent, or already there). */
  snapshot: string;
  /** Parent of that snapshot's transfer; null for a full send (or nothing sent). */
  parent: string | null;
  /** Totals over this run's transfers: stream bytes (whole streams), bytes on the wire, bytes skipped by resuming. */
  streamBytes: number;
  wireBytes: number;
  resumedFromByte: number;
  seconds: number;
  target: string;
  warnings: string[];
  /** Each transfer this run made, oldest first (a resumed one comes before the new snapshot). */
  transfers: TransferSummary[];
}

const PROGRESS_MS = 200;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(interrupted());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(interrupted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Stop between chunks once the signal fires (a stream-file write has no session to close). */
async function* abortable(src: AsyncIterable<Buffer>, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for await (const c of src) {
    if (signal?.aborted) throw interrupted();
    yield c;
  }
}

/** Report the running byte count of chunks as they pass. */
async function* meter(src: AsyncIterable<Buffer>, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of src) {
    n += c.length;
    onBytes(n);
    yield c;
  }
}

/** Delay chunks so the wire rate stays under the bucket's rate. */
export async function* throttle(src: AsyncIterable<Buffer>, bucket: TokenBucket, signal?: AbortSignal, now: () => number = Date.now): AsyncGenerator<Buffer> {
  for await (const c of src) {
    const wait = bucket.take(c.length, now());
    if (wait > 0) await sleep(wait, signal);
    yield c;
  }
}

const ident = (s: SnapshotMeta): SnapshotIdent => ({ name: s.name, uuid: s.uuid, transid: s.transid });
const hash16 = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export async function syncVolume(o: SyncOptions): Promise<SyncSummary> {
  const t0 = Date.now();
  const emit = o.onEvent ?? (() => undefined);
  const phase = (p: SyncPhase, message: string) => emit({ event: 'phase', phase: p, message });
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    emit({ event: 'warning', message: m });
  };
  if (o.signal?.aborted) throw interrupted();

  // ---- connect
  const srcLoc = await parseLocation(o.volume);
  const pull = srcLoc.kind === 'ssh';
  const toFiles = o.format === 'stream' || isStreamFileName(o.dest);
  if (pull && looksRemote(o.dest) && (await parseLocation(o.dest)).kind === 'ssh') {
    throw new FerryError('USAGE', 'sync between two remote hosts is not supported', { hint: 'run ferry sync on one of them' });
  }
  if (o.fullEvery !== undefined && !toFiles) {
    throw new FerryError('USAGE', '--full-every applies to stream-file destinations only', { hint: 'add --format stream, or drop --full-every' });
  }
  phase('connect', pull ? `connecting to ${o.volume}` : `connecting to ${o.dest}`);
  const conn = { ssh: o.ssh, remoteCommand: o.remoteCommand, signal: o.signal };
  let source: SourceVolume | undefined;
  let dest: Destination | undefined;
  let lock: Lock | undefined;
  try {
    if (pull) {
      const { session, path: p } = await connectServe(srcLoc, 'volume', conn);
      source = new RemoteSource(session, `${o.volume.slice(0, o.volume.length - srcLoc.path.length)}${p}`);
    } else {
      source = new LocalSource(o.volume);
    }
    // Pulling, --remote-command names the command on the volume's host; the target here runs this build.
    dest = toFiles ? await openDestination(o.dest, { ...conn, format: 'stream' }) : await openTreeDestination(o.dest, { ...conn, defaultCommand: pull });
    const tree = dest instanceof ServeTarget ? dest : undefined;
    const files = !tree ? (dest as StreamFileDestination) : undefined;
    const destPath = tree ? tree.path : files!.describe;
    const holdKey = pull ? `${os.hostname()}:${destPath}` : looksRemote(o.dest) ? o.dest : destPath;
    if (source instanceof LocalSource) {
      lock = Lock.acquire(path.join(openVolume(source.dir).ferryDir, `sync-${hash16(holdKey)}.lock`), `sync to ${o.dest}`);
    }
    const label = { volume: source.label, dest: dest.describe };

    // ---- list
    phase('list', `listing ${dest.describe}`);
    let destSnaps = await dest.list();
    const partials = tree ? await tree.partials() : [];
    let srcSnaps = await source.list();
    const transfers: TransferSummary[] = [];
    let last: { snapshot: string; parent: string | null } | undefined;

    type Resume = { id: string; fromByte: number; sha256: string };
    /**
     * Send `snap` (from `parent`), continuing partial `resume` when given.
     * 'mismatch': the regenerated stream no longer matches the partial
     * (which is then discarded); nothing was sent.
     */
    const transfer = async (snap: SnapshotMeta, parent: SnapshotMeta | null, resume: Resume | null): Promise<TransferSummary | 'mismatch'> => {
      const t1 = Date.now();
      let why = '';
      if (files) {
        // --full-every: a stream file chain is bounded by periodic full streams.
        const d = files.decide(parent?.uuid ?? null, o.fullEvery);
        if (d.parentUuid === null && parent) {
          parent = null;
          why = ` (${d.reason})`;
        }
      }
      await source!.hold(holdKey, parent ? [snap.name, parent.name] : [snap.name], `sync to ${o.dest}`);
      if (tree) {
        // Partials of this snapshot that this transfer will not continue can never be finished.
        const stale = (await tree.partials()).filter((p) => p.receivedUuid === snap.uuid && p.id !== resume?.id).map((p) => p.id);
        await tree.discard(stale);
      }
      const estimate = estimateStreamBytes(srcSnaps, snap, parent);
      // Stream files compress on their own (the file is what is compressed); the wire to them is local.
      const wireCompress = tree ? (o.compress ?? null) : null;
      let handle: StreamHandle;
      try {
        handle = await source!.open({
          snapshot: snap.name,
          parent: parent?.name ?? null,
          proto: o.proto ?? 1,
          compress: wireCompress,
          skip: resume ? { fromByte: resume.fromByte, sha256: resume.sha256 } : null,
        });
      } catch (e) {
        if (!(resume && tree && e instanceof FerryError && e.code === 'REPLICATE_RESUME_MISMATCH')) throw e;
        await tree.discard([resume.id]);
        return 'mismatch';
      }
      phase('send', `sending ${snap.name}${parent ? ` (incremental from ${parent.name})` : ' (full)'}${why}${resume ? `, resuming at byte ${resume.fromByte}` : ''}`);
      const resumed = resume?.fromByte ?? 0;
      let wire = 0;
      let lastEmit = 0;
      const progress = (force: boolean) => {
        const now = Date.now();
        if (!force && now - lastEmit < PROGRESS_MS) return;
        lastEmit = now;
        const streamBytes = handle.streamBytes();
        emit({ event: 'progress', snapshot: snap.name, streamBytes, totalBytes: Math.max(estimate, streamBytes), wireBytes: wire, resumedFromByte: resumed, seconds: (now - t1) / 1000 });
      };
      const onWire = (w: number) => {
        wire = w;
        progress(false);
      };
      progress(true);
      let chunks = abortable(handle.chunks, o.signal);
      if (o.bwlimit) chunks = throttle(chunks, new TokenBucket(o.bwlimit), o.signal);
      let got: { snapshot: RemoteSnapshot; wireBytes: number; streamBytes: number; warnings: string[] };
      try {
        if (tree) {
          got = await tree.receive(
            { snapshot: ident(snap), parent: parent ? ident(parent) : null, expectBytes: estimate, compressed: !!wireCompress, resume: resume ? { id: resume.id, fromByte: resume.fromByte } : null },
            chunks,
            onWire,
          );
        } else {
          const sidecar = await files!.write(ident(snap), parent ? ident(parent) : null, meter(chunks, onWire), {
            compress: o.compress ?? null,
            manifest: await source!.manifest(snap.name),
          });
          got = {
            snapshot: { name: sidecar.name, uuid: sidecar.uuid, receivedUuid: sidecar.uuid, parentUuid: sidecar.parentUuid, ctransid: sidecar.ctransid, receivedAt: sidecar.createdAt },
            wireBytes: sidecar.fileBytes,
            streamBytes: sidecar.bytes,
            warnings: [],
          };
        }
      } catch (e) {
        await handle.cancel().catch(() => undefined);
        if (tree && resume && e instanceof FerryError && e.code === 'RECV_RESUME_INVALID') {
          // The receiver will not continue that partial: drop it so the next run starts clean.
          await tree.discard([resume.id]).catch(() => undefined);
        }
        throw e;
      }
      progress(true);
      phase('commit', `${dest!.describe} committed ${got.snapshot.name}`);
      await source!.release(holdKey);
      if (tree) {
        // The sender's per-file digests, kept beside the catalog entry for `ferry verify`.
        try {
          await tree.storeManifest(got.snapshot.receivedUuid, await source!.manifest(snap.name));
        } catch (e) {
          warn(`${snap.name}: could not store its manifest at the destination (ferry verify will not work for it): ${(e as Error).message}`);
        }
      }
      for (const w of handle.warnings()) warn(`${snap.name}: ${w}`);
      for (const w of got.warnings) warn(`${got.snapshot.name} (receiver): ${w}`);
      destSnaps = [...destSnaps, got.snapshot];
      const t: TransferSummary = {
        snapshot: snap.name,
        parent: parent?.name ?? null,
        streamBytes: handle.streamBytes(),
        wireBytes: got.wireBytes,
        resumedFromByte: resumed,
        seconds: (Date.now() - t1) / 1000,
      };
      transfers.push(t);
      last = { snapshot: snap.name, parent: t.parent };
      emit({ event: 'transfer', ...t });
      return t;
    };

    // ---- finish an interrupted transfer first
    // (with --snapshot NAME: when that snapshot is the interrupted one or newer)
    const pending = findResumable(srcSnaps, destSnaps, partials);
    const requested = o.snapshotName === undefined ? undefined : srcSnaps.find((s) => s.name === o.snapshotName);
    const onlyThat = !!pending && requested?.uuid === pending.snapshot.uuid;
    if (pending && (o.snapshotName === undefined || (requested && BigInt(pending.snapshot.transid) <= BigInt(requested.transid)))) {
      const p = pending.partial;
      const from = p.appliedBytes > 0 ? { id: p.id, fromByte: p.appliedBytes, sha256: p.prefixSha256 } : null;
      phase('resume', `finishing the interrupted transfer of ${pending.snapshot.name}${from ? ` from byte ${from.fromByte}` : ''}`);
      const plan = planTransfer(srcSnaps, destSnaps, pending.snapshot);
      const refusal = transferError(plan, label);
      if (refusal) throw refusal;
      const r = await transfer(pending.snapshot, pending.parent, from);
      if (r === 'mismatch') {
        if (onlyThat) {
          warn(`could not resume ${pending.snapshot.name}: its stream no longer matches what the receiver applied; sent it from the start`);
          await transfer(pending.snapshot, pending.parent, null);
        } else {
          warn(`could not resume ${pending.snapshot.name}: its stream no longer matches what the receiver applied (the live tree changed); sending a new snapshot instead`);
        }
      }
    }

    // ---- the snapshot to send
    let snap: SnapshotMeta;
    if (o.snapshotName !== undefined) {
      const found = srcSnaps.find((s) => s.name === o.snapshotName);
      if (!found) throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot not found', { context: { volume: source.label, name: o.snapshotName } });
      snap = found;
    } else {
      // Refuse before taking a snapshot that could not be sent anyway.
      const pre = chooseParent(srcSnaps, destSnaps);
      if (pre.common && pre.diverged.length) throw transferError({ kind: 'diverged', snapshot: pre.common.source, common: pre.common, diverged: pre.diverged }, label)!;
      if (!pre.parent && o.incrementalOnly) throw transferError({ kind: 'no-parent', snapshot: null, source: srcSnaps, dest: destSnaps }, label)!;
      phase('snapshot', `taking a snapshot of ${source.label}`);
      const r = await source.snapshot(o.name, o.now);
      for (const w of r.warnings) warn(w);
      snap = r.meta;
      srcSnaps = [...srcSnaps, snap];
    }

    // ---- plan and send
    phase('plan', `choosing the parent for ${snap.name}`);
    const plan = planTransfer(srcSnaps, destSnaps, snap, { incrementalOnly: o.incrementalOnly });
    const refusal = transferError(plan, label);
    if (refusal) throw refusal;
    if (plan.kind === 'send') {
      const r = await transfer(plan.snapshot, plan.parent, null);
      if (r === 'mismatch') throw new FerryError('INTERNAL', 'a transfer without resume reported a prefix mismatch');
    } else if (plan.kind === 'present' && !last) {
      last = { snapshot: snap.name, parent: null };
    }

    phase('done', 'done');
    const sum = (k: 'streamBytes' | 'wireBytes' | 'resumedFromByte') => transfers.reduce((a, t) => a + t[k], 0);
    return {
      volume: source.label,
      snapshot: last?.snapshot ?? snap.name,
      parent: last?.parent ?? null,
      streamBytes: sum('streamBytes'),
      wireBytes: sum('wireBytes'),
      resumedFromByte: sum('resumedFromByte'),
      seconds: (Date.now() - t0) / 1000,
      target: dest.describe,
      warnings,
      transfers,
    };
  } catch (e) {
    if (o.signal?.aborted && !(e instanceof FerryError && e.summary === 'sync interrupted')) throw interrupted();
    throw e;
  } finally {
    lock?.release();
    await dest?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
  }
}
