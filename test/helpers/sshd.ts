/**
 * A real OpenSSH sshd for end-to-end tests, on 127.0.0.1 and a free port,
 * with its own host key, client key, authorized_keys, known_hosts and
 * sshd_config in a temp dir. Logins are as the current user (root), by key.
 *
 * Use:
 *   describeSshd('sync over ssh', (sshd) => {          // one sshd per block
 *     test('x', async () => {
 *       const s = sshd();
 *       const ep = await connectSsh(s.sshDest('/srv/x'), s.sshOptions());
 *       // or for the CLI: ['sync', vol, s.destString('/srv/x'), '--ssh-identity', s.clientKey,
 *       //                  '--ssh-known-hosts', s.knownHostsFile]
 *     });
 *   });
 *   sshdTest()('one-off', async () => withSshd(async (s) => { ... }));
 *   const s = await startSshd(); try { ... } finally { await s.stop(); }
 *
 * Where sshd can't run (not root, /usr/sbin/sshd or ssh-keygen missing),
 * describeSshd/sshdTest skip with the reason in the test name; under
 * FERRY_REQUIRE_REAL_FS=1 (CI) they fail instead.
 *
 * Owns: the sshd process and its temp dir. Invariants: stop() is idempotent,
 * kills sshd and every process it forked (sessions and their commands, found
 * through /proc) and removes the temp dir; describeSshd stops it in afterAll even
 * when tests fail, and an exit hook stops whatever is still running.
 * Never: touches ~/.ssh or the system's sshd; the only file outside the temp
 * dir is sshd's privilege-separation dir /run/sshd, created if missing.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SshDest, SshOptions } from '../../src/transport/ssh';

export const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';

export interface SshdOptions {
  /** Extra sshd_config lines (e.g. ['MaxSessions 2']). */
  extraConfig?: string[];
  /** Variables set for every session (sshd SetEnv). */
  env?: Record<string, string>;
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  /** The user to log in as (whoever runs the tests). */
  user: string;
  /** Client private key (unencrypted ed25519), authorized on this sshd. */
  clientKey: string;
  /** known_hosts holding this sshd's host key as `[127.0.0.1]:port`. */
  knownHostsFile: string;
  /** An empty ssh config file, so the user's ~/.ssh/config can't interfere. */
  sshConfigFile: string;
  /** SHA256 fingerprint of the host key, as ssh-keygen -l prints it. */
  hostKeyFingerprint: string;
  /** The temp dir holding keys, config and log. */
  dir: string;
  /** SshDest for a remote path. */
  sshDest(remotePath: string): SshDest;
  /** `user@127.0.0.1:port:/path` for the CLI. */
  destString(remotePath: string): string;
  /** SshOptions that trust this sshd and log in with clientKey. */
  sshOptions(extra?: SshOptions): SshOptions;
  /** sshd's log so far (its stderr; useful in failure messages). */
  log(): string;
  /** Stop sshd and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Synchronous last-resort cleanups for sshds still running at process exit. */
const running = new Map<Sshd, () => void>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const cleanup of running.values()) cleanup();
  });
}

let reasonCache: string | null | undefined;

/** Why a real sshd can't run here, or undefined when it can. */
export function cannotRunSshdReason(): string | undefined {
  if (reasonCache !== undefined) return reasonCache ?? undefined;
  let reason: string | undefined;
  if (process.platform !== 'linux') reason = 'not Linux';
  else if (process.getuid?.() !== 0) reason = 'not root (sshd needs root to log in as a user)';
  else if (!fs.existsSync(SSHD)) reason = `${SSHD} not installed (apt-get install openssh-server)`;
  else if (!fs.existsSync(SSH_KEYGEN)) reason = `${SSH_KEYGEN} not installed`;
  reasonCache = reason ?? null;
  return reason;
}

function realRequired(): boolean {
  return process.env.FERRY_REQUIRE_REAL_FS === '1';
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.error) throw new Error(`${argv[0]}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when something on the port speaks ssh (sends `SSH-2.0-`). */
function probeBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('SSH-2.0-'));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(buf.startsWith('SSH-2.0-')));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Start an sshd. Throws (with sshd's log) when it can't; check cannotRunSshdReason() first. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const why = cannotRunSshdReason();
  if (why) throw new Error(`cannot run sshd: ${why}`);
  hookExit();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshd-'));
  try {
    return await startIn(dir, opts);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function startIn(dir: string, opts: SshdOptions): Promise<Sshd> {
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const clientKey = path.join(dir, 'client_ed25519');
  run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-test-host', '-f', hostKey]);
  run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-test-client', '-f', clientKey]);
  fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
  const hostPub = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  const hostKeyFingerprint = run([SSH_KEYGEN, '-l', '-E', 'sha256', '-f', `${hostKey}.pub`]).split(/\s+/)[1];
  const sshConfigFile = path.join(dir, 'ssh_config');
  fs.writeFileSync(sshConfigFile, '');
  // sshd refuses to start without its privilege-separation directory.
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const user = os.userInfo().username;
  const logFile = path.join(dir, 'sshd.log');

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'MaxStartups 100',
      'MaxSessions 50',
      'LogLevel VERBOSE',
      ...Object.entries(opts.env ?? {}).map(([k, v]) => `SetEnv ${k}="${v}"`),
      ...(opts.extraConfig ?? []),
    ];
    const configFile = path.join(dir, 'sshd_config');
    fs.writeFileSync(configFile, `${config.join('\n')}\n`);
    run([SSHD, '-t', '-f', configFile]);

    const logFd = fs.openSync(logFile, 'a');
    // -D: stay in the foreground (our child); -e: log to stderr (the log file).
    // detached: its own process group, so stop() can end per-connection children too.
    const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', logFd, logFd], detached: true });
    fs.closeSync(logFd);
    child.unref();
    const log = () => {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    };

    let ready = false;
    for (let i = 0; i < 100 && !exited(child); i++) {
      if (await probeBanner(port)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (!ready) {
      killGroup(child);
      const text = log();
      if (attempt < 3 && /Address already in use/.test(text)) continue; // lost the port race
      throw new Error(`sshd did not start on port ${port}:\n${text}`);
    }

    let stopped = false;
    const sshd: Sshd = {
      host: '127.0.0.1',
      port,
      user,
      clientKey,
      knownHostsFile: path.join(dir, 'known_hosts'),
      sshConfigFile,
      hostKeyFingerprint,
      dir,
      sshDest: (p) => ({ user, host: '127.0.0.1', port, path: p }),
      destString: (p) => `${user}@127.0.0.1:${port}:${p}`,
      sshOptions: (extra = {}) => ({ identity: clientKey, knownHosts: sshd.knownHostsFile, configFile: sshConfigFile, ...extra }),
      log,
      async stop() {
        if (stopped) return;
        stopped = true;
        running.delete(sshd);
        killGroup(child);
        for (let i = 0; i < 40 && !exited(child); i++) await sleep(50);
        if (!exited(child)) killGroup(child, 'SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
    fs.writeFileSync(sshd.knownHostsFile, `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`);
    running.set(sshd, () => {
      killGroup(child, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return sshd;
  }
}

/** Every descendant of `pid`, from /proc (sshd's per-connection children call setsid, so a group kill misses them). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // the process exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Signal sshd, its process group, and every process it forked (sessions and the commands in them). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.pid === undefined || exited(child)) return;
  const below = descendants(child.pid);
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
  for (const pid of below) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Start an sshd, run fn, and always stop it. */
export async function withSshd<T>(fn: (s: Sshd) => Promise<T>, opts: SshdOptions = {}): Promise<T> {
  const s = await startSshd(opts);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

type TestFn = jest.ProvidesCallback;

/** `test` when sshd can run; else skipped with the reason, or failing under FERRY_REQUIRE_REAL_FS=1. */
export function sshdTest(): (name: string, fn: TestFn, timeout?: number) => void {
  const reason = cannotRunSshdReason();
  if (reason === undefined) return (name, fn, timeout) => test(name, fn, timeout);
  if (realRequired()) {
    return (name) =>
      test(name, () => {
        throw new Error(`cannot run sshd: ${reason} (FERRY_REQUIRE_REAL_FS=1 makes this a failure)`);
      });
  }
  return (name, fn, timeout) => test.skip(`${name} [skipped: cannot run sshd: ${reason}]`, fn, timeout);
}

/**
 * A describe block sharing one sshd, started in beforeAll and stopped in
 * afterAll (even when tests fail). `sshd()` returns it inside tests.
 */
export function describeSshd(name: string, body: (sshd: () => Sshd) => void, opts: SshdOptions = {}): void {
  const reason = cannotRunSshdReason();
  if (reason !== undefined) {
    if (realRequired()) {
      describe(name, () => {
        test('start sshd', () => {
          throw new Error(`cannot run sshd: ${reason} (FERRY_REQUIRE_REAL_FS=1 makes this a failure)`);
        });
      });
    } else {
      describe.skip(`${name} [skipped: cannot run sshd: ${reason}]`, () => {
        body(() => {
          throw new Error('skipped');
        });
      });
    }
    return;
  }
  describe(name, () => {
    let s: Sshd | undefined;
    beforeAll(async () => {
      s = await startSshd(opts);
    }, 30_000);
    afterAll(async () => {
      await s?.stop();
    });
    body(() => {
      if (!s) throw new Error('sshd did not start (see beforeAll)');
      return s;
    });
  });
}
