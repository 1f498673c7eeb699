/**
 * A private OpenSSH sshd on 127.0.0.1 for the ssh suite: its own host key,
 * client key, authorized_keys, known_hosts and sshd_config in a temp dir,
 * logins as the current user (root) by key only.
 *
 * Owns: the sshd process group and its temp dir. Invariants: stop() is
 * idempotent, ends sshd and every per-connection child, and removes the
 * dir; a cleanup registered with bench/lib/cleanup.ts does the same if the
 * benchmark is interrupted. Never touches ~/.ssh or the system's sshd; the
 * only path outside the temp dir is sshd's privilege-separation directory
 * /run/sshd, created if missing (sshd refuses to start without it).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { findTool } from './requirements';
import { SkipError } from './suite';

export interface Sshd {
  port: number;
  user: string;
  clientKey: string;
  knownHostsFile: string;
  /** `user@127.0.0.1:PORT:/path`, ferry's DEST syntax. */
  dest(path: string): string;
  /** argv prefix for OpenSSH's client: `ssh -p PORT -i KEY ... user@127.0.0.1`. */
  sshArgv(): string[];
  log(): string;
  stop(): Promise<void>;
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

function speaksSsh(port: number): Promise<boolean> {
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

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** Why sshd cannot run here, or undefined. */
export function sshdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (sshd logs in as the current user)';
  for (const t of ['sshd', 'ssh', 'ssh-keygen']) if (!findTool(t)) return `missing tool: ${t}`;
  return undefined;
}

/** Start sshd; throws SkipError when it cannot run here. */
export async function startSshd(parentDir: string): Promise<Sshd> {
  const why = sshdUnavailable();
  if (why) throw new SkipError(`sshd: ${why}`);
  const sshd = findTool('sshd')!;
  const keygen = findTool('ssh-keygen')!;
  const dir = mkdtempSync(join(parentDir, 'sshd-'));
  const removeDir = registerCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const [f, c] of [
    [hostKey, 'ferry-bench-host'],
    [clientKey, 'ferry-bench-client'],
  ]) {
    const r = spawnSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', c, '-f', f], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  }
  copyFileSync(`${clientKey}.pub`, join(dir, 'authorized_keys'));
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const user = os.userInfo().username;
  const logFile = join(dir, 'sshd.log');
  const knownHostsFile = join(dir, 'known_hosts');
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const configFile = join(dir, 'sshd_config');
    writeFileSync(
      configFile,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'MaxStartups 50',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const fd = openSync(logFile, 'a');
    const child = spawn(sshd, ['-D', '-e', '-f', configFile], { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    child.unref();
    const unregister = registerCleanup(`stop sshd on port ${port}`, () => killGroup(child, 'SIGKILL'));
    let ready = false;
    for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) {
      if (await speaksSsh(port)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (!ready) {
      unregister();
      if (attempt < 3 && /Address already in use/.test(log())) continue;
      const text = log();
      removeDir();
      throw new SkipError(`sshd did not start: ${text.trim().split('\n').slice(-3).join(' / ') || 'no output'}`);
    }
    writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`);
    let stopped = false;
    return {
      port,
      user,
      clientKey,
      knownHostsFile,
      dest: (p) => `${user}@127.0.0.1:${port}:${p}`,
      sshArgv: () => [
        'ssh',
        '-F',
        '/dev/null',
        '-p',
        String(port),
        '-i',
        clientKey,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        `UserKnownHostsFile=${knownHostsFile}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        `${user}@127.0.0.1`,
      ],
      log,
      async stop() {
        if (stopped) return;
        stopped = true;
        killGroup(child);
        for (let i = 0; i < 40 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
        unregister();
        removeDir();
      },
    };
  }
}
