/**
 * Stream files end to end: a full and two incremental streams of an index
 * volume written through StreamFileDestination (zstd and plain, each with
 * its manifest), replayed with the real binary's `ferry receive TARGET
 * --chain DIR`, compared with the source states (treecmp.py and our own
 * comparison), verified with `ferry verify`, then damaged and verified
 * again. Also: broken chains (exit 15), `receive -f x.btrfs-stream.zst` and
 * zstd on stdin. Needs the built dist/ (npx tsc -p tsconfig.json) and root
 * (the receiver sets owners).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { manifestBytes } from '../../../src/diff/manifest';
import { sendSnapshot } from '../../../src/replicate/send';
import { StreamFileDestination, StreamSidecar } from '../../../src/replicate/stream-files';
import { initVolume, openVolume, snapshot } from '../../../src/volume/volume';
import { ferry } from '../../helpers/cli';
import { rmTree } from '../../helpers/fs';
import { mutate, populate } from '../../helpers/sync-trees';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const isRoot = process.getuid?.() === 0;
const rootDescribe = isRoot || process.env.FERRY_REQUIRE_REAL_FS === '1' ? describe : describe.skip;

let work: string;
let vol: string;
let streams: string;
const refs: Record<string, string> = {};
const sidecars: Record<string, StreamSidecar> = {};

/** A copy of the live tree as it is now (index volumes send from the live tree, so each state is kept). */
function keepState(name: string): string {
  const ref = path.join(work, `ref-${name}`);
  const r = spawnSync('cp', ['-a', vol, ref]);
  expect(r.status).toBe(0);
  fs.rmSync(path.join(ref, '.ferry'), { recursive: true });
  spawnSync('touch', ['-r', vol, ref]);
  return ref;
}

async function take(name: string, parent: string | null, compress: boolean): Promise<void> {
  const v = openVolume(vol);
  const s = await snapshot(v, { name });
  refs[name] = keepState(name);
  const dest = new StreamFileDestination(streams);
  const parentMeta = parent ? JSON.parse(fs.readFileSync(path.join(v.ferryDir, 'snapshots', parent, 'meta.json'), 'utf8')) : null;
  sidecars[name] = await dest.write(
    s.meta,
    parentMeta,
    sendSnapshot({ snapshot: { volume: vol, name }, parent: parent ? { volume: vol, name: parent } : undefined, version: 1 }),
    { compress: compress ? { level: 3 } : null, manifest: manifestBytes(s.indexPath, { name }) },
  );
}

function expectSame(ref: string, snap: string): void {
  expect(compareTrees(ref, snap)).toEqual([]);
  expect(treecmp(ref, snap, { farmSharedOk: true }).differences).toEqual([]);
}

function ok(args: string[], input?: Buffer): string {
  const r = ferry(args, { input });
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.toString();
}

rootDescribe('stream-file chains', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chain-'));
    vol = path.join(work, 'vol');
    streams = path.join(work, 'streams');
    fs.mkdirSync(vol);
    populate(vol);
    initVolume(vol, 'index');
    await take('s1', null, true);
    mutate(vol, 1);
    await take('s2', 's1', false);
    mutate(vol, 2);
    await take('s3', 's2', true);
  });
  afterAll(() => rmTree(work));

  it('wrote three streams with sidecars and manifests', () => {
    expect(fs.readdirSync(streams).sort()).toEqual(
      ['s1.btrfs-stream.zst', 's1.json', 's1.manifest', 's2.btrfs-stream', 's2.json', 's2.manifest', 's3.btrfs-stream.zst', 's3.json', 's3.manifest'].sort(),
    );
    expect(sidecars.s2.parentUuid).toBe(sidecars.s1.uuid);
    expect(sidecars.s3.parentUuid).toBe(sidecars.s2.uuid);
    expect(sidecars.s1.fileBytes).toBeLessThan(sidecars.s1.bytes);
  });

  it('`ferry receive --chain` applies full + 2 incrementals in order; each equals its source state; a second run skips all', () => {
    const target = path.join(work, 'target');
    expect(ok(['receive', target, '--chain', streams])).toBe('s1\ns2\ns3\n');
    for (const n of ['s1', 's2', 's3']) expectSame(refs[n], path.join(target, n));
    const again = ferry(['receive', target, '--chain', streams]);
    expect([again.code, again.stdout.toString()]).toEqual([0, '']);
    expect(again.stderr).toBe(['s1', 's2', 's3'].map((n) => `ferry: ${n}: already in the target, skipped\n`).join(''));
    // manifests came along: verify is clean
    for (const n of ['s1', 's2', 's3']) expect(ok(['verify', `${target}@${n}`])).toMatch(new RegExp(`^${target}@${n}: ok, \\d+ entries and .* of file data match the manifest\\n$`));
  });

  it('--to NAME stops at that snapshot; later runs continue the chain', () => {
    const target = path.join(work, 'target-to');
    expect(ok(['receive', target, '--chain', streams, '--to', 's2', '--json']).trim().split('\n').map((l) => JSON.parse(l).name)).toEqual(['s1', 's2']);
    expect(ok(['receive', target, '--chain', streams])).toBe('s3\n');
    expectSame(refs.s3, path.join(target, 's3'));
  });

  it('verify reports a changed byte, a missing file and a mode change (exit 14)', () => {
    const target = path.join(work, 'target-verify');
    ok(['receive', target, '--chain', streams, '--to', 's3']);
    const snap = path.join(target, 's3');
    const big = path.join(snap, 'docs', 'deep', 'big.bin');
    const fd = fs.openSync(big, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 700000);
    b[0] ^= 0x40;
    fs.writeSync(fd, b, 0, 1, 700000);
    fs.closeSync(fd);
    fs.rmSync(path.join(snap, 'new-1', 'data'));
    fs.chmodSync(path.join(snap, 'script.sh'), 0o700);
    const r = ferry(['verify', `${target}@s3`]);
    expect(r.code).toBe(14);
    const lines = r.stdout.toString().split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    expect(lines).toContain('missing  new-1/data');
    expect(lines).toContain('differs  script.sh: mode 0755 → 0700');
    expect(lines.filter((l) => /^differs {2}docs\/deep\/big\.bin: content [0-9a-f]{16} → [0-9a-f]{16}$/.test(l))).toHaveLength(1);
    expect(r.stderr).toMatch(/^ferry: verify failed: s3 differs from its manifest in 3 places/);
    const j = ferry(['verify', `${target}@s3`, '--json']);
    expect(j.code).toBe(14);
    const report = JSON.parse(j.stdout.toString());
    expect(report).toMatchObject({ ok: false, name: 's3', missing: ['new-1/data'], extra: [] });
    expect(report.different.map((d: { path: string; fields: string[] }) => [d.path, d.fields])).toEqual([
      ['docs/deep/big.bin', ['content']],
      ['script.sh', ['mode']],
    ]);
    expect(JSON.parse(j.stderr)).toMatchObject({ error: 'REPLICATE_VERIFY_MISMATCH', exitCode: 14 });
  });

  it('a broken chain (a missing parent file) is exit 15 naming the missing uuid; nothing is applied', () => {
    const partial = path.join(work, 'partial-streams');
    fs.mkdirSync(partial);
    for (const f of fs.readdirSync(streams)) if (!f.startsWith('s1.')) fs.copyFileSync(path.join(streams, f), path.join(partial, f));
    const target = path.join(work, 'target-broken');
    const r = ferry(['receive', target, '--chain', partial]);
    expect(r.code).toBe(15);
    expect(r.stderr).toContain(`needs parent ${sidecars.s1.uuid}`);
    expect(r.stderr).toContain('s2');
    expect(fs.existsSync(target) ? fs.readdirSync(target).filter((n) => n !== '.ferry') : []).toEqual([]);
    // with s1 in the target the same directory replays
    ok(['receive', target, '-f', path.join(streams, 's1.btrfs-stream.zst')]);
    expect(ok(['receive', target, '--chain', partial])).toBe('s2\ns3\n');
    expectSame(refs.s3, path.join(target, 's3'));
  });

  it('a damaged stream file is refused before it is committed', () => {
    const damaged = path.join(work, 'damaged-streams');
    fs.mkdirSync(damaged);
    for (const f of fs.readdirSync(streams)) fs.copyFileSync(path.join(streams, f), path.join(damaged, f));
    const f = path.join(damaged, 's2.btrfs-stream');
    const data = fs.readFileSync(f);
    // Flip the last byte (END's CRC): the sidecar's SHA-256 is checked before the receiver gets that
    // last chunk, so the sidecar check speaks first.
    fs.writeFileSync(f, Buffer.concat([data.subarray(0, data.length - 1), Buffer.from([data[data.length - 1] ^ 1])]));
    const target = path.join(work, 'target-damaged');
    const r = ferry(['receive', target, '--chain', damaged]);
    expect(r.code).toBe(14);
    expect(r.stderr).toContain('stream file does not match its sidecar');
    expect(fs.readdirSync(target).filter((n) => n !== '.ferry')).toEqual(['s1']);
  });

  it('`ferry receive -f x.btrfs-stream.zst` and zstd on stdin are decompressed transparently; verify without a manifest is a clear error', () => {
    const t1 = path.join(work, 'target-file');
    expect(ok(['receive', t1, '-f', path.join(streams, 's1.btrfs-stream.zst')])).toBe('s1\n');
    expectSame(refs.s1, path.join(t1, 's1'));
    const t2 = path.join(work, 'target-stdin');
    expect(ok(['receive', t2], fs.readFileSync(path.join(streams, 's1.btrfs-stream.zst')))).toBe('s1\n');
    expect(ok(['receive', t2], fs.readFileSync(path.join(streams, 's2.btrfs-stream')))).toBe('s2\n');
    expectSame(refs.s2, path.join(t2, 's2'));
    const v = ferry(['verify', `${t1}@s1`]);
    expect(v.code).toBe(10);
    expect(v.stderr).toMatch(/verify failed: the target has no manifest for s1/);
    const cut = fs.readFileSync(path.join(streams, 's3.btrfs-stream.zst'));
    const r = ferry(['receive', t2], { input: cut.subarray(0, cut.length - 100) });
    expect(r.code).toBe(14);
    expect(r.stderr).toMatch(/zstd data is truncated.*offset \d+/);
  });
});
