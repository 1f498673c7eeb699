/**
 * The control protocol between `ferry sync` and `ferry serve`: framing,
 * the preamble, message envelopes and errors, over any pair of byte streams
 * (a Channel's stdout/stdin, or serve's own stdin/stdout). The messages
 * themselves are written up in docs/replication.md ("Control protocol").
 *
 * Wire format:
 *   preamble  "ferry-control/1\n"   each side, once, before anything else
 *   frame     type u8 | length u32 BE | payload
 *             type 1 = message: one JSON object with a string field "t"
 *             type 2 = data: stream bytes, 1..MAX_DATA bytes
 *
 * Owns: reading and writing frames with backpressure (a frame is read from
 * the underlying stream only when asked for, and a write waits for drain),
 * bounds on every length before allocating, and turning a FerryError into a
 * JSON object and back (same code, summary, hint, context).
 *
 * Never: knows what the messages mean, touches the filesystem, or trusts a
 * length. Any malformed input is TRANSPORT_PROTOCOL; input that ends early
 * is reported by `next()` as an `eof` item for the caller to classify.
 */
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, exitCodeFor, FerryError } from '../errors';

export const CONTROL_VERSION = 1;
export const PREAMBLE = Buffer.from(`ferry-control/${CONTROL_VERSION}\n`);
/** Largest data frame payload written or accepted. */
export const MAX_DATA = 256 * 1024;
/** Largest message frame (catalog listings of many snapshots fit). */
export const MAX_MESSAGE = 8 * 1024 * 1024;

const T_MESSAGE = 1;
const T_DATA = 2;
const HEADER = 5;

export interface Message {
  t: string;
  [k: string]: unknown;
}

export type Incoming = { kind: 'message'; message: Message } | { kind: 'data'; data: Buffer } | { kind: 'eof'; partial: boolean };

export function protocolError(why: string, context: Record<string, string | number> = {}): FerryError {
  return new FerryError('TRANSPORT_PROTOCOL', `control protocol violated: ${why}`, {
    context,
    hint: 'both ends must run the same ferry version, and nothing else may write to the remote command\'s stdout (check shell startup files, or --remote-command)',
  });
}

/** Printable excerpt of unexpected bytes for an error message. */
export function showBytes(b: Buffer, max = 60): string {
  const s = b.subarray(0, max).toString('latin1');
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u00ff]/g, '.') + (b.length > max ? '…' : '');
}

/**
 * Pull-based reader: bytes are taken from `stream` only when a caller waits
 * for them, so a slow consumer stops the sender through the stream's own
 * backpressure.
 */
export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failed: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly stream: Readable) {
    const poke = () => {
      const w = this.wake;
      this.wake = undefined;
      w?.();
    };
    stream.on('readable', poke);
    stream.on('end', () => {
      this.ended = true;
      poke();
    });
    stream.on('close', () => {
      this.ended = true;
      poke();
    });
    stream.on('error', (e) => {
      this.failed = e;
      poke();
    });
  }

  /** Bytes buffered here but not yet consumed. */
  get pending(): number {
    return this.buffered;
  }

  /** Whatever is buffered now, up to max bytes, without waiting (for error messages). */
  takeBuffered(max: number): Buffer {
    for (let c = this.stream.read() as Buffer | null; c !== null && this.buffered < max; c = this.stream.read() as Buffer | null) {
      this.chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
      this.buffered += c.length;
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return all.subarray(0, max);
  }

  /** Exactly n bytes, or fewer (possibly 0) when the stream ended first. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n) {
      const c = this.stream.read() as Buffer | null;
      if (c !== null) {
        const b = Buffer.isBuffer(c) ? c : Buffer.from(c);
        this.chunks.push(b);
        this.buffered += b.length;
        continue;
      }
      if (this.ended || this.failed || this.stream.destroyed) break;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const take = Math.min(n, this.buffered);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, take);
    const rest = all.subarray(take);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

/** Serialised frame writes that wait for drain. */
export class FrameWriter {
  private queue: Promise<void> = Promise.resolve();
  private broken: Error | undefined;

  constructor(private readonly out: Writable) {
    out.on('error', (e) => {
      this.broken ??= e;
    });
  }

  message(m: Message): Promise<void> {
    const payload = Buffer.from(JSON.stringify(m), 'utf8');
    if (payload.length > MAX_MESSAGE) return Promise.reject(new FerryError('INTERNAL', `control message too large (${payload.length} bytes)`));
    return this.frame(T_MESSAGE, payload);
  }

  /** One data frame per MAX_DATA bytes. An empty buffer writes nothing. */
  async data(b: Buffer): Promise<void> {
    for (let off = 0; off < b.length; off += MAX_DATA) await this.frame(T_DATA, b.subarray(off, off + MAX_DATA));
  }

  preamble(): Promise<void> {
    return this.enqueue([PREAMBLE]);
  }

  private frame(type: number, payload: Buffer): Promise<void> {
    const h = Buffer.alloc(HEADER);
    h[0] = type;
    h.writeUInt32BE(payload.length, 1);
    return this.enqueue([h, payload]);
  }

  private enqueue(parts: Buffer[]): Promise<void> {
    const p = this.queue.then(() => this.write(parts));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async write(parts: Buffer[]): Promise<void> {
    for (const part of parts) {
      if (this.broken) throw this.broken;
      if (this.out.destroyed || this.out.writableEnded) throw Object.assign(new Error('channel closed'), { code: 'EPIPE' });
      if (!this.out.write(part)) {
        await new Promise<void>((resolve, reject) => {
          const done = (e?: Error) => {
            this.out.off('drain', ok);
            this.out.off('error', done);
            this.out.off('close', closed);
            if (e) reject(e);
            else resolve();
          };
          const ok = () => done();
          const closed = () => done(Object.assign(new Error('channel closed'), { code: 'EPIPE' }));
          this.out.once('drain', ok);
          this.out.once('error', done);
          this.out.once('close', closed);
        });
      }
    }
  }

  /** Finish the output (no more frames). */
  end(): void {
    this.queue = this.queue.then(() => {
      if (!this.out.destroyed && !this.out.writableEnded) this.out.end();
    });
  }
}

/** One end of a control connection. */
export class ControlPeer {
  readonly reader: ByteReader;
  readonly writer: FrameWriter;
  private preambleChecked = false;

  constructor(input: Readable, output: Writable) {
    this.reader = new ByteReader(input);
    this.writer = new FrameWriter(output);
  }

  /** Check the other side's preamble. Resolves false if the input ended first. */
  async expectPreamble(): Promise<boolean> {
    if (this.preambleChecked) return true;
    const got = await this.reader.read(PREAMBLE.length);
    if (got.length === 0) return false;
    if (!got.equals(PREAMBLE)) {
      const m = /^ferry-control\/(\d+)\n$/.exec(got.toString('latin1'));
      if (m) {
        throw new FerryError('TRANSPORT_PROTOCOL', `control protocol version mismatch: the other side speaks ${m[1]}, this ferry speaks ${CONTROL_VERSION}`, {
          hint: 'install the same ferry version on both hosts',
        });
      }
      // Show a little more of what came instead (a shell banner, an error message).
      await new Promise((r) => setTimeout(r, 50));
      throw protocolError('the other side did not start with the ferry preamble', { got: showBytes(Buffer.concat([got, this.reader.takeBuffered(64)])) });
    }
    this.preambleChecked = true;
    return true;
  }

  /** The next frame, or eof (`partial` when it ended inside a frame). */
  async next(): Promise<Incoming> {
    if (!this.preambleChecked && !(await this.expectPreamble())) return { kind: 'eof', partial: false };
    const h = await this.reader.read(HEADER);
    if (h.length === 0) return { kind: 'eof', partial: false };
    if (h.length < HEADER) return { kind: 'eof', partial: true };
    const type = h[0];
    const len = h.readUInt32BE(1);
    if (type === T_MESSAGE) {
      if (len === 0 || len > MAX_MESSAGE) throw protocolError(`message frame of ${len} bytes`, { limit: MAX_MESSAGE });
    } else if (type === T_DATA) {
      if (len === 0 || len > MAX_DATA) throw protocolError(`data frame of ${len} bytes`, { limit: MAX_DATA });
    } else {
      throw protocolError(`unknown frame type ${type}`, { header: showBytes(h) });
    }
    const payload = await this.reader.read(len);
    if (payload.length < len) return { kind: 'eof', partial: true };
    if (type === T_DATA) return { kind: 'data', data: payload };
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      throw protocolError('message frame is not JSON', { got: showBytes(payload) });
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as Message).t !== 'string') {
      throw protocolError('message has no type', { got: showBytes(payload) });
    }
    return { kind: 'message', message: parsed as Message };
  }

  send(m: Message): Promise<void> {
    return this.writer.message(m);
  }

  sendData(b: Buffer): Promise<void> {
    return this.writer.data(b);
  }
}

// ------------------------------------------------------------------ errors --

export interface WireError {
  code: string;
  summary: string;
  hint: string | null;
  retryable: boolean;
  context: Record<string, string | number>;
}

/** A local failure as the other side will see it. Non-FerryErrors are INTERNAL. */
export function errorToWire(e: unknown): WireError {
  if (e instanceof FerryError) {
    const context: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(e.context)) context[k] = typeof v === 'bigint' ? v.toString() : v;
    return { code: e.code, summary: e.summary, hint: e.hint ?? null, retryable: e.retryable, context };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'INTERNAL', summary: `internal error: ${err.message}`, hint: 'this is a bug in ferry; please report it with the remote\'s stderr', retryable: false, context: {} };
}

const isKnownCode = (c: string): c is ErrorCode => {
  try {
    return exitCodeFor(c as ErrorCode) !== undefined;
  } catch {
    return false;
  }
};

/** Rebuild the other side's error locally: same code, summary, hint and context, plus where it came from. */
export function errorFromWire(w: unknown, remote: string): FerryError {
  if (!w || typeof w !== 'object') return protocolError('error message without an error object');
  const x = w as Partial<WireError>;
  if (typeof x.code !== 'string' || typeof x.summary !== 'string') return protocolError('error object without code or summary');
  const context: Record<string, string | number> = {};
  if (x.context && typeof x.context === 'object') {
    for (const [k, v] of Object.entries(x.context)) if (typeof v === 'string' || typeof v === 'number') context[k] = v;
  }
  context.remote = remote;
  const hint = typeof x.hint === 'string' ? x.hint : undefined;
  if (!isKnownCode(x.code)) {
    return new FerryError('TRANSPORT_REMOTE_FAILED', `remote failed with an error this ferry does not know (${x.code}): ${x.summary}`, { context, hint });
  }
  return new FerryError(x.code, x.summary, { context, hint, retryable: x.retryable === true });
}

// ----------------------------------------------------------------- streams --

/**
 * Run `src` through a Transform (compression, decompression) as one
 * pipeline and yield what comes out. Stopping early tears the pipeline down.
 */
export async function* throughTransform(src: AsyncIterable<Buffer>, t: Transform): AsyncGenerator<Buffer> {
  let failure: unknown;
  const done = pipeline(Readable.from(src, { objectMode: false }), t).catch((e) => {
    failure = e;
  });
  let finished = false;
  try {
    for await (const c of t) yield c as Buffer;
    finished = true;
  } finally {
    if (!finished) t.destroy();
    await done;
  }
  if (failure) throw failure;
}
