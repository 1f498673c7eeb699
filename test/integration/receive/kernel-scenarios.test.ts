/**
 * Every scenario of test/helpers/scenarios.ts (the tricky incremental cases
 * of docs/send-stream.md section 7 plus ferry's own) made on a real btrfs,
 * sent by the kernel, and received by ferry onto ext4, XFS and (a subset)
 * tmpfs. Ferry's parent and child snapshots must equal both what
 * `btrfs receive` makes of the same streams and the source snapshots
 * themselves, in everything but the root directory's mtime (spec 3.7); the
 * parent must be unchanged by the incremental receive.
 *
 * One btrfs and one filesystem per target kind are mounted for the whole
 * file; every scenario gets its own directory on each. A scenario is built
 * on btrfs the first time a test needs it (so a broken scenario fails its
 * own tests only). Streams: v1 for all, v2 for the data-shaped ones (holes,
 * prealloc, clones, sparse files), and for a few of those v2 with
 * --compressed-data, made again on a second btrfs mounted with
 * compress=zstd (ENCODED_WRITE). Each target directory is removed after its
 * test. Receiver bugs found here also have a minimal test of their own
 * (knownBugs), which fails until the bug is fixed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs, LoopFs, LoopFsKind, LoopFsOptions, mountLoopFs, realFsRequired } from '../../helpers/loopfs';
import { rmTree } from '../../helpers/fs';
import { ferry } from '../../helpers/cli';
import { Scenario, SCENARIOS } from '../../helpers/scenarios';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const SGI_ACL = /^trusted\.SGI_ACL_(FILE|DEFAULT)$/;

type Variant = 'v1' | 'v2' | 'v2c';

/**
 * Data-shaped scenarios (holes, prealloc, clones, sparse files): also sent as
 * v2, where holes become FALLOCATE. Not s7-32: its child only writes, so its
 * v2 stream has the same commands, and its 1 GiB file is slow to read back
 * (f-sparse-scattered covers sparse files in v2).
 */
const V2_IDS = new Set([
  's7-11',
  's7-27',
  's7-28',
  's7-29',
  's7-30',
  's7-31',
  's7-33',
  's7-34',
  's7-35',
  'f-sparse-scattered',
  'f-truncate-regrow',
  'f-overwrite-middle',
]);

/** Also made on a zstd-compressed btrfs and sent with --compressed-data (ENCODED_WRITE), onto ext4 and XFS. */
const V2C_IDS = new Set(['s7-28', 's7-33', 's7-34', 's7-35', 'f-truncate-regrow', 'f-overwrite-middle']);

/** Received onto tmpfs too: data, xattrs, special files, links, names. */
const TMPFS_IDS = new Set([
  's7-21',
  's7-27',
  's7-28',
  's7-33',
  's7-35',
  's7-36',
  's7-37',
  's7-38',
  's7-39',
  'f-xattr-dir-symlink',
  'f-unicode-names',
  'f-recreate-same-names',
]);

/** Variants sent from the plain (uncompressed) btrfs. */
function plainVariants(id: string): Variant[] {
  return V2_IDS.has(id) ? ['v1', 'v2'] : ['v1'];
}

function variants(id: string, kind: LoopFsKind): Variant[] {
  return [...plainVariants(id), ...(V2C_IDS.has(id) && kind !== 'tmpfs' ? (['v2c'] as Variant[]) : [])];
}

/** Files at least this big are checked for sparseness against btrfs receive's copy. */
const SPARSE_CHECK_BYTES = 16n * 1024n * 1024n;

function run(argv: string[], cwd?: string): string {
  const r = spawnSync(argv[0], argv.slice(1), { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

function bash(script: string, cwd: string, what: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${what} script failed (exit ${r.status}): ${r.stderr.trim()}`);
}

const toolPresent = new Map<string, boolean>();
function missingNeeds(s: Scenario): string[] {
  return (s.needs ?? []).filter((n) => {
    if (n === 'btrfs' || n === 'reflink') return false; // the source is btrfs
    if (!toolPresent.has(n)) toolPresent.set(n, spawnSync('bash', ['-c', `command -v ${n}`]).status === 0);
    return !toolPresent.get(n);
  });
}

/** One scenario built on btrfs: its source snapshots, streams and `btrfs receive` results. */
interface Built {
  src: { p: string; c: string };
  stream: { full: string; incr: string };
  truth: string;
}

/**
 * Build one source instance of a scenario on btrfs at `base`: subvolume,
 * the parent/child steps of `make` with the snapshots p and c, the streams
 * of every variant while whatever `make` holds open is still open (s7-27),
 * then the ground truth of each variant from `btrfs receive`.
 */
function buildOnBtrfs(
  base: string,
  vars: Variant[],
  make: (vol: string, p: string, c: string) => (() => void) | void,
): Map<Variant, Built> {
  fs.mkdirSync(base);
  const vol = path.join(base, 'vol');
  const p = path.join(base, 'p');
  const c = path.join(base, 'c');
  run(['btrfs', 'subvolume', 'create', vol]);
  const release = make(vol, p, c);
  const out = new Map<Variant, Built>();
  try {
    for (const v of vars) {
      const full = path.join(base, `full.${v}`);
      const incr = path.join(base, `incr.${v}`);
      const proto = v === 'v1' ? ['--proto', '1'] : v === 'v2' ? ['--proto', '2'] : ['--proto', '2', '--compressed-data'];
      run(['btrfs', 'send', '-q', ...proto, '-f', full, p]);
      run(['btrfs', 'send', '-q', ...proto, '-p', p, '-f', incr, c]);
      out.set(v, { src: { p, c }, stream: { full, incr }, truth: path.join(base, `truth.${v}`) });
    }
  } finally {
    release?.();
  }
  for (const b of out.values()) {
    fs.mkdirSync(b.truth);
    run(['btrfs', 'receive', '-f', b.stream.full, b.truth]);
    run(['btrfs', 'receive', '-f', b.stream.incr, b.truth]);
  }
  return out;
}

function scriptedMaker(s: Scenario) {
  return (vol: string, p: string, c: string) => {
    bash(s.parent, vol, `${s.id} parent`);
    run(['btrfs', 'subvolume', 'snapshot', '-r', vol, p]);
    bash(s.child, vol, `${s.id} child`);
    run(['btrfs', 'subvolume', 'snapshot', '-r', vol, c]);
  };
}

/**
 * s7-27 (btrfs/278): inodes with nlink 0 inside both snapshots. Each
 * snapshot is flipped read-write, entries are removed while this process
 * holds them open, and it is flipped back before the sends; the fds are
 * closed after them. (A snapshot taken while a file is open-but-deleted
 * does not keep it: snapshot creation runs orphan cleanup.)
 */
function orphanMaker(vol: string, p: string, c: string): () => void {
  bash(
    'touch deleted.file changed_subcase1.file changed_subcase2.file; mkdir deleted.dir changed_subcase1.dir changed_subcase2.dir; ' +
      'touch changed_subcase1.dir/foo changed_subcase2.dir/foo',
    vol,
    's7-27 parent',
  );
  run(['btrfs', 'subvolume', 'snapshot', '-r', vol, p]);
  bash('rm deleted.file; rmdir deleted.dir; touch new.file; mkdir new.dir', vol, 's7-27 child');
  run(['btrfs', 'subvolume', 'snapshot', '-r', vol, c]);
  const fds: number[] = [];
  const orphanize = (snap: string, open: string[], remove: string[]) => {
    run(['btrfs', 'property', 'set', snap, 'ro', 'false']);
    for (const n of open) fds.push(fs.openSync(path.join(snap, n), 'r'));
    for (const n of remove) {
      const f = path.join(snap, n);
      if (fs.lstatSync(f).isDirectory()) fs.rmdirSync(f);
      else fs.unlinkSync(f);
    }
    run(['btrfs', 'property', 'set', snap, 'ro', 'true']);
  };
  try {
    orphanize(
      p,
      ['deleted.file', 'deleted.dir', 'changed_subcase1.file', 'changed_subcase1.dir'],
      ['deleted.file', 'deleted.dir', 'changed_subcase1.file', 'changed_subcase1.dir/foo', 'changed_subcase1.dir'],
    );
    orphanize(
      c,
      ['changed_subcase1.file', 'changed_subcase1.dir', 'changed_subcase2.file', 'changed_subcase2.dir', 'new.file', 'new.dir'],
      [
        'changed_subcase1.file',
        'changed_subcase1.dir/foo',
        'changed_subcase1.dir',
        'changed_subcase2.file',
        'changed_subcase2.dir/foo',
        'changed_subcase2.dir',
        'new.file',
        'new.dir',
      ],
    );
  } catch (e) {
    fds.forEach((fd) => fs.closeSync(fd));
    throw e;
  }
  return () => fds.forEach((fd) => fs.closeSync(fd));
}

const ORPHANS: Scenario = {
  id: 's7-27',
  title: 'open-but-deleted (nlink 0) inodes in both snapshots (btrfs/278, special harness)',
  source: 'btrfs/278',
  parent: '',
  child: '',
  needs: ['btrfs'],
};

/**
 * Receiver bugs these scenarios found, each as the smallest case that shows
 * it; each is fixed and its "regression:" test guards it.
 */
function knownBugs(btrfs: () => LoopFs, onto: () => LoopFs): void {
  const make = (id: string, parent: string, child?: string) => {
    const base = path.join(btrfs().dir, id);
    fs.mkdirSync(base);
    const vol = path.join(base, 'vol');
    run(['btrfs', 'subvolume', 'create', vol]);
    bash(parent, vol, `${id} parent`);
    run(['btrfs', 'subvolume', 'snapshot', '-r', vol, path.join(base, 'p')]);
    run(['btrfs', 'send', '-q', '-f', path.join(base, 'full'), path.join(base, 'p')]);
    if (child !== undefined) {
      bash(child, vol, `${id} child`);
      run(['btrfs', 'subvolume', 'snapshot', '-r', vol, path.join(base, 'c')]);
      run(['btrfs', 'send', '-q', '-p', path.join(base, 'p'), '-f', path.join(base, 'incr'), path.join(base, 'c')]);
    }
    return base;
  };

  // A subvolume with a compression property (`btrfs property set ... compression`,
  // or `chattr +c`, which sets the same property) has a btrfs.compression xattr;
  // the stream carries it as SET_XATTR, which no other filesystem accepts.
  it('regression: a btrfs.compression xattr (btrfs property set compression zstd) no longer fails the receive on ext4', () => {
    const base = make('bug-compression-prop', 'btrfs property set . compression zstd; echo x > f');
    const target = path.join(onto().dir, 'bug-compression-prop');
    try {
      const r = ferry(['receive', target, '-f', path.join(base, 'full')]);
      // Expected: the btrfs-only property is skipped (with a warning, exit 3) and the tree arrives.
      expect(r.code === 0 || r.code === 3 ? 'ok' : `exit ${r.code}: ${r.stderr}`).toBe('ok');
      expect(fs.readFileSync(path.join(target, 'p', 'f'), 'utf8')).toBe('x\n');
    } finally {
      rmTree(target);
    }
  });

  // Without the ea_inode feature ext4 keeps an inode's xattrs in one block and
  // answers a bigger value with ENOSPC; ferry reports that as a full target
  // (exit 17, "free space on the target and run again"), which cannot help.
  it('regression: an xattr value too big for default ext4 (s7-37) is reported as such, not as "no space left on the target"', () => {
    const base = make('bug-xattr-enospc', `touch f; setfattr -n user.big -v "$(printf 'A%.0s' $(seq 6000))" f`);
    const plain = mountLoopFs('ext4', 64);
    try {
      const r = ferry(['receive', path.join(plain.dir, 't'), '-f', path.join(base, 'full')]);
      // Expected: refused as a limit of the target filesystem (exit 14), not as a full disk.
      expect({ code: r.code, saysFreeSpace: /no space left|free space/.test(r.stderr) }).toEqual({ code: 14, saysFreeSpace: false });
    } finally {
      plain.cleanup();
    }
  });

  // The kernel sends CHOWN without CHMOD when only the owner changed; chown(2)
  // clears setuid/setgid, so the receiver loses them unless it puts them
  // back (btrfs receive loses them too; the source snapshot keeps them).
  it('regression (a btrfs receive bug ferry does not share): a chown-only change keeps the setuid bit the source keeps', () => {
    const base = make('bug-chown-setuid', 'echo x > s; chmod 4755 s', 'chown 1000:1000 s; chmod 4755 s');
    const target = path.join(onto().dir, 'bug-chown-setuid');
    try {
      for (const f of ['full', 'incr']) expect(ferry(['receive', target, '-f', path.join(base, f), '--allow-setuid']).code).toBe(0);
      const mode = (p: string) => (fs.lstatSync(p).mode & 0o7777).toString(8);
      expect(mode(path.join(target, 'c', 's'))).toBe(mode(path.join(base, 'c', 's')));
    } finally {
      rmTree(target);
    }
  });

  // The parent is seeded by hard links (no reflink on ext4); the first change
  // to a shared file replaces it by a private copy made next to it and
  // renamed over it, which changes the directory's mtime. The stream has no
  // UTIMES for a directory whose entries did not change, so the receiver must
  // put the directory's times back itself (s7-39 found this).
  it("regression: a metadata-only change to a file on ext4 keeps its directory's mtime (farm copy-before-change)", () => {
    const base = make('bug-farm-dir-mtime', 'mkdir d; echo x > d/f', 'chmod 0600 d/f');
    const target = path.join(onto().dir, 'bug-farm-dir-mtime');
    try {
      for (const f of ['full', 'incr']) expect(ferry(['receive', target, '-f', path.join(base, f)]).code).toBe(0);
      const mtime = (p: string) => fs.lstatSync(p, { bigint: true }).mtimeNs;
      expect({ d: mtime(path.join(target, 'c', 'd')), f: mtime(path.join(target, 'c', 'd', 'f')) }).toEqual({
        d: mtime(path.join(base, 'c', 'd')),
        f: mtime(path.join(base, 'c', 'd', 'f')),
      });
    } finally {
      rmTree(target);
    }
  });

  // The parent is seeded by hard links (no reflink on ext4); the first write
  // to a shared file copies it with copy_file_range, which writes the holes.
  it('regression: an incremental receive onto ext4 keeps the holes of a changed sparse file', () => {
    const base = make(
      'bug-sparse-cow',
      'xfs_io -f -c "truncate 64M" -c "pwrite -S 0x61 0 4K" s >/dev/null',
      'xfs_io -c "pwrite -S 0x62 32M 4K" s >/dev/null',
    );
    const target = path.join(onto().dir, 'bug-sparse-cow');
    try {
      for (const f of ['full', 'incr']) expect(ferry(['receive', target, '-f', path.join(base, f)]).code).toBe(0);
      const src = fs.statSync(path.join(base, 'c', 's'));
      const got = fs.statSync(path.join(target, 'c', 's'));
      expect({ size: got.size, allocatedAtMost1MiB: got.blocks * 512 <= 1024 * 1024 }).toEqual({ size: src.size, allocatedAtMost1MiB: true });
    } finally {
      rmTree(target);
    }
  });
}

/** Compare a tree received by ferry (`mine`) with a reference, with treecmp and/or compareTrees. */
function differences(
  label: string,
  ref: string,
  mine: string,
  kind: LoopFsKind,
  tools: { treecmp: boolean; compareTrees: boolean },
  ignore: string[] = [],
): string[] {
  const out: string[] = [];
  if (tools.treecmp) {
    const t = treecmp(ref, mine, { farmSharedOk: true, xfsAclOk: kind === 'xfs', flags: ignore.flatMap((n) => ['--ignore', n]) });
    out.push(...t.differences.filter((l) => !/^mtime differs: \.:/.test(l)).map((l) => `${label} (treecmp): ${l}`));
    if (t.code !== 0 && t.code !== 1) out.push(`${label} (treecmp): exit ${t.code}: ${t.summary}`);
  }
  if (tools.compareTrees) {
    const ours = compareTrees(ref, mine, { noRootMtime: true, ignore, ignoreXattr: kind === 'xfs' ? SGI_ACL : undefined });
    out.push(...ours.map((l) => `${label} (compareTrees): ${l}`));
  }
  return out;
}

/**
 * Sparseness: no big regular file may take much more space than in
 * `btrfs receive`'s copy: a receiver that fills holes turns a sparse 1 GiB
 * file into 1 GiB of disk. The slack (4x + 1 MiB) is for XFS's speculative
 * preallocation, which leaves unwritten extents between appending writes
 * (s7-29's parent: 2.1 MB on XFS against 0.8 MB on btrfs).
 */
function allocationDiffs(label: string, ref: string, mine: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const r = path.join(ref, rel);
    const st = fs.lstatSync(r, { bigint: true });
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(r)) walk(path.join(rel, n));
    } else if (st.isFile() && st.size >= SPARSE_CHECK_BYTES) {
      const m = fs.lstatSync(path.join(mine, rel), { bigint: true });
      const want = st.blocks * 512n;
      const got = m.blocks * 512n;
      if (got > 4n * want + 1024n * 1024n) out.push(`${label}: ${rel} (size ${st.size}) takes ${got} bytes on disk, btrfs receive's copy ${want}`);
    }
  };
  walk('');
  return out;
}

describeLoopFs(
  'btrfs',
  'kernel send streams of the section 7 scenarios, received by ferry',
  (btrfs) => {
    // The v2c instances live on a second btrfs mounted with compress=zstd.
    let zstd: LoopFs | undefined;
    const zstdDir = () => (zstd ??= mountLoopFs('btrfs', 512, { mountOptions: ['compress=zstd'] })).dir;
    afterAll(() => {
      const problems = zstd?.cleanup() ?? [];
      if (problems.length) throw new Error(`loop filesystem cleanup failed: ${problems.join('; ')}`);
    });

    const built = new Map<string, Map<Variant, Built> | Error>();
    const build = (s: Scenario, variant: Variant): Built => {
      const compressed = variant === 'v2c';
      const key = `${s.id}${compressed ? '.z' : ''}`;
      if (!built.has(key)) {
        const vars = compressed ? (['v2c'] as Variant[]) : plainVariants(s.id);
        try {
          const root = compressed ? zstdDir() : btrfs().dir;
          built.set(key, buildOnBtrfs(path.join(root, s.id), vars, s === ORPHANS ? orphanMaker : scriptedMaker(s)));
        } catch (e) {
          built.set(key, e as Error);
        }
      }
      const b = built.get(key)!;
      if (b instanceof Error) throw b;
      return b.get(variant)!;
    };

    const targets: Array<[LoopFsKind, number, LoopFsOptions]> = [
      // ea_inode: without it ext4 cannot store xattr values larger than a block (s7-37).
      ['ext4', 2048, { mkfsExtra: ['-O', 'ea_inode'] }],
      ['xfs', 2048, {}],
      ['tmpfs', 1024, {}],
    ];
    for (const [kind, size, options] of targets) {
      describeLoopFs(
        kind,
        `onto ${kind}`,
        (mnt) => {
          if (kind === 'ext4') knownBugs(btrfs, mnt);
          for (const s of [...SCENARIOS, ORPHANS]) {
            if (kind === 'tmpfs' && !TMPFS_IDS.has(s.id)) continue;
            for (const variant of variants(s.id, kind)) {
              const name = `${s.id} ${s.title} [${variant}]`;
              const missing = missingNeeds(s);
              if (missing.length) {
                if (realFsRequired()) it(name, () => expect(`missing tools: ${missing.join(', ')}`).toBe(''));
                else it.skip(`${name} [skipped: missing ${missing.join(', ')}]`, () => undefined);
                continue;
              }
              it(name, () => {
                const b = build(s, variant);
                const target = path.join(mnt().dir, `${s.id}.${variant}`);
                try {
                  const names: string[] = [];
                  for (const f of [b.stream.full, b.stream.incr]) {
                    const r = ferry(['receive', target, '-f', f, '--allow-devices', '--allow-setuid']);
                    expect({ stream: path.basename(f), code: r.code, stderr: r.stderr }).toEqual({ stream: path.basename(f), code: 0, stderr: '' });
                    names.push(...r.stdout.toString().trim().split('\n'));
                  }
                  expect(names).toEqual(['p', 'c']);
                  // ferry dump agrees with btrfs receive --dump on streams nobody committed
                  for (const f of [b.stream.full, b.stream.incr]) {
                    const progs = spawnSync('btrfs', ['receive', '--dump', '-f', f], { env: { ...process.env, TZ: 'UTC' } });
                    const ours = ferry(['dump', '-f', f], { env: { TZ: 'UTC' } });
                    expect(ours.code).toBe(0);
                    expect(ours.stdout.equals(progs.stdout)).toBe(true);
                  }
                  const diffs: string[] = [];
                  for (const snap of ['p', 'c'] as const) {
                    const mine = path.join(target, snap);
                    const truth = path.join(b.truth, snap);
                    // btrfs receive drops setuid/setgid on a chown-only change (chown(2)
                    // clears them and no CHMOD follows); ferry keeps them, as the source
                    // does. For that scenario the source is the reference, not btrfs.
                    if (!(s.id === 'f-setid-chown' && snap === 'c')) {
                      diffs.push(...differences(`${snap} vs btrfs receive`, truth, mine, kind, { treecmp: true, compareTrees: true }));
                    }
                    // treecmp against the source too would add little but time (1 GiB files).
                    const nested = s.nestedSubvolumes?.[snap === 'p' ? 'parent' : 'child'] ?? [];
                    diffs.push(...differences(`${snap} vs source snapshot`, b.src[snap], mine, kind, { treecmp: false, compareTrees: true }, nested));
                    // btrfs keeps compressed extents small: no allocation comparison for v2c.
                    if (variant !== 'v2c') diffs.push(...allocationDiffs(`${snap} sparseness`, truth, mine));
                  }
                  expect(diffs).toEqual([]);
                } finally {
                  rmTree(target);
                }
              });
            }
          }
        },
        size,
        options,
      );
    }
  },
  1024,
);
