/**
 * CRC-32C in the btrfs send-stream variant: reflected Castagnoli polynomial,
 * register seeded with 0 and no final inversion (docs/send-stream.md 1.4).
 *
 * Owns: the checksum only. Two implementations compute the same register:
 * the native one from @node-rs/crc32 (SSE4.2 / ARMv8 CRC instructions) and a
 * slicing-by-8 JS table. The native call has a fixed cost (about 100 ns, a
 * N-API crossing) that outweighs its speed on short inputs, so
 * `crc32cUpdate` runs the JS table below NATIVE_MIN_BYTES and the native
 * code from there on. Without the native module, or with FERRY_CRC=js, JS
 * is used for every size.
 *
 * Invariants: every function takes and returns the raw register, so a
 * checksum over several pieces is `update(update(0, a), b)` with no copy, and
 * every implementation gives the same register for the same bytes whatever
 * the size (test/unit/stream/crc32c.test.ts checks every length 0..300 and
 * chained splits). Never allocates, except the view handed to the native
 * call by `crc32cUpdateRange`.
 */

type Update = (reg: number, buf: Uint8Array) => number;

const POLY = 0x82f63b78;

/**
 * Inputs shorter than this go through the JS table, longer ones through the
 * native code. Measured on the codec machine (2 shared EPYC cores, Node 20):
 * native costs a flat ~100 ns up to a few hundred bytes, the table ~0.65 ns
 * per byte plus ~8 ns, so they cross between 128 and 192 bytes. Command
 * headers and most metadata payloads (chown, chmod, rename, utimes) are below
 * it; file data is far above.
 */
export const NATIVE_MIN_BYTES = 160;

/**
 * Slicing-by-8 tables, flattened: table k lives at [k * 256, k * 256 + 256).
 * Int32 values so the XOR chain stays in small integers.
 */
const T: Int32Array = (() => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + i];
      t[k * 256 + i] = t[prev & 0xff] ^ (prev >>> 8);
    }
  }
  return t;
})();

/** JS register update over buf[start, end). */
export function crc32cUpdateJsRange(reg: number, buf: Uint8Array, start: number, end: number): number {
  let c = reg | 0;
  let i = start;
  const end8 = end - ((end - start) & 7);
  while (i < end8) {
    const a = (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) ^ c;
    c =
      T[1792 + (a & 0xff)] ^
      T[1536 + ((a >>> 8) & 0xff)] ^
      T[1280 + ((a >>> 16) & 0xff)] ^
      T[1024 + (a >>> 24)] ^
      T[768 + buf[i + 4]] ^
      T[512 + buf[i + 5]] ^
      T[256 + buf[i + 6]] ^
      T[buf[i + 7]];
    i += 8;
  }
  while (i < end) c = T[(c ^ buf[i++]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** Portable register update, slicing-by-8, for any size. */
export const crc32cUpdateJs: Update = (reg, buf) => crc32cUpdateJsRange(reg, buf, 0, buf.length);

/** Register after `n` zero bytes (the zeroed crc field of a command header is 4). */
export function crc32cUpdateZeros(reg: number, n: number): number {
  let c = reg | 0;
  for (let i = 0; i < n; i++) c = T[c & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

function loadNative(): Update | undefined {
  if (process.env.FERRY_CRC === 'js') return undefined;
  try {
    // The package computes the standard CRC-32C whose second argument is the
    // previous *result*; it inverts that to get the register. Passing ~reg and
    // inverting the result therefore gives a raw register update.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('@node-rs/crc32') as { crc32c(input: Uint8Array, initial?: number): number };
    const update: Update = (reg, buf) => ~mod.crc32c(buf as Buffer, ~reg >>> 0) >>> 0;
    if (update(0, Buffer.from('123456789')) !== 0x58e3fa20) return undefined;
    return update;
  } catch {
    return undefined;
  }
}

/** The native register update for every size, or undefined when it is not available (tests, bench). */
export const crc32cUpdateNative: Update | undefined = loadNative();
const native = crc32cUpdateNative;

export const crc32cImplementation: 'native' | 'js' = native ? 'native' : 'js';

/** Register update with the fastest implementation for the input's size. */
export const crc32cUpdate: Update = native
  ? (reg, buf) => (buf.length < NATIVE_MIN_BYTES ? crc32cUpdateJsRange(reg, buf, 0, buf.length) : native(reg, buf))
  : crc32cUpdateJs;

/** Register update over buf[start, end), choosing by size like `crc32cUpdate`. */
export function crc32cUpdateRange(reg: number, buf: Uint8Array, start: number, end: number): number {
  if (native === undefined || end - start < NATIVE_MIN_BYTES) return crc32cUpdateJsRange(reg, buf, start, end);
  return native(reg, buf.subarray(start, end));
}

/** Checksum of one buffer, btrfs variant. */
export function crc32c(buf: Uint8Array): number {
  return crc32cUpdate(0, buf);
}
