/**
 * `npm run demo`: ferry's main job end to end in a temp dir, with no root and
 * no config.
 *
 * A sample tree becomes a volume; it is snapshotted and synced to a backup
 * target, then changed (an edit in the middle of a big file, a rename, a
 * deletion, a new hard link, a chmod, an xattr where the filesystem has
 * them), and synced again incrementally. The backup is verified against the
 * sender's manifest and compared with the source, file by file. Last, a
 * hostile stream is refused. Every step prints the command it runs and what
 * came back.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cmd, Command } from '../src/model/command';
import { StreamEncoder } from '../src/stream/encoder';

const FERRY = path.join(__dirname, '..', '..', 'bin', 'ferry');
const b = (s: string) => Buffer.from(s);

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

function run(args: string[], input?: Buffer, shown = 14): Ran {
  console.log(`$ ferry ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [FERRY, ...args], { input, maxBuffer: 64 << 20 });
  const out = r.stdout.toString();
  const err = r.stderr.toString();
  const lines = out.split('\n').filter((l) => l);
  for (const l of lines.slice(0, shown)) console.log(`  ${l}`);
  if (lines.length > shown) console.log(`  … (${lines.length - shown} more lines)`);
  for (const l of err.split('\n').filter((x) => x)) console.log(`  ${l}`);
  console.log(`  (exit ${r.status})\n`);
  return { code: r.status, out, err };
}

/** A small tree with the shapes backups meet: nested dirs, a big file, a symlink, a hard link, empty files. */
function makeSample(root: string): void {
  fs.mkdirSync(path.join(root, 'docs', 'notes'), { recursive: true });
  fs.mkdirSync(path.join(root, 'photos', '2026'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty-dir'));
  fs.writeFileSync(path.join(root, 'docs', 'readme.txt'), 'hello from ferry\n');
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(root, 'docs', 'notes', `note-${i}.md`), `# note ${i}\n${'lorem ipsum '.repeat(i * 10)}\n`);
  for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(root, 'photos', '2026', `img-${i}.jpg`), randomBytes(64 * 1024 + i * 1000));
  fs.writeFileSync(path.join(root, 'disk.img'), randomBytes(2 * 1024 * 1024));
  fs.writeFileSync(path.join(root, 'empty'), '');
  fs.symlinkSync('docs/readme.txt', path.join(root, 'latest'));
  fs.linkSync(path.join(root, 'docs', 'readme.txt'), path.join(root, 'readme.hardlink'));
  fs.chmodSync(path.join(root, 'docs', 'notes'), 0o750);
}

/** Day 2: the kinds of change an incremental send must carry. */
function change(root: string): string[] {
  const fd = fs.openSync(path.join(root, 'disk.img'), 'r+');
  fs.writeSync(fd, randomBytes(4096), 0, 4096, 1024 * 1024);
  fs.closeSync(fd);
  fs.renameSync(path.join(root, 'docs', 'notes'), path.join(root, 'docs', 'journal'));
  fs.rmSync(path.join(root, 'photos', '2026', 'img-3.jpg'));
  fs.linkSync(path.join(root, 'photos', '2026', 'img-0.jpg'), path.join(root, 'cover.jpg'));
  fs.chmodSync(path.join(root, 'docs', 'readme.txt'), 0o600);
  fs.appendFileSync(path.join(root, 'docs', 'journal', 'note-7.md'), 'appended on day 2\n');
  fs.writeFileSync(path.join(root, 'todo.txt'), 'new on day 2\n');
  return [
    'a 4 KiB write in the middle of the 2 MiB disk.img',
    'docs/notes renamed to docs/journal',
    'photos/2026/img-3.jpg deleted',
    'cover.jpg: a new hard link to img-0.jpg',
    'docs/readme.txt chmod 600',
    'an append to note-7.md, a new file todo.txt',
  ];
}

/**
 * Every entry of a tree as type, mode, size, content hash, link target,
 * hard-link group (names of one inode inside this tree; an incremental
 * snapshot on a filesystem without reflinks also shares inodes with its
 * parent, which is not a link inside the tree) and mtime.
 */
function describeTree(root: string): Map<string, string> {
  const entries: Array<[string, fs.BigIntStats]> = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      if (rel === '' && name === '.ferry') continue;
      const r = path.join(rel, name);
      const st = fs.lstatSync(path.join(root, r), { bigint: true });
      entries.push([r, st]);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  const names = new Map<bigint, string[]>();
  for (const [r, st] of entries) if (st.isFile()) names.set(st.ino, [...(names.get(st.ino) ?? []), r]);
  const out = new Map<string, string>();
  for (const [r, st] of entries) {
    let what = `${(Number(st.mode) & 0o170000).toString(8)} ${(Number(st.mode) & 0o7777).toString(8)} mtime=${st.mtimeNs}`;
    if (st.isFile()) {
      what += ` size=${st.size} sha256=${createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex').slice(0, 16)}`;
      const group = names.get(st.ino)!;
      if (group.length > 1) what += ` linked-with=${group[0]}`;
    } else if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(path.join(root, r))}`;
    out.set(r, what);
  }
  return out;
}

function sameTree(a: string, b: string): string[] {
  const da = describeTree(a);
  const db = describeTree(b);
  const diffs: string[] = [];
  for (const [k, v] of da) if (db.get(k) !== v) diffs.push(`${k}: source ${v} / backup ${db.get(k) ?? 'missing'}`);
  for (const k of db.keys()) if (!da.has(k)) diffs.push(`${k}: only in the backup`);
  return diffs;
}

function snapshotName(out: string): string {
  const line = out.trim().split('\n').pop() ?? '';
  return line.slice(line.lastIndexOf('@') + 1);
}

function main(): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-demo-'));
  const vol = path.join(work, 'data');
  const target = path.join(work, 'backup');
  console.log(`ferry demo in ${work}\n`);
  fs.mkdirSync(vol);
  makeSample(vol);
  let ok = true;
  const expect = (what: string, pass: boolean) => {
    console.log(`  ${pass ? 'ok  ' : 'FAIL'} ${what}`);
    ok &&= pass;
  };

  console.log('1. Put a sample tree (56 files, a 2 MiB image, a symlink, a hard link) under ferry\'s care:');
  expect('init', run(['init', vol]).code === 0);
  console.log('2. Snapshot it and send it in full to a backup target (a plain directory here; user@host:/path over ssh):');
  const s1 = run(['snapshot', vol, '--name', 'day1']);
  expect('snapshot day1', s1.code === 0 && snapshotName(s1.out) === 'day1');
  const sync1 = run(['sync', vol, target, '--snapshot', 'day1', '--json']);
  expect('full sync', sync1.code === 0);

  console.log('\n3. Change the live tree:');
  for (const c of change(vol)) console.log(`  - ${c}`);
  console.log();
  console.log('4. Snapshot again; `ferry diff` lists what changed, and `ferry sync` picks day1 as the parent by itself:');
  expect('snapshot day2', run(['snapshot', vol, '--name', 'day2']).code === 0);
  run(['diff', `${vol}@day1`, `${vol}@day2`]);
  const sync2 = run(['sync', vol, target, '--snapshot', 'day2', '--json']);
  let summary: { parent?: string | null; streamBytes?: number } = {};
  try {
    summary = JSON.parse(sync2.out.trim().split('\n').pop() ?? '{}');
  } catch {
    summary = {};
  }
  expect('incremental sync', sync2.code === 0 && summary.parent === 'day1');
  if (summary.streamBytes !== undefined) {
    console.log(`  the incremental stream was ${summary.streamBytes} bytes for a ${describeTree(vol).size}-entry tree\n`);
  }

  console.log('5. Verify the backup against the manifest the sender wrote, and compare it with the source:');
  expect('ferry verify', run(['verify', `${target}@day2`]).code === 0);
  run(['list', target]);
  const diffs = sameTree(vol, path.join(target, 'day2'));
  for (const d of diffs.slice(0, 10)) console.log(`  differs: ${d}`);
  expect('backup day2 equals the live tree (type, mode, size, content, links, mtime)', diffs.length === 0);
  expect('backup day1 still holds the old disk.img and notes/', fs.existsSync(path.join(target, 'day1', 'docs', 'notes', 'note-7.md')));

  console.log('\n6. A hostile stream (a symlink to /etc, then a write through it) is refused and nothing is committed:');
  const enc = new StreamEncoder(1);
  const evil: Command[] = [
    { cmd: Cmd.SUBVOL, attrs: { path: b('evil'), uuid: randomBytes(16), ctransid: 1n } },
    { cmd: Cmd.SYMLINK, attrs: { path: b('etc'), ino: 257n, pathLink: b('/etc') } },
    { cmd: Cmd.MKFILE, attrs: { path: b('etc/ferry-demo-pwned') } },
    { cmd: Cmd.END, attrs: {} },
  ];
  const r3 = run(['receive', target], Buffer.concat([enc.header(), ...evil.map((c) => enc.encode(c))]));
  expect('refused with exit 16', r3.code === 16 && !fs.existsSync(path.join(target, 'evil')) && !fs.existsSync('/etc/ferry-demo-pwned'));

  spawnSync('chattr', ['-R', '-f', '-i', work], { stdio: 'ignore' });
  fs.rmSync(work, { recursive: true, force: true });
  console.log(ok ? '\ndemo: all steps behaved as expected' : '\ndemo: SOMETHING WENT WRONG (see above)');
  process.exitCode = ok ? 0 : 1;
}

main();
