/**
 * `ferry sync` over ssh: a real OpenSSH sshd on 127.0.0.1 (push, pull,
 * zstd, an authorized_keys-style forced `serve --restrict-to`), and an
 * in-process ssh2 server that cuts the connection mid-stream (the next run
 * resumes). The "remote" ferry is this build, started with --remote-command.
 * Run `npx tsc -p tsconfig.json` first.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localMainJs } from '../../src/replicate/destination';
import { syncVolume } from '../../src/replicate/sync';
import { shellJoin } from '../../src/transport/local';
import { Catalog } from '../../src/volume/catalog';
import { initVolume } from '../../src/volume/volume';
import { ferry } from '../helpers/cli';
import { rmTree } from '../helpers/fs';
import { describeSshd, Sshd } from '../helpers/sshd';
import { startFaultServer } from '../helpers/ssh-server';
import { mutate, noise, populate } from '../helpers/sync-trees';
import { compareTrees } from '../helpers/tree-compare';

const SERVE = `exec ${shellJoin([process.execPath, localMainJs(), 'serve'])}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ssh-sync-'));
/** HOME for the CLI: no ~/.ssh/config, no default keys, no agent. */
const home = path.join(work, 'home');
fs.mkdirSync(home);
const allowed = path.join(work, 'allowed');
fs.mkdirSync(allowed);
afterAll(() => rmTree(work));

let n = 0;
function fresh(bigBytes?: number): { vol: string; target: string } {
  const base = path.join(work, `c${++n}`);
  const vol = path.join(base, 'vol');
  fs.mkdirSync(vol, { recursive: true });
  populate(vol, bigBytes);
  initVolume(vol);
  return { vol, target: path.join(base, 'target') };
}

const sshArgs = (s: Sshd) => ['--ssh-identity', s.clientKey, '--ssh-known-hosts', s.knownHostsFile, '--remote-command', SERVE];
const env = { HOME: home, SSH_AUTH_SOCK: '' };
const summaryOf = (b: Buffer) => JSON.parse(b.toString().trim().split('\n').pop()!) as Record<string, unknown>;

describeSshd('sync over OpenSSH', (sshd) => {
  test('push: full, then incremental with zstd; trees equal', () => {
    const s = sshd();
    const { vol, target } = fresh();
    const dest = s.destString(target);
    const r1 = ferry(['sync', vol, dest, '--name', 's1', '--json', ...sshArgs(s)], { env });
    expect([r1.code, r1.stderr]).toEqual([0, '']);
    expect(summaryOf(r1.stdout)).toMatchObject({ volume: vol, snapshot: 's1', parent: null, target: dest });
    expect(compareTrees(vol, path.join(target, 's1'), { ignore: ['.ferry'] })).toEqual([]);
    mutate(vol, 1);
    fs.writeFileSync(path.join(vol, 'app.log'), 'GET /index.html 200\n'.repeat(50000));
    const r2 = ferry(['sync', vol, dest, '--name', 's2', '--compress', 'zstd', '--json', ...sshArgs(s)], { env });
    expect([r2.code, r2.stderr]).toEqual([0, '']);
    const sum = summaryOf(r2.stdout);
    expect(sum).toMatchObject({ snapshot: 's2', parent: 's1' });
    expect(sum.wireBytes as number).toBeLessThan((sum.streamBytes as number) * 0.6);
    expect(compareTrees(vol, path.join(target, 's2'), { ignore: ['.ferry'] })).toEqual([]);
  });

  test('pull: the backup host drives; remote volume, local target', () => {
    const s = sshd();
    const { vol, target } = fresh();
    const r1 = ferry(['sync', s.destString(vol), target, '--name', 'p1', '--json', ...sshArgs(s)], { env });
    expect([r1.code, r1.stderr]).toEqual([0, '']);
    expect(summaryOf(r1.stdout)).toMatchObject({ snapshot: 'p1', parent: null, target });
    expect(compareTrees(vol, path.join(target, 'p1'), { ignore: ['.ferry'] })).toEqual([]);
    mutate(vol, 1);
    const r2 = ferry(['sync', s.destString(vol), target, '--name', 'p2', '--compress', 'zstd:5', '--json', ...sshArgs(s)], { env });
    expect([r2.code, r2.stderr]).toEqual([0, '']);
    expect(summaryOf(r2.stdout)).toMatchObject({ snapshot: 'p2', parent: 'p1' });
    expect(compareTrees(vol, path.join(target, 'p2'), { ignore: ['.ferry'] })).toEqual([]);
    // The snapshot was taken on the remote volume, and its hold released there.
    expect(fs.readdirSync(path.join(vol, '.ferry', 'snapshots')).sort()).toEqual(['p1', 'p2']);
    expect(fs.readdirSync(path.join(vol, '.ferry', 'holds'))).toEqual([]);
  });

  test('plain pipes both ways: ferry send | ssh host ferry receive, and ssh host ferry send | ferry receive', () => {
    const s = sshd();
    const { vol, target } = fresh();
    expect(ferry(['snapshot', vol, '--name', 'p']).code).toBe(0);
    const ssh = shellJoin(['ssh', '-F', '/dev/null', '-i', s.clientKey, '-o', `UserKnownHostsFile=${s.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-p', String(s.port), `${s.user}@${s.host}`]);
    const remoteFerry = shellJoin([process.execPath, localMainJs()]);
    const here = shellJoin([process.execPath, localMainJs()]);
    const push = spawnSync('bash', ['-o', 'pipefail', '-c', `${here} send ${shellJoin([`${vol}@p`])} | ${ssh} ${shellJoin([`${remoteFerry} receive ${shellJoin([target])}`])}`], { encoding: 'utf8' });
    expect([push.status, push.stdout, push.stderr]).toEqual([0, 'p\n', '']);
    expect(compareTrees(vol, path.join(target, 'p'), { ignore: ['.ferry'] })).toEqual([]);
    const back = path.join(work, `pulled-${n}`);
    const pull = spawnSync('bash', ['-o', 'pipefail', '-c', `${ssh} ${shellJoin([`${remoteFerry} send ${shellJoin([`${vol}@p`])}`])} | ${here} receive ${shellJoin([back])}`], { encoding: 'utf8' });
    expect([pull.status, pull.stdout, pull.stderr]).toEqual([0, 'p\n', '']);
    expect(compareTrees(vol, path.join(back, 'p'), { ignore: ['.ferry'] })).toEqual([]);
  });

  test('an unknown host key is refused unless --ssh-accept-new', () => {
    const s = sshd();
    const { vol, target } = fresh(4096);
    const kh = path.join(work, `kh-${n}`);
    fs.writeFileSync(kh, '');
    const args = ['sync', vol, s.destString(target), '--name', 'k', '--ssh-identity', s.clientKey, '--ssh-known-hosts', kh, '--remote-command', SERVE];
    const r = ferry(args, { env });
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/host key/i);
    expect(ferry([...args, '--ssh-accept-new'], { env }).code).toBe(0);
  });
});

describeSshd(
  'serve --restrict-to as a forced command',
  (sshd) => {
    test('targets outside the allowed directory are refused (exit 16); inside works', () => {
      const s = sshd();
      const { vol } = fresh(4096);
      const args = ['--ssh-identity', s.clientKey, '--ssh-known-hosts', s.knownHostsFile];
      // The client asks for a plain `ferry serve`; the server runs its forced command instead.
      const out = ferry(['sync', vol, s.destString(path.join(work, 'outside')), '--name', 'x', ...args], { env });
      expect(out.code).toBe(16);
      expect(out.stderr).toMatch(/serve refused: path is outside the allowed directory/);
      expect(fs.existsSync(path.join(work, 'outside'))).toBe(false);
      const ok = ferry(['sync', vol, s.destString(path.join(allowed, 't')), '--name', 'y', ...args], { env });
      expect([ok.code, ok.stderr]).toEqual([0, expect.any(String)]);
      expect(new Catalog(path.join(allowed, 't')).list().map((e) => e.name)).toEqual(['y']);
    });
  },
  { extraConfig: [`ForceCommand ${SERVE} --restrict-to ${allowed}`] },
);

/**
 * An in-process ssh server whose exec runs a real serve, and cuts the TCP
 * connection (no ssh goodbye) once `cut.in` bytes came from the client or
 * `cut.out` bytes went to it.
 */
async function cuttingServer(cut: { in?: number; out?: number }) {
  return startFaultServer({
    exec: (io) => {
      const child = spawn('/bin/sh', ['-c', io.command], { stdio: ['pipe', 'pipe', 'pipe'] });
      let seenIn = 0;
      let seenOut = 0;
      let dropped = false;
      const drop = () => {
        if (dropped) return;
        dropped = true;
        io.drop();
        child.stdin.end();
      };
      io.stdin.on('data', (d: Buffer) => {
        if (dropped) return;
        seenIn += d.length;
        if (cut.in !== undefined && seenIn >= cut.in) return drop();
        if (!child.stdin.write(d)) {
          io.stdin.pause();
          child.stdin.once('drain', () => io.stdin.resume());
        }
      });
      io.stdin.on('end', () => child.stdin.end());
      child.stdout.on('data', (d: Buffer) => {
        if (dropped) return;
        seenOut += d.length;
        if (cut.out !== undefined && seenOut >= cut.out) return drop();
        io.stdout.write(d);
      });
      child.on('close', (code) => {
        if (!dropped) io.exit(code ?? 1);
      });
    },
  });
}

test('push: ssh connection cut mid-stream: SSH_DISCONNECTED (13, retryable), nothing visible; the next run resumes', async () => {
  const { vol, target } = fresh();
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'ssh-more'));
  const cut: { in?: number } = { in: 1536 * 1024 };
  const srv = await cuttingServer(cut);
  try {
    const ssh = { identity: srv.clientKey, knownHosts: srv.knownHostsFile, configFile: srv.sshConfigFile };
    const dest = `127.0.0.1:${srv.port}:${target}`;
    const e = await syncVolume({ volume: vol, dest, name: 's1', ssh, remoteCommand: SERVE }).then(
      () => undefined,
      (x: { code: string; exitCode: number; retryable: boolean }) => x,
    );
    expect(e).toMatchObject({ code: 'SSH_DISCONNECTED', exitCode: 13, retryable: true });
    // Let the cut serve finish writing its resume record.
    await new Promise((r) => setTimeout(r, 1000));
    expect(fs.existsSync(target) ? fs.readdirSync(target).filter((x) => x !== '.ferry') : []).toEqual([]);
    cut.in = undefined;
    const r = await syncVolume({ volume: vol, dest, snapshotName: 's1', ssh, remoteCommand: SERVE });
    expect(r.resumedFromByte).toBeGreaterThan(0);
    expect(r.wireBytes).toBe(r.streamBytes - r.resumedFromByte);
    expect(compareTrees(vol, path.join(target, 's1'), { ignore: ['.ferry'] })).toEqual([]);
  } finally {
    await srv.stop();
  }
});

test('pull: ssh connection cut while the remote volume streams; the local target keeps a partial and the next pull resumes', async () => {
  const { vol, target } = fresh();
  fs.writeFileSync(path.join(vol, 'more.bin'), noise(3 * 1024 * 1024, 'ssh-pull'));
  const cut: { out?: number } = { out: 1536 * 1024 };
  const srv = await cuttingServer(cut);
  try {
    const ssh = { identity: srv.clientKey, knownHosts: srv.knownHostsFile, configFile: srv.sshConfigFile };
    const src = `127.0.0.1:${srv.port}:${vol}`;
    const e = await syncVolume({ volume: src, dest: target, name: 's1', ssh, remoteCommand: SERVE }).then(
      () => undefined,
      (x: { code: string }) => x,
    );
    expect(e).toMatchObject({ code: 'SSH_DISCONNECTED' });
    expect(fs.readdirSync(target).filter((x) => x !== '.ferry')).toEqual([]);
    // The remote volume holds the pair for this target.
    expect(fs.readdirSync(path.join(vol, '.ferry', 'holds'))).toHaveLength(1);
    cut.out = undefined;
    const r = await syncVolume({ volume: src, dest: target, ssh, remoteCommand: SERVE });
    expect(r.transfers[0]).toMatchObject({ snapshot: 's1', parent: null });
    expect(r.transfers[0].resumedFromByte).toBeGreaterThan(0);
    expect(r.transfers[1]).toMatchObject({ parent: 's1' });
    expect(compareTrees(vol, path.join(target, 's1'), { ignore: ['.ferry'] })).toEqual([]);
    expect(fs.readdirSync(path.join(vol, '.ferry', 'holds'))).toEqual([]);
  } finally {
    await srv.stop();
  }
});
