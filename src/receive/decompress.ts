/**
 * Decoding of btrfs encoded extents (the DATA of ENCODED_WRITE), no I/O.
 *
 * Owns: turning one encoded extent into its plain bytes for the receiver's
 * decompress + pwrite path: zlib (one zlib stream), zstd (one frame) and
 * btrfs' own LZO framing (per-sector segments of LZO1X data, decoded by the
 * bounds-checked LZO1X decompressor below).
 *
 * Must never: touch the filesystem, trust a length from the data, allocate
 * more than the extent's unencoded length, or read or write outside a
 * buffer. Corrupt input throws a plain Error whose message says what was
 * wrong; the caller maps it to its own error code.
 *
 * Invariants: the result is exactly `unencodedLen` bytes; when the data
 * decodes to fewer (btrfs compresses only up to i_size, so the tail of the
 * last sector is missing) the rest is zero. Decoding to more is refused.
 * Trailing bytes after the zlib stream, the zstd frame or the LZO data must
 * be zero (btrfs pads the compressed extent to a sector with zeros).
 */
import * as zlib from 'node:zlib';
import { loadZstd, scanZstdFrame, zstdCodec, ZSTD_MAX_DECOMPRESS_OUTPUT } from '../transport/codec';

/** `BTRFS_ENCODED_IO_COMPRESSION_*`: none, zlib, zstd, lzo with 4K..64K sectors. */
export type EncodedCompression = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;
export const EncodedCompression = {
  NONE: 0,
  ZLIB: 1,
  ZSTD: 2,
  LZO_4K: 3,
  LZO_8K: 4,
  LZO_16K: 5,
  LZO_32K: 6,
  LZO_64K: 7,
} as const;

/**
 * Hard ceiling on unencodedLen, whatever the caller allows. btrfs never
 * produces an extent over 128 KiB (BTRFS_MAX_UNCOMPRESSED); this leaves room
 * for other writers without letting a length field ask for gigabytes, and
 * matches the largest output the zstd codec will size.
 */
export const MAX_UNENCODED_LEN = ZSTD_MAX_DECOMPRESS_OUTPUT;

/** Load the zstd codec; call once before decoding zstd extents. */
export async function initDecompressors(): Promise<void> {
  await loadZstd();
}

/**
 * Decode one btrfs encoded extent. `unencodedLen` is the size of the whole
 * decompressed extent (UNENCODED_LEN); at most that much is allocated and
 * exactly that much is returned. `encryption` is the ENCRYPTION attribute;
 * only 0 (none) is supported.
 */
export function decodeExtent(data: Buffer, compression: number, unencodedLen: number, encryption = 0): Buffer {
  if (encryption !== 0) {
    throw new Error(`encoded extent refused: encryption ${encryption} is not supported`);
  }
  if (!Number.isSafeInteger(unencodedLen) || unencodedLen < 0 || unencodedLen > MAX_UNENCODED_LEN) {
    throw new Error(`encoded extent refused: unencoded length ${unencodedLen} outside 0..${MAX_UNENCODED_LEN}`);
  }
  switch (compression) {
    case EncodedCompression.NONE:
      return decodeNone(data, unencodedLen);
    case EncodedCompression.ZLIB:
      return decodeZlib(data, unencodedLen);
    case EncodedCompression.ZSTD:
      return decodeZstd(data, unencodedLen);
    case EncodedCompression.LZO_4K:
    case EncodedCompression.LZO_8K:
    case EncodedCompression.LZO_16K:
    case EncodedCompression.LZO_32K:
    case EncodedCompression.LZO_64K:
      return decodeBtrfsLzo(data, unencodedLen, 4096 << (compression - EncodedCompression.LZO_4K));
    default:
      throw new Error(`encoded extent refused: unknown compression ${compression}`);
  }
}

function decodeNone(data: Buffer, unencodedLen: number): Buffer {
  if (data.length > unencodedLen) {
    throw new Error(`encoded extent corrupt: ${data.length} bytes of data for an extent of ${unencodedLen}`);
  }
  return fitTo(data, unencodedLen);
}

/** `out` if it is already `len` bytes, else a zero-filled copy of that length. */
function fitTo(out: Buffer, len: number): Buffer {
  if (out.length === len) return out;
  const full = Buffer.alloc(len);
  out.copy(full);
  return full;
}

function checkZeroTail(data: Uint8Array, from: number, what: string): void {
  for (let i = from; i < data.length; i++) {
    if (data[i] !== 0) {
      throw new Error(`encoded extent corrupt: non-zero byte after the ${what} (at ${i} of ${data.length})`);
    }
  }
}

// ------------------------------------------------------------------ zlib --

interface InflateInfo {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

function decodeZlib(data: Buffer, unencodedLen: number): Buffer {
  let res: InflateInfo;
  try {
    // Z_FINISH (the default) makes a truncated stream an error; inflate stops
    // at the end of the stream and reports how much input it used, so the
    // sector padding is checked below rather than fed to zlib.
    res = zlib.inflateSync(data, {
      info: true,
      maxOutputLength: Math.max(unencodedLen, 1),
    } as zlib.ZlibOptions) as unknown as InflateInfo;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new Error(`encoded extent corrupt: zlib data decodes to more than ${unencodedLen} bytes`);
    }
    throw new Error(`encoded extent corrupt: zlib: ${err.message}`);
  }
  if (res.buffer.length > unencodedLen) {
    throw new Error(`encoded extent corrupt: zlib data decodes to more than ${unencodedLen} bytes`);
  }
  checkZeroTail(data, res.engine.bytesWritten, 'zlib stream');
  return fitTo(res.buffer, unencodedLen);
}

// ------------------------------------------------------------------ zstd --

function decodeZstd(data: Buffer, unencodedLen: number): Buffer {
  let out: Buffer;
  try {
    // Skippable frames may precede the data frame (btrfs writes none).
    let pos = 0;
    let info = scanZstdFrame(data, pos);
    while (info.skippable) {
      pos += info.length;
      info = scanZstdFrame(data, pos);
    }
    const frameEnd = pos + info.length;
    // After the frame: skippable frames, then the zero padding to the sector.
    let tail = frameEnd;
    while (tail + 4 <= data.length && isSkippableMagic(data, tail)) {
      tail += scanZstdFrame(data, tail).length;
    }
    checkZeroTail(data, tail, 'zstd frame');
    if (info.contentSize !== null && info.contentSize > unencodedLen) {
      throw new Error(`frame content size ${info.contentSize} over the extent size ${unencodedLen}`);
    }
    out = zstdCodec().decompress(data.subarray(pos, frameEnd), unencodedLen);
  } catch (e) {
    const msg = (e as Error).message;
    // Not loaded / aborted are the caller's problem, not the data's.
    if (msg.startsWith('encoded extent') || msg.startsWith('zstd codec')) throw e;
    throw new Error(`encoded extent corrupt: ${msg}`);
  }
  return fitTo(out, unencodedLen);
}

function isSkippableMagic(b: Uint8Array, pos: number): boolean {
  return b[pos + 1] === 0x2a && b[pos + 2] === 0x4d && b[pos + 3] === 0x18 && (b[pos] & 0xf0) === 0x50;
}

// ------------------------------------------------------------- btrfs LZO --

/** Size of each LE32 length field in btrfs' LZO framing (LZO_LEN). */
const LZO_LEN = 4;
/** btrfs never writes more than 128 KiB of compressed data per extent. */
const BTRFS_MAX_COMPRESSED = 128 * 1024;

/** lzo1x_worst_compress(): the largest LZO1X output for `n` input bytes. */
function lzoWorst(n: number): number {
  return n + Math.floor(n / 16) + 64 + 3 + 2;
}

/**
 * btrfs' LZO framing (fs/btrfs/lzo.c): a LE32 total length (header
 * included), then segments, each a LE32 length and that many bytes of
 * LZO1X data that decode to at most one sector. A segment header never
 * crosses a sector boundary: with fewer than 4 bytes left in a sector, the
 * next header starts at the next sector (the gap is zero padding).
 */
function decodeBtrfsLzo(data: Buffer, unencodedLen: number, sectorSize: number): Buffer {
  if (data.length < LZO_LEN) {
    throw new Error(`encoded extent corrupt: lzo data of ${data.length} bytes has no header`);
  }
  const total = data.readUInt32LE(0);
  // Same checks as the kernel (lzo_decompress_bio, with DATA as the on-disk
  // extent): the total fits the data and the 128 KiB cap, and every sector
  // of the data is used.
  if (total < LZO_LEN || total > Math.min(data.length, BTRFS_MAX_COMPRESSED) || roundUp(total, sectorSize) < data.length) {
    throw new Error(`encoded extent corrupt: lzo header says ${total} bytes for ${data.length} bytes of data`);
  }
  const maxSegment = lzoWorst(sectorSize);
  const out = Buffer.alloc(unencodedLen);
  let inPos = LZO_LEN;
  let outPos = 0;
  while (inPos < total) {
    if (inPos + LZO_LEN > total) {
      throw new Error(`encoded extent corrupt: lzo segment header cut at ${inPos} (total ${total})`);
    }
    const segLen = data.readUInt32LE(inPos);
    inPos += LZO_LEN;
    if (segLen > maxSegment || segLen > total - inPos) {
      throw new Error(`encoded extent corrupt: lzo segment of ${segLen} bytes at ${inPos - LZO_LEN} (total ${total})`);
    }
    const room = Math.min(sectorSize, unencodedLen - outPos);
    let n: number;
    try {
      n = lzo1xDecompressSafe(data, inPos, inPos + segLen, out, outPos, outPos + room);
    } catch (e) {
      const more = room < sectorSize ? ` (extent of ${unencodedLen} bytes)` : '';
      throw new Error(`encoded extent corrupt: lzo segment at ${inPos - LZO_LEN}: ${(e as Error).message}${more}`);
    }
    outPos += n;
    inPos += segLen;
    const left = sectorSize - (inPos % sectorSize);
    if (left < LZO_LEN) {
      checkZeroTail(data.subarray(0, Math.min(inPos + left, data.length)), inPos, 'lzo segment');
      inPos += left;
    }
  }
  checkZeroTail(data, total, 'lzo data');
  return out;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Zero runs of the LZO-RLE bitstream (version >= 1) are at least this long. */
const MIN_ZERO_RUN_LENGTH = 4;
/** Distance bias of an M4 match. */
const M4_BIAS = 0x4000;
/** The 3-byte match right after a literal run reaches past the M2 range: distance 2049 + ... */
const M2_MAX_OFFSET = 0x0800;

/**
 * LZO1X decompressor with the semantics of the kernel's
 * lzo1x_decompress_safe(): decodes src[srcStart, srcEnd) into
 * dst[dstStart, dstEnd) and returns the number of bytes written. Every read
 * and write is bounds-checked; truncated input, a match reaching before
 * dstStart, output past dstEnd, a bad end marker or input left over after
 * it all throw. Also accepts the LZO-RLE bitstream (leading 17, version).
 *
 * Written from the LZO1X format description; instruction by first byte t:
 *   0..15 after a literal run of 4+ : 3-byte match, distance 2049 + (t>>2) + (b<<2)
 *   0..15 after a 1..3-byte literal  : 2-byte match, distance 1 + (t>>2) + (b<<2)
 *   0..15 otherwise (state 0)        : literal run of t+3 (t=0: extended length)
 *   16..31 : M4 match, distance 16384 + ((t&8)<<11) + (le16>>2); distance 16384 = end
 *   32..63 : M3 match, length (t&31)+2, distance 1 + (le16>>2)
 *   64..255: M2 match, length (t>>5)+1, distance 1 + ((t>>2)&7) + (b<<3)
 * The low 2 bits of the last distance byte (next) give 0..3 literals that
 * follow the match.
 */
export function lzo1xDecompressSafe(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
  dstEnd: number,
): number {
  if (srcStart < 0 || srcEnd > src.length || srcStart > srcEnd || dstStart < 0 || dstEnd > dst.length || dstStart > dstEnd) {
    throw new RangeError('lzo1x: buffer range out of bounds');
  }
  // Hot loop: no closures over ip/op (they would live in a heap context).
  let ip = srcStart;
  let op = dstStart;
  if (srcEnd - srcStart < 3) throw lzoInputOverrun(srcEnd - srcStart, 0);
  let rle = false;
  if (srcEnd - srcStart >= 5 && src[ip] === 17) {
    rle = src[ip + 1] !== 0;
    ip += 2;
  }

  // state: 0 = after a match with no trailing literals (or at start),
  // 1..3 = after that many literals, 4 = after a literal run of 4 or more.
  // `lit` is the number of literals to copy before the next instruction.
  let state = 0;
  let lit = 0;
  if (src[ip] > 17) {
    lit = src[ip++] - 17;
    state = lit < 4 ? lit : 4;
  }

  for (;;) {
    if (lit > 0) {
      if (lit > srcEnd - ip) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
      if (lit > dstEnd - op) throw lzoOutputOverrun(dstEnd - dstStart);
      if (lit > 16) {
        dst.set(src.subarray(ip, ip + lit), op);
        ip += lit;
        op += lit;
      } else {
        for (let i = 0; i < lit; i++) dst[op++] = src[ip++];
      }
      lit = 0;
    }
    if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
    const t = src[ip++];
    let len: number;
    let dist: number;
    if (t < 16) {
      if (state === 0) {
        // Literal run of t + 3, or for t = 0 an extended length.
        let n = t;
        if (n === 0) {
          n = 15;
          for (;;) {
            if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
            const b = src[ip++];
            if (b !== 0) {
              n += b;
              break;
            }
            n += 255;
            if (n > dstEnd - dstStart) throw lzoOutputOverrun(dstEnd - dstStart);
          }
        }
        lit = n + 3;
        state = 4;
        continue;
      }
      if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
      lit = t & 3;
      if (state === 4) {
        len = 3;
        dist = 1 + M2_MAX_OFFSET + (t >> 2) + (src[ip++] << 2);
      } else {
        len = 2;
        dist = 1 + (t >> 2) + (src[ip++] << 2);
      }
    } else if (t >= 64) {
      // M2
      if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
      lit = t & 3;
      dist = 1 + ((t >> 2) & 7) + (src[ip++] << 3);
      len = (t >> 5) + 1;
    } else if (t >= 32) {
      // M3
      len = (t & 31) + 2;
      if (len === 2) {
        len = 33;
        for (;;) {
          if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
          const b = src[ip++];
          if (b !== 0) {
            len += b;
            break;
          }
          len += 255;
          if (len > dstEnd - dstStart) throw lzoOutputOverrun(dstEnd - dstStart);
        }
      }
      if (srcEnd - ip < 2) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
      const v = src[ip] | (src[ip + 1] << 8);
      ip += 2;
      dist = 1 + (v >> 2);
      lit = v & 3;
    } else {
      // M4, end marker, or (LZO-RLE) a run of zeros.
      if (srcEnd - ip < 2) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
      let v = src[ip] | (src[ip + 1] << 8);
      if (rle && (v & 0xfffc) === 0xfffc && (t & 0xf8) === 0x18) {
        if (srcEnd - ip < 3) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
        const run = ((t & 7) | (src[ip + 2] << 3)) + MIN_ZERO_RUN_LENGTH;
        if (run > dstEnd - op) throw lzoOutputOverrun(dstEnd - dstStart);
        dst.fill(0, op, op + run);
        op += run;
        ip += 3;
        lit = v & 3;
        state = lit;
        continue;
      }
      const high = (t & 8) << 11;
      len = (t & 7) + 2;
      if (len === 2) {
        len = 9;
        for (;;) {
          if (ip >= srcEnd) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
          const b = src[ip++];
          if (b !== 0) {
            len += b;
            break;
          }
          len += 255;
          if (len > dstEnd - dstStart) throw lzoOutputOverrun(dstEnd - dstStart);
        }
        if (srcEnd - ip < 2) throw lzoInputOverrun(srcEnd - srcStart, op - dstStart);
        v = src[ip] | (src[ip + 1] << 8);
      }
      ip += 2;
      lit = v & 3;
      dist = high + (v >> 2);
      if (dist === 0) {
        // End of stream: 0x11 0x00 0x00 (length field 1, distance 0).
        if (len !== 3) throw new Error(`lzo1x: bad end marker (length ${len})`);
        if (ip !== srcEnd) throw new Error(`lzo1x: ${srcEnd - ip} bytes of input after the end marker`);
        return op - dstStart;
      }
      dist += M4_BIAS;
    }

    if (dist > op - dstStart) {
      throw new Error(`lzo1x: match distance ${dist} before start of output (at output ${op - dstStart})`);
    }
    if (len > dstEnd - op) throw lzoOutputOverrun(dstEnd - dstStart);
    let from = op - dist;
    if (dist >= len && len > 16) {
      dst.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping copy: byte by byte, forwards (repeats the last `dist` bytes).
      const end = op + len;
      while (op < end) dst[op++] = dst[from++];
    }
    // The 0..3 literals that follow a match (copied at the top of the loop).
    state = lit;
  }
}

function lzoInputOverrun(inputLen: number, produced: number): Error {
  return new Error(`lzo1x: input overrun (input ${inputLen} bytes, output ${produced} so far)`);
}

function lzoOutputOverrun(room: number): Error {
  return new Error(`lzo1x: output overrun (room for ${room} bytes)`);
}
