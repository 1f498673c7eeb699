/**
 * `npm run demo`: ferry end to end in a temp dir, no root and no config.
 *
 * Today it shows the receive side with streams built by ferry's encoder: a
 * full stream of a sample tree, an incremental one with renames, an edit in
 * the middle of a file, a deletion and a new hard link; each is dumped,
 * received with the real `ferry` binary, and verified. A hostile stream is
 * refused. Each step prints the command it runs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Cmd, Command } from '../src/model/command';
import { StreamEncoder, splitWrite } from '../src/stream/encoder';

const FERRY = path.join(__dirname, '..', '..', 'bin', 'ferry');
const b = (s: string) => Buffer.from(s);
const now = { sec: BigInt(Math.floor(Date.now() / 1000)), nsec: 123456789 };

function run(args: string[], input?: Buffer): { code: number | null; out: string; err: string } {
  console.log(`$ ferry ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [FERRY, ...args], { input });
  const out = r.stdout.toString();
  const err = r.stderr.toString();
  if (out) process.stdout.write(out.split('\n').slice(0, 12).map((l) => (l ? `  ${l}` : l)).join('\n') + (out.split('\n').length > 12 ? '  …\n' : '\n'));
  if (err) process.stdout.write(err.split('\n').map((l) => (l ? `  ${l}` : l)).join('\n'));
  console.log(`  (exit ${r.status})\n`);
  return { code: r.status, out, err };
}

function encode(cmds: Command[], version = 2): Buffer {
  const enc = new StreamEncoder(version);
  return Buffer.concat([enc.header(), ...cmds.map((c) => enc.encode(c)), enc.encode({ cmd: Cmd.END, attrs: {} })]);
}

const meta = (p: string, mode: number): Command[] => [
  { cmd: Cmd.CHOWN, attrs: { path: b(p), uid: BigInt(process.getuid?.() ?? 0), gid: BigInt(process.getgid?.() ?? 0) } },
  { cmd: Cmd.CHMOD, attrs: { path: b(p), mode: BigInt(mode) } },
  { cmd: Cmd.UTIMES, attrs: { path: b(p), atime: now, mtime: now, ctime: now } },
];

function main(): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-demo-'));
  const target = path.join(work, 'backup');
  const big = randomBytes(300 * 1024);
  const uuid1 = randomBytes(16);
  const uuid2 = randomBytes(16);
  console.log(`ferry demo in ${work}\n`);

  // 1. a full stream of a small tree
  const full: Command[] = [
    { cmd: Cmd.SUBVOL, attrs: { path: b('day1'), uuid: uuid1, ctransid: 1n } },
    ...meta('', 0o755).slice(0, 2),
    { cmd: Cmd.MKDIR, attrs: { path: b('o257-1-0'), ino: 257n } },
    { cmd: Cmd.RENAME, attrs: { path: b('o257-1-0'), pathTo: b('docs') } },
    { cmd: Cmd.MKFILE, attrs: { path: b('o258-1-0'), ino: 258n } },
    { cmd: Cmd.RENAME, attrs: { path: b('o258-1-0'), pathTo: b('docs/readme.txt') } },
    { cmd: Cmd.SET_XATTR, attrs: { path: b('docs/readme.txt'), xattrName: b('user.origin'), xattrData: b('demo') } },
    { cmd: Cmd.WRITE, attrs: { path: b('docs/readme.txt'), fileOffset: 0n, data: b('hello from ferry\n') } },
    ...meta('docs/readme.txt', 0o644),
    { cmd: Cmd.MKFILE, attrs: { path: b('o259-1-0'), ino: 259n } },
    { cmd: Cmd.RENAME, attrs: { path: b('o259-1-0'), pathTo: b('data.bin') } },
    ...splitWrite(b('data.bin'), 0n, big, 2),
    ...meta('data.bin', 0o600),
    { cmd: Cmd.SYMLINK, attrs: { path: b('o260-1-0'), ino: 260n, pathLink: b('docs/readme.txt') } },
    { cmd: Cmd.RENAME, attrs: { path: b('o260-1-0'), pathTo: b('latest') } },
    ...meta('docs', 0o755),
    ...meta('', 0o755).slice(2),
  ];
  const fullFile = path.join(work, 'day1.btrfs-stream');
  fs.writeFileSync(fullFile, encode(full));
  console.log('1. A full btrfs send stream (protocol 2) of a sample tree, dumped like `btrfs receive --dump`:');
  run(['dump', '-f', fullFile]);
  console.log('2. Received into a target on this filesystem:');
  const r1 = run(['receive', target, '-f', fullFile]);

  // 2. an incremental stream: rename, edit in the middle, delete, hard link
  const patch = randomBytes(4096);
  const incr: Command[] = [
    { cmd: Cmd.SNAPSHOT, attrs: { path: b('day2'), uuid: uuid2, ctransid: 2n, cloneUuid: uuid1, cloneCtransid: 1n } },
    { cmd: Cmd.RENAME, attrs: { path: b('docs/readme.txt'), pathTo: b('docs/README') } },
    { cmd: Cmd.LINK, attrs: { path: b('README.link'), pathLink: b('docs/README') } },
    { cmd: Cmd.WRITE, attrs: { path: b('data.bin'), fileOffset: 131072n, data: patch } },
    { cmd: Cmd.UNLINK, attrs: { path: b('latest') } },
    ...meta('data.bin', 0o600).slice(2),
    ...meta('docs', 0o755).slice(2),
    ...meta('', 0o755).slice(2),
  ];
  const incrFile = path.join(work, 'day2.btrfs-stream');
  fs.writeFileSync(incrFile, encode(incr));
  console.log(`3. An incremental stream (${fs.statSync(incrFile).size} bytes for a ${big.length}-byte file edited in place, a rename, a new hard link, a deletion):`);
  run(['dump', '-f', incrFile]);
  const r2 = run(['receive', target, '-f', incrFile]);

  // 3. verify
  const expectBin = Buffer.from(big);
  patch.copy(expectBin, 131072);
  const day1 = path.join(target, 'day1');
  const day2 = path.join(target, 'day2');
  const checks: Array<[string, boolean]> = [
    ['day1/data.bin is the original data', fs.readFileSync(path.join(day1, 'data.bin')).equals(big)],
    ['day1/latest is still a symlink', fs.lstatSync(path.join(day1, 'latest')).isSymbolicLink()],
    ['day2/data.bin has the 4 KiB edit', fs.readFileSync(path.join(day2, 'data.bin')).equals(expectBin)],
    ['day2/docs/README was renamed, content kept', fs.readFileSync(path.join(day2, 'docs', 'README'), 'utf8') === 'hello from ferry\n'],
    ['day2/README.link is a hard link of it', fs.statSync(path.join(day2, 'README.link')).ino === fs.statSync(path.join(day2, 'docs', 'README')).ino],
    ['day2/latest was deleted', !fs.existsSync(path.join(day2, 'latest'))],
    ['mtimes kept to the nanosecond', fs.statSync(path.join(day2, 'data.bin'), { bigint: true }).mtimeNs === now.sec * 1_000_000_000n + BigInt(now.nsec)],
  ];
  console.log('4. Verify:');
  let ok = r1.code === 0 && r2.code === 0;
  for (const [what, pass] of checks) {
    console.log(`  ${pass ? 'ok  ' : 'FAIL'} ${what}`);
    ok &&= pass;
  }

  // 4. a hostile stream is refused
  console.log('\n5. A hostile stream (a symlink to /etc, then a write through it) is refused, nothing is committed:');
  const evil = encode([
    { cmd: Cmd.SUBVOL, attrs: { path: b('evil'), uuid: randomBytes(16), ctransid: 1n } },
    { cmd: Cmd.SYMLINK, attrs: { path: b('etc'), ino: 257n, pathLink: b('/etc') } },
    { cmd: Cmd.MKFILE, attrs: { path: b('etc/ferry-demo-pwned') } },
  ]);
  const r3 = run(['receive', target], evil);
  ok &&= r3.code === 16 && !fs.existsSync(path.join(target, 'evil')) && !fs.existsSync('/etc/ferry-demo-pwned');

  spawnSync('chattr', ['-R', '-f', '-i', work], { stdio: 'ignore' });
  fs.rmSync(work, { recursive: true, force: true });
  console.log(ok ? '\ndemo: all steps behaved as expected' : '\ndemo: SOMETHING WENT WRONG (see above)');
  process.exitCode = ok ? 0 : 1;
}

main();
