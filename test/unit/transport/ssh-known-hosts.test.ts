import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  appendKnownHost,
  checkHostKey,
  entryMatchesHost,
  formatKnownHostsLine,
  hostKeyFingerprint,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  loadKnownHosts,
  parseKnownHosts,
} from '../../../src/transport/known-hosts';
import { keyPair } from '../../helpers/ssh-server';

function pubBlob(type: 'ed25519' | 'ecdsa' | 'rsa'): Buffer {
  const opts = type === 'rsa' ? { bits: 2048 } : type === 'ecdsa' ? { bits: 256 } : undefined;
  const k = keyPair(type, opts);
  return Buffer.from(k.public.split(' ')[1], 'base64');
}

const ed = pubBlob('ed25519');
const ed2 = pubBlob('ed25519');
const ec = pubBlob('ecdsa');
const rsa = pubBlob('rsa');

function line(hosts: string, key: Buffer, marker = ''): string {
  return `${marker ? `${marker} ` : ''}${hosts} ${keyTypeOf(key)} ${key.toString('base64')} comment here`;
}

function hashed(name: string, salt = randomBytes(20)): string {
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('known_hosts names and fingerprints', () => {
  test('port 22 is the bare host; other ports use [host]:port; lower-cased', () => {
    expect(knownHostsName('NAS.lan', 22)).toBe('nas.lan');
    expect(knownHostsName('nas.lan', 2222)).toBe('[nas.lan]:2222');
    expect(knownHostsName('::1', 2222)).toBe('[::1]:2222');
  });

  test('fingerprint matches ssh-keygen -l', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-kh-'));
    try {
      const f = path.join(tmp, 'k.pub');
      fs.writeFileSync(f, `ssh-ed25519 ${ed.toString('base64')} x\n`);
      const r = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', f], { encoding: 'utf8' });
      if (r.error) throw new Error(`ssh-keygen is needed for this test: ${r.error.message}`);
      expect(r.stdout.split(/\s+/)[1]).toBe(hostKeyFingerprint(ed));
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(hostKeyFingerprint(ed)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('parsing known_hosts', () => {
  test('plain, comma lists, markers, comments; malformed lines skipped', () => {
    const text = [
      '# comment',
      '',
      line('nas,10.0.0.5', ed),
      line('*.lan', ec, '@cert-authority'),
      line('*', ed2, '@revoked'),
      '@weird nas ssh-ed25519 AAAA',
      'nas ssh-ed25519 !!notbase64!!',
      `nas ssh-rsa ${ed.toString('base64')}`, // type field disagrees with the blob
      'toofewfields',
      line('[nas]:2222', rsa),
    ].join('\n');
    const e = parseKnownHosts(text, '/kh');
    expect(e.map((x) => [x.line, x.hosts, x.keyType, x.marker])).toEqual([
      [3, 'nas,10.0.0.5', 'ssh-ed25519', undefined],
      [4, '*.lan', 'ecdsa-sha2-nistp256', 'cert-authority'],
      [5, '*', 'ssh-ed25519', 'revoked'],
      [10, '[nas]:2222', 'ssh-rsa', undefined],
    ]);
  });

  test('host matching: comma lists, wildcards, negation, hashed, [host]:port', () => {
    const [plain, wild, h, hp] = parseKnownHosts(
      [line('nas,10.0.0.5', ed), line('*.lan,!db.lan', ed), line(hashed('secret.lan'), ed), line(hashed('[secret.lan]:2222'), ed)].join('\n'),
      '/kh',
    );
    expect(entryMatchesHost(plain, 'nas')).toBe(true);
    expect(entryMatchesHost(plain, '10.0.0.5')).toBe(true);
    expect(entryMatchesHost(plain, 'NAS')).toBe(true);
    expect(entryMatchesHost(plain, '[nas]:2222')).toBe(false);
    expect(entryMatchesHost(wild, 'web.lan')).toBe(true);
    expect(entryMatchesHost(wild, 'db.lan')).toBe(false);
    expect(entryMatchesHost(h, 'secret.lan')).toBe(true);
    expect(entryMatchesHost(h, 'other.lan')).toBe(false);
    expect(entryMatchesHost(h, '[secret.lan]:2222')).toBe(false);
    expect(entryMatchesHost(hp, '[secret.lan]:2222')).toBe(true);
    expect(entryMatchesHost(hp, 'secret.lan')).toBe(false);
  });

  test('a hashed line written by ssh-keygen -H matches', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-kh-'));
    try {
      const f = path.join(tmp, 'known_hosts');
      fs.writeFileSync(f, `${line('[backup.example.org]:2200', ed)}\n${line('plain.example.org', ec)}\n`);
      const r = spawnSync('ssh-keygen', ['-H', '-f', f], { encoding: 'utf8' });
      if (r.error || r.status !== 0) throw new Error(`ssh-keygen -H failed: ${r.error?.message ?? r.stderr}`);
      const entries = loadKnownHosts([f, path.join(tmp, 'missing')]);
      expect(entries.every((e) => e.hosts.startsWith('|1|'))).toBe(true);
      expect(checkHostKey(entries, knownHostsName('backup.example.org', 2200), ed).status).toBe('known');
      expect(checkHostKey(entries, knownHostsName('backup.example.org', 22), ed).status).toBe('unknown');
      expect(checkHostKey(entries, 'plain.example.org', ec).status).toBe('known');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('checking a presented key', () => {
  const entries = parseKnownHosts(
    [
      line('nas', ed),
      line('nas', rsa),
      line('[nas]:2222', ec),
      line('multi', ed),
      line('multi', ed2), // two keys of one type on record: either is fine
      line('*', rsa, '@revoked'),
      line('*.ca.lan', ed, '@cert-authority'),
    ].join('\n'),
    '/kh',
  );

  test('known key of any of several types', () => {
    expect(checkHostKey(entries, 'nas', ed)).toMatchObject({ status: 'known', entry: { line: 1 } });
    expect(checkHostKey(entries, 'multi', ed2)).toMatchObject({ status: 'known', entry: { line: 5 } });
    expect(checkHostKey(entries, '[nas]:2222', ec).status).toBe('known');
  });

  test('same type, different key: changed', () => {
    const v = checkHostKey(entries, 'nas', ed2);
    expect(v.status).toBe('changed');
    expect(v.status === 'changed' && v.entries.map((e) => e.line)).toEqual([1]);
  });

  test('host on record under other key types only: other-type, not unknown', () => {
    const v = checkHostKey(entries, '[nas]:2222', ed);
    expect(v).toMatchObject({ status: 'other-type', knownTypes: ['ecdsa-sha2-nistp256'] });
  });

  test('a revoked key is refused even where it would otherwise be known', () => {
    expect(checkHostKey(entries, 'nas', rsa)).toMatchObject({ status: 'revoked', entry: { line: 6 } });
  });

  test('@cert-authority lines never make a plain key known', () => {
    expect(checkHostKey(entries, 'x.ca.lan', ed).status).toBe('unknown');
  });

  test('unknown host', () => {
    expect(checkHostKey(entries, 'elsewhere', ed).status).toBe('unknown');
    expect(checkHostKey(entries, '[nas]:2200', ed).status).toBe('unknown');
  });

  test('known key types for algorithm preference', () => {
    expect(knownKeyTypes(entries, 'nas')).toEqual(['ssh-ed25519', 'ssh-rsa']);
    expect(knownKeyTypes(entries, 'x.ca.lan')).toEqual([]);
  });
});

describe('appending', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-kh-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('creates directory (0700) and file (0600), writes a plain line', () => {
    const f = path.join(tmp, 'new', '.ssh', 'known_hosts');
    appendKnownHost(f, '[nas]:2222', ed);
    expect(fs.readFileSync(f, 'utf8')).toBe(`${formatKnownHostsLine('[nas]:2222', ed)}\n`);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(f)).mode & 0o777).toBe(0o700);
    expect(checkHostKey(loadKnownHosts([f]), '[nas]:2222', ed).status).toBe('known');
  });

  test('keeps existing lines and starts on a fresh line', () => {
    const f = path.join(tmp, 'known_hosts');
    fs.writeFileSync(f, line('old', ec)); // no trailing newline
    appendKnownHost(f, 'nas', ed);
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    expect(lines).toEqual([line('old', ec), `nas ssh-ed25519 ${ed.toString('base64')}`, '']);
    expect(parseKnownHosts(fs.readFileSync(f, 'utf8'), f)).toHaveLength(2);
  });
});
