/**
 * The ssh transport: connect to `[user@]host[:port]` with the ssh2 client and
 * hand back an Endpoint whose exec() runs remote commands as Channels.
 *
 * Owns: parsing ssh destinations, applying ~/.ssh/config (ssh-config.ts),
 * host key policy against known_hosts (known-hosts.ts), the order in which
 * credentials are offered, and turning every ssh failure into a FerryError:
 * SSH_CONFIG_INVALID, SSH_CONNECT_FAILED (with host, port and errno),
 * SSH_HOST_KEY_UNKNOWN, SSH_HOST_KEY_MISMATCH, SSH_AUTH_FAILED (listing what
 * was tried), SSH_DISCONNECTED (retryable).
 *
 * Never: prompts (no passphrases, no "are you sure"), accepts a host key that
 * differs from one on record (not even with acceptNew), writes to
 * known_hosts except to append a key the user accepted with acceptNew, or
 * reads a private key it was not pointed at (opts.identity, IdentityFile,
 * the default ~/.ssh/id_ed25519, id_ecdsa, id_rsa).
 *
 * Invariants: the host key is checked during key exchange, before any
 * credential is offered; an accepted new key is appended only after the key
 * exchange has proven the server holds it. Credentials are offered in this
 * order: ssh-agent (opts.agent, else IdentityAgent, else SSH_AUTH_SOCK), then
 * opts.identity, then IdentityFile entries, then the default key files.
 * Command-line values (user@, :port, options) beat ~/.ssh/config. Keepalives
 * follow ServerAliveInterval/ServerAliveCountMax, defaulting to every 15 s,
 * 3 unanswered (unlike ssh(1), which sends none), so a silently cut network
 * ends as SSH_DISCONNECTED instead of hanging an unattended run.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, OpenSSHAgent, utils as sshUtils } from 'ssh2';
import type { AnyAuthMethod, ConnectConfig, ParsedKey } from 'ssh2';
import { FerryError } from '../errors';
import type { Endpoint } from './channel';
import {
  appendKnownHost,
  checkHostKey,
  hostKeyFingerprint,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  loadKnownHosts,
} from './known-hosts';
import { loadSshConfig, resolveSshHost, ResolvedSshHost } from './ssh-config';
import { ConnectionWatch, wrapExecChannel } from './ssh-channel';

export interface SshOptions {
  /** A private key file to offer (after the agent, before IdentityFile entries). */
  identity?: string;
  /** known_hosts file to use instead of ~/.ssh/known_hosts (and the system-wide files). */
  knownHosts?: string;
  /** Record the key of a host that is not in known_hosts yet (never replaces a different key). */
  acceptNew?: boolean;
  /** ssh config file to read instead of ~/.ssh/config (must exist). */
  configFile?: string;
  /** ssh-agent socket to use instead of IdentityAgent / SSH_AUTH_SOCK. */
  agent?: string;
  /** TCP connect timeout, and again for the ssh handshake (default: ConnectTimeout, else 20 s). */
  connectTimeoutMs?: number;
}

export interface SshDest {
  user?: string;
  host: string;
  port?: number;
  path: string;
}

/** What connectSsh needs to know about the local machine (injectable for tests). */
export interface SshEnvironment {
  home: string;
  localUser: string;
  localHost: string;
  uid: number;
  env: Record<string, string | undefined>;
  /** System-wide known_hosts files, read (never written) unless opts.knownHosts is given. */
  globalKnownHosts: string[];
}

export function hostEnvironment(): SshEnvironment {
  let localUser = process.env.USER ?? 'root';
  try {
    localUser = os.userInfo().username;
  } catch {
    // no passwd entry (containers): keep $USER
  }
  return {
    home: os.homedir(),
    localUser,
    localHost: os.hostname(),
    uid: process.getuid?.() ?? 0,
    env: process.env,
    globalKnownHosts: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
  };
}

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_KEEPALIVE_MS = 15_000;
const DEFAULT_KEEPALIVE_COUNT = 3;
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
/** ssh2's host key algorithms, in its default order of preference. */
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

function destInvalid(s: string, why: string): FerryError {
  return new FerryError('SSH_DEST_INVALID', `ssh destination invalid: ${why}`, {
    context: { dest: s },
    hint: 'write it as [user@]host[:port]:/path, for example backup@nas:2222:/srv/ferry',
  });
}

/**
 * `[user@]host[:port]:path` → SshDest; undefined for a local path (one that
 * starts with `/` or `.`, or has no `:` before its first `/`). The host may
 * be a bracketed IPv6 address (`[::1]:/path`). Throws SSH_DEST_INVALID for
 * something that looks remote but is malformed.
 */
export function parseSshDest(s: string): SshDest | undefined {
  if (s.startsWith('/') || s.startsWith('.')) return undefined;
  const slash = s.indexOf('/');
  const colon = s.indexOf(':');
  if (colon < 0 || (slash >= 0 && colon > slash)) return undefined;
  const m = /^(?:([^@/:[\]\s]+)@)?(\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9_.-]+):(.*)$/s.exec(s);
  if (!m) throw destInvalid(s, 'cannot tell user, host and path apart');
  const [, user, hostRaw, rest0] = m;
  const host = hostRaw.startsWith('[') ? hostRaw.slice(1, -1) : hostRaw;
  if (host.startsWith('-')) throw destInvalid(s, 'a host name cannot start with "-"');
  let rest = rest0;
  let port: number | undefined;
  const pm = /^(\d+):(.*)$/s.exec(rest);
  if (pm) {
    port = Number(pm[1]);
    if (!(port >= 1 && port <= 65535)) throw destInvalid(s, `port ${pm[1]} is not between 1 and 65535`);
    rest = pm[2];
  }
  if (rest === '') throw destInvalid(s, 'the path after the host is empty');
  const dest: SshDest = { host, path: rest };
  if (user !== undefined) dest.user = user;
  if (port !== undefined) dest.port = port;
  return dest;
}

/** Host key algorithms to offer: those of keys on record for this host first (as ssh(1) does). */
function hostKeyAlgorithms(knownTypes: string[]): string[] | undefined {
  if (knownTypes.length === 0) return undefined;
  const first: string[] = [];
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) if (HOST_KEY_ALGORITHMS.includes(a) && !first.includes(a)) first.push(a);
  }
  return [...first, ...HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))];
}

interface KeyCandidate {
  file: string;
  key: ParsedKey;
}

interface Credentials {
  agent?: { socket: string; agent: OpenSSHAgent; count: number };
  keys: KeyCandidate[];
  /** What was looked at and could not be offered, for the error message. */
  skipped: string[];
  /** Key files that are passphrase-protected (ferry never prompts). */
  encrypted: string[];
}

function agentIdentities(agent: OpenSSHAgent, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no answer')), timeoutMs);
    agent.getIdentities((err, keys) => {
      clearTimeout(t);
      if (err) reject(err);
      else resolve(keys?.length ?? 0);
    });
  });
}

async function gatherCredentials(opts: SshOptions, cfg: ResolvedSshHost, env: SshEnvironment, where: Record<string, string | number>): Promise<Credentials> {
  const creds: Credentials = { keys: [], skipped: [], encrypted: [] };

  const socket = opts.agent ?? (cfg.identityAgent !== undefined ? cfg.identityAgent : env.env.SSH_AUTH_SOCK) ?? null;
  if (socket) {
    try {
      fs.statSync(socket); // ssh2 reports any connect failure as "Failed to connect to agent"; keep the errno
      const agent = new OpenSSHAgent(socket);
      const count = await agentIdentities(agent, 5000);
      if (count > 0) creds.agent = { socket, agent, count };
      else creds.skipped.push(`agent ${socket} (holds no keys)`);
    } catch (e) {
      creds.skipped.push(`agent ${socket} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  const seen = new Set<string>();
  const files: { file: string; source: 'option' | 'config' | 'default' }[] = [];
  if (opts.identity) files.push({ file: opts.identity, source: 'option' });
  for (const f of cfg.identityFiles) files.push({ file: f, source: 'config' });
  for (const name of DEFAULT_KEYS) files.push({ file: path.join(env.home, '.ssh', name), source: 'default' });

  for (const { file, source } of files) {
    const abs = path.resolve(file);
    if (seen.has(abs)) continue;
    seen.add(abs);
    let data: Buffer;
    try {
      data = fs.readFileSync(abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      if (source === 'option') {
        throw new FerryError('SSH_AUTH_FAILED', `ssh identity unusable: cannot read ${file} (${code})`, {
          context: { ...where, identity: file },
          hint: 'check the --ssh-identity path',
        });
      }
      if (source === 'config') creds.skipped.push(`key ${file} (${code})`);
      continue;
    }
    const parsed = sshUtils.parseKey(data);
    if (parsed instanceof Error) {
      if (/passphrase/i.test(parsed.message)) {
        creds.encrypted.push(file);
        creds.skipped.push(`key ${file} (passphrase-protected; ferry never prompts)`);
      } else {
        creds.skipped.push(`key ${file} (unreadable: ${parsed.message})`);
      }
      continue;
    }
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || !key.isPrivateKey()) {
      creds.skipped.push(`key ${file} (not a private key)`);
      continue;
    }
    creds.keys.push({ file, key });
  }
  return creds;
}

function authFailed(
  why: string,
  where: Record<string, string | number>,
  creds: Credentials,
  tried: string[],
  serverMethods: string[] | undefined,
): FerryError {
  const all = [...tried, ...creds.skipped];
  const context: Record<string, string | number> = { ...where, tried: all.length ? all.join('; ') : 'nothing' };
  if (serverMethods?.length) context.serverAccepts = serverMethods.join(',');
  let hint: string;
  if (creds.encrypted.length) {
    hint =
      `${creds.encrypted.join(', ')} is passphrase-protected and ferry never prompts: load it into ssh-agent ` +
      `(ssh-add ${creds.encrypted[0]}) or pass an unencrypted key with --ssh-identity FILE`;
  } else if (serverMethods && !serverMethods.includes('publickey')) {
    hint = 'the server does not accept public keys; ferry authenticates only with keys or ssh-agent';
  } else {
    hint = "add one of these keys to the remote user's ~/.ssh/authorized_keys, or pass --ssh-identity FILE";
  }
  return new FerryError('SSH_AUTH_FAILED', `ssh authentication failed: ${why}`, { context, hint });
}

const RETRYABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

function connectFailed(why: string, where: Record<string, string | number>, errno: string | undefined, cause?: unknown, retryable?: boolean): FerryError {
  return new FerryError('SSH_CONNECT_FAILED', `ssh connect failed: ${why}`, {
    context: errno ? { ...where, errno } : where,
    hint: errno === 'ENOTFOUND' ? 'check the host name (and HostName in ~/.ssh/config)' : 'check that sshd runs on that host and port; if it does, try again later',
    retryable: retryable ?? (errno !== undefined && RETRYABLE_ERRNO.has(errno)),
    cause,
  });
}

function tcpConnect(host: string, port: number, timeoutMs: number, where: Record<string, string | number>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    // 0 (ConnectTimeout 0) means no timeout of our own, as in ssh(1).
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            sock.destroy();
            reject(connectFailed(`no answer within ${Math.round(timeoutMs / 100) / 10} s`, where, 'ETIMEDOUT'));
          }, timeoutMs)
        : undefined;
    const onError = (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connectFailed(e.message, where, e.code, e));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    });
  });
}

type Ssh2Error = Error & { level?: string; code?: string };

/**
 * Connect, verify the host key, authenticate, and return an Endpoint whose
 * exec() runs a shell command line on the remote host.
 */
export async function connectSsh(dest: SshDest, opts: SshOptions, env: SshEnvironment = hostEnvironment()): Promise<Endpoint> {
  const configFile = opts.configFile ?? path.join(env.home, '.ssh', 'config');
  const directives = loadSshConfig(configFile, env.home, opts.configFile !== undefined);
  const cfg = resolveSshHost(directives, dest.host, { user: dest.user, port: dest.port }, env);
  const where: Record<string, string | number> = { host: cfg.hostName, port: cfg.port };
  if (cfg.hostName !== dest.host) where.alias = dest.host;
  const describe = `${cfg.user}@${dest.host}:${cfg.port}`;

  // Host keys on record.
  const userKnownHosts = opts.knownHosts
    ? [opts.knownHosts]
    : (cfg.knownHostsFiles ?? [path.join(env.home, '.ssh', 'known_hosts'), path.join(env.home, '.ssh', 'known_hosts2')]);
  const entries = loadKnownHosts([...userKnownHosts, ...(opts.knownHosts ? [] : env.globalKnownHosts)]);
  const khName = cfg.hostKeyAlias ? cfg.hostKeyAlias.toLowerCase() : knownHostsName(cfg.hostName, cfg.port);
  const khFile = userKnownHosts[0];
  const serverHostKey = hostKeyAlgorithms(knownKeyTypes(entries, khName));

  const creds = await gatherCredentials(opts, cfg, env, { ...where, user: cfg.user });
  const tried: string[] = [];
  if (!creds.agent && creds.keys.length === 0) {
    throw authFailed('no usable key or agent', { ...where, user: cfg.user }, creds, tried, undefined);
  }

  const timeoutMs = opts.connectTimeoutMs ?? cfg.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sock = await tcpConnect(cfg.hostName, cfg.port, timeoutMs, where);

  const client = new Client();
  let hostKeyError: FerryError | undefined;
  let acceptedKey: Buffer | undefined;
  let serverMethods: string[] | undefined;
  const agentErrors: string[] = [];

  const hostVerifier = (key: Buffer): boolean => {
    const verdict = checkHostKey(entries, khName, key);
    const type = keyTypeOf(key) ?? 'unknown';
    const fp = hostKeyFingerprint(key);
    const ctx = { ...where, fingerprint: fp, keyType: type };
    const replaceHint =
      `if you know the host key really changed, remove the old entry (ssh-keygen -R '${khName}' -f ${khFile ?? '~/.ssh/known_hosts'}) ` +
      'and run again; --ssh-accept-new never replaces a key';
    switch (verdict.status) {
      case 'known':
        return true;
      case 'unknown':
        if (opts.acceptNew) {
          if (!khFile) {
            hostKeyError = new FerryError('SSH_HOST_KEY_UNKNOWN', `ssh host key unknown: ${khName} is not on record and there is no known_hosts file to record it in`, {
              context: ctx,
              hint: 'UserKnownHostsFile is `none`; pass --ssh-known-hosts FILE',
            });
            return false;
          }
          acceptedKey = key;
          return true;
        }
        hostKeyError = new FerryError('SSH_HOST_KEY_UNKNOWN', `ssh host key unknown: ${khName} is not in known_hosts`, {
          context: { ...ctx, knownHosts: userKnownHosts.join(',') || 'none' },
          hint:
            `compare ${fp} with the host's own key (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub), ` +
            'then run again with --ssh-accept-new to record it',
        });
        return false;
      case 'changed':
        hostKeyError = new FerryError('SSH_HOST_KEY_MISMATCH', `ssh host key mismatch: ${khName} presented a different ${type} key than the one on record`, {
          context: { ...ctx, knownAt: verdict.entries.map((e) => `${e.file}:${e.line}`).join(',') },
          hint: `this may be a man-in-the-middle attack or a reinstalled host; ${replaceHint}`,
        });
        return false;
      case 'other-type':
        hostKeyError = new FerryError('SSH_HOST_KEY_MISMATCH', `ssh host key mismatch: ${khName} presented a ${type} key, but only ${verdict.knownTypes.join(', ')} keys are on record`, {
          context: { ...ctx, knownAt: verdict.entries.map((e) => `${e.file}:${e.line}`).join(',') },
          hint: `the host no longer offers the key type on record; ${replaceHint}`,
        });
        return false;
      case 'revoked':
        hostKeyError = new FerryError('SSH_HOST_KEY_MISMATCH', `ssh host key revoked: ${khName} presented a key marked @revoked`, {
          context: { ...ctx, revokedAt: `${verdict.entry.file}:${verdict.entry.line}` },
          hint: 'the key was revoked on purpose; do not connect until the host has a new key',
        });
        return false;
    }
  };

  // Credentials in order; each call means the previous one was refused.
  const queue: ({ kind: 'agent' } | ({ kind: 'key' } & KeyCandidate))[] = [];
  if (creds.agent) queue.push({ kind: 'agent' });
  for (const k of creds.keys) queue.push({ kind: 'key', ...k });
  let current: (typeof queue)[number] | undefined;
  const describeCred = (c: (typeof queue)[number]) =>
    c.kind === 'agent' ? `agent ${creds.agent!.socket} (${creds.agent!.count} key${creds.agent!.count === 1 ? '' : 's'})` : `key ${c.file}`;
  const authHandler = (methodsLeft: string[] | null, _partial: boolean | null, next: (m: AnyAuthMethod | false) => void) => {
    if (current) tried.push(`${describeCred(current)} (refused)`);
    if (methodsLeft) serverMethods = methodsLeft;
    current = methodsLeft && !methodsLeft.includes('publickey') ? undefined : queue.shift();
    if (!current) return next(false);
    if (current.kind === 'agent') return next({ type: 'agent', username: cfg.user, agent: creds.agent!.agent });
    return next({ type: 'publickey', username: cfg.user, key: current.key });
  };

  const config: ConnectConfig = {
    sock,
    username: cfg.user,
    readyTimeout: timeoutMs,
    keepaliveInterval: cfg.serverAliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
    keepaliveCountMax: cfg.serverAliveCountMax ?? DEFAULT_KEEPALIVE_COUNT,
    hostVerifier,
    authHandler: authHandler as unknown as ConnectConfig['authHandler'],
  };
  if (serverHostKey) config.algorithms = { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] };

  await new Promise<void>((resolve, reject) => {
    let phase: 'kex' | 'auth' = 'kex';
    let finished = false;
    const finish = (err?: FerryError) => {
      if (finished) return;
      finished = true;
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      if (err) {
        client.on('error', () => {}); // ssh2 reports the teardown below as one more error
        client.end();
        sock.destroy();
        reject(err);
      } else {
        resolve();
      }
    };
    const onError = (err: Ssh2Error) => {
      if (err.level === 'agent') {
        agentErrors.push(err.message);
        return;
      }
      if (hostKeyError) return finish(hostKeyError);
      switch (err.level) {
        case 'client-authentication':
          return finish(authFailed('no key was accepted', { ...where, user: cfg.user }, creds, tried, serverMethods));
        case 'client-timeout':
          return finish(connectFailed(`no ssh handshake within ${Math.round(timeoutMs / 100) / 10} s`, where, 'ETIMEDOUT', err));
        case 'client-socket':
          return finish(connectFailed(err.message, where, err.code, err));
      }
      if (phase === 'auth') {
        // e.g. the server disconnects with "Too many authentication failures"
        return finish(authFailed(`the server ended authentication: ${err.message}`, { ...where, user: cfg.user }, creds, tried, serverMethods));
      }
      const lost = /lost|closed|reset/i.test(err.message);
      return finish(connectFailed(`ssh handshake failed: ${err.message}`, where, err.code, err, lost));
    };
    const onClose = () => {
      if (hostKeyError) return finish(hostKeyError);
      finish(connectFailed('the connection closed during the ssh handshake', where, undefined, undefined, true));
    };
    client.on('error', onError);
    client.on('close', onClose);
    client.on('handshake', () => {
      phase = 'auth';
      // Also runs after every re-key; the key is recorded once, and later
      // key exchanges must present it again.
      if (acceptedKey && khFile) {
        const key = acceptedKey;
        acceptedKey = undefined;
        try {
          appendKnownHost(khFile, khName, key);
          entries.push({ file: khFile, line: 0, hosts: khName, keyType: keyTypeOf(key) ?? 'unknown', key });
        } catch (e) {
          finish(
            new FerryError('IO_FAILED', `recording the host key failed: ${(e as Error).message}`, {
              context: { file: khFile, errno: (e as NodeJS.ErrnoException).code ?? 'unknown' },
              hint: 'make the known_hosts file writable, or add the key yourself',
              cause: e,
            }),
          );
        }
      }
    });
    client.once('ready', () => {
      if (agentErrors.length) creds.skipped.push(...agentErrors.map((m) => `agent error: ${m}`));
      finish();
    });
    try {
      client.connect(config);
    } catch (e) {
      finish(connectFailed(`ssh2 refused the configuration: ${(e as Error).message}`, where, undefined, e));
    }
  });

  return sshEndpoint(client, sock, describe, where);
}

/** The Endpoint over a ready ssh2 client; watches the connection for loss. */
function sshEndpoint(client: Client, sock: net.Socket, describe: string, where: Record<string, string | number>): Endpoint {
  let closing = false;
  let lost: FerryError | undefined;
  let lastError: Ssh2Error | undefined;
  const watchers = new Set<(err: FerryError | undefined) => void>();

  client.on('error', (err: Ssh2Error) => {
    lastError = err;
  });
  client.on('close', () => {
    if (!closing && !lost) {
      const reason = lastError ? lastError.message : 'the server closed the connection';
      const errno = lastError?.code;
      lost = new FerryError('SSH_DISCONNECTED', `ssh connection lost: ${reason}`, {
        context: errno ? { ...where, errno } : where,
        hint: 'run the same command again; an interrupted transfer resumes where it stopped',
        retryable: true,
        cause: lastError,
      });
    }
    // Runs before ssh2 tears its channels down (it emits 'close' first).
    for (const w of [...watchers]) w(closing ? undefined : lost);
    watchers.clear();
  });

  const watch: ConnectionWatch = (onLost) => {
    watchers.add(onLost);
    return () => watchers.delete(onLost);
  };

  return {
    describe,
    exec(command: string) {
      return new Promise((resolve, reject) => {
        if (lost) return reject(lost);
        if (closing) return reject(new FerryError('SSH_DISCONNECTED', 'ssh connection already closed', { context: where }));
        const onOpen = (err: Error | undefined, ch: Parameters<typeof wrapExecChannel>[0]) => {
          if (err) {
            if (lost) return reject(lost);
            return reject(
              new FerryError('TRANSPORT_REMOTE_FAILED', `remote refused to run the command: ${err.message}`, {
                context: { ...where, command: command.length > 200 ? `${command.slice(0, 200)}...` : command },
                hint: 'check the ssh server logs (MaxSessions, ForceCommand, subsystem restrictions)',
              }),
            );
          }
          resolve(wrapExecChannel(ch, watch, where));
        };
        try {
          client.exec(command, onOpen);
        } catch (e) {
          reject(lost ?? new FerryError('SSH_DISCONNECTED', `ssh connection not usable: ${(e as Error).message}`, { context: where, retryable: true, cause: e }));
        }
      });
    },
    close() {
      if (closing) return;
      closing = true;
      client.end();
      setTimeout(() => sock.destroy(), 2000).unref();
    },
  };
}
