import {
  NATIVE_MIN_BYTES,
  crc32c,
  crc32cImplementation,
  crc32cUpdate,
  crc32cUpdateJs,
  crc32cUpdateJsRange,
  crc32cUpdateNative,
  crc32cUpdateRange,
  crc32cUpdateZeros,
} from '../../../src/stream/crc32c';
import { rng } from '../../helpers/streams';

describe('crc32c (btrfs variant: seed 0, no final xor)', () => {
  it('matches the spec check value and not the standard one', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0x58e3fa20);
    expect(crc32c(Buffer.from('123456789'))).not.toBe(0xe3069283);
    expect(crc32cUpdateJs(0, Buffer.from('123456789'))).toBe(0x58e3fa20);
  });

  it('is 0 for all-zero input', () => {
    expect(crc32c(Buffer.alloc(4096))).toBe(0);
  });

  it('gives the constant END command crc', () => {
    const end = Buffer.from('00000000150000000000', 'hex');
    expect(crc32c(end)).toBe(0x9dc96c50);
  });

  it('uses the native implementation here', () => {
    expect(crc32cImplementation).toBe('native');
  });

  it('native and JS agree, including chained updates at odd splits', () => {
    const r = rng(1);
    for (let n = 0; n < 200; n++) {
      const len = Math.floor(r() * 3000);
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
      const whole = crc32cUpdateJs(0, b);
      expect(crc32cUpdate(0, b)).toBe(whole);
      const cut = Math.floor(r() * len);
      expect(crc32cUpdate(crc32cUpdate(0, b.subarray(0, cut)), b.subarray(cut))).toBe(whole);
      expect(crc32cUpdateJs(crc32cUpdateJs(0, b.subarray(0, cut)), b.subarray(cut))).toBe(whole);
    }
  });
});

describe('crc32c size-based choice between native and JS', () => {
  const r = rng(7);
  const random = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
    return b;
  };

  it('puts the crossover where short inputs take JS and file data takes native', () => {
    expect(NATIVE_MIN_BYTES).toBeGreaterThanOrEqual(16);
    expect(NATIVE_MIN_BYTES).toBeLessThanOrEqual(4096);
  });

  it('every length 0..300 gives the same register from JS, native and the chosen path', () => {
    expect(crc32cUpdateNative).toBeDefined();
    const native = crc32cUpdateNative!;
    for (let n = 0; n <= 300; n++) {
      const b = random(n);
      for (const reg of [0, 0xffffffff, Math.floor(r() * 0x100000000)]) {
        const want = crc32cUpdateJs(reg, b);
        expect(native(reg, b)).toBe(want);
        expect(crc32cUpdate(reg, b)).toBe(want);
      }
    }
  });

  it('chained updates across the crossover agree with one pass, and ranges with subarrays', () => {
    const b = random(4 * NATIVE_MIN_BYTES + 11);
    const whole = crc32cUpdateJs(0, b);
    for (const cut of [0, 1, NATIVE_MIN_BYTES - 1, NATIVE_MIN_BYTES, NATIVE_MIN_BYTES + 1, 2 * NATIVE_MIN_BYTES, b.length - 1, b.length]) {
      expect(crc32cUpdate(crc32cUpdate(0, b.subarray(0, cut)), b.subarray(cut))).toBe(whole);
      expect(crc32cUpdateRange(crc32cUpdateRange(0, b, 0, cut), b, cut, b.length)).toBe(whole);
    }
    for (let k = 0; k < 300; k++) {
      const s = Math.floor(r() * b.length);
      const e = s + Math.floor(r() * (b.length - s + 1));
      const reg = Math.floor(r() * 0x100000000);
      const want = crc32cUpdateJs(reg, b.subarray(s, e));
      expect(crc32cUpdateRange(reg, b, s, e)).toBe(want);
      expect(crc32cUpdateJsRange(reg, b, s, e)).toBe(want);
    }
  });

  it('crc32cUpdateZeros equals an update over that many zero bytes', () => {
    for (let n = 0; n <= 20; n++) {
      const reg = Math.floor(r() * 0x100000000);
      expect(crc32cUpdateZeros(reg, n)).toBe(crc32cUpdateJs(reg, Buffer.alloc(n)));
    }
    // The command-header trick: header[0..6) + 4 zero bytes, as if the crc field were zeroed.
    const end = Buffer.from('00000000150050 6cc99d'.replace(/ /g, ''), 'hex');
    expect(crc32cUpdateZeros(crc32cUpdateRange(0, end, 0, 6), 4)).toBe(end.readUInt32LE(6));
  });

  it('FERRY_CRC=js uses JS for every size, with the same results', () => {
    const saved = process.env.FERRY_CRC;
    process.env.FERRY_CRC = 'js';
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const m = require('../../../src/stream/crc32c') as typeof import('../../../src/stream/crc32c');
        expect(m.crc32cImplementation).toBe('js');
        expect(m.crc32cUpdateNative).toBeUndefined();
        expect(m.crc32c(Buffer.from('123456789'))).toBe(0x58e3fa20);
        for (const n of [0, 1, NATIVE_MIN_BYTES - 1, NATIVE_MIN_BYTES, 5000]) {
          const b = random(n);
          expect(m.crc32cUpdate(3, b)).toBe(crc32cUpdateJs(3, b));
          expect(m.crc32cUpdateRange(3, b, 0, n)).toBe(crc32cUpdateJs(3, b));
        }
      });
    } finally {
      if (saved === undefined) delete process.env.FERRY_CRC;
      else process.env.FERRY_CRC = saved;
    }
  });
});
