import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../../../src/errors';
import {
  loadSshConfig,
  parseSshConfig,
  parseTimeSpec,
  resolveSshHost,
  splitConfigArgs,
  SshConfigContext,
} from '../../../src/transport/ssh-config';
import { matchPattern, matchPatternList } from '../../../src/transport/ssh-pattern';

const HOME = '/home/alice';
const ctx: SshConfigContext = {
  home: HOME,
  localUser: 'alice',
  localHost: 'laptop.example.org',
  uid: 1000,
  env: { SSH_AUTH_SOCK: '/run/agent.sock', KEYS: '/keys' },
};

function resolve(text: string, host: string, given: { user?: string; port?: number } = {}) {
  return resolveSshHost(parseSshConfig(text, '/cfg', HOME), host, given, ctx);
}

function configError(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FerryError);
    expect((e as FerryError).code).toBe('SSH_CONFIG_INVALID');
    expect((e as FerryError).exitCode).toBe(12);
    return e as FerryError;
  }
  throw new Error('expected SSH_CONFIG_INVALID');
}

describe('ssh patterns', () => {
  test.each([
    ['nas', 'nas', true],
    ['nas.lan', '*.lan', true],
    ['nas.lan', '*.LAN', true],
    ['nas1', 'nas?', true],
    ['nas12', 'nas?', false],
    ['a.b.c', '*.c', true],
    ['abc', 'a*b*c', true],
    ['ac', 'a*b*c', false],
    ['', '*', true],
    ['x', '', false],
  ])('%j matches %j: %s', (s, p, want) => {
    expect(matchPattern(s, p)).toBe(want);
  });

  test('a negated pattern wins over a plain one', () => {
    expect(matchPatternList('db.lan', ['*.lan', '!db.lan'])).toBe(false);
    expect(matchPatternList('web.lan', ['*.lan', '!db.lan'])).toBe(true);
    expect(matchPatternList('web.lan', ['!db.lan'])).toBe(false); // negation alone never matches
  });

  test('case-sensitive mode for file names', () => {
    expect(matchPattern('A.conf', '*.conf', true)).toBe(true);
    expect(matchPattern('a.CONF', '*.conf', true)).toBe(false);
  });
});

describe('ssh config syntax', () => {
  test('arguments split like OpenSSH: quotes, escapes, trailing comments', () => {
    expect(splitConfigArgs('a "b c" \'d e\' f\\ g # comment', 'f', 1)).toEqual(['a', 'b c', 'd e', 'f g']);
    expect(splitConfigArgs('"say \\"hi\\""', 'f', 1)).toEqual(['say "hi"']);
    expect(splitConfigArgs('x#y', 'f', 1)).toEqual(['x#y']);
  });

  test('keyword=value, keyword = value, tabs and CRLF all parse', () => {
    const r = resolve('Host nas\r\n\tHostName=10.0.0.5\r\n  Port = 2222\r\n\tUser\tbackup\r\n', 'nas');
    expect(r).toMatchObject({ hostName: '10.0.0.5', port: 2222, user: 'backup' });
  });

  test('time specs', () => {
    expect(parseTimeSpec('10')).toBe(10);
    expect(parseTimeSpec('1m30s')).toBe(90);
    expect(parseTimeSpec('2h')).toBe(7200);
    expect(parseTimeSpec('x')).toBeUndefined();
    expect(parseTimeSpec('')).toBeUndefined();
  });

  test.each([
    ['Port abc', 2, /Port must be a number/],
    ['Port 0', 2, /Port must be a number/],
    ['Port 70000', 2, /Port must be a number/],
    ['HostName', 2, /HostName needs a value/i],
    ['HostName a b', 2, /takes one value/],
    ['User "unterminated', 2, /unterminated/],
    ['Host', 2, /Host needs at least one pattern/],
    ['Match', 2, /Match needs criteria/],
    ['Match host', 2, /Match host needs an argument/],
    ['Match bogus x', 2, /unknown Match criterion/],
    ['ConnectTimeout soon', 2, /ConnectTimeout must be seconds/],
    ['ServerAliveCountMax -1', 2, /ServerAliveCountMax/],
    ['IdentityFile ~/.ssh/%Z', 2, /unknown token %Z/],
    ['HostName %r.example', 2, /unknown token %r/],
    ['Bad-Keyword x', 2, /bad keyword/],
  ])('%j is rejected naming the file and line', (bad, line, why) => {
    const e = configError(() => parseSshConfig(`# comment\n${bad}\n`, '/etc/x/config', HOME));
    expect(e.context).toEqual({ file: '/etc/x/config', line });
    expect(e.message).toMatch(why);
    expect(e.message).toContain('/etc/x/config');
    expect(e.hint).toBeTruthy();
  });

  test('a bad line in a block that does not apply is still an error (as in ssh)', () => {
    configError(() => resolve('Host other\n  Port nope\n', 'nas'));
  });

  test('unknown keywords are accepted and ignored (ssh may know them)', () => {
    const r = resolve('ControlMaster auto\nFrobnicate yes please\nHost nas\n  HostName n.lan\n', 'nas');
    expect(r.hostName).toBe('n.lan');
  });
});

describe('resolving a host', () => {
  test('defaults with no config', () => {
    expect(resolve('', 'nas')).toEqual({ alias: 'nas', hostName: 'nas', user: 'alice', port: 22, identityFiles: [] });
  });

  test('first value wins, across blocks, like OpenSSH', () => {
    const cfg = `
Host nas
  User first
  Port 2201
Host *
  User second
  Port 2202
  HostName fallback.lan
`;
    expect(resolve(cfg, 'nas')).toMatchObject({ user: 'first', port: 2201, hostName: 'fallback.lan' });
    expect(resolve(cfg, 'other')).toMatchObject({ user: 'second', port: 2202, hostName: 'fallback.lan' });
  });

  test('settings before any Host line apply to every host', () => {
    expect(resolve('User global\nHost nas\n  User late\n', 'nas').user).toBe('global');
  });

  test('command-line user and port beat the file', () => {
    const r = resolve('Host nas\n  User cfg\n  Port 2222\n', 'nas', { user: 'cli', port: 2200 });
    expect(r).toMatchObject({ user: 'cli', port: 2200 });
  });

  test('wildcards, several patterns and negation on Host lines', () => {
    const cfg = `
Host *.lan !db.lan
  User lanuser
Host db.lan backup?
  User special
`;
    expect(resolve(cfg, 'web.lan').user).toBe('lanuser');
    expect(resolve(cfg, 'db.lan').user).toBe('special');
    expect(resolve(cfg, 'backup1').user).toBe('special');
    expect(resolve(cfg, 'backup12').user).toBe('alice');
    expect(resolve(cfg, 'WEB.LAN').user).toBe('lanuser');
  });

  test('HostName expands %h and %%', () => {
    expect(resolve('Host *\n  HostName %h.example.com\n', 'nas').hostName).toBe('nas.example.com');
    expect(resolve('Host *\n  HostName %h%%x\n', 'nas').hostName).toBe('nas%x');
  });

  test('IdentityFile accumulates in order with ~, %-tokens and ${ENV} expanded', () => {
    const cfg = `
Host nas
  IdentityFile ~/.ssh/nas_key
  IdentityFile "%d/keys/%r@%h:%p"
Host *
  IdentityFile \${KEYS}/%n_%u
  User bob
`;
    const r = resolve(cfg, 'nas');
    expect(r.identityFiles).toEqual([`${HOME}/.ssh/nas_key`, `${HOME}/keys/bob@nas:22`, '/keys/nas_alice']);
  });

  test('an unset ${ENV} in a path is an error naming the line', () => {
    const e = configError(() => resolve('IdentityFile ${NOPE}/k\n', 'nas'));
    expect(e.context).toEqual({ file: '/cfg', line: 1 });
  });

  test('UserKnownHostsFile: several files, first line wins, none', () => {
    expect(resolve('Host nas\n  UserKnownHostsFile ~/kh1 /etc/kh2\nHost *\n  UserKnownHostsFile /x\n', 'nas').knownHostsFiles).toEqual([
      `${HOME}/kh1`,
      '/etc/kh2',
    ]);
    expect(resolve('UserKnownHostsFile none\n', 'nas').knownHostsFiles).toEqual([]);
    expect(resolve('', 'nas').knownHostsFiles).toBeUndefined();
  });

  test('ConnectTimeout, ServerAlive*, HostKeyAlias, IdentityAgent', () => {
    const r = resolve('ConnectTimeout 7\nServerAliveInterval 1m\nServerAliveCountMax 5\nHostKeyAlias nas-key\nIdentityAgent SSH_AUTH_SOCK\n', 'nas');
    expect(r).toMatchObject({
      connectTimeoutMs: 7000,
      serverAliveIntervalMs: 60000,
      serverAliveCountMax: 5,
      hostKeyAlias: 'nas-key',
      identityAgent: '/run/agent.sock',
    });
    expect(resolve('IdentityAgent none\n', 'nas').identityAgent).toBeNull();
    expect(resolve('IdentityAgent ~/agent.sock\n', 'nas').identityAgent).toBe(`${HOME}/agent.sock`);
    expect(resolve('IdentityAgent $KEYS\n', 'nas').identityAgent).toBe('/keys');
  });

  test('Match host / originalhost / user / all, with negation', () => {
    const cfg = `
Host short
  HostName long.example.com
Match host *.example.com
  Port 2222
Match originalhost short !user root
  User matched
Match all
  IdentityFile ~/all
`;
    const r = resolve(cfg, 'short');
    expect(r).toMatchObject({ hostName: 'long.example.com', port: 2222, user: 'matched', identityFiles: [`${HOME}/all`] });
    const root = resolve(cfg, 'short', { user: 'root' });
    expect(root.user).toBe('root');
    expect(resolve(cfg, 'other')).toMatchObject({ port: 22, user: 'alice' });
  });

  test('Match exec and other unevaluated criteria never apply', () => {
    const r = resolve('Match exec "true"\n  User viaexec\nMatch !exec "true"\n  Port 2\n', 'nas');
    expect(r).toMatchObject({ user: 'alice', port: 22 });
  });
});

describe('loading config files', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshcfg-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a missing default file is an empty config; a missing named file is an error', () => {
    expect(loadSshConfig(path.join(tmp, 'none'), tmp, false)).toEqual([]);
    const e = configError(() => loadSshConfig(path.join(tmp, 'none'), tmp, true));
    expect(e.message).toMatch(/ENOENT/);
  });

  test('Include with globs, relative to ~/.ssh, conditional inside a Host block', () => {
    fs.mkdirSync(path.join(tmp, '.ssh', 'conf.d'), { recursive: true });
    fs.writeFileSync(path.join(tmp, '.ssh', 'conf.d', 'a.conf'), 'Host nas\n  Port 2001\n');
    fs.writeFileSync(path.join(tmp, '.ssh', 'conf.d', 'b.conf'), 'Host nas\n  Port 2002\n  User fromb\n');
    fs.writeFileSync(path.join(tmp, '.ssh', 'conf.d', 'skip.txt'), 'Host nas\n  Port 9\n');
    fs.writeFileSync(path.join(tmp, 'only-web'), 'User webuser\n');
    const main = path.join(tmp, 'config');
    fs.writeFileSync(main, `Include conf.d/*.conf\nHost web\n  Include ${tmp}/only-web\n`);
    const d = loadSshConfig(main, tmp, true);
    const c = { ...ctx, home: tmp };
    expect(resolveSshHost(d, 'nas', {}, c)).toMatchObject({ port: 2001, user: 'fromb' });
    expect(resolveSshHost(d, 'web', {}, c).user).toBe('webuser');
    expect(resolveSshHost(d, 'other', {}, c).user).toBe('alice');
  });

  test('errors inside an included file name that file and line', () => {
    fs.writeFileSync(path.join(tmp, 'inc'), '\n\nPort x\n');
    const main = path.join(tmp, 'config');
    fs.writeFileSync(main, `Include ${tmp}/inc\n`);
    const e = configError(() => loadSshConfig(main, tmp, true));
    expect(e.context).toEqual({ file: path.join(tmp, 'inc'), line: 3 });
  });

  test('Include loops stop at a depth limit with an error', () => {
    const main = path.join(tmp, 'config');
    fs.writeFileSync(main, `Include ${main}\n`);
    const e = configError(() => loadSshConfig(main, tmp, true));
    expect(e.message).toMatch(/nested more than 16/);
  });
});
