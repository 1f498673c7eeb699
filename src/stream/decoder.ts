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
import { crc32cUpdate } from './crc32c';

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

const ZERO_CRC = Buffer.alloc(4);
const PATH_ATTRS = new Set<number>([Attr.PATH, Attr.PATH_TO, Attr.PATH_LINK, Attr.CLONE_PATH]);

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
    if (this.buffered < CMD_HEADER_BYTES) return undefined;
    const hdrView = this.peek(CMD_HEADER_BYTES);
    const len = hdrView.readUInt32LE(0);
    const cmd = hdrView.readUInt16LE(4);
    const offset = this.consumed;
    const index = this.commandIndex + 1;
    if (len > this.limits.maxCommandBytes) {
      throw this.fail(
        'STREAM_TOO_LARGE',
        `command length ${len} exceeds the limit of ${this.limits.maxCommandBytes} bytes`,
        { command: index, cmd: cmdName(cmd), offset },
        'the stream is corrupt or hostile; nothing was allocated for it',
      );
    }
    if (this.buffered < CMD_HEADER_BYTES + len) return undefined;
    const hdr = Buffer.from(this.take(CMD_HEADER_BYTES));
    const payload = this.take(len);
    this.commandIndex = index;
    const storedCrc = hdr.readUInt32LE(6);
    hdr.set(ZERO_CRC, 6);
    const crc = crc32cUpdate(crc32cUpdate(0, hdr), payload);
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
    const attrs = this.parseAttrs(payload, index, offset, spec.name);
    for (const a of spec.required) {
      const as = ATTR_SPECS[a]!;
      if (attrs[as.key] === undefined) {
        throw this.fail('STREAM_MISSING_ATTRIBUTE', `${spec.name} lacks required attribute ${as.name}`, {
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
      length: CMD_HEADER_BYTES + len,
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

  private parseAttrs(p: Buffer, index: number, offset: number, name: string): CommandAttrs {
    const attrs: CommandAttrs = {};
    const bag = attrs as Record<string, unknown>;
    const len = p.length;
    let pos = 0;
    while (pos < len) {
      if (pos + 2 > len) this.badAttr('attribute header runs past the end of the command', index, offset, name);
      const type = p.readUInt16LE(pos);
      if (type === 0 || type > MAX_ATTR) this.badAttr(`invalid attribute type ${type}`, index, offset, name);
      const spec = ATTR_SPECS[type]!;
      let value: Buffer;
      if (type === Attr.DATA && this.version >= 2) {
        // v2+: DATA has no length and runs to the end of the command.
        value = p.subarray(pos + 2);
        pos = len;
      } else {
        if (pos + 4 > len) this.badAttr(`attribute ${spec.name} header is truncated`, index, offset, name);
        const vlen = p.readUInt16LE(pos + 2);
        if (pos + 4 + vlen > len) {
          this.badAttr(`attribute ${spec.name} length ${vlen} runs past the end of the command`, index, offset, name);
        }
        value = p.subarray(pos + 4, pos + 4 + vlen);
        pos += 4 + vlen;
      }
      const fixed = FIXED_SIZE[spec.kind];
      if (fixed !== undefined && value.length !== fixed) {
        this.badAttr(`attribute ${spec.name} has size ${value.length}, expected ${fixed}`, index, offset, name);
      }
      if (PATH_ATTRS.has(type) && value.length > this.limits.maxPathBytes) {
        throw this.fail(
          'STREAM_TOO_LARGE',
          `${spec.name} of ${value.length} bytes exceeds the limit of ${this.limits.maxPathBytes}`,
          { command: index, cmd: name, offset },
        );
      }
      if (type === Attr.XATTR_NAME && value.length > this.limits.maxXattrNameBytes) {
        throw this.fail(
          'STREAM_TOO_LARGE',
          `xattr name of ${value.length} bytes exceeds the limit of ${this.limits.maxXattrNameBytes}`,
          { command: index, cmd: name, offset },
        );
      }
      switch (spec.kind) {
        case 'u8':
          bag[spec.key] = value[0];
          break;
        case 'u32':
          bag[spec.key] = value.readUInt32LE(0);
          break;
        case 'u64':
          bag[spec.key] = value.readBigUInt64LE(0);
          break;
        case 'timespec':
          bag[spec.key] = { sec: value.readBigInt64LE(0), nsec: value.readUInt32LE(8) };
          break;
        case 'uuid':
        case 'bytes':
          bag[spec.key] = value;
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
