/**
 * The ssh transport against a real OpenSSH sshd (test/helpers/sshd.ts):
 * bulk bytes through `cat` with backpressure, exit statuses, ferry itself
 * on the remote side, host key handling that agrees with OpenSSH's tools,
 * and sshd dying mid-stream.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { FerryError } from '../../../src/errors';
import type { Channel, Endpoint } from '../../../src/transport/channel';
import { connectSsh, hostEnvironment, SshEnvironment } from '../../../src/transport/ssh';
import type { SshChannelExit } from '../../../src/transport/ssh-channel';
import { describeSshd, startSshd, sshdTest } from '../../helpers/sshd';

const REPO = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

let tmp: string;
let env: SshEnvironment;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshd-test-'));
  // No ~/.ssh/config, default keys or agent of whoever runs the tests.
  env = { ...hostEnvironment(), home: tmp, env: {}, globalKnownHosts: [] };
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

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

async function run(ep: Endpoint, command: string, input?: Buffer): Promise<{ out: string; err: string; exit: SshChannelExit }> {
  const ch: Channel = await ep.exec(command);
  ch.output.end(input);
  const [out, err] = await Promise.all([collect(ch.input), collect(ch.stderr)]);
  return { out: out.toString(), err: err.toString(), exit: await ch.done };
}

describeSshd('ssh transport against OpenSSH sshd', (sshd) => {
  let ep: Endpoint;
  beforeAll(async () => {
    ep = await connectSsh(sshd().sshDest('/'), sshd().sshOptions(), env);
  });
  afterAll(() => ep?.close());

  test('cat round trip of 50 MB: every byte back, and the writer is held back while nobody reads', async () => {
    const TOTAL = 50 * 1024 * 1024;
    const CHUNK = 64 * 1024;
    const ch = await ep.exec('cat');
    const sent = createHash('sha256');
    let accepted = 0;
    const writer = (async () => {
      for (let n = 0; n < TOTAL; n += CHUNK) {
        const b = randomBytes(CHUNK);
        sent.update(b);
        const more = ch.output.write(b, () => (accepted += b.length));
        if (!more) await once(ch.output, 'drain');
      }
      ch.output.end();
      await finished(ch.output);
    })();

    // Phase 1: read nothing. Windows and pipe buffers fill, then the writer must stall.
    let last = -1;
    for (let stable = 0, i = 0; stable < 5 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stable = accepted === last ? stable + 1 : 0;
      last = accepted;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(24 * 1024 * 1024); // ssh windows (2 MiB each way) + pipes + stream buffers

    // Phase 2: read everything.
    const got = createHash('sha256');
    let received = 0;
    for await (const b of ch.input) {
      got.update(b as Buffer);
      received += (b as Buffer).length;
    }
    await writer;
    expect(received).toBe(TOTAL);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    expect(await ch.done).toEqual({ code: 0, signal: null });
  }, 180_000);

  test('exit codes, signals and stderr propagate', async () => {
    expect((await run(ep, 'exit 0')).exit).toEqual({ code: 0, signal: null });
    expect((await run(ep, 'exit 42')).exit).toEqual({ code: 42, signal: null });
    const r = await run(ep, 'echo out; echo oops >&2; exit 3');
    expect(r).toMatchObject({ out: 'out\n', err: 'oops\n', exit: { code: 3, signal: null } });
    expect((await run(ep, 'kill -TERM $$')).exit).toEqual({ code: null, signal: 'SIGTERM' });
    expect((await run(ep, 'tr a-z A-Z', Buffer.from('shout\n'))).out).toBe('SHOUT\n');
  });

  test('ferry runs on the remote side: node dist/src/cli/main.js --version', async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -p tsconfig.json)`);
    const version = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version as string;
    const r = await run(ep, `node ${CLI} --version`);
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe(version);
    expect(r.exit).toEqual({ code: 0, signal: null });
  });

  test('host keys: unknown refused with the fingerprint ssh-keygen prints; accept-new records a line OpenSSH finds', async () => {
    const kh = path.join(tmp, 'kh', 'known_hosts');
    const e = await ferryError(connectSsh(sshd().sshDest('/'), sshd().sshOptions({ knownHosts: kh }), env));
    expect(e.code).toBe('SSH_HOST_KEY_UNKNOWN');
    expect(e.context.fingerprint).toBe(sshd().hostKeyFingerprint);
    expect(fs.existsSync(kh)).toBe(false);

    const first = await connectSsh(sshd().sshDest('/'), sshd().sshOptions({ knownHosts: kh, acceptNew: true }), env);
    first.close();
    const found = spawnSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd().port}`, '-f', kh], { encoding: 'utf8' });
    expect(found.status).toBe(0);
    expect(found.stdout).toContain('ssh-ed25519');

    const again = await connectSsh(sshd().sshDest('/'), sshd().sshOptions({ knownHosts: kh }), env);
    try {
      expect((await run(again, 'echo ok')).out).toBe('ok\n');
    } finally {
      again.close();
    }
  });

  test('a key sshd does not authorize: SSH_AUTH_FAILED', async () => {
    const key = path.join(tmp, 'stranger');
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    expect(r.status).toBe(0);
    const e = await ferryError(connectSsh(sshd().sshDest('/'), sshd().sshOptions({ identity: key }), env));
    expect(e.code).toBe('SSH_AUTH_FAILED');
    expect(String(e.context.tried)).toContain(`key ${key} (refused)`);
  });
});

sshdTest()('sshd dies mid-stream: the reader gets SSH_DISCONNECTED, done carries it', async () => {
  const s = await startSshd();
  let ep: Endpoint | undefined;
  try {
    ep = await connectSsh(s.sshDest('/'), s.sshOptions(), env);
    const ch = await ep.exec('cat /dev/zero');
    let got = 0;
    const reading = (async () => {
      for await (const b of ch.input) {
        got += (b as Buffer).length;
        if (got > 4 * 1024 * 1024 && got - (b as Buffer).length <= 4 * 1024 * 1024) void s.stop();
      }
    })();
    const e = await ferryError(reading);
    expect(e.code).toBe('SSH_DISCONNECTED');
    expect(e.retryable).toBe(true);
    expect(got).toBeGreaterThan(4 * 1024 * 1024);
    const exit = (await ch.done) as SshChannelExit;
    expect(exit.error?.code).toBe('SSH_DISCONNECTED');
  } finally {
    ep?.close();
    await s.stop();
  }
}, 60_000);
