/**
 * Destinations: where `ferry sync` puts snapshots. A target directory on
 * this host or on another one is always reached through a `ferry serve`
 * session (locally a child process, remotely over ssh), so both take the
 * same code path; stream-file targets are handled by stream-files.ts.
 *
 * Owns: telling a DEST string apart (`[user@]host[:port]:/path` or a local
 * path), the command that starts serve on each kind of endpoint, and the
 * client side of the target calls: list, held, remove, and receive (ready →
 * data frames → end → received, with the remote's errors rethrown).
 *
 * Never: writes to a target itself (serve does), or picks a parent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { Endpoint } from '../transport/channel';
import { Message, protocolError } from '../transport/control';
import { localEndpoint, shellJoin } from '../transport/local';
import type { SshDest, SshOptions } from '../transport/ssh';
import { ServeSession } from './session';

/** A snapshot as a destination holds it (a catalog entry, seen from the sender). */
export interface RemoteSnapshot {
  name: string;
  /** The destination's own uuid for it. */
  uuid: string;
  /** The sender's uuid of it. */
  receivedUuid: string;
  /** Received uuid of its parent; null for a full stream. */
  parentUuid: string | null;
  ctransid: string;
  receivedAt: string;
}

/** An interrupted receive the destination kept so it can be resumed (src/receive). */
export interface PartialInfo {
  id: string;
  name: string;
  receivedUuid: string;
  parentUuid: string | null;
  ctransid: string;
  /** Stream bytes durably applied (a command boundary). */
  appliedBytes: number;
  /** SHA-256 of those first appliedBytes stream bytes. */
  prefixSha256: string;
}

export interface Destination {
  readonly describe: string;
  list(): Promise<RemoteSnapshot[]>;
  remove(names: string[]): Promise<void>;
  /** received uuids a partial (resumable) transfer there still needs */
  held(): Promise<string[]>;
  close(): Promise<void>;
}

export interface SnapshotIdent {
  name: string;
  uuid: string;
  transid: string;
}

export interface ReceiveRequest {
  snapshot: SnapshotIdent;
  parent: SnapshotIdent | null;
  /** The sender's size estimate (receiver preflight). */
  expectBytes: number;
  /** The data frames are zstd frames. */
  compressed: boolean;
  /** Continue the partial `id`: the data starts at stream byte fromByte. */
  resume: { id: string; fromByte: number } | null;
}

export interface ReceiveResult {
  snapshot: RemoteSnapshot;
  /** Stream bytes the receiver accounted for (the whole stream). */
  streamBytes: number;
  wireBytes: number;
  warnings: string[];
}

/** A destination that holds browsable trees (a ferry target). */
export interface TreeDestination extends Destination {
  readonly kind: 'tree';
  /** The target path as serve resolved it. */
  readonly path: string;
  /** Partials from the last list() (fetched by it if list was never called). */
  partials(): Promise<PartialInfo[]>;
  /** Drop kept partials that can no longer be resumed. */
  discard(ids: string[]): Promise<string[]>;
  receive(req: ReceiveRequest, chunks: AsyncIterable<Buffer>, onWire?: (wireBytes: number) => void): Promise<ReceiveResult>;
}

export interface ConnectOptions {
  ssh?: SshOptions;
  /** The command that starts `ferry serve` (default: FERRY_REMOTE_COMMAND, else `ferry serve`; locally this build). */
  remoteCommand?: string;
  /** Ignore remoteCommand and FERRY_REMOTE_COMMAND (the local end of a pull runs this build). */
  defaultCommand?: boolean;
  signal?: AbortSignal;
}

export type Location = { kind: 'local'; path: string } | { kind: 'ssh'; dest: SshDest; path: string };

/** Could `s` be `[user@]host[:port]:/path`? (a colon before any slash) */
export function looksRemote(s: string): boolean {
  return /^[^/]+:/.test(s) && !s.startsWith('.');
}

/** Tell `[user@]host[:port]:/path` apart from a local path. */
export async function parseLocation(s: string): Promise<Location> {
  if (looksRemote(s)) {
    const { parseSshDest } = await import('../transport/ssh');
    const dest = parseSshDest(s);
    if (dest) return { kind: 'ssh', dest, path: dest.path };
  }
  return { kind: 'local', path: path.resolve(s) };
}

/** This build's CLI entry point (dist/src/cli/main.js), for the local serve. */
export function localMainJs(): string {
  const beside = path.resolve(__dirname, '..', 'cli', 'main.js');
  if (fs.existsSync(beside)) return beside;
  return path.resolve(__dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');
}

function serveCommand(loc: Location, o: ConnectOptions): string {
  const override = o.defaultCommand ? undefined : (o.remoteCommand ?? process.env.FERRY_REMOTE_COMMAND);
  if (override) return override;
  // `exec`: serve is then our direct child, reaped by us even when it is killed.
  return loc.kind === 'local' ? `exec ${shellJoin([process.execPath, localMainJs(), 'serve'])}` : 'ferry serve';
}

/** Start a serve session for `loc` and open it in `role`. */
export async function connectServe(loc: Location, role: 'target' | 'volume', o: ConnectOptions): Promise<{ session: ServeSession; path: string }> {
  let endpoint: Endpoint;
  if (loc.kind === 'local') endpoint = localEndpoint();
  else {
    const { connectSsh } = await import('../transport/ssh');
    endpoint = await connectSsh(loc.dest, o.ssh ?? {});
  }
  let session: ServeSession;
  try {
    session = await ServeSession.start({ endpoint, command: serveCommand(loc, o), ownsEndpoint: true, signal: o.signal });
  } catch (e) {
    endpoint.close();
    throw e;
  }
  try {
    const opened = await session.open(role, loc.path);
    return { session, path: opened.path };
  } catch (e) {
    session.close();
    throw e;
  }
}

// -------------------------------------------------------------- validation --

const isStr = (v: unknown): v is string => typeof v === 'string';

export function checkRemoteSnapshot(v: unknown): RemoteSnapshot {
  const x = v as RemoteSnapshot;
  if (
    !x ||
    typeof x !== 'object' ||
    !isStr(x.name) ||
    !isStr(x.uuid) ||
    !isStr(x.receivedUuid) ||
    !(x.parentUuid === null || isStr(x.parentUuid)) ||
    !isStr(x.ctransid) ||
    !/^\d+$/.test(x.ctransid) ||
    !isStr(x.receivedAt)
  ) {
    throw protocolError('snapshot entry is malformed');
  }
  return { name: x.name, uuid: x.uuid, receivedUuid: x.receivedUuid, parentUuid: x.parentUuid, ctransid: x.ctransid, receivedAt: x.receivedAt };
}

export function checkPartial(v: unknown): PartialInfo {
  const x = v as PartialInfo;
  if (
    !x ||
    typeof x !== 'object' ||
    !isStr(x.id) ||
    !isStr(x.name) ||
    !isStr(x.receivedUuid) ||
    !(x.parentUuid === null || isStr(x.parentUuid)) ||
    !isStr(x.ctransid) ||
    typeof x.appliedBytes !== 'number' ||
    !Number.isSafeInteger(x.appliedBytes) ||
    x.appliedBytes < 0 ||
    !isStr(x.prefixSha256)
  ) {
    throw protocolError('partial entry is malformed');
  }
  return { ...x };
}

function listOf<T>(v: unknown, what: string, f: (x: unknown) => T): T[] {
  if (!Array.isArray(v)) throw protocolError(`${what} is not a list`);
  return v.map(f);
}

// ------------------------------------------------------------- the target --

/** A ferry target reached through a serve session. */
export class ServeTarget implements TreeDestination {
  readonly kind = 'tree' as const;
  readonly describe: string;
  private lastPartials: PartialInfo[] | undefined;

  constructor(
    private readonly session: ServeSession,
    readonly path: string,
    describe: string,
  ) {
    this.describe = describe;
  }

  async list(): Promise<RemoteSnapshot[]> {
    const r = await this.session.request({ t: 'list' }, 'list');
    this.lastPartials = listOf(r.partials ?? [], 'list.partials', checkPartial);
    return listOf(r.snapshots, 'list.snapshots', checkRemoteSnapshot);
  }

  async partials(): Promise<PartialInfo[]> {
    if (!this.lastPartials) await this.list();
    return this.lastPartials!;
  }

  async held(): Promise<string[]> {
    const r = await this.session.request({ t: 'held' }, 'held');
    return listOf(r.uuids, 'held.uuids', (u) => {
      if (!isStr(u)) throw protocolError('held uuid is not a string');
      return u;
    });
  }

  async remove(names: string[]): Promise<void> {
    await this.session.request({ t: 'remove', names }, 'removed');
  }

  /** Drop kept partials that can no longer be resumed; returns the ids that existed. */
  async discard(ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const r = await this.session.request({ t: 'discard', ids }, 'discarded');
    this.lastPartials = this.lastPartials?.filter((p) => !ids.includes(p.id));
    return Array.isArray(r.ids) ? r.ids.filter(isStr) : [];
  }

  async receive(req: ReceiveRequest, chunks: AsyncIterable<Buffer>, onWire?: (wireBytes: number) => void): Promise<ReceiveResult> {
    await this.session.request({ t: 'receive', ...req }, 'ready');
    const { reply: m, wire } = await this.push(chunks, 'received', onWire);
    const snapshot = checkRemoteSnapshot(m.snapshot);
    if (snapshot.receivedUuid !== req.snapshot.uuid) throw protocolError('receiver acknowledged another snapshot', { expected: req.snapshot.uuid, got: snapshot.receivedUuid });
    const streamBytes = typeof m.streamBytes === 'number' ? m.streamBytes : 0;
    const warnings = Array.isArray(m.warnings) ? m.warnings.filter(isStr) : [];
    return { snapshot, streamBytes, wireBytes: wire, warnings };
  }

  /** Store the manifest (src/diff/manifest.ts bytes) of a received snapshot, by its received uuid, for `ferry verify`. */
  async storeManifest(receivedUuid: string, chunks: AsyncIterable<Buffer>): Promise<void> {
    await this.session.request({ t: 'store-manifest', uuid: receivedUuid }, 'ready');
    await this.push(chunks, 'stored');
  }

  /**
   * After `ready`: send the chunks as data frames, then `end`, and return
   * the reply of type `expect`. The reply may come early (the remote
   * failed): sending stops and its error is thrown. When this side fails,
   * the remote is told to abort and this side's error is thrown.
   */
  private async push(chunks: AsyncIterable<Buffer>, expect: string, onWire?: (wireBytes: number) => void): Promise<{ reply: Message; wire: number }> {
    const s = this.session;
    const st: { early?: { ok: Message } | { err: unknown } } = {};
    const reply = s.next().then(
      (f) => {
        if (f.kind === 'data') throw protocolError('data frame from the receiving side');
        st.early = { ok: f.message };
        return f.message;
      },
      (e) => {
        st.early = { err: e };
        throw e;
      },
    );
    reply.catch(() => undefined);
    let wire = 0;
    // Where a failure came from: the chunks (our source: a local stream, or a
    // remote volume when pulling) or the writes to this session.
    let failure: { from: 'source' | 'session'; error: unknown } | undefined;
    const it = chunks[Symbol.asyncIterator]();
    for (;;) {
      let r: IteratorResult<Buffer>;
      try {
        r = await it.next();
      } catch (e) {
        failure = { from: 'source', error: e };
        break;
      }
      if (r.done) break;
      if (st.early) {
        await it.return?.(undefined)?.catch(() => undefined);
        break;
      }
      try {
        await s.sendData(r.value);
      } catch (e) {
        failure = { from: 'session', error: e };
        await it.return?.(undefined)?.catch(() => undefined);
        break;
      }
      wire += r.value.length;
      onWire?.(wire);
    }
    if (failure) {
      if (failure.from === 'source' && !st.early) {
        // The receiving side is fine: ask it to drop the transfer (a partial stays resumable).
        const e = failure.error;
        try {
          await s.send({ t: 'abort', reason: e instanceof Error ? e.message : String(e) });
        } catch {
          /* this session is gone too; the source's failure is what matters */
        }
      }
      const verdict: unknown = await reply.then(
        (m) => m,
        (e) => e,
      );
      if (failure.from === 'session') {
        // Writing failed because the other side stopped: its own error explains better, if it sent one.
        if (verdict && typeof verdict === 'object' && (verdict as Message).t === 'error') s.check(verdict as Message, expect);
        if (verdict instanceof FerryError) throw verdict;
      }
      throw failure.error;
    }
    if (!st.early) await s.send({ t: 'end', wireBytes: wire });
    return { reply: s.check(await reply, expect), wire };
  }

  async close(): Promise<void> {
    try {
      await this.session.bye();
    } catch {
      this.session.close();
    }
  }
}

/** Open a destination: a ferry target (local or `[user@]host[:port]:/path`), or stream files. */
export async function openDestination(dest: string, o: ConnectOptions & { format?: 'tree' | 'stream' } = {}): Promise<Destination> {
  if (o.format === 'stream' || /\.btrfs-stream(\.zst)?$/.test(dest)) return openStreamFiles(dest, o);
  return openTreeDestination(dest, o);
}

export async function openTreeDestination(dest: string, o: ConnectOptions = {}): Promise<ServeTarget> {
  const loc = await parseLocation(dest);
  const { session, path: p } = await connectServe(loc, 'target', o);
  return new ServeTarget(session, p, loc.kind === 'local' ? p : dest);
}

async function openStreamFiles(dest: string, o: ConnectOptions & { format?: 'tree' | 'stream' }): Promise<Destination> {
  if (looksRemote(dest) && (await parseLocation(dest)).kind === 'ssh') {
    throw new FerryError('REPLICATE_DEST_INVALID', 'stream-file targets must be on this host', {
      context: { dest },
      hint: 'use a local directory or file for --format stream, or a ferry target over ssh',
    });
  }
  void o;
  const { StreamFileDestination } = await import('./stream-files');
  return new StreamFileDestination(dest);
}
