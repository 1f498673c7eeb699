/**
 * Encoder for btrfs send streams, versions 1 to 3.
 *
 * Owns: command framing, TLV layout in kernel attribute order, and the CRC.
 * Never touches the filesystem and never buffers more than one command: file
 * data is passed through as its own Buffer (no copy) next to the command head,
 * so a caller streams a file by encoding one WRITE per chunk (`splitWrite`).
 */
import { FerryError } from '../errors';
import { Cmd, Command, CommandAttrs } from '../model/command';
import { ATTR_SPECS, Attr, CMD_HEADER_BYTES, CMD_SPECS, FIXED_SIZE, MAGIC, MAX_DECODE_VERSION, MIN_VERSION, cmdName, maxWriteBytes } from './constants';
import { crc32cUpdate } from './crc32c';

const U16_MAX = 0xffff;

/** Attribute emission order per command: the kernel's, then any extras by number. */
const ORDER_CACHE = new Map<number, number[]>();
function attrOrder(cmd: number): number[] {
  let order = ORDER_CACHE.get(cmd);
  if (!order) {
    const spec = CMD_SPECS[cmd]!;
    const extras: number[] = [];
    for (let a = 1; a < ATTR_SPECS.length; a++) if (!spec.attrs.includes(a) && a !== Attr.DATA) extras.push(a);
    const known = spec.attrs.filter((a) => a !== Attr.DATA);
    order = [...known, ...extras, Attr.DATA];
    ORDER_CACHE.set(cmd, order);
  }
  return order;
}

export class StreamEncoder {
  readonly version: number;

  constructor(version: number) {
    if (!Number.isInteger(version) || version < MIN_VERSION || version > MAX_DECODE_VERSION) {
      throw new FerryError('USAGE', `cannot write stream version ${version}`, {
        hint: 'use --proto 1 or --proto 2',
      });
    }
    this.version = version;
  }

  /** The 17-byte stream header. */
  header(): Buffer {
    const b = Buffer.alloc(MAGIC.length + 4);
    MAGIC.copy(b, 0);
    b.writeUInt32LE(this.version, MAGIC.length);
    return b;
  }

  /**
   * Encode one command as [head] or [head, data]; write the parts in order.
   * `data` is the caller's buffer, not a copy.
   */
  encodeParts(command: Command): Buffer[] {
    const spec = CMD_SPECS[command.cmd];
    if (!spec) throw new FerryError('STREAM_ENCODE', `cannot encode unknown command ${command.cmd}`);
    const bag = command.attrs as Record<string, unknown>;
    const order = attrOrder(command.cmd);
    let headSize = CMD_HEADER_BYTES;
    let data: Buffer | undefined;
    for (const a of order) {
      const s = ATTR_SPECS[a]!;
      const v = bag[s.key];
      if (v === undefined) continue;
      if (a === Attr.DATA) {
        data = v as Buffer;
        headSize += this.version >= 2 ? 2 : 4;
        if (this.version < 2 && data.length > U16_MAX) this.tooLong(command, s.name, data.length);
        continue;
      }
      const fixed = FIXED_SIZE[s.kind];
      const vlen = fixed ?? (v as Buffer).length;
      if (vlen > U16_MAX) this.tooLong(command, s.name, vlen);
      headSize += 4 + vlen;
    }
    const payloadLen = headSize - CMD_HEADER_BYTES + (data ? data.length : 0);
    const head = Buffer.allocUnsafe(headSize);
    head.writeUInt32LE(payloadLen, 0);
    head.writeUInt16LE(command.cmd, 4);
    head.writeUInt32LE(0, 6);
    let pos = CMD_HEADER_BYTES;
    for (const a of order) {
      const s = ATTR_SPECS[a]!;
      const v = bag[s.key];
      if (v === undefined) continue;
      if (a === Attr.DATA) {
        pos = head.writeUInt16LE(a, pos);
        if (this.version < 2) pos = head.writeUInt16LE(data!.length, pos);
        continue;
      }
      pos = head.writeUInt16LE(a, pos);
      switch (s.kind) {
        case 'u8':
          pos = head.writeUInt16LE(1, pos);
          pos = head.writeUInt8(v as number, pos);
          break;
        case 'u32':
          pos = head.writeUInt16LE(4, pos);
          pos = head.writeUInt32LE(v as number, pos);
          break;
        case 'u64':
          pos = head.writeUInt16LE(8, pos);
          pos = head.writeBigUInt64LE(BigInt.asUintN(64, v as bigint), pos);
          break;
        case 'timespec': {
          const t = v as { sec: bigint; nsec: number };
          pos = head.writeUInt16LE(12, pos);
          pos = head.writeBigInt64LE(BigInt.asIntN(64, t.sec), pos);
          pos = head.writeUInt32LE(t.nsec, pos);
          break;
        }
        case 'uuid': {
          const u = v as Buffer;
          if (u.length !== 16) throw new FerryError('STREAM_ENCODE', `${s.name} must be 16 bytes, got ${u.length}`);
          pos = head.writeUInt16LE(16, pos);
          pos += u.copy(head, pos);
          break;
        }
        case 'bytes': {
          const b = v as Buffer;
          pos = head.writeUInt16LE(b.length, pos);
          pos += b.copy(head, pos);
          break;
        }
      }
    }
    let crc = crc32cUpdate(0, head);
    if (data) crc = crc32cUpdate(crc, data);
    head.writeUInt32LE(crc, 6);
    return data && data.length > 0 ? [head, data] : [head];
  }

  /** Encode one command into a single Buffer. */
  encode(command: Command): Buffer {
    const parts = this.encodeParts(command);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  private tooLong(command: Command, attr: string, len: number): never {
    throw new FerryError(
      'STREAM_ENCODE',
      `cannot encode ${cmdName(command.cmd)}: attribute ${attr} of ${len} bytes does not fit a 16-bit length in stream version ${this.version}`,
    );
  }
}

/**
 * WRITE commands for `data` at `offset`, each within the version's per-command
 * limit (48 KiB in v1, 128 KiB in v2), as the kernel splits them.
 */
export function* splitWrite(path: Buffer, offset: bigint, data: Buffer, version: number): Generator<Command> {
  const max = maxWriteBytes(version);
  for (let at = 0; at < data.length; at += max) {
    const attrs: CommandAttrs = { path, fileOffset: offset + BigInt(at), data: data.subarray(at, at + max) };
    yield { cmd: Cmd.WRITE, attrs };
  }
}

/** Encode a whole stream: header, the commands, and END if the caller did not send one. */
export async function* encodeStream(
  commands: AsyncIterable<Command> | Iterable<Command>,
  version: number,
): AsyncGenerator<Buffer> {
  const enc = new StreamEncoder(version);
  yield enc.header();
  let ended = false;
  for await (const c of commands) {
    if (ended) throw new FerryError('STREAM_ENCODE', 'command after END');
    for (const part of enc.encodeParts(c)) yield part;
    if (c.cmd === Cmd.END) ended = true;
  }
  if (!ended) yield enc.encode({ cmd: Cmd.END, attrs: {} });
}
