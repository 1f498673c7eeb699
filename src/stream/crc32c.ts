/**
 * CRC-32C in the btrfs send-stream variant: reflected Castagnoli polynomial,
 * register seeded with 0 and no final inversion (docs/send-stream.md 1.4).
 *
 * Owns: the checksum only. The native path uses @node-rs/crc32 (SSE4.2 /
 * ARMv8 CRC instructions); a slicing-by-8 JS table is the portable fallback,
 * chosen when the native module cannot load or when FERRY_CRC=js.
 *
 * Both implementations take and return the raw register, so a checksum over
 * several buffers is `update(update(0, a), b)` with no copy.
 */

type Update = (reg: number, buf: Uint8Array) => number;

const POLY = 0x82f63b78;

/** 8 tables of 256 entries for slicing-by-8. */
const TABLES: Uint32Array[] = (() => {
  const t: Uint32Array[] = [];
  for (let k = 0; k < 8; k++) t.push(new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[0][i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let k = 1; k < 8; k++) t[k][i] = (t[0][t[k - 1][i] & 0xff] ^ (t[k - 1][i] >>> 8)) >>> 0;
  }
  return t;
})();

/** Portable register update, slicing-by-8. */
export const crc32cUpdateJs: Update = (reg, buf) => {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let c = reg >>> 0;
  let i = 0;
  const n = buf.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const a = (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) ^ c;
    c =
      t7[a & 0xff] ^
      t6[(a >>> 8) & 0xff] ^
      t5[(a >>> 16) & 0xff] ^
      t4[a >>> 24] ^
      t3[buf[i + 4]] ^
      t2[buf[i + 5]] ^
      t1[buf[i + 6]] ^
      t0[buf[i + 7]];
    i += 8;
  }
  while (i < n) c = t0[(c ^ buf[i++]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
};

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

const native = loadNative();

/** Register update with the fastest implementation available. */
export const crc32cUpdate: Update = native ?? crc32cUpdateJs;
export const crc32cImplementation: 'native' | 'js' = native ? 'native' : 'js';

/** Checksum of one buffer, btrfs variant. */
export function crc32c(buf: Uint8Array): number {
  return crc32cUpdate(0, buf);
}
