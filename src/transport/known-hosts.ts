/**
 * known_hosts for ferry's ssh client (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 *
 * Owns: parsing known_hosts lines (plain host patterns with wildcards and `!`
 * negation, comma lists, hashed `|1|salt|hash` names, `[host]:port` names for
 * ports other than 22, `@revoked` and `@cert-authority` markers), deciding
 * whether a presented host key is known, changed, revoked or new, SHA256
 * fingerprints, and appending a newly accepted key.
 *
 * Never: decides policy (ssh.ts refuses or accepts), prompts, or rewrites or
 * removes an existing line; the only write is an append.
 *
 * Invariants: a key is "known" only if an unmarked line for this host holds
 * exactly these key bytes. A line for this host with the same key type and
 * other bytes makes it "changed"; a host on record only under other key types
 * is "other-type" (never silently new). `@cert-authority` lines never match:
 * ssh2 cannot verify host certificates, so a host known only through a CA is
 * unknown. A malformed line is skipped, as ssh(1) does. Appended lines are
 * plain (not hashed) `name type base64`, so the file stays readable and
 * `ssh-keygen -H` can hash it later.
 */
import { createHash, createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { matchPatternList } from './ssh-pattern';

export interface KnownHostEntry {
  file: string;
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** The raw host field: a comma list of patterns, or one `|1|salt|hash`. */
  hosts: string;
  /** The key type named inside the key blob, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The public key blob (SSH wire format). */
  key: Buffer;
}

export type HostKeyVerdict =
  | { status: 'known'; entry: KnownHostEntry }
  | { status: 'unknown' }
  | { status: 'changed'; entries: KnownHostEntry[] }
  | { status: 'other-type'; knownTypes: string[]; entries: KnownHostEntry[] }
  | { status: 'revoked'; entry: KnownHostEntry };

/** The key type string at the start of an SSH public key blob, or undefined if malformed. */
export function keyTypeOf(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) return undefined;
  const t = blob.subarray(4, 4 + n).toString('latin1');
  return /^[a-z0-9@.-]+$/i.test(t) ? t : undefined;
}

/** `SHA256:<base64, no padding>` as printed by ssh(1) and ssh-keygen -l. */
export function hostKeyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The name a host is filed under: `host` on port 22, else `[host]:port`; lower-cased. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** Parse known_hosts text; malformed lines are skipped. */
export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].replace(/\r$/, '').trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fields = trimmed.split(/[ \t]+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!.toLowerCase();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    if (fields.length < 3) continue;
    const [hosts, typeField, b64] = fields;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue;
    const key = Buffer.from(b64, 'base64');
    const keyType = keyTypeOf(key);
    if (keyType === undefined || keyType !== typeField) continue;
    out.push({ file, line: i + 1, marker, hosts, keyType, key });
  }
  return out;
}

/** Read and parse known_hosts files in order; missing or unreadable files contribute nothing. */
export function loadKnownHosts(files: readonly string[]): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    out.push(...parseKnownHosts(text, f));
  }
  return out;
}

/** Whether a hashed host field `|1|salt|hash` names `name`. */
function hashedMatches(field: string, name: string): boolean {
  const parts = field.split('|');
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  if (salt.length !== 20 || want.length !== 20) return false;
  return createHmac('sha1', salt).update(name).digest().equals(want);
}

/** Whether an entry's host field names `name` (as made by knownHostsName). */
export function entryMatchesHost(e: KnownHostEntry, name: string): boolean {
  const n = name.toLowerCase();
  if (e.hosts.startsWith('|')) return hashedMatches(e.hosts, n);
  return matchPatternList(n, e.hosts.split(','));
}

/** The key types on record for `name` (unmarked lines), in file order without repeats. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  const types: string[] = [];
  for (const e of entries) {
    if (!e.marker && entryMatchesHost(e, name) && !types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/** Judge a presented host key blob for `name` against the entries. */
export function checkHostKey(entries: readonly KnownHostEntry[], name: string, key: Buffer): HostKeyVerdict {
  const matching = entries.filter((e) => entryMatchesHost(e, name));
  const revoked = matching.find((e) => e.marker === 'revoked' && e.key.equals(key));
  if (revoked) return { status: 'revoked', entry: revoked };
  const plain = matching.filter((e) => e.marker === undefined);
  const same = plain.find((e) => e.key.equals(key));
  if (same) return { status: 'known', entry: same };
  const type = keyTypeOf(key);
  const sameType = plain.filter((e) => e.keyType === type);
  if (sameType.length) return { status: 'changed', entries: sameType };
  if (plain.length) return { status: 'other-type', knownTypes: [...new Set(plain.map((e) => e.keyType))], entries: plain };
  return { status: 'unknown' };
}

/** A known_hosts line (no newline) for `name` and a key blob. */
export function formatKnownHostsLine(name: string, key: Buffer): string {
  const type = keyTypeOf(key);
  if (type === undefined) throw new Error('formatKnownHostsLine: malformed key blob');
  return `${name} ${type} ${key.toString('base64')}`;
}

/**
 * Append a plain line for `name` to `file`, creating the file (0600) and its
 * directory (0700) when missing, and starting on a fresh line if the file
 * does not end with a newline. Throws the fs error on failure.
 */
export function appendKnownHost(file: string, name: string, key: Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const st = fs.statSync(file);
    if (st.size > 0) {
      const fd = fs.openSync(file, 'r');
      try {
        const last = Buffer.alloc(1);
        fs.readSync(fd, last, 0, 1, st.size - 1);
        if (last[0] !== 0x0a) prefix = '\n';
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.appendFileSync(file, `${prefix}${formatKnownHostsLine(name, key)}\n`, { mode: 0o600 });
}
