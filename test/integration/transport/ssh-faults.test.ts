/**
 * The ssh transport against an in-process ssh2 server that misbehaves on
 * purpose: unknown, changed and revoked host keys, refused client keys,
 * connections cut mid-stream in either direction, commands that exit
 * without reading, and servers that never answer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { FerryError } from '../../../src/errors';
import type { Endpoint } from '../../../src/transport/channel';
import { hostKeyFingerprint } from '../../../src/transport/known-hosts';
import { connectSsh, hostEnvironment, SshEnvironment, SshOptions } from '../../../src/transport/ssh';
import type { SshChannelExit } from '../../../src/transport/ssh-channel';
import { ExecIO, FaultServer, FaultServerOptions, generateHostKey, keyPair, startFaultServer } from '../../helpers/ssh-server';

let tmp: string;
let env: SshEnvironment;
const servers: FaultServer[] = [];
const endpoints: Endpoint[] = [];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshfault-'));
  // An empty home: no ~/.ssh/config, no default keys, no agent, no system known_hosts.
  env = { ...hostEnvironment(), home: tmp, env: {}, globalKnownHosts: [] };
});
afterEach(async () => {
  for (const ep of endpoints.splice(0)) ep.close();
  for (const s of servers.splice(0)) await s.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function server(opts: FaultServerOptions = {}): Promise<FaultServer> {
  const s = await startFaultServer(opts);
  servers.push(s);
  return s;
}

function optionsFor(s: FaultServer, extra: SshOptions = {}): SshOptions {
  return { identity: s.clientKey, knownHosts: s.knownHostsFile, configFile: s.sshConfigFile, ...extra };
}

async function connect(s: FaultServer, extra: SshOptions = {}): Promise<Endpoint> {
  const ep = await connectSsh({ host: '127.0.0.1', port: s.port, path: '/' }, optionsFor(s, extra), env);
  endpoints.push(ep);
  return ep;
}

async function ferryError(p: Promise<unknown>): Promise<FerryError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FerryError) return e;
    throw new Error(`expected a FerryError, got ${String(e)}`);
  }
  throw new Error('expected a FerryError, but it succeeded');
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of r) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

function* chunks(total: number, size = 64 * 1024): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(Math.min(size, total - sent), sent & 0xff);
}

describe('exec over ssh', () => {
  test('cat round trip, stderr, exit status', async () => {
    const s = await server({
      exec: (io) => {
        io.stderr.write(`running ${io.command}\n`);
        io.stdin.pipe(io.stdout, { end: false });
        io.stdin.on('end', () => io.exit(0));
      },
    });
    const ep = await connect(s);
    expect(ep.describe).toBe(`${env.localUser}@127.0.0.1:${s.port}`);
    const ch = await ep.exec('cat');
    const [out, err] = await Promise.all([collect(ch.input), collect(ch.stderr), pipeline(Readable.from([Buffer.from('hello '), Buffer.from('ssh')]), ch.output)]);
    expect(out.toString()).toBe('hello ssh');
    expect(err.toString()).toBe('running cat\n');
    expect(await ch.done).toEqual({ code: 0, signal: null });
    expect(s.execs).toEqual(['cat']);
  });

  test('exit codes and signals propagate; several channels on one connection', async () => {
    const s = await server({
      exec: (io) => {
        const m = /^exit (\d+)$/.exec(io.command);
        if (m) io.exit(Number(m[1]));
        else io.kill('TERM');
      },
    });
    const ep = await connect(s);
    const [a, b, c] = await Promise.all([ep.exec('exit 0'), ep.exec('exit 7'), ep.exec('kill')]);
    for (const ch of [a, b, c]) ch.input.resume();
    expect(await a.done).toEqual({ code: 0, signal: null });
    expect(await b.done).toEqual({ code: 7, signal: null });
    expect(await c.done).toEqual({ code: null, signal: 'SIGTERM' });
  });

  test('a command that exits without reading its input fails the writer instead of hanging', async () => {
    const s = await server({ exec: (io) => io.exit(3) });
    const ep = await connect(s);
    const ch = await ep.exec('refuse');
    ch.input.resume();
    const e = await ferryError(pipeline(Readable.from(chunks(32 * 1024 * 1024)), ch.output));
    expect(e.code).toBe('TRANSPORT_REMOTE_FAILED');
    expect(e.message).toMatch(/exit code 3/);
    expect(await ch.done).toEqual({ code: 3, signal: null });
  });

  test('ending the input of a command that already exited is harmless', async () => {
    const s = await server({ exec: (io) => io.exit(0) });
    const ep = await connect(s);
    const ch = await ep.exec('quick');
    ch.input.resume();
    expect(await ch.done).toEqual({ code: 0, signal: null });
    ch.output.end();
    await finished(ch.output);
  });

  test('endpoint.close() while streaming ends the channels quietly (no SSH_DISCONNECTED)', async () => {
    const s = await server({
      exec: (io) => {
        const t = setInterval(() => io.stdout.write(Buffer.alloc(1024)), 5);
        io.stdin.resume();
        io.signal.addEventListener('abort', () => clearInterval(t));
      },
    });
    const ep = await connect(s);
    const ch = await ep.exec('forever');
    await new Promise((r) => ch.input.once('data', r));
    ep.close();
    ep.close(); // safe twice
    const exit = (await ch.done) as SshChannelExit;
    expect(exit).toEqual({ code: null, signal: null });
    expect(ch.input.errored).toBeNull();
    const e = await ferryError(ep.exec('after'));
    expect(e.code).toBe('SSH_DISCONNECTED');
    expect(e.message).toMatch(/already closed/);
  });

  test('channel.close() tears one channel down; the connection stays usable', async () => {
    const s = await server({
      exec: (io) => {
        if (io.command === 'forever') {
          const t = setInterval(() => io.stdout.write(Buffer.alloc(1024)), 5);
          io.stdin.resume();
          io.signal.addEventListener('abort', () => clearInterval(t));
        } else io.exit(0);
      },
    });
    const ep = await connect(s);
    const ch = await ep.exec('forever');
    await new Promise((r) => ch.input.once('data', r));
    ch.close();
    ch.close(); // safe twice
    const exit = await ch.done;
    expect(exit.code).toBeNull();
    const next = await ep.exec('ok');
    next.input.resume();
    expect(await next.done).toEqual({ code: 0, signal: null });
  });
});

describe('host keys', () => {
  test('unknown host: refused with its fingerprint and a hint, before any credential is offered', async () => {
    const s = await server();
    const empty = path.join(tmp, 'known_hosts');
    fs.writeFileSync(empty, '');
    const e = await ferryError(connect(s, { knownHosts: empty }));
    expect(e.code).toBe('SSH_HOST_KEY_UNKNOWN');
    expect(e.exitCode).toBe(13);
    expect(e.context.fingerprint).toBe(hostKeyFingerprint(s.hostKeyBlob));
    expect(e.message).toContain(`[127.0.0.1]:${s.port}`);
    expect(e.hint).toMatch(/--ssh-accept-new/);
    expect(s.authAttempts).toEqual([]);
    expect(fs.readFileSync(empty, 'utf8')).toBe('');
  });

  test('acceptNew records the key ([host]:port, plain) and the next connection needs no flag', async () => {
    const s = await server();
    const kh = path.join(tmp, 'fresh', '.ssh', 'known_hosts'); // neither dir nor file exists yet
    const ep = await connect(s, { knownHosts: kh, acceptNew: true });
    ep.close();
    const text = fs.readFileSync(kh, 'utf8');
    expect(text).toBe(`[127.0.0.1]:${s.port} ssh-ed25519 ${s.hostKeyBlob.toString('base64')}\n`);
    await connect(s, { knownHosts: kh });
    expect(fs.readFileSync(kh, 'utf8')).toBe(text);
  });

  test('a changed key is refused, even with acceptNew, and known_hosts is left alone', async () => {
    const s = await server({ knownHostKey: generateHostKey() });
    const before = fs.readFileSync(s.knownHostsFile, 'utf8');
    for (const acceptNew of [false, true]) {
      const e = await ferryError(connect(s, { acceptNew }));
      expect(e.code).toBe('SSH_HOST_KEY_MISMATCH');
      expect(e.exitCode).toBe(13);
      expect(e.context.fingerprint).toBe(hostKeyFingerprint(s.hostKeyBlob));
      expect(e.context.knownAt).toBe(`${s.knownHostsFile}:1`);
      expect(e.hint).toMatch(/never replaces/);
    }
    expect(fs.readFileSync(s.knownHostsFile, 'utf8')).toBe(before);
    expect(s.authAttempts).toEqual([]);
  });

  test('a host on record only with another key type is refused, not treated as new', async () => {
    const rsa = keyPair('rsa', { bits: 2048 }).private;
    const s = await server({ knownHostKey: rsa }); // presents ed25519, rsa on record
    const e = await ferryError(connect(s, { acceptNew: true }));
    expect(e.code).toBe('SSH_HOST_KEY_MISMATCH');
    expect(e.message).toMatch(/only ssh-rsa keys are on record/);
  });

  test('a @revoked key is refused', async () => {
    const s = await server();
    const kh = path.join(tmp, 'known_hosts');
    fs.writeFileSync(kh, `${fs.readFileSync(s.knownHostsFile, 'utf8')}@revoked * ssh-ed25519 ${s.hostKeyBlob.toString('base64')}\n`);
    const e = await ferryError(connect(s, { knownHosts: kh, acceptNew: true }));
    expect(e.code).toBe('SSH_HOST_KEY_MISMATCH');
    expect(e.message).toMatch(/revoked/);
  });

  test('a hashed known_hosts entry, among other hosts and key types, is accepted', async () => {
    const s = await server();
    const salt = randomBytes(20);
    const name = `[127.0.0.1]:${s.port}`;
    const hash = createHmac('sha1', salt).update(name).digest('base64');
    const other = keyPair('ecdsa', { bits: 256 }).public;
    const kh = path.join(tmp, 'known_hosts');
    fs.writeFileSync(
      kh,
      [
        `otherhost ${other}`,
        `127.0.0.1 ${keyPair('ed25519').public}`, // same host, port 22: a different entry
        `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${s.hostKeyBlob.toString('base64')}`,
        '',
      ].join('\n'),
    );
    const ep = await connect(s, { knownHosts: kh });
    expect(ep.describe).toContain(String(s.port));
  });
});

describe('authentication', () => {
  test('a key the server does not accept: SSH_AUTH_FAILED listing what was tried', async () => {
    const other = keyPair('ed25519').public;
    const s = await server({ authorizedKeys: [other] });
    const e = await ferryError(connect(s));
    expect(e.code).toBe('SSH_AUTH_FAILED');
    expect(e.exitCode).toBe(13);
    expect(String(e.context.tried)).toContain(`key ${s.clientKey} (refused)`);
    expect(e.hint).toMatch(/authorized_keys|--ssh-identity/);
    expect(s.authAttempts.length).toBeGreaterThan(0);
  });

  test('IdentityFile entries and default keys are tried after --ssh-identity, in order', async () => {
    const s = await server();
    const wrong = path.join(tmp, 'wrong_key');
    fs.writeFileSync(wrong, keyPair('ed25519').private, { mode: 0o600 });
    fs.mkdirSync(path.join(tmp, '.ssh'));
    fs.copyFileSync(s.clientKey, path.join(tmp, '.ssh', 'id_ed25519')); // the right key, as a default
    const cfg = path.join(tmp, 'config');
    fs.writeFileSync(cfg, `Host *\n  IdentityFile ${path.join(tmp, 'missing_key')}\n`);
    const ep = await connect(s, { identity: wrong, configFile: cfg });
    expect(ep).toBeDefined();
    expect(s.authAttempts.filter((a) => a.startsWith('publickey')).length).toBeGreaterThanOrEqual(2);
  });

  test('a passphrase-protected key and no agent: SSH_AUTH_FAILED with an ssh-add hint', async () => {
    const s = await server();
    const enc = path.join(tmp, 'enc_key');
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    const e = await ferryError(connect(s, { identity: enc }));
    expect(e.code).toBe('SSH_AUTH_FAILED');
    expect(String(e.context.tried)).toContain(`key ${enc} (passphrase-protected`);
    expect(e.hint).toContain(`ssh-add ${enc}`);
  });

  test('a missing --ssh-identity file is reported as such', async () => {
    const s = await server();
    const e = await ferryError(connect(s, { identity: path.join(tmp, 'nope') }));
    expect(e.code).toBe('SSH_AUTH_FAILED');
    expect(e.message).toMatch(/cannot read .*nope \(ENOENT\)/);
  });

  test('ssh-agent: keys held by the agent log in, without any key file', async () => {
    const s = await server();
    const sock = path.join(tmp, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      const add = spawnSync('ssh-add', [s.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: sock }, encoding: 'utf8' });
      if (add.status !== 0) throw new Error(`ssh-add failed: ${add.stderr}`);
      const ep = await connectSsh(
        { host: '127.0.0.1', port: s.port, path: '/' },
        { knownHosts: s.knownHostsFile, configFile: s.sshConfigFile },
        { ...env, env: { SSH_AUTH_SOCK: sock } },
      );
      endpoints.push(ep);
      const ch = await ep.exec('cat');
      ch.output.end('via agent');
      expect((await collect(ch.input)).toString()).toBe('via agent');
    } finally {
      agent.kill();
    }
  });

  test('nothing to offer at all: SSH_AUTH_FAILED before connecting', async () => {
    const s = await server();
    const e = await ferryError(connectSsh({ host: '127.0.0.1', port: s.port, path: '/' }, { knownHosts: s.knownHostsFile, configFile: s.sshConfigFile, agent: path.join(tmp, 'no-agent') }, env));
    expect(e.code).toBe('SSH_AUTH_FAILED');
    expect(String(e.context.tried)).toContain('no-agent (ENOENT)');
    expect(s.authAttempts).toEqual([]);
  });
});

describe('connection failures', () => {
  test('connection lost while reading: the stream errors with SSH_DISCONNECTED (retryable)', async () => {
    const total = 16 * 1024 * 1024;
    const s = await server({
      dropAfterBytes: 1024 * 1024,
      exec: async (io: ExecIO) => {
        await pipeline(Readable.from(chunks(total)), io.stdout);
        io.exit(0);
      },
    });
    const ep = await connect(s);
    const ch = await ep.exec('send');
    let got = 0;
    const e = await ferryError(
      pipeline(
        ch.input,
        new Writable({
          write(b: Buffer, _e, cb) {
            got += b.length;
            cb();
          },
        }),
      ),
    );
    expect(e.code).toBe('SSH_DISCONNECTED');
    expect(e.retryable).toBe(true);
    expect(e.exitCode).toBe(13);
    expect(e.context).toMatchObject({ host: '127.0.0.1', port: s.port });
    expect(got).toBeLessThanOrEqual(1024 * 1024);
    const exit = (await ch.done) as SshChannelExit;
    expect(exit).toMatchObject({ code: null, signal: null });
    expect(exit.error?.code).toBe('SSH_DISCONNECTED');
    // The endpoint is dead too.
    expect((await ferryError(ep.exec('again'))).code).toBe('SSH_DISCONNECTED');
  });

  test('connection lost while writing: the writer errors with SSH_DISCONNECTED', async () => {
    const s = await server({
      exec: (io) => {
        let n = 0;
        io.stdin.on('data', (b: Buffer) => {
          n += b.length;
          if (n >= 1024 * 1024) io.drop();
        });
      },
    });
    const ep = await connect(s);
    const ch = await ep.exec('receive');
    ch.input.resume();
    const e = await ferryError(pipeline(Readable.from(chunks(64 * 1024 * 1024)), ch.output));
    expect(e.code).toBe('SSH_DISCONNECTED');
    expect(e.retryable).toBe(true);
    expect(((await ch.done) as SshChannelExit).error?.code).toBe('SSH_DISCONNECTED');
  });

  test('connection refused: SSH_CONNECT_FAILED with host, port and errno, retryable', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const key = path.join(tmp, 'k');
    fs.writeFileSync(key, keyPair('ed25519').private, { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'cfg'), '');
    const e = await ferryError(connectSsh({ host: '127.0.0.1', port, path: '/' }, { identity: key, configFile: path.join(tmp, 'cfg') }, env));
    expect(e.code).toBe('SSH_CONNECT_FAILED');
    expect(e.exitCode).toBe(13);
    expect(e.retryable).toBe(true);
    expect(e.context).toEqual({ host: '127.0.0.1', port, errno: 'ECONNREFUSED' });
    expect(e.message).toMatch(/^ssh connect failed: /);
  });

  test('a server that never speaks: SSH_CONNECT_FAILED ETIMEDOUT after connectTimeoutMs', async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((c) => held.push(c));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const port = (mute.address() as net.AddressInfo).port;
    const key = path.join(tmp, 'k');
    fs.writeFileSync(key, keyPair('ed25519').private, { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'cfg'), '');
    try {
      const t0 = Date.now();
      const e = await ferryError(connectSsh({ host: '127.0.0.1', port, path: '/' }, { identity: key, configFile: path.join(tmp, 'cfg'), connectTimeoutMs: 400 }, env));
      expect(e.code).toBe('SSH_CONNECT_FAILED');
      expect(e.context.errno).toBe('ETIMEDOUT');
      expect(e.retryable).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      for (const c of held) c.destroy();
      mute.close();
    }
  });
});

describe('ssh config', () => {
  test('Host alias → HostName, Port, User, IdentityFile, UserKnownHostsFile', async () => {
    const s = await server();
    const cfg = path.join(tmp, 'config');
    fs.writeFileSync(
      cfg,
      [
        'Host nas backup-*',
        '  HostName 127.0.0.1',
        `  Port ${s.port}`,
        '  User tester',
        `  IdentityFile ${s.clientKey}`,
        `  UserKnownHostsFile ${s.knownHostsFile}`,
        'Host *',
        '  Port 1',
        '',
      ].join('\n'),
    );
    const ep = await connectSsh({ host: 'nas', path: '/' }, { configFile: cfg }, env);
    endpoints.push(ep);
    expect(ep.describe).toBe(`tester@nas:${s.port}`);
    const ch = await ep.exec('cat');
    ch.output.end('configured');
    expect((await collect(ch.input)).toString()).toBe('configured');
  });

  test('a bad config file: SSH_CONFIG_INVALID naming file and line (exit 12)', async () => {
    const cfg = path.join(tmp, 'config');
    fs.writeFileSync(cfg, 'Host nas\n  Port twenty-two\n');
    const e = await ferryError(connectSsh({ host: 'nas', path: '/' }, { configFile: cfg }, env));
    expect(e.code).toBe('SSH_CONFIG_INVALID');
    expect(e.exitCode).toBe(12);
    expect(e.context).toEqual({ file: cfg, line: 2 });
  });
});
