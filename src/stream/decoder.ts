/**
 * Streaming decoder for btrfs send streams, versions 1 to 3.
 *
 * Owns: framing, CRC checks, TLV parsing and every length check. It never
 * touches the filesystem and trusts no length: a command's size is checked
 * against Limits before a byte of it is buffered beyond what arrived.
 *
 * Input may arrive split anywhere (byte by byte included). Concatenated
 * streams (several headers, each closed by END) are decoded one after the
 * other; `firstStreamOnly` stops after the first END as `btrfs receive
 * --dump` does. Every failure is a FerryError with a STREAM_* code naming the
 * byte offset and the 1-based command index.
 *
 * Hot path (measured by `npm run bench -- --suite codec`): a command that
 * lies inside one input chunk is checked and parsed where it is, with no
 * copy. Its CRC is computed over the header's first 6 bytes, 4 zero bytes and
 * the payload by continuing the register, instead of over a copy with the crc
 * field zeroed; fixed-size attributes are read in place; only variable-length
 * values (paths, names, file data) become Buffers, as views of the input. A
 * command split across chunks is gathered into one new Buffer first. Checks
 * and their order are the same on both paths. A command's header is read
 * and size-checked once, however many pushes its body takes. The decoder
 * never writes to its input.
 *
 * Resume mode (`resume`): the input starts at a command boundary inside a
 * stream whose header was read earlier (a resumed receive). The decoder
 * starts in the command state with that stream's version, reports offsets
 * from the given one and numbers commands on from the given index.
 */
import { FerryError, ErrorCode } from '../errors';
import { Cmd, Command, CommandAttrs } from '../model/command';
import { DEFAULT_LIMITS, Limits } from '../model/limits';
import {
  ATTR_SPECS,
  Attr,
  CMD_HEADER_BYTES,
  CMD_SPECS,
  FIXED_SIZE,
  MAGIC,
  MAX_ATTR,
  MAX_DECODE_VERSION,
  MIN_VERSION,
  STREAM_HEADER_BYTES,
  cmdName,
} from './constants';
import { crc32cUpdateRange, crc32cUpdateZeros } from './crc32c';

export interface HeaderItem {
  kind: 'header';
  version: number;
  /** Byte offset of the header in the whole input. */
  offset: number;
  /** 0-based position of this stream in a concatenation. */
  streamIndex: number;
}

export interface CommandItem extends Command {
  kind: 'command';
  /** Byte offset of the command header in the whole input. */
  offset: number;
  /** Header plus payload, in bytes. */
  length: number;
  /** 1-based ordinal of the command in the whole input. */
  index: number;
  streamIndex: number;
  version: number;
}

export type StreamItem = HeaderItem | CommandItem;

export interface DecoderOptions {
  limits?: Partial<Limits>;
  /** Stop after the first END and ignore what follows (`btrfs receive --dump`). */
  firstStreamOnly?: boolean;
  /** Start at a command boundary of an already-open stream (no header in the input). */
  resume?: DecoderResume;
}

export interface DecoderResume {
  /** The stream's version, from its header. */
  version: number;
  /** Byte offset of the first input byte in the original stream. */
  offset: number;
  /** Commands before that offset (the next one is numbered commandIndex + 1). */
  commandIndex: number;
}

/** Attribute kinds as small integers, for a switch on the hot path. */
const K_U8 = 0;
const K_U32 = 1;
const K_U64 = 2;
const K_UUID = 3;
const K_TIMESPEC = 4;
const K_BYTES = 5;
const KIND_CODE = { u8: K_U8, u32: K_U32, u64: K_U64, uuid: K_UUID, timespec: K_TIMESPEC, bytes: K_BYTES } as const;

/** Per attribute type (index = number; 0 and > MAX_ATTR are invalid): kind, bag key, fixed size (-1 = variable), name. */
const A_KIND = new Int8Array(MAX_ATTR + 1).fill(-1);
const A_FIXED = new Int32Array(MAX_ATTR + 1).fill(-1);
const A_KEY: string[] = new Array<string>(MAX_ATTR + 1).fill('');
const A_NAME: string[] = new Array<string>(MAX_ATTR + 1).fill('');
/** 1 for attributes held to maxPathBytes, 2 for the one held to maxXattrNameBytes. */
const A_LIMIT = new Int8Array(MAX_ATTR + 1);
for (let t = 1; t <= MAX_ATTR; t++) {
  const s = ATTR_SPECS[t]!;
  A_KIND[t] = KIND_CODE[s.kind];
  A_FIXED[t] = FIXED_SIZE[s.kind] ?? -1;
  A_KEY[t] = s.key;
  A_NAME[t] = s.name;
}
for (const t of [Attr.PATH, Attr.PATH_TO, Attr.PATH_LINK, Attr.CLONE_PATH]) A_LIMIT[t] = 1;
A_LIMIT[Attr.XATTR_NAME] = 2;

/** Per command number: the bag keys and names of its required attributes, in spec order. */
const REQUIRED: ReadonlyArray<{ keys: string[]; names: string[] } | undefined> = CMD_SPECS.map((spec) =>
  spec ? { keys: spec.required.map((a) => ATTR_SPECS[a]!.key), names: spec.required.map((a) => ATTR_SPECS[a]!.name) } : undefined,
);

const TWO32 = 4294967296;

/** Unsigned little-endian u64 at b[o]; one BigInt allocation when the value fits 53 bits. */
function readU64(b: Buffer, o: number): bigint {
  const lo = (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
  const hi = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16)) + b[o + 7] * 0x1000000;
  return hi < 0x200000 ? BigInt(hi * TWO32 + lo) : (BigInt(hi) << 32n) + BigInt(lo);
}

/** Signed (two's complement) little-endian i64 at b[o]. */
function readI64(b: Buffer, o: number): bigint {
  const lo = (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
  const hi = b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24);
  return hi < 0x200000 && hi >= -0x200000 ? BigInt(hi * TWO32 + lo) : (BigInt(hi) << 32n) + BigInt(lo);
}

function readU32(b: Buffer, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

type State = 'header' | 'command' | 'done';

export class StreamDecoder {
  private readonly limits: Limits;
  private readonly firstStreamOnly: boolean;
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private buffered = 0;
  /** Bytes consumed from the input so far. */
  private consumed = 0;
  private state: State = 'header';
  private version = 0;
  private streamIndex = -1;
  private commandIndex = 0;
  private expectFirstCommand = false;
  private streamsEnded = 0;
  /** Header plus payload of the command whose header was read and passed the size check; -1 if none. */
  private pending = -1;
  /** Where `span` put the command it returned. */
  private spanStart = 0;

  constructor(opts: DecoderOptions = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.firstStreamOnly = opts.firstStreamOnly ?? false;
    const r = opts.resume;
    if (r) {
      if (r.version < MIN_VERSION || r.version > MAX_DECODE_VERSION || !Number.isSafeInteger(r.offset) || r.offset < STREAM_HEADER_BYTES) {
        throw new FerryError('STREAM_BAD_VERSION', `cannot resume a version ${r.version} stream at byte ${r.offset}`, {
          context: { offset: r.offset },
        });
      }
      this.state = 'command';
      this.version = r.version;
      this.consumed = r.offset;
      this.commandIndex = r.commandIndex;
      this.streamIndex = 0;
    }
  }

  /** True once the input is complete as far as the decoder is concerned. */
  get finished(): boolean {
    return this.state === 'done';
  }

  /** Bytes of input consumed by complete items so far. */
  get offset(): number {
    return this.consumed;
  }

  /** Feed a chunk; returns every item it completes. */
  push(chunk: Uint8Array): StreamItem[] {
    const out: StreamItem[] = [];
    if (this.state === 'done' || chunk.length === 0) return out;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.chunks.push(buf);
    this.buffered += buf.length;
    for (;;) {
      const item = this.next();
      if (!item) break;
      out.push(item);
    }
    return out;
  }

  /** Declare the end of input; throws if the stream is incomplete. */
  end(): void {
    if (this.state === 'done') return;
    if (this.state === 'header' && this.buffered === 0) {
      if (this.streamsEnded > 0) {
        this.state = 'done';
        return;
      }
      throw this.fail('STREAM_EMPTY', 'stream is empty', { offset: this.consumed }, 'no stream header was received');
    }
    const where =
      this.state === 'header'
        ? 'inside a stream header'
        : this.buffered === 0
          ? 'without an END command'
          : this.buffered < CMD_HEADER_BYTES
            ? 'inside a command header'
            : 'inside a command';
    throw this.fail(
      'STREAM_TRUNCATED',
      `stream is truncated: it ends ${where}`,
      { offset: this.consumed + this.buffered, command: this.commandIndex + 1 },
      'the sender was interrupted or the file is incomplete; send it again',
    );
  }

  private next(): StreamItem | undefined {
    if (this.state === 'header') return this.readHeader();
    if (this.state === 'command') return this.readCommand();
    return undefined;
  }

  private readHeader(): HeaderItem | undefined {
    if (this.buffered < STREAM_HEADER_BYTES) {
      // Check the magic as early as possible so garbage fails fast.
      const have = this.peek(Math.min(this.buffered, MAGIC.length));
      if (!have.equals(MAGIC.subarray(0, have.length))) this.badMagic();
      return undefined;
    }
    const offset = this.consumed;
    const hdr = this.take(STREAM_HEADER_BYTES);
    if (!hdr.subarray(0, MAGIC.length).equals(MAGIC)) this.badMagic();
    const version = hdr.readUInt32LE(MAGIC.length);
    if (version < MIN_VERSION || version > MAX_DECODE_VERSION) {
      throw this.fail(
        'STREAM_BAD_VERSION',
        `stream version ${version} is not supported (this ferry reads ${MIN_VERSION} to ${MAX_DECODE_VERSION})`,
        { offset },
        'upgrade ferry on the receiving side, or send with --proto 1',
      );
    }
    this.version = version;
    this.streamIndex++;
    this.state = 'command';
    this.expectFirstCommand = true;
    return { kind: 'header', version, offset, streamIndex: this.streamIndex };
  }

  private badMagic(): never {
    throw this.fail(
      'STREAM_BAD_MAGIC',
      'not a btrfs send stream: bad magic',
      { offset: this.consumed },
      'the input does not start with "btrfs-stream"; is it compressed or a different format?',
    );
  }

  private readCommand(): CommandItem | undefined {
    if (this.pending < 0) {
      if (this.buffered < CMD_HEADER_BYTES) return undefined;
      const len = this.peekU32(0);
      if (len > this.limits.maxCommandBytes) {
        const cmd = this.peekU16(4);
        throw this.fail(
          'STREAM_TOO_LARGE',
          `command length ${len} exceeds the limit of ${this.limits.maxCommandBytes} bytes`,
          { command: this.commandIndex + 1, cmd: cmdName(cmd), offset: this.consumed },
          'the stream is corrupt or hostile; nothing was allocated for it',
        );
      }
      this.pending = CMD_HEADER_BYTES + len;
    }
    const total = this.pending;
    if (this.buffered < total) return undefined;
    this.pending = -1;
    const offset = this.consumed;
    const index = this.commandIndex + 1;
    const b = this.span(total);
    const at = this.spanStart;
    const end = at + total;
    this.commandIndex = index;
    const cmd = b[at + 4] | (b[at + 5] << 8);
    const storedCrc = readU32(b, at + 6);
    // crc over the header with a zeroed crc field, then the payload: no copy.
    let crc = crc32cUpdateRange(0, b, at, at + 6);
    crc = crc32cUpdateZeros(crc, 4);
    crc = crc32cUpdateRange(crc, b, at + CMD_HEADER_BYTES, end);
    if (crc !== storedCrc) {
      throw this.fail(
        'STREAM_BAD_CRC',
        `crc mismatch in command (stored 0x${hex32(storedCrc)}, computed 0x${hex32(crc)})`,
        { command: index, cmd: cmdName(cmd), offset },
        'the stream was damaged in transit or on disk',
      );
    }
    const spec = CMD_SPECS[cmd];
    if (!spec) {
      throw this.fail(
        'STREAM_UNKNOWN_COMMAND',
        `unknown command number ${cmd}`,
        { command: index, offset },
        'the stream comes from a newer or vendor-patched btrfs; ferry does not skip commands it does not understand',
      );
    }
    if (this.expectFirstCommand && cmd !== Cmd.SUBVOL && cmd !== Cmd.SNAPSHOT) {
      throw this.fail(
        'STREAM_BAD_ORDER',
        `stream must start with subvol or snapshot, found ${spec.name}`,
        { command: index, offset },
      );
    }
    this.expectFirstCommand = false;
    const attrs = this.parseAttrs(b, at + CMD_HEADER_BYTES, end, index, offset, spec.name);
    const bag = attrs as Record<string, unknown>;
    const req = REQUIRED[cmd]!;
    for (let i = 0; i < req.keys.length; i++) {
      if (bag[req.keys[i]] === undefined) {
        throw this.fail('STREAM_MISSING_ATTRIBUTE', `${spec.name} lacks required attribute ${req.names[i]}`, {
          command: index,
          offset,
        });
      }
    }
    const item: CommandItem = {
      kind: 'command',
      cmd: spec.num,
      attrs,
      offset,
      length: total,
      index,
      streamIndex: this.streamIndex,
      version: this.version,
    };
    if (cmd === Cmd.END) {
      this.streamsEnded++;
      this.state = this.firstStreamOnly ? 'done' : 'header';
      if (this.firstStreamOnly) this.release();
    }
    return item;
  }

  /** Parse the TLVs in p[pos, len) (absolute positions in p). */
  private parseAttrs(p: Buffer, pos: number, len: number, index: number, offset: number, name: string): CommandAttrs {
    const attrs: CommandAttrs = {};
    const bag = attrs as Record<string, unknown>;
    const v2 = this.version >= 2;
    while (pos < len) {
      if (pos + 2 > len) this.badAttr('attribute header runs past the end of the command', index, offset, name);
      const type = p[pos] | (p[pos + 1] << 8);
      if (type === 0 || type > MAX_ATTR) this.badAttr(`invalid attribute type ${type}`, index, offset, name);
      let at: number;
      let vlen: number;
      if (type === Attr.DATA && v2) {
        // v2+: DATA has no length and runs to the end of the command.
        at = pos + 2;
        vlen = len - at;
        pos = len;
      } else {
        if (pos + 4 > len) this.badAttr(`attribute ${A_NAME[type]} header is truncated`, index, offset, name);
        vlen = p[pos + 2] | (p[pos + 3] << 8);
        if (pos + 4 + vlen > len) {
          this.badAttr(`attribute ${A_NAME[type]} length ${vlen} runs past the end of the command`, index, offset, name);
        }
        at = pos + 4;
        pos = at + vlen;
      }
      const fixed = A_FIXED[type];
      if (fixed >= 0 && vlen !== fixed) {
        this.badAttr(`attribute ${A_NAME[type]} has size ${vlen}, expected ${fixed}`, index, offset, name);
      }
      const limit = A_LIMIT[type];
      if (limit === 1 && vlen > this.limits.maxPathBytes) {
        throw this.fail(
          'STREAM_TOO_LARGE',
          `${A_NAME[type]} of ${vlen} bytes exceeds the limit of ${this.limits.maxPathBytes}`,
          { command: index, cmd: name, offset },
        );
      }
      if (limit === 2 && vlen > this.limits.maxXattrNameBytes) {
        throw this.fail(
          'STREAM_TOO_LARGE',
          `xattr name of ${vlen} bytes exceeds the limit of ${this.limits.maxXattrNameBytes}`,
          { command: index, cmd: name, offset },
        );
      }
      switch (A_KIND[type]) {
        case K_U8:
          bag[A_KEY[type]] = p[at];
          break;
        case K_U32:
          bag[A_KEY[type]] = readU32(p, at);
          break;
        case K_U64:
          bag[A_KEY[type]] = readU64(p, at);
          break;
        case K_TIMESPEC:
          bag[A_KEY[type]] = { sec: readI64(p, at), nsec: readU32(p, at + 8) };
          break;
        default:
          // uuid and bytes: a view of the input, not a copy.
          bag[A_KEY[type]] = p.subarray(at, at + vlen);
          break;
      }
    }
    return attrs;
  }

  private badAttr(why: string, index: number, offset: number, name: string): never {
    throw this.fail('STREAM_BAD_ATTRIBUTE', why, { command: index, cmd: name, offset });
  }

  private fail(
    code: ErrorCode,
    why: string,
    context: Record<string, string | number>,
    hint = 'nothing from this stream can be trusted',
  ): FerryError {
    this.state = 'done';
    this.release();
    return new FerryError(code, `stream rejected: ${why}`, { context, hint });
  }

  private release(): void {
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    this.pending = -1;
  }

  /** Buffered byte i (i < buffered), wherever it lies. */
  private byteAt(i: number): number {
    let k = this.head + i;
    let ci = 0;
    while (k >= this.chunks[ci].length) {
      k -= this.chunks[ci].length;
      ci++;
    }
    return this.chunks[ci][k];
  }

  /** u16 LE at buffered byte i (i + 2 <= buffered), without consuming. */
  private peekU16(i: number): number {
    return this.byteAt(i) | (this.byteAt(i + 1) << 8);
  }

  /** u32 LE at buffered byte i (i + 4 <= buffered), without consuming. */
  private peekU32(i: number): number {
    const first = this.chunks[0];
    if (first.length - this.head >= i + 4) return readU32(first, this.head + i);
    return (this.byteAt(i) | (this.byteAt(i + 1) << 8) | (this.byteAt(i + 2) << 16)) + this.byteAt(i + 3) * 0x1000000;
  }

  /**
   * Consume n buffered bytes (n <= buffered) and return a Buffer holding them
   * from `this.spanStart`: the input chunk itself when they lie in one (no
   * copy), else a new Buffer of exactly n bytes.
   */
  private span(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length - this.head >= n) {
      out = first;
      this.spanStart = this.head;
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
    } else {
      out = this.gather(n, true);
      this.spanStart = 0;
    }
    this.buffered -= n;
    this.consumed += n;
    return out;
  }

  /** Look at the next n buffered bytes without consuming them (n <= buffered). */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.gather(n, false);
  }

  /** Consume n buffered bytes (n <= buffered); zero-copy when they lie in one chunk. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first && first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
    } else {
      out = this.gather(n, true);
    }
    this.buffered -= n;
    this.consumed += n;
    return out;
  }

  private gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let ci = 0;
    let h = this.head;
    while (filled < n) {
      const c = this.chunks[ci];
      const k = Math.min(c.length - h, n - filled);
      c.copy(out, filled, h, h + k);
      filled += k;
      h += k;
      if (h === c.length) {
        ci++;
        h = 0;
      }
    }
    if (consume) {
      this.chunks.splice(0, ci);
      this.head = h;
    }
    return out;
  }
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * Decode a whole input, yielding items as they complete. Works on a Node
 * Readable or any async iterable of byte chunks.
 */
export async function* decodeStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: DecoderOptions = {},
): AsyncGenerator<StreamItem> {
  const dec = new StreamDecoder(opts);
  for await (const chunk of source) {
    for (const item of dec.push(chunk)) yield item;
    if (dec.finished) return;
  }
  dec.end();
}
