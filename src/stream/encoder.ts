/**
 * Encoder for btrfs send streams, versions 1 to 3.
 *
 * Owns: command framing, TLV layout in kernel attribute order, and the CRC.
 * Never touches the filesystem and never buffers more than one command: file
 * data is passed through as its own Buffer (no copy) next to the command head,
 * so a caller streams a file by encoding one WRITE per chunk (`splitWrite`).
 *
 * Attribute order: the command's attributes in kernel order (CMD_SPECS), then
 * any other attribute the bag carries by number, then DATA last. The hot path
 * visits only the command's own attributes and counts the bag's defined keys
 * to know there is nothing else; a bag with anything more (an attribute the
 * command does not define, or a key that is no attribute) takes the general
 * path over every attribute type. Both give the same bytes
 * (test/unit/stream/encoder.test.ts compares them with a reference encoder).
 *
 * Invariants: a head Buffer is never reused or written after it is returned;
 * every check (16-bit lengths, uuid size, u32 ranges) happens before any byte
 * of the command is written, in the same order on both paths.
 */
import { FerryError } from '../errors';
import { Cmd, Command, CommandAttrs } from '../model/command';
import { ATTR_SPECS, Attr, AttrKind, CMD_HEADER_BYTES, CMD_SPECS, FIXED_SIZE, MAGIC, MAX_DECODE_VERSION, MIN_VERSION, cmdName, maxWriteBytes } from './constants';
import { crc32cUpdate } from './crc32c';

const U16_MAX = 0xffff;

interface AttrPlan {
  num: number;
  key: string;
  name: string;
  kind: AttrKind;
  /** Value size for fixed kinds, -1 for bytes. */
  fixed: number;
}

const planOf = (a: number): AttrPlan => {
  const s = ATTR_SPECS[a]!;
  return { num: a, key: s.key, name: s.name, kind: s.kind, fixed: FIXED_SIZE[s.kind] ?? -1 };
};

/** Per command number: its attributes in kernel order, DATA left out (it always goes last). */
const KNOWN: ReadonlyArray<readonly AttrPlan[] | undefined> = CMD_SPECS.map((spec) =>
  spec ? spec.attrs.filter((a) => a !== Attr.DATA).map(planOf) : undefined,
);

/** Per command number: the kernel order, then every other attribute by number, DATA last (the general path). */
const FULL: ReadonlyArray<readonly AttrPlan[] | undefined> = CMD_SPECS.map((spec) => {
  if (!spec) return undefined;
  const extras: number[] = [];
  for (let a = 1; a < ATTR_SPECS.length; a++) if (!spec.attrs.includes(a) && a !== Attr.DATA) extras.push(a);
  const known = spec.attrs.filter((a) => a !== Attr.DATA);
  return [...known, ...extras].map(planOf);
});

const DATA_NAME = ATTR_SPECS[Attr.DATA]!.name;
const TWO32 = 4294967296;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

/** Little-endian u32 into b[o..o+4) with no checks (the caller checked the range). */
function put32(b: Buffer, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** A u64 attribute value: two's complement modulo 2^64, as writeBigUInt64LE(BigInt.asUintN(64, v)). */
function putU64(b: Buffer, o: number, v: bigint): void {
  if (typeof v === 'bigint' && v >= 0n && v <= MAX_SAFE) {
    const n = Number(v);
    const lo = n >>> 0;
    put32(b, o, lo);
    put32(b, o + 4, (n - lo) / TWO32);
  } else {
    b.writeBigUInt64LE(BigInt.asUintN(64, v), o);
  }
}

/** A timespec's seconds: signed, modulo 2^64, as writeBigInt64LE(BigInt.asIntN(64, v)). */
function putI64(b: Buffer, o: number, v: bigint): void {
  if (typeof v === 'bigint' && v >= MIN_SAFE && v <= MAX_SAFE) {
    const n = Number(v);
    const lo = n >>> 0;
    put32(b, o, lo);
    put32(b, o + 4, (n - lo) / TWO32);
  } else {
    b.writeBigInt64LE(BigInt.asIntN(64, v), o);
  }
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
    const known = KNOWN[command.cmd];
    if (!known) throw new FerryError('STREAM_ENCODE', `cannot encode unknown command ${command.cmd}`);
    const bag = command.attrs as Record<string, unknown>;
    // Sizes of the command's own attributes, and how many the bag has.
    let headSize = CMD_HEADER_BYTES;
    let present = 0;
    for (let i = 0; i < known.length; i++) {
      const s = known[i];
      const v = bag[s.key];
      if (v === undefined) continue;
      present++;
      const vlen = s.fixed >= 0 ? s.fixed : (v as Buffer).length;
      if (vlen > U16_MAX) this.tooLong(command, s.name, vlen);
      headSize += 4 + vlen;
    }
    const data = bag.data as Buffer | undefined;
    let defined = 0;
    for (const k in bag) if (bag[k] !== undefined) defined++;
    let order = known;
    if (defined !== present + (data === undefined ? 0 : 1)) {
      // Something beyond the command's own attributes: size the rest too.
      order = FULL[command.cmd]!;
      for (let i = known.length; i < order.length; i++) {
        const s = order[i];
        const v = bag[s.key];
        if (v === undefined) continue;
        const vlen = s.fixed >= 0 ? s.fixed : (v as Buffer).length;
        if (vlen > U16_MAX) this.tooLong(command, s.name, vlen);
        headSize += 4 + vlen;
      }
    }
    if (data !== undefined) {
      headSize += this.version >= 2 ? 2 : 4;
      if (this.version < 2 && data.length > U16_MAX) this.tooLong(command, DATA_NAME, data.length);
    }
    const payloadLen = headSize - CMD_HEADER_BYTES + (data ? data.length : 0);
    const head = Buffer.allocUnsafe(headSize);
    put32(head, 0, payloadLen);
    head[4] = command.cmd;
    head[5] = command.cmd >>> 8;
    put32(head, 6, 0);
    let pos = CMD_HEADER_BYTES;
    for (let i = 0; i < order.length; i++) {
      const s = order[i];
      const v = bag[s.key];
      if (v === undefined) continue;
      head[pos] = s.num;
      head[pos + 1] = 0;
      switch (s.kind) {
        case 'u8':
          head[pos + 2] = 1;
          head[pos + 3] = 0;
          pos = head.writeUInt8(v as number, pos + 4);
          break;
        case 'u32':
          head[pos + 2] = 4;
          head[pos + 3] = 0;
          pos = head.writeUInt32LE(v as number, pos + 4);
          break;
        case 'u64':
          head[pos + 2] = 8;
          head[pos + 3] = 0;
          putU64(head, pos + 4, v as bigint);
          pos += 12;
          break;
        case 'timespec': {
          const t = v as { sec: bigint; nsec: number };
          head[pos + 2] = 12;
          head[pos + 3] = 0;
          putI64(head, pos + 4, t.sec);
          const nsec = t.nsec;
          if (typeof nsec === 'number' && nsec >= 0 && nsec <= 0xffffffff) put32(head, pos + 12, nsec);
          else head.writeUInt32LE(nsec, pos + 12);
          pos += 16;
          break;
        }
        case 'uuid': {
          const u = v as Buffer;
          if (u.length !== 16) throw new FerryError('STREAM_ENCODE', `${s.name} must be 16 bytes, got ${u.length}`);
          head[pos + 2] = 16;
          head[pos + 3] = 0;
          pos += 4;
          pos += u.copy(head, pos);
          break;
        }
        case 'bytes': {
          const b = v as Buffer;
          head[pos + 2] = b.length;
          head[pos + 3] = b.length >>> 8;
          pos += 4;
          pos += b.copy(head, pos);
          break;
        }
      }
    }
    if (data !== undefined) {
      head[pos] = Attr.DATA;
      head[pos + 1] = 0;
      if (this.version < 2) {
        head[pos + 2] = data.length;
        head[pos + 3] = data.length >>> 8;
      }
    }
    let crc = crc32cUpdate(0, head);
    if (data) crc = crc32cUpdate(crc, data);
    put32(head, 6, crc);
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
