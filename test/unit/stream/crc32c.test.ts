import { crc32c, crc32cImplementation, crc32cUpdate, crc32cUpdateJs } from '../../../src/stream/crc32c';
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
