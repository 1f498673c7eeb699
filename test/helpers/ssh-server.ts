/**
 * An in-process ssh server (ssh2's Server) for fault injection in transport
 * tests: it can drop the TCP connection after N bytes of command output,
 * present any host key, refuse every client key, and run a handler for each
 * exec request. No root, no sshd, no network beyond 127.0.0.1.
 *
 * Owns: key generation for the fake host and client (ed25519, via ssh2),
 * public-key authentication (signature checked), and a known_hosts file for
 * the host key. Never: runs a real shell; commands go to `exec` handlers.
 *
 * Invariants: stop() closes the listener, destroys every connection and
 * removes the temp dir; it is idempotent, and an exit hook runs it for
 * servers a failing test never stopped.
 *
 * Use:
 *   const srv = await startFaultServer({ exec: (io) => io.stdin.pipe(io.stdout) });
 *   await connectSsh({ host: '127.0.0.1', port: srv.port, path: '/' },
 *                    { identity: srv.clientKey, knownHosts: srv.knownHostsFile, configFile: srv.sshConfigFile });
 *   ...
 *   await srv.stop();
 *
 * Faults: `dropAfterBytes: n` (connection cut once n bytes of stdout were
 * sent), `io.drop()` inside a handler (cut at any point), `hostKey:` (a
 * different key than the one in knownHostsFile — see `generateHostKey()`),
 * `rejectAllKeys: true` / `authorizedKeys: [...]` (wrong client key).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Server, utils as sshUtils } from 'ssh2';
import type { ServerChannel, ParsedKey } from 'ssh2';

export interface ExecIO {
  command: string;
  /** What the client writes (its `output`). */
  stdin: Readable;
  /** What the client reads (its `input`). Counts toward dropAfterBytes. */
  stdout: Writable;
  stderr: Writable;
  /** Send an exit status and close the channel. */
  exit(code: number): void;
  /** Send an exit signal (e.g. 'TERM') and close the channel. */
  kill(signal: string): void;
  /** Cut the TCP connection now, without any ssh goodbye. */
  drop(): void;
  /** Aborted when the channel closes (after stdin ends) or the connection goes away. */
  signal: AbortSignal;
}

export interface FaultServerOptions {
  /** Host private key (OpenSSH format). Default: a fresh ed25519 key, which knownHostsFile records. */
  hostKey?: string;
  /** Record this key in knownHostsFile instead of the one presented (a "changed" host key). */
  knownHostKey?: string;
  /** Public keys (`type base64` lines) allowed to log in. Default: the generated client key. */
  authorizedKeys?: string[];
  /** Refuse every client key. */
  rejectAllKeys?: boolean;
  /** Destroy the TCP connection once this many bytes of exec stdout have been sent. */
  dropAfterBytes?: number;
  /** Run for each exec request. Default: `cat` (stdin echoed to stdout, exit 0). */
  exec?: (io: ExecIO) => void | Promise<void>;
}

export interface FaultServer {
  host: '127.0.0.1';
  port: number;
  /** The generated client private key file (unencrypted ed25519). */
  clientKey: string;
  clientPublicKey: string;
  /** known_hosts with a `[127.0.0.1]:port` line for the host key (or knownHostKey). */
  knownHostsFile: string;
  /** An empty ssh config file, to keep the user's ~/.ssh/config out of tests. */
  sshConfigFile: string;
  /** The presented host key's public blob. */
  hostKeyBlob: Buffer;
  dir: string;
  /** Commands received, in order. */
  readonly execs: string[];
  /** Authentication attempts seen: `publickey:<type>` or the method name. */
  readonly authAttempts: string[];
  stop(): Promise<void>;
}

/**
 * A fresh key pair that ssh2 can read back. ssh2's generateKeyPairSync
 * strips leading zero bytes from an ed25519 public key, so about 1 key in
 * 256 comes out malformed (mscdex/ssh2#1513); such a pair is drawn again.
 */
export function keyPair(type: 'ed25519' | 'ecdsa' | 'rsa', opts?: { bits: number }): { private: string; public: string } {
  for (;;) {
    const k = sshUtils.generateKeyPairSync(type as 'ed25519', opts as never);
    if (!(sshUtils.parseKey(k.public) instanceof Error) && !(sshUtils.parseKey(k.private) instanceof Error)) return k;
  }
}

/** A fresh ed25519 private key in OpenSSH format. */
export function generateHostKey(): string {
  return keyPair('ed25519').private;
}

function parsedKey(k: string): ParsedKey {
  const p = sshUtils.parseKey(k);
  if (p instanceof Error) throw p;
  return Array.isArray(p) ? p[0] : p;
}

const running = new Set<FaultServer>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const s of running) {
      try {
        fs.rmSync(s.dir, { recursive: true, force: true });
      } catch {
        // best effort at exit
      }
    }
  });
}

export async function startFaultServer(opts: FaultServerOptions = {}): Promise<FaultServer> {
  hookExit();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshsrv-'));
  const hostKey = opts.hostKey ?? generateHostKey();
  const client = keyPair('ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  fs.writeFileSync(clientKey, client.private, { mode: 0o600 });
  fs.writeFileSync(`${clientKey}.pub`, `${client.public}\n`);
  const sshConfigFile = path.join(dir, 'ssh_config');
  fs.writeFileSync(sshConfigFile, '');

  const allowed = (opts.authorizedKeys ?? [client.public]).map((k) => parsedKey(k));
  const hostBlob = parsedKey(hostKey).getPublicSSH();
  const recordedBlob = opts.knownHostKey ? parsedKey(opts.knownHostKey).getPublicSSH() : hostBlob;
  const execs: string[] = [];
  const authAttempts: string[] = [];
  const sockets = new Set<net.Socket>();

  const ssh = new Server({ hostKeys: [hostKey] }, (conn) => {
    let sentBytes = 0;
    const sock = (conn as unknown as { _sock: net.Socket })._sock;
    conn.on('error', () => {
      // a dropped or refused client; nothing to do
    });
    conn.on('authentication', (ctx) => {
      authAttempts.push(ctx.method === 'publickey' ? `publickey:${ctx.key.algo}` : ctx.method);
      if (ctx.method !== 'publickey' || opts.rejectAllKeys) return ctx.reject(['publickey']);
      const match = allowed.find((k) => k.getPublicSSH().equals(ctx.key.data));
      if (!match) return ctx.reject(['publickey']);
      if (!ctx.signature) return ctx.accept(); // "this key would do": the client signs next
      if (match.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) return ctx.accept();
      return ctx.reject(['publickey']);
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (accept, _reject, info) => {
          const ch: ServerChannel = accept();
          execs.push(info.command);
          const drop = () => sock.destroy();
          const ac = new AbortController();
          const abort = () => ac.abort();
          ch.once('close', abort);
          conn.once('close', abort);
          const stdout = new Writable({
            write(chunk: Buffer, _enc, cb) {
              if (opts.dropAfterBytes !== undefined && sentBytes + chunk.length >= opts.dropAfterBytes) {
                const part = chunk.subarray(0, Math.max(0, opts.dropAfterBytes - sentBytes));
                sentBytes += part.length;
                if (part.length) ch.write(part);
                // Let the partial data leave, then cut without any ssh goodbye.
                setImmediate(drop);
                return; // never calls back: the writer stalls as on a dead link
              }
              sentBytes += chunk.length;
              if (ch.write(chunk)) cb();
              else ch.once('drain', () => cb());
            },
          });
          const io: ExecIO = {
            command: info.command,
            stdin: ch,
            stdout,
            stderr: ch.stderr,
            exit(code) {
              stdout.end(() => {
                ch.exit(code);
                ch.end();
              });
            },
            kill(signal) {
              ch.exit(signal, false, '');
              ch.end();
            },
            drop,
            signal: ac.signal,
          };
          const handler =
            opts.exec ??
            ((x: ExecIO) => {
              x.stdin.pipe(x.stdout, { end: false });
              x.stdin.on('end', () => x.exit(0));
            });
          Promise.resolve()
            .then(() => handler(io))
            .catch((e) => {
              ch.stderr.write(`handler failed: ${String(e)}\n`);
              io.exit(255);
            });
        });
      });
    });
  });

  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    ssh.injectSocket(sock);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (tcp.address() as net.AddressInfo).port;
  const knownHostsFile = path.join(dir, 'known_hosts');
  const type = recordedBlob.subarray(4, 4 + recordedBlob.readUInt32BE(0)).toString();
  fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${type} ${recordedBlob.toString('base64')}\n`);

  let stopped = false;
  const server: FaultServer = {
    host: '127.0.0.1',
    port,
    clientKey,
    clientPublicKey: client.public,
    knownHostsFile,
    sshConfigFile,
    hostKeyBlob: hostBlob,
    dir,
    execs,
    authAttempts,
    async stop() {
      if (stopped) return;
      stopped = true;
      running.delete(server);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(server);
  return server;
}
