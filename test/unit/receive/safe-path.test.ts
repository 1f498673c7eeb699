import { checkStreamPath } from '../../../src/receive/safe-path';
import { DEFAULT_LIMITS } from '../../../src/model/limits';
import { FerryError } from '../../../src/errors';

const ctx = { what: 'path', command: 7, offset: 99, cmd: 'mkfile' };
const check = (p: string | Buffer, allowRoot = false) =>
  checkStreamPath(Buffer.isBuffer(p) ? p : Buffer.from(p), ctx, DEFAULT_LIMITS, allowRoot);
const codeOf = (p: string | Buffer, allowRoot = false) => {
  try {
    check(p, allowRoot);
  } catch (e) {
    return (e as FerryError).code;
  }
  return 'ok';
};

describe('stream path string checks', () => {
  it('accepts ordinary relative paths and returns components', () => {
    expect(check('a/b/c.txt').map(String)).toEqual(['a', 'b', 'c.txt']);
    expect(check('o257-7-0').map(String)).toEqual(['o257-7-0']);
    expect(check(Buffer.from([0x66, 0xff, 0x2f, 0x67])).length).toBe(2);
    expect(check('..a/b..')).toHaveLength(2);
  });

  it('allows the empty path only where the root is meant', () => {
    expect(check('', true)).toEqual([]);
    expect(codeOf('')).toBe('RECV_PATH_INVALID');
  });

  it.each([
    ['../x', 'RECV_PATH_ESCAPE'],
    ['a/../../x', 'RECV_PATH_ESCAPE'],
    ['a/..', 'RECV_PATH_ESCAPE'],
    ['/etc/passwd', 'RECV_PATH_ESCAPE'],
    ['a//b', 'RECV_PATH_INVALID'],
    ['a/', 'RECV_PATH_INVALID'],
    ['./a', 'RECV_PATH_INVALID'],
    ['a/./b', 'RECV_PATH_INVALID'],
    ['.', 'RECV_PATH_INVALID'],
    ['a\0b', 'RECV_PATH_INVALID'],
    ['x'.repeat(4097), 'RECV_LIMIT'],
    ['x'.repeat(256), 'RECV_LIMIT'],
    [Array(600).fill('d').join('/'), 'RECV_LIMIT'],
  ])('refuses %j with %s (exit 16)', (p, code) => {
    expect(codeOf(p)).toBe(code);
    try {
      check(p);
    } catch (e) {
      expect((e as FerryError).exitCode).toBe(16);
      expect((e as FerryError).message).toContain('command 7');
      expect((e as FerryError).message).toContain('offset 99');
    }
  });
});
