import { FerryError } from '../../../src/errors';
import { parseSshDest } from '../../../src/transport/ssh';

describe('parseSshDest', () => {
  test.each([
    ['nas:/srv/ferry', { host: 'nas', path: '/srv/ferry' }],
    ['backup@nas:/srv/ferry', { user: 'backup', host: 'nas', path: '/srv/ferry' }],
    ['nas:2222:/srv/ferry', { host: 'nas', port: 2222, path: '/srv/ferry' }],
    ['backup@nas.example.org:2222:/srv/ferry', { user: 'backup', host: 'nas.example.org', port: 2222, path: '/srv/ferry' }],
    ['10.0.0.5:/x', { host: '10.0.0.5', path: '/x' }],
    ['[::1]:/x', { host: '::1', path: '/x' }],
    ['root@[fe80::1]:22:/x', { user: 'root', host: 'fe80::1', port: 22, path: '/x' }],
    ['nas:backups/daily', { host: 'nas', path: 'backups/daily' }],
    ['nas:/path:with:colons', { host: 'nas', path: '/path:with:colons' }],
    ['nas:12', { host: 'nas', path: '12' }],
    ['my_host-1:/p', { host: 'my_host-1', path: '/p' }],
  ])('%s', (s, want) => {
    expect(parseSshDest(s)).toEqual(want);
  });

  test.each(['/srv/ferry', './nas:/x', '../nas:/x', 'relative/dir', 'dir/with:colon', 'plain', 'a/b:c:/d', '.hidden:x'])('%s is local', (s) => {
    expect(parseSshDest(s)).toBeUndefined();
  });

  test.each([
    ['nas:', /path after the host is empty/],
    ['nas:2222:', /path after the host is empty/],
    ['nas:99999:/x', /port 99999/],
    ['@nas:/x', /cannot tell/],
    ['a@b@nas:/x', /cannot tell/],
    ['-oProxyCommand=x:/p', /cannot tell|cannot start with/],
    ['-evil:/p', /cannot start with "-"/],
  ])('%s is refused', (s, why) => {
    let err: unknown;
    try {
      parseSshDest(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe('SSH_DEST_INVALID');
    expect((err as FerryError).exitCode).toBe(2);
    expect((err as FerryError).message).toMatch(why);
  });
});
