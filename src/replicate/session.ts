/**
 * The client end of one `ferry serve` session: start the command on an
 * Endpoint, exchange preambles and hello, open a target or a volume, and
 * make request/reply calls. destination.ts (remote targets) and source.ts
 * (remote volumes, pull mode) are built on it.
 *
 * Owns: classifying a session that ends early (TRANSPORT_REMOTE_FAILED, or
 * SSH_DISCONNECTED when an ssh connection dropped; both retryable) with the
 * remote's exit status and the tail of its stderr, rethrowing the remote's
 * errors with their own code, and tearing the channel down on close/abort.
 *
 * Never: interprets catalog or snapshot contents (callers validate what they
 * use), or leaves a channel open after close().
 */
import { FerryError } from '../errors';
import { Channel, ChannelExit, Endpoint } from '../transport/channel';
import { ControlPeer, errorFromWire, Incoming, Message, protocolError } from '../transport/control';

export const SERVE_VERSION = 1;
const STDERR_KEEP = 4096;

export interface SessionOptions {
  endpoint: Endpoint;
  /** The command line that starts `ferry serve` there. */
  command: string;
  /** Close the endpoint too when the session closes. */
  ownsEndpoint?: boolean;
  signal?: AbortSignal;
}

export interface OpenResult {
  path: string;
  features: string[];
}

export class ServeSession {
  readonly describe: string;
  private readonly peer: ControlPeer;
  private stderrTail = '';
  private closed = false;
  private readonly onAbort: () => void;
  features: string[] = [];

  private constructor(
    private readonly endpoint: Endpoint,
    private readonly channel: Channel,
    private readonly opts: SessionOptions,
  ) {
    this.describe = endpoint.describe;
    this.peer = new ControlPeer(channel.input, channel.output);
    channel.stderr.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-STDERR_KEEP);
    });
    channel.stderr.on('error', () => undefined);
    this.onAbort = () => this.close();
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Start `command` on the endpoint and say hello. */
  static async start(opts: SessionOptions): Promise<ServeSession> {
    if (opts.signal?.aborted) throw interrupted();
    const channel = await opts.endpoint.exec(opts.command);
    const s = new ServeSession(opts.endpoint, channel, opts);
    try {
      await s.peer.writer.preamble().catch(async (e: unknown) => {
        throw e instanceof FerryError ? e : await s.ended(e);
      });
      const hello = await s.request({ t: 'hello', version: SERVE_VERSION }, 'hello');
      s.features = Array.isArray(hello.features) ? hello.features.filter((f): f is string => typeof f === 'string') : [];
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /** Open the target (receive side) or volume (send side) this session works on. */
  async open(role: 'target' | 'volume', path: string): Promise<OpenResult> {
    const r = await this.request({ t: 'open', role, path }, 'opened');
    if (typeof r.path !== 'string') throw protocolError('opened without a path');
    return { path: r.path, features: this.features };
  }

  /** Send a message and wait for the reply of type `expect` (a remote error is rethrown). */
  async request(m: Message, expect: string): Promise<Message> {
    await this.send(m);
    return this.expect(expect);
  }

  async send(m: Message): Promise<void> {
    try {
      await this.peer.send(m);
    } catch (e) {
      if (e instanceof FerryError) throw e;
      throw await this.ended(e);
    }
  }

  async sendData(b: Buffer): Promise<void> {
    try {
      await this.peer.sendData(b);
    } catch (e) {
      if (e instanceof FerryError) throw e;
      throw await this.ended(e);
    }
  }

  /** The next frame; eof becomes the classified failure. */
  async next(): Promise<Exclude<Incoming, { kind: 'eof' }>> {
    let f: Incoming;
    try {
      f = await this.peer.next();
    } catch (e) {
      if (e instanceof FerryError) throw e;
      throw await this.ended(e);
    }
    if (f.kind === 'eof') throw await this.ended();
    return f;
  }

  /** The next message, which must be `expect` (or an error, rethrown). */
  async expect(expect: string): Promise<Message> {
    const f = await this.next();
    if (f.kind === 'data') throw protocolError(`data frame where a ${expect} message was expected`);
    return this.check(f.message, expect);
  }

  /** Rethrow an error message; refuse a message of another type. */
  check(m: Message, expect: string): Message {
    if (m.t === 'error') throw errorFromWire(m.error, this.describe);
    if (m.t !== expect) throw protocolError(`expected a ${expect} message, got ${JSON.stringify(m.t)}`);
    return m;
  }

  /** The session ended early: why, as well as can be told. */
  async ended(cause?: unknown): Promise<FerryError> {
    if (this.opts.signal?.aborted) return interrupted();
    const exit = await Promise.race([this.channel.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref())]);
    const stderr = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    const context: Record<string, string | number> = { remote: this.describe };
    if (exit?.code !== undefined && exit.code !== null) context.exit = exit.code;
    if (exit?.signal) context.signal = exit.signal;
    if (stderr) context.stderr = stderr;
    if (this.describe !== 'local' && (!exit || (exit.code === null && exit.signal === null))) {
      return new FerryError('SSH_DISCONNECTED', 'ssh connection lost during the transfer', {
        context,
        hint: 'run the same command again: it resumes where the receiver stopped',
        retryable: true,
        cause,
      });
    }
    const notFound = exit?.code === 127;
    return new FerryError('TRANSPORT_REMOTE_FAILED', `remote ferry serve ended unexpectedly${describeExit(exit)}`, {
      context,
      hint: notFound
        ? 'ferry was not found on the remote host: install it, or point --remote-command (FERRY_REMOTE_COMMAND) at it'
        : 'run the same command again: it resumes where the receiver stopped',
      retryable: !notFound,
      cause,
    });
  }

  /** Say goodbye and wait for the remote to exit (bounded). */
  async bye(): Promise<void> {
    if (this.closed) return;
    try {
      await this.request({ t: 'bye' }, 'bye');
      this.peer.writer.end();
      await Promise.race([this.channel.done, new Promise((r) => setTimeout(r, 5000).unref())]);
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.channel.close();
    if (this.opts.ownsEndpoint) this.endpoint.close();
  }
}

function describeExit(exit: ChannelExit | undefined): string {
  if (!exit) return '';
  if (exit.signal) return ` (killed by ${exit.signal})`;
  if (exit.code !== null) return ` (exit code ${exit.code})`;
  return '';
}

export function interrupted(): FerryError {
  return new FerryError('TRANSPORT_REMOTE_FAILED', 'sync interrupted', {
    hint: 'run the same command again: it resumes where the receiver stopped',
    retryable: true,
  });
}
