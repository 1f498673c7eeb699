/**
 * Hostile streams against `ferry receive` (real binary). Each case checks the
 * exit code, that nothing outside the target changed, and that nothing new
 * became visible in the target (no snapshot, no staging tree left behind).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cmd, Command } from '../../src/model/command';
import { ferry } from '../helpers/cli';
import { rmTree } from '../helpers/fs';
import { encodeAll, p, UUID_A, UUID_B } from '../helpers/streams';

const isRoot = process.getuid?.() === 0;
const t0 = { sec: 1600000000n, nsec: 0 };

let work: string;
let target: string;
let outside: string;
let victim: string;

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-hostile-'));
  target = path.join(work, 'target');
  outside = path.join(work, 'outside');
  fs.mkdirSync(outside);
  victim = path.join(outside, 'victim');
  fs.writeFileSync(victim, 'precious\n', { mode: 0o600 });
  fs.utimesSync(victim, 1000, 1000);
});

afterEach(() => {
  rmTree(work);
});

function snapshotOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const f = path.join(d, n);
      const st = fs.lstatSync(f);
      out.push(`${path.relative(work, f)} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(f);
    }
  };
  walk(dir);
  return out;
}

const subvol = (name = 'snap'): Command => ({ cmd: Cmd.SUBVOL, attrs: { path: p(name), uuid: UUID_A, ctransid: 5n } });
const end: Command = { cmd: Cmd.END, attrs: {} };

function receive(cmds: Command[], args: string[] = [], version = 1) {
  const before = snapshotOf(outside);
  const r = ferry(['receive', target, ...args], { input: encodeAll(cmds, version) });
  expect(snapshotOf(outside)).toEqual(before);
  expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
  return r;
}

/** The target shows no snapshot and no staging tree. */
function expectNothingVisible(): void {
  const names = fs.existsSync(target) ? fs.readdirSync(target).filter((n) => n !== '.ferry') : [];
  expect(names).toEqual([]);
  const partial = path.join(target, '.ferry', 'partial');
  if (fs.existsSync(partial)) expect(fs.readdirSync(partial)).toEqual([]);
  const cat = path.join(target, '.ferry', 'catalog');
  if (fs.existsSync(cat)) expect(fs.readdirSync(cat).filter((n) => n.endsWith('.json'))).toEqual([]);
}

describe('hostile paths (string checks)', () => {
  it.each([
    ['mkfile ../x', { cmd: Cmd.MKFILE, attrs: { path: p('../x') } }],
    ['mkfile absolute', { cmd: Cmd.MKFILE, attrs: { path: p('/tmp/ferry-evil') } }],
    ['mkdir a/../../x', { cmd: Cmd.MKDIR, attrs: { path: p('a/../../x') } }],
    ['rename to ../x', { cmd: Cmd.RENAME, attrs: { path: p('f'), pathTo: p('../x') } }],
    ['link from ../outside/victim', { cmd: Cmd.LINK, attrs: { path: p('h'), pathLink: p('../outside/victim') } }],
    ['unlink ../outside/victim', { cmd: Cmd.UNLINK, attrs: { path: p('../../outside/victim') } }],
    ['path with NUL', { cmd: Cmd.MKFILE, attrs: { path: p('a\0b') } }],
    ['empty path for mkfile', { cmd: Cmd.MKFILE, attrs: { path: p('') } }],
  ] as Array<[string, Command]>)('%s is refused with exit 16', (_n, c) => {
    const r = receive([subvol(), { cmd: Cmd.MKFILE, attrs: { path: p('f') } }, c, end]);
    expect(r.code).toBe(16);
    expect(r.stderr).toMatch(/receive refused: .*\(path ".*", command 3, cmd "\w+", offset \d+\)\nhint: nothing was committed/);
    expectNothingVisible();
  });

  it('clone source path with .. is refused', () => {
    const r = receive([
      subvol(),
      { cmd: Cmd.MKFILE, attrs: { path: p('f') } },
      { cmd: Cmd.CLONE, attrs: { fileOffset: 0n, cloneLen: 9n, path: p('f'), cloneUuid: UUID_A, cloneCtransid: 5n, clonePath: p('../../outside/victim'), cloneOffset: 0n } },
      end,
    ]);
    expect(r.code).toBe(16);
    expectNothingVisible();
  });

  it('snapshot names that are paths or .ferry are refused', () => {
    for (const name of ['../evil', 'a/b', '.ferry', '..']) {
      const r = receive([subvol(name), end]);
      expect(r.code).toBe(16);
      expectNothingVisible();
    }
  });
});

describe('symlinks never lead outside', () => {
  const sym = (name: string, to: string): Command => ({ cmd: Cmd.SYMLINK, attrs: { path: p(name), ino: 300n, pathLink: p(to) } });

  it.each([
    ['write through a symlink', [{ cmd: Cmd.WRITE, attrs: { path: p('s'), fileOffset: 0n, data: p('pwned') } }]],
    ['truncate through a symlink', [{ cmd: Cmd.TRUNCATE, attrs: { path: p('s'), size: 0n } }]],
    ['chmod through a symlink', [{ cmd: Cmd.CHMOD, attrs: { path: p('s'), mode: 0o777n } }]],
    ['fallocate through a symlink', [{ cmd: Cmd.FALLOCATE, attrs: { path: p('s'), fallocateMode: 3, fileOffset: 0n, size: 4n } }]],
    ['create under a symlinked dir', [{ cmd: Cmd.MKFILE, attrs: { path: p('d/new') } }]],
    ['write under a symlinked dir', [{ cmd: Cmd.WRITE, attrs: { path: p('d/victim'), fileOffset: 0n, data: p('pwned') } }]],
    ['rename into a symlinked dir', [{ cmd: Cmd.MKFILE, attrs: { path: p('f') } }, { cmd: Cmd.RENAME, attrs: { path: p('f'), pathTo: p('d/f') } }]],
    ['link through a symlinked dir', [{ cmd: Cmd.LINK, attrs: { path: p('h'), pathLink: p('d/victim') } }]],
    ['clone from a file through a symlinked dir', [
      { cmd: Cmd.MKFILE, attrs: { path: p('f') } },
      { cmd: Cmd.CLONE, attrs: { fileOffset: 0n, cloneLen: 9n, path: p('f'), cloneUuid: UUID_A, cloneCtransid: 5n, clonePath: p('d/victim'), cloneOffset: 0n } },
    ]],
    ['clone from a symlink to an outside file', [
      { cmd: Cmd.MKFILE, attrs: { path: p('f') } },
      { cmd: Cmd.CLONE, attrs: { fileOffset: 0n, cloneLen: 9n, path: p('f'), cloneUuid: UUID_A, cloneCtransid: 5n, clonePath: p('s'), cloneOffset: 0n } },
    ]],
    ['set_xattr through a symlinked dir', [{ cmd: Cmd.SET_XATTR, attrs: { path: p('d/victim'), xattrName: p('user.x'), xattrData: p('1') } }]],
    ['renamed symlink still not written through', [
      { cmd: Cmd.RENAME, attrs: { path: p('s'), pathTo: p('plain') } },
      { cmd: Cmd.WRITE, attrs: { path: p('plain'), fileOffset: 0n, data: p('pwned') } },
    ]],
  ] as Array<[string, Command[]]>)('%s is refused and changes nothing outside', (_n, cmds) => {
    const r = receive([subvol(), sym('s', victim), sym('d', outside), ...cmds, end]);
    expect([14, 16]).toContain(r.code);
    expectNothingVisible();
  });

  it('utimes and chown on a symlink change the link, not its target', () => {
    const before = fs.statSync(victim);
    const r = receive([
      subvol(),
      sym('s', victim),
      { cmd: Cmd.CHOWN, attrs: { path: p('s'), uid: BigInt(process.getuid!()), gid: BigInt(process.getgid!()) } },
      { cmd: Cmd.UTIMES, attrs: { path: p('s'), atime: t0, mtime: t0, ctime: t0 } },
      end,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.statSync(victim).mtimeMs).toBe(before.mtimeMs);
    expect(fs.lstatSync(path.join(target, 'snap', 's')).mtimeMs).toBe(1600000000000);
    expect(fs.readlinkSync(path.join(target, 'snap', 's'))).toBe(victim);
  });
});

describe('policy refusals', () => {
  // Without root mknod is refused by the kernel; under FERRY_REQUIRE_REAL_FS the test runs (and fails) anyway.
  const rootIt = isRoot || process.env.FERRY_REQUIRE_REAL_FS === '1' ? it : it.skip;

  rootIt('device nodes need --allow-devices', () => {
    const mk: Command = { cmd: Cmd.MKNOD, attrs: { path: p('null'), ino: 257n, rdev: 0x103n, mode: 0o20644n } };
    const r = receive([subvol(), mk, end]);
    expect(r.code).toBe(16);
    expect(r.stderr).toContain('--allow-devices');
    expectNothingVisible();
    const ok = receive([subvol(), mk, end], ['--allow-devices']);
    expect(ok.code).toBe(0);
    expect(fs.lstatSync(path.join(target, 'snap', 'null')).isCharacterDevice()).toBe(true);
  });

  it('setuid bits and file capabilities need --allow-setuid; setgid dirs are fine', () => {
    const f: Command = { cmd: Cmd.MKFILE, attrs: { path: p('f') } };
    const suid: Command = { cmd: Cmd.CHMOD, attrs: { path: p('f'), mode: 0o4755n } };
    const r = receive([subvol(), f, suid, end]);
    expect(r.code).toBe(16);
    expect(r.stderr).toContain('--allow-setuid');
    expectNothingVisible();
    const cap: Command = { cmd: Cmd.SET_XATTR, attrs: { path: p('f'), xattrName: p('security.capability'), xattrData: Buffer.from('0100000200200000000000000000000000000000', 'hex') } };
    expect(receive([subvol(), f, cap, end]).code).toBe(16);
    expectNothingVisible();
    const dir: Command = { cmd: Cmd.MKDIR, attrs: { path: p('g') } };
    const sgid: Command = { cmd: Cmd.CHMOD, attrs: { path: p('g'), mode: 0o2775n } };
    const ok = receive([subvol(), dir, sgid, end]);
    expect(ok.code).toBe(0);
    expect(fs.statSync(path.join(target, 'snap', 'g')).mode & 0o7777).toBe(0o2775);
  });

  it('a clone from a uuid the target does not have is refused', () => {
    const r = receive([
      subvol(),
      { cmd: Cmd.MKFILE, attrs: { path: p('f') } },
      { cmd: Cmd.CLONE, attrs: { fileOffset: 0n, cloneLen: 4096n, path: p('f'), cloneUuid: UUID_B, cloneCtransid: 1n, clonePath: p('x'), cloneOffset: 0n } },
      end,
    ]);
    expect(r.code).toBe(16);
    expect(r.stderr).toContain('clone source');
    expectNothingVisible();
  });

  it('a missing parent is exit 15 and names the wanted uuid and what the target has', () => {
    const r = receive([
      { cmd: Cmd.SNAPSHOT, attrs: { path: p('s2'), uuid: UUID_A, ctransid: 9n, cloneUuid: UUID_B, cloneCtransid: 8n } },
      end,
    ]);
    expect(r.code).toBe(15);
    expect(r.stderr).toContain('00112233-4455-6677-8899-aabbccddeeff');
    expect(r.stderr).toContain('ctransid 8');
    expect(r.stderr).toContain('has "none"');
    expectNothingVisible();
  });
});

describe('corrupt input leaves the target as it was', () => {
  const good = () => encodeAll([subvol(), { cmd: Cmd.MKFILE, attrs: { path: p('f') } }, { cmd: Cmd.WRITE, attrs: { path: p('f'), fileOffset: 0n, data: p('data') } }, end], 1);

  it('bad crc, truncation and a huge length each exit 14 with nothing visible', () => {
    const bad = good();
    bad[bad.length - 15] ^= 1;
    for (const input of [bad, good().subarray(0, good().length - 10), (() => {
      const b = good();
      b.writeUInt32LE(0x7fffffff, 17 + good().readUInt32LE(17) + 10);
      return b;
    })()]) {
      const r = ferry(['receive', target], { input });
      expect(r.code).toBe(14);
      expectNothingVisible();
    }
  });

  it('a good stream after failures commits and prints the name', () => {
    const r = ferry(['receive', target], { input: good() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('snap\n');
    expect(fs.readFileSync(path.join(target, 'snap', 'f'), 'utf8')).toBe('data');
    const again = ferry(['receive', target], { input: good() });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists');
  });

  it('a held lock exits 11 at once and names the holder', () => {
    fs.mkdirSync(path.join(target, '.ferry'), { recursive: true });
    const holder = { pid: process.pid, startedAt: new Date().toISOString(), procStart: null, purpose: 'test' };
    fs.writeFileSync(path.join(target, '.ferry', 'receive.lock'), JSON.stringify(holder));
    const r = ferry(['receive', target], { input: good() });
    expect(r.code).toBe(11);
    expect(r.stderr).toContain(`pid ${process.pid}`);
    fs.rmSync(path.join(target, '.ferry', 'receive.lock'));
    // a stale lock (dead pid) is taken over
    fs.writeFileSync(path.join(target, '.ferry', 'receive.lock'), JSON.stringify({ ...holder, pid: 2 ** 22 + 12345 }));
    expect(ferry(['receive', target], { input: good() }).code).toBe(0);
  });

  it('--expect-bytes larger than the free space exits 17 before writing', () => {
    const r = ferry(['receive', target, '--expect-bytes', String(2n ** 62n)], { input: good() });
    expect(r.code).toBe(17);
    expect(r.stderr).toContain('not enough free space');
    expectNothingVisible();
  });
});
