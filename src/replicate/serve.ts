/**
 * `ferry serve`: the far end of a sync. Speaks the control protocol on a
 * pair of byte streams (its stdin/stdout) and works on exactly one target
 * (receive side) or one volume (send side, pull mode) per session.
 *
 * Owns: the server half of every message in docs/replication.md ("Control
 * protocol"), `--restrict-to` (every path is resolved, symlinks included,
 * and must lie inside the allowed directory, else TRANSPORT_RESTRICTED),
 * running the receiver with keepPartial so an interrupted sync can resume,
 * and removing received snapshots for target-side pruning.
 *
 * Never: writes outside the opened target (or, for a volume, outside its
 * .ferry/ metadata), writes anything but frames to its output, or keeps
 * going after a protocol violation. An error in one request is reported
 * as a structured error message and the session continues; a broken
 * protocol is reported once and ends the session.
 *
 * Fault points (FERRY_FAULT, tests): serve:data:N (after the N-th data frame
 * of a receive), serve:manifest:N, serve:before-ack (committed, not yet
 * acknowledged).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { FerryError } from '../errors';
import { faultPoint } from '../model/fault';
import { Receiver } from '../receive/receiver';
import { removeCommitted, sweepRemoved } from '../receive/snapshot-trees';
import { sys } from '../sys/linux';
import { ControlPeer, errorToWire, Message, protocolError, throughTransform } from '../transport/control';
import { Catalog, CatalogEntry, FERRY_DIR } from '../volume/catalog';
import { heldNames, placeHold, releaseHold } from '../volume/holds';
import { Lock } from '../volume/lock';
import { getSnapshot, listSnapshots, openVolume, removeSnapshot, snapshot as takeSnapshot } from '../volume/volume';
import { manifestBytes } from '../diff/manifest';
import { storeManifest } from './manifest-store';
import type { PartialInfo, RemoteSnapshot } from './destination';
import { openOutgoing, OutgoingRequest } from './source';
import { SERVE_VERSION } from './session';

export interface ServeOptions {
  input: Readable;
  output: Writable;
  /** Refuse every path outside this directory. */
  restrictTo?: string;
  /** This ferry's version, told to the client. */
  version: string;
  /** Diagnostics (stderr); never the protocol stream. */
  log?: (line: string) => void;
}

/** Progress messages during a compressed pull: one per this many stream bytes. */
const PROGRESS_EVERY = 1024 * 1024;

/** Resolve `p` (symlinks included, for the part that exists) and require it inside `root`. */
export function resolveRestricted(p: string, root: string | undefined): string {
  const abs = path.resolve(p);
  const real = realpathPartial(abs);
  if (root === undefined) return real;
  let realRoot: string;
  try {
    realRoot = fs.realpathSync(path.resolve(root));
  } catch {
    throw new FerryError('TRANSPORT_RESTRICTED', 'serve refused: the --restrict-to directory does not exist', {
      context: { restrictTo: root },
      hint: 'fix the forced command in authorized_keys',
    });
  }
  if (real !== realRoot && !real.startsWith(realRoot.endsWith('/') ? realRoot : realRoot + '/')) {
    throw new FerryError('TRANSPORT_RESTRICTED', 'serve refused: path is outside the allowed directory', {
      context: { path: p, resolved: real, allowed: realRoot },
      hint: 'this key may only sync below the --restrict-to directory of its forced command',
    });
  }
  return real;
}

/** realpath of the longest existing prefix, with the rest appended. */
function realpathPartial(abs: string): string {
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.unshift(path.basename(cur));
      cur = parent;
    }
  }
}

export function toRemoteSnapshot(e: CatalogEntry): RemoteSnapshot {
  return { name: e.name, uuid: e.uuid, receivedUuid: e.receivedUuid, parentUuid: e.parentUuid, ctransid: e.ctransid, receivedAt: e.receivedAt };
}

/** Resumable partials of a target (src/receive keeps them with keepPartial). */
export function targetPartials(target: string): PartialInfo[] {
  if (!fs.existsSync(path.join(target, FERRY_DIR))) return [];
  return new Receiver({ target })
    .partials()
    .map((p) => ({ id: p.id, name: p.name, receivedUuid: p.receivedUuid, parentUuid: p.parentUuid, ctransid: p.ctransid, appliedBytes: p.appliedBytes, prefixSha256: p.prefixSha256 }));
}

/** Received uuids that resumable partials need as their parent. */
export function targetHeld(target: string): string[] {
  return [...new Set(targetPartials(target).flatMap((p) => (p.parentUuid ? [p.parentUuid] : [])))];
}

/**
 * Remove received snapshots from a target (target-side pruning). Each one
 * disappears by one rename out of the target, then its catalog entry and its
 * files go. A snapshot an interrupted transfer needs as its parent is refused.
 */
export function removeReceived(target: string, names: string[]): void {
  if (!names.length) return;
  if (!fs.existsSync(path.join(target, FERRY_DIR))) {
    throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot not found in the target', { context: { target, name: names[0] } });
  }
  // Before taking the lock: listing partials takes it briefly itself.
  const held = new Set(targetHeld(target));
  const lock = Lock.acquire(path.join(target, FERRY_DIR, 'receive.lock'), `remove from ${target}`);
  try {
    const catalog = new Catalog(target);
    const entries = names.map((n) => {
      const e = catalog.findByName(n);
      if (!e) throw new FerryError('SNAPSHOT_NOT_FOUND', 'snapshot not found in the target', { context: { target, name: n } });
      if (held.has(e.receivedUuid)) {
        throw new FerryError('USAGE', `cannot remove ${n}: an interrupted transfer needs it as its parent`, {
          context: { target },
          hint: 'run the same ferry sync again to finish that transfer first',
        });
      }
      return e;
    });
    const s = sys();
    sweepRemoved(target);
    for (const e of entries) removeCommitted(s, target, catalog, e);
  } finally {
    lock.release();
  }
}

type Session = { role: 'target' | 'volume'; path: string };

class Fatal extends Error {
  constructor(readonly error: FerryError) {
    super(error.message);
  }
}

const str = (m: Message, k: string): string => {
  const v = m[k];
  if (typeof v !== 'string') throw new Fatal(protocolError(`${m.t}.${k} is not a string`));
  return v;
};
const optStr = (m: Message, k: string): string | null => (m[k] === undefined || m[k] === null ? null : str(m, k));
const strList = (m: Message, k: string): string[] => {
  const v = m[k];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Fatal(protocolError(`${m.t}.${k} is not a list of strings`));
  return v as string[];
};
const count = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Fatal(protocolError(`${what} is not a byte count`));
  return v;
};
const ident = (v: unknown, what: string): { name: string; uuid: string; transid: string } => {
  const x = v as { name: unknown; uuid: unknown; transid: unknown };
  if (!x || typeof x !== 'object' || typeof x.name !== 'string' || typeof x.uuid !== 'string' || typeof x.transid !== 'string') {
    throw new Fatal(protocolError(`${what} is malformed`));
  }
  return { name: x.name, uuid: x.uuid, transid: x.transid };
};

/** Serve one session until the client says bye or its input ends. Resolves an exit code; the output is ended. */
export async function serve(o: ServeOptions): Promise<number> {
  const peer = new ControlPeer(o.input, o.output);
  try {
    return await session(o, peer);
  } finally {
    peer.writer.end();
  }
}

async function session(o: ServeOptions, peer: ControlPeer): Promise<number> {
  const log = o.log ?? (() => undefined);
  let session: Session | undefined;
  let greeted = false;
  /** After a failed receive: drop data frames (and one `end`) the client sent before it saw the error. */
  let draining = false;

  const fail = async (e: unknown): Promise<void> => {
    const w = errorToWire(e);
    log(`ferry serve: ${e instanceof Error ? e.message : String(e)}`);
    try {
      await peer.send({ t: 'error', error: w });
    } catch {
      /* the client is gone */
    }
  };
  /** The opened session (of `role`, when given); anything else is a protocol violation. */
  const need = (role: Session['role'] | undefined, m: Message): Session => {
    if (!greeted) throw new Fatal(protocolError(`${m.t} before hello`));
    if (!session) throw new Fatal(protocolError(`${m.t} before open`));
    if (role && session.role !== role) throw new Fatal(protocolError(`${m.t} is not valid on a ${session.role}`));
    return session;
  };

  try {
    await peer.writer.preamble();
  } catch {
    return 13;
  }

  for (;;) {
    let f;
    try {
      f = await peer.next();
    } catch (e) {
      await fail(e);
      return 13;
    }
    if (f.kind === 'eof') {
      if (f.partial) log('ferry serve: the client went away inside a frame');
      return f.partial ? 13 : 0;
    }
    if (f.kind === 'data') {
      if (draining) continue;
      await fail(protocolError('data frame outside a transfer'));
      return 13;
    }
    const m = f.message;
    if (draining) {
      draining = false;
      if (m.t === 'end' || m.t === 'abort') continue;
    }
    try {
      switch (m.t) {
        case 'hello': {
          if (greeted) throw new Fatal(protocolError('second hello'));
          if (m.version !== SERVE_VERSION) {
            throw new Fatal(
              new FerryError('TRANSPORT_PROTOCOL', `serve protocol version mismatch: client speaks ${String(m.version)}, serve speaks ${SERVE_VERSION}`, {
                hint: 'install the same ferry version on both hosts',
              }),
            );
          }
          greeted = true;
          await peer.send({ t: 'hello', version: SERVE_VERSION, ferry: o.version, features: ['zstd', 'resume'], restricted: o.restrictTo !== undefined });
          break;
        }
        case 'open': {
          if (!greeted) throw new Fatal(protocolError('open before hello'));
          if (session) throw new Fatal(protocolError('second open'));
          const role = m.role;
          if (role !== 'target' && role !== 'volume') throw new Fatal(protocolError('open.role must be target or volume'));
          const p = resolveRestricted(str(m, 'path'), o.restrictTo);
          if (role === 'volume') openVolume(p);
          else if (fs.existsSync(p) && !fs.statSync(p).isDirectory()) {
            throw new FerryError('RECV_TARGET_INVALID', 'cannot use target: not a directory', { context: { target: p } });
          }
          session = { role, path: p };
          await peer.send({ t: 'opened', role, path: p });
          break;
        }
        case 'list': {
          const { role, path: p } = need(undefined, m);
          if (role === 'target') await peer.send({ t: 'list', snapshots: new Catalog(p).list().map(toRemoteSnapshot), partials: targetPartials(p) });
          else await peer.send({ t: 'list', snapshots: listSnapshots(openVolume(p)).map((s) => s.meta) });
          break;
        }
        case 'held': {
          const { role, path: p } = need(undefined, m);
          if (role === 'target') await peer.send({ t: 'held', uuids: targetHeld(p) });
          else await peer.send({ t: 'held', names: [...heldNames(openVolume(p).dir)] });
          break;
        }
        case 'discard': {
          const t = need('target', m).path;
          const ids = strList(m, 'ids');
          const r = new Receiver({ target: t });
          await peer.send({ t: 'discarded', ids: ids.filter((id) => r.discardPartial(id)) });
          break;
        }
        case 'remove': {
          const { role, path: p } = need(undefined, m);
          const names = strList(m, 'names');
          if (role === 'target') removeReceived(p, names);
          else {
            const vol = openVolume(p);
            const held = heldNames(vol.dir);
            for (const n of names) {
              if (held.has(n)) throw new FerryError('USAGE', `cannot remove ${n}: a transfer still needs it (hold)`, { context: { volume: vol.dir } });
            }
            for (const n of names) removeSnapshot(vol, n);
          }
          await peer.send({ t: 'removed', names });
          break;
        }
        case 'snapshot': {
          const v = need('volume', m).path;
          const r = await takeSnapshot(openVolume(v), { name: optStr(m, 'name') ?? undefined });
          await peer.send({ t: 'snapshot', snapshot: r.meta, warnings: r.warnings });
          break;
        }
        case 'hold': {
          const v = openVolume(need('volume', m).path);
          placeHold(v.dir, str(m, 'dest'), strList(m, 'names'), str(m, 'reason'));
          await peer.send({ t: 'ok' });
          break;
        }
        case 'release': {
          const v = openVolume(need('volume', m).path);
          releaseHold(v.dir, str(m, 'dest'));
          await peer.send({ t: 'ok' });
          break;
        }
        case 'send':
          await serveSend(peer, need('volume', m).path, m);
          break;
        case 'manifest':
          await serveManifest(peer, need('volume', m).path, m);
          break;
        case 'store-manifest': {
          const r = await serveStoreManifest(peer, need('target', m).path, m, log);
          if (r === 'eof') return 13;
          draining = r === 'drain';
          break;
        }
        case 'receive': {
          const r = await serveReceive(peer, need('target', m).path, m, log);
          if (r === 'eof') return 13;
          draining = r === 'drain';
          break;
        }
        case 'bye':
          await peer.send({ t: 'bye' });
          return 0;
        default:
          throw new Fatal(protocolError(`unknown message ${JSON.stringify(m.t)}`));
      }
    } catch (e) {
      if (e instanceof Fatal) {
        await fail(e.error);
        return 13;
      }
      await fail(e);
    }
  }
}

function parseOutgoing(m: Message): OutgoingRequest {
  const proto = m.proto;
  if (proto !== 1 && proto !== 2) throw new Fatal(protocolError('send.proto must be 1 or 2'));
  let compress: OutgoingRequest['compress'] = null;
  if (m.compress !== null && m.compress !== undefined) {
    const c = m.compress as { level?: unknown };
    if (!c || typeof c !== 'object' || typeof c.level !== 'number' || !Number.isInteger(c.level)) throw new Fatal(protocolError('send.compress is malformed'));
    compress = { level: c.level };
  }
  let skip: OutgoingRequest['skip'] = null;
  if (m.skip !== null && m.skip !== undefined) {
    const s = m.skip as { fromByte?: unknown; sha256?: unknown };
    if (!s || typeof s !== 'object' || typeof s.sha256 !== 'string') throw new Fatal(protocolError('send.skip is malformed'));
    skip = { fromByte: count(s.fromByte, 'send.skip.fromByte'), sha256: s.sha256 };
  }
  return { snapshot: str(m, 'snapshot'), parent: optStr(m, 'parent'), proto, compress, skip };
}

/** Pull mode: stream a snapshot of the opened volume as data frames, then `end`. */
async function serveSend(peer: ControlPeer, volume: string, m: Message): Promise<void> {
  const req = parseOutgoing(m);
  const out = await openOutgoing(openVolume(volume).dir, req);
  await peer.send({ t: 'stream' });
  let wire = 0;
  let told = out.streamBytes();
  for await (const c of out.chunks) {
    await peer.sendData(c);
    wire += c.length;
    if (req.compress && out.streamBytes() - told >= PROGRESS_EVERY) {
      told = out.streamBytes();
      await peer.send({ t: 'progress', streamBytes: told, wireBytes: wire });
    }
  }
  await peer.send({ t: 'end', streamBytes: out.streamBytes(), wireBytes: wire, warnings: out.warnings() });
}

/**
 * One receive: ready (sent when the receiver first asks for data, after its
 * lock and space checks), data frames, end → received. Returns 'drain' when
 * it failed before the client's `end` arrived, 'eof' when the client went away.
 */
async function serveReceive(peer: ControlPeer, target: string, m: Message, log: (l: string) => void): Promise<'ok' | 'drain' | 'eof'> {
  const snapshot = ident(m.snapshot, 'receive.snapshot');
  if (m.parent !== null && m.parent !== undefined) ident(m.parent, 'receive.parent');
  const expectBytes = count(m.expectBytes, 'receive.expectBytes');
  const compressed = m.compressed === true;
  let resume: { id: string; fromByte: number } | undefined;
  if (m.resume !== null && m.resume !== undefined) {
    const r = m.resume as { id?: unknown; fromByte?: unknown };
    if (!r || typeof r !== 'object' || typeof r.id !== 'string') throw new Fatal(protocolError('receive.resume is malformed'));
    resume = { id: r.id, fromByte: count(r.fromByte, 'receive.resume.fromByte') };
  }

  const inbound = new Inbound(peer, target, 'serve:data');
  let source: AsyncIterable<Buffer> = inbound.frames();
  if (compressed) {
    const { createZstdDecompressor } = await import('../transport/zstd-stream');
    source = throughTransform(source, createZstdDecompressor());
  }
  const receiver = new Receiver({ target, expectBytes: BigInt(expectBytes), keepPartial: true });
  try {
    const done = await receiver.receive(source, { resume });
    if (!(await inbound.finish())) return 'eof';
    const got = done.find((d) => d.entry.receivedUuid === snapshot.uuid);
    if (done.length !== 1 || !got) {
      throw new Fatal(protocolError('the stream did not hold exactly the announced snapshot', { announced: snapshot.uuid, received: done.map((d) => d.entry.receivedUuid).join(',') || 'none' }));
    }
    faultPoint('serve:before-ack');
    await peer.send({ t: 'received', snapshot: toRemoteSnapshot(got.entry), streamBytes: got.entry.streamBytes, resumedFromByte: got.resumedFromByte, warnings: got.warnings });
    return 'ok';
  } catch (e) {
    return inbound.failed(e, log);
  }
}

/**
 * Data frames from the client up to its `end` (or `abort`), for one
 * transfer. `ready` is sent when the consumer first asks for data, so
 * checks made before that (locks, space) fail before any data is sent.
 */
class Inbound {
  ready = false;
  sawEnd = false;
  eof = false;
  wire = 0;
  private frameNo = 0;

  constructor(
    private readonly peer: ControlPeer,
    private readonly where: string,
    private readonly fault: string,
  ) {}

  async *frames(): AsyncGenerator<Buffer> {
    await this.peer.send({ t: 'ready' });
    this.ready = true;
    for (;;) {
      const f = await this.peer.next();
      if (f.kind === 'eof') {
        this.eof = true;
        throw new FerryError('TRANSPORT_REMOTE_FAILED', 'the sending side went away during the transfer', {
          context: { target: this.where, receivedWireBytes: this.wire },
          hint: 'nothing was committed; the next sync resumes from what was applied',
          retryable: true,
        });
      }
      if (f.kind === 'data') {
        this.wire += f.data.length;
        faultPoint(`${this.fault}:${++this.frameNo}`);
        yield f.data;
        continue;
      }
      const msg = f.message;
      if (msg.t === 'end') {
        this.sawEnd = true;
        if (count(msg.wireBytes, 'end.wireBytes') !== this.wire) throw protocolError('end.wireBytes does not match the data received', { announced: String(msg.wireBytes), received: this.wire });
        return;
      }
      if (msg.t === 'abort') {
        this.sawEnd = true;
        throw new FerryError('TRANSPORT_REMOTE_FAILED', `the sender aborted the transfer: ${typeof msg.reason === 'string' ? msg.reason : 'no reason given'}`, {
          context: { target: this.where },
          hint: 'nothing was committed',
        });
      }
      throw protocolError(`unexpected ${JSON.stringify(msg.t)} message during a transfer`);
    }
  }

  /** After the consumer is done: the client's `end` must follow (and nothing else). False on eof. */
  async finish(): Promise<boolean> {
    if (this.sawEnd) return true;
    const f = await this.peer.next();
    if (f.kind === 'eof') return false;
    if (f.kind !== 'message' || f.message.t !== 'end') throw new Fatal(protocolError('data after the end of the stream'));
    if (count(f.message.wireBytes, 'end.wireBytes') !== this.wire) throw new Fatal(protocolError('end.wireBytes does not match the data received'));
    this.sawEnd = true;
    return true;
  }

  /** Report a failed transfer; 'drain' when the client may still be sending data. */
  async failed(e: unknown, log: (l: string) => void): Promise<'ok' | 'drain' | 'eof'> {
    if (e instanceof Fatal) throw e;
    log(`ferry serve: ${(e as Error).message}`);
    if (this.eof) return 'eof';
    if (e instanceof FerryError && e.code === 'TRANSPORT_PROTOCOL') throw new Fatal(e);
    await this.peer.send({ t: 'error', error: errorToWire(e) });
    return this.ready && !this.sawEnd ? 'drain' : 'ok';
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Store the manifest of a snapshot this target has committed (for `ferry verify`). */
async function serveStoreManifest(peer: ControlPeer, target: string, m: Message, log: (l: string) => void): Promise<'ok' | 'drain' | 'eof'> {
  const uuid = str(m, 'uuid');
  if (!UUID_RE.test(uuid)) throw new Fatal(protocolError('store-manifest.uuid is not a uuid'));
  const entry = new Catalog(target).list().find((e) => e.receivedUuid === uuid);
  if (!entry) throw new FerryError('SNAPSHOT_NOT_FOUND', 'no received snapshot with this uuid in the target', { context: { target, uuid } });
  const inbound = new Inbound(peer, target, 'serve:manifest');
  try {
    const file = await storeManifest(target, entry.uuid, inbound.frames());
    if (!(await inbound.finish())) return 'eof';
    await peer.send({ t: 'stored', file: path.basename(file) });
    return 'ok';
  } catch (e) {
    return inbound.failed(e, log);
  }
}

/** Pull mode: the manifest of a snapshot of the opened volume, as data frames, then `end`. */
async function serveManifest(peer: ControlPeer, volume: string, m: Message): Promise<void> {
  const snap = getSnapshot(openVolume(volume), str(m, 'snapshot'));
  await peer.send({ t: 'manifest' });
  let bytes = 0;
  for await (const c of manifestBytes(snap.indexPath, { name: snap.meta.name })) {
    await peer.sendData(c);
    bytes += c.length;
  }
  await peer.send({ t: 'end', wireBytes: bytes });
}
