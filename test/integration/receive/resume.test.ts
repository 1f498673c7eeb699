/**
 * Durable, resumable receive (docs/receive.md, "Resume"): a receive with
 * keepPartial that fails (source error, hostile command) or is killed with
 * SIGKILL at any command, at a checkpoint, between the two steps of a
 * copy-before-change, or at a random moment, leaves a partial that is never
 * visible; resuming it with the rest of the same stream gives exactly the
 * tree a straight receive gives, and a catalog entry with the whole stream's
 * SHA-256 and length. Full and incremental kernel streams (v1, v2, v2 with
 * encoded data), onto ext4 (hard-link farm seed) and tmpfs.
 *
 * Kills run the receiver in a child process (the built dist/, as the CLI
 * tests do); resumes run in this process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../../../src/errors';
import { PartialInfo, ReceiveOptions, Receiver } from '../../../src/receive/receiver';
import { readRecord, writeRecord } from '../../../src/receive/resume-record';
import { skipPrefix } from '../../../src/replicate/resume';
import { Catalog } from '../../../src/volume/catalog';
import { rmTree } from '../../helpers/fs';
import { describeLoopFs, LoopFsKind } from '../../helpers/loopfs';
import { Cmd, Command } from '../../../src/model/command';
import { commandBoundaries, decodeChunks, encodeAll, FIXTURE_DIR, p, rng, UUID_B } from '../../helpers/streams';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const DIST = path.resolve(__dirname, '..', '..', '..', 'dist');
const ALLOW = { allowDevices: true, allowSetuid: true };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const streamFile = (n: string) => path.join(FIXTURE_DIR, `${n}.stream`);
const stream = (n: string) => fs.readFileSync(streamFile(n));
/** Every trial kills at every command instead of a sample (slow; for a thorough local run). */
const EXHAUSTIVE = process.env.FERRY_RESUME_EXHAUSTIVE === '1';

/** Stream chunks; throws `disconnected` once `failAt` bytes went out (like a dropped ssh channel). */
async function* chunks(b: Buffer, size = 4096, failAt = -1): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) {
    if (failAt >= 0 && o + size > failAt) {
      if (failAt > o) yield b.subarray(o, failAt);
      throw new Error('disconnected');
    }
    yield b.subarray(o, o + size);
  }
}

/** The receiver in a child process: reads a stream file from `from` (or stdin), prints the result. */
const CHILD = `
const fs = require('fs');
const { Receiver } = require(process.env.FERRY_DIST + '/src/receive/receiver.js');
const a = JSON.parse(process.argv[1]);
async function* src() {
  if (a.file) {
    const fd = fs.openSync(a.file, 'r');
    let pos = a.from || 0;
    for (;;) {
      const buf = Buffer.alloc(a.chunk || 4096);
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (!n) break;
      pos += n;
      yield buf.subarray(0, n);
    }
  } else {
    for await (const c of process.stdin) yield c;
  }
}
const r = new Receiver(a.opts);
r.receive(src(), a.resume ? { resume: a.resume } : {}).then(
  (done) => { process.stdout.write(JSON.stringify(done.map((d) => d.name))); process.exit(0); },
  (e) => { process.stdout.write(JSON.stringify({ error: e.code, message: e.message })); process.exit(3); },
);
`;

interface ChildArgs {
  opts: ReceiveOptions;
  file?: string;
  from?: number;
  resume?: { id: string; fromByte: number };
}

function child(args: ChildArgs, fault?: string): { status: number | null; signal: NodeJS.Signals | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['-e', CHILD, JSON.stringify(args)], {
    env: { ...process.env, FERRY_DIST: DIST, ...(fault ? { FERRY_FAULT: fault } : {}) },
    encoding: 'utf8',
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** What a user can see: snapshot dirs and effective catalog entries. */
function visible(target: string): { dirs: string[]; catalog: string[] } {
  const dirs = fs.existsSync(target) ? fs.readdirSync(target).filter((n) => n !== '.ferry').sort() : [];
  return { dirs, catalog: new Catalog(target).list().map((e) => `${e.name} ${e.receivedUuid}`) };
}

function commandCount(b: Buffer): number {
  return decodeChunks(b).filter((i) => i.kind === 'command').length;
}

/** Pick `n` distinct command indexes in [2, max-1] (never SUBVOL/SNAPSHOT or END). */
function sample(max: number, n: number, seed: number): number[] {
  const all = Array.from({ length: Math.max(0, max - 2) }, (_, i) => i + 2);
  if (EXHAUSTIVE || all.length <= n) return all;
  const rand = rng(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, n).sort((a, b) => a - b);
}

interface Case {
  /** Stream fixture to interrupt. */
  name: string;
  /** Fixture received first (the parent), or none. */
  parent?: string;
  /** Snapshot the stream makes. */
  snap: string;
}

const CASES: Case[] = [
  { name: 'full-v1', snap: 'snap1' },
  { name: 'incr-v1', parent: 'full-v1', snap: 'snap2' },
  { name: 'full-v2', snap: 'snap1' },
  { name: 'incr-v2c', parent: 'full-v2c', snap: 'snap2' },
];

function resumeSuite(kind: LoopFsKind, mounted: () => { dir: string }): void {
  let base: string;
  let seq = 0;
  const refs = new Map<string, string>();

  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(mounted().dir, 'resume-'));
    // Straight receives to compare with.
    for (const c of CASES) {
      const key = `${c.parent ?? ''}>${c.name}`;
      const t = path.join(base, `ref-${refs.size}`);
      if (c.parent) await new Receiver({ target: t, ...ALLOW }).receive(chunks(stream(c.parent)));
      await new Receiver({ target: t, ...ALLOW }).receive(chunks(stream(c.name)));
      refs.set(key, path.join(t, c.snap));
    }
  });

  afterAll(() => rmTree(base));

  /** Targets of the running test, removed after it so the small filesystem never fills up. */
  const made: string[] = [];
  afterEach(() => {
    for (const t of made.splice(0)) rmTree(t);
  });

  async function fresh(c: Case): Promise<string> {
    const t = path.join(base, `t${seq++}`);
    made.push(t);
    if (c.parent) await new Receiver({ target: t, ...ALLOW }).receive(chunks(stream(c.parent)));
    else fs.mkdirSync(t);
    return t;
  }

  function onlyPartial(t: string, c: Case): PartialInfo {
    const ps = new Receiver({ target: t, ...ALLOW }).partials();
    expect(ps).toHaveLength(1);
    const p = ps[0];
    const b = stream(c.name);
    expect(p.name).toBe(c.snap);
    expect(p.appliedBytes).toBeGreaterThan(0);
    expect(p.appliedBytes).toBeLessThanOrEqual(b.length);
    expect(p.prefixSha256).toBe(sha(b.subarray(0, p.appliedBytes)));
    if (c.parent) {
      const parent = new Catalog(t).list()[0];
      expect(p.parentUuid).toBe(parent.receivedUuid);
    } else {
      expect(p.parentUuid).toBeNull();
    }
    return p;
  }

  /** Resume in this process, through skipPrefix as the sender does, and check the result. */
  async function resumeAndCheck(t: string, c: Case, p: PartialInfo, before: ReturnType<typeof visible>): Promise<void> {
    const b = stream(c.name);
    const rest = skipPrefix(chunks(b, 3000), p.appliedBytes, p.prefixSha256);
    const done = await new Receiver({ target: t, ...ALLOW, keepPartial: true }).receive(rest, { resume: { id: p.id, fromByte: p.appliedBytes } });
    expect(done.map((d) => d.name)).toEqual([c.snap]);
    expect(done[0].resumedFromByte).toBe(p.appliedBytes);
    expect(done[0].entry.streamSha256).toBe(sha(b));
    expect(done[0].entry.streamBytes).toBe(b.length);
    expect(visible(t).dirs).toEqual([...before.dirs, c.snap].sort());
    expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
    const ref = refs.get(`${c.parent ?? ''}>${c.name}`)!;
    expect(compareTrees(ref, path.join(t, c.snap))).toEqual([]);
    if (c.parent) expect(compareTrees(path.join(path.dirname(ref), 'snap1'), path.join(t, 'snap1'))).toEqual([]);
  }

  async function killThenResume(c: Case, fault: string, extra: Partial<ReceiveOptions> = {}): Promise<void> {
    const t = await fresh(c);
    const before = visible(t);
    const r = child({ opts: { target: t, ...ALLOW, keepPartial: true, ...extra }, file: streamFile(c.name) }, fault);
    expect({ fault, signal: r.signal, err: r.err }).toEqual({ fault, signal: 'SIGKILL', err: '' });
    expect(visible(t)).toEqual(before);
    await resumeAndCheck(t, c, onlyPartial(t, c), before);
  }

  describe.each(CASES)('$name', (c) => {
    const n = commandCount(stream(c.name));

    it('a source that fails part way: kept, then resumed to the same tree', async () => {
      const b = stream(c.name);
      const rand = rng(b.length);
      for (let trial = 0; trial < 3; trial++) {
        const t = await fresh(c);
        const before = visible(t);
        const cut = 200 + Math.floor(rand() * (b.length - 400));
        const r = new Receiver({ target: t, ...ALLOW, keepPartial: true });
        await expect(r.receive(chunks(b, 1000 + trial * 3000, cut))).rejects.toThrow('disconnected');
        expect(visible(t)).toEqual(before);
        const p = onlyPartial(t, c);
        // a clean failure records exactly the last command boundary before the cut
        expect(p.appliedBytes).toBe(Math.max(...commandBoundaries(b).filter((x) => x <= cut)));
        await resumeAndCheck(t, c, p, before);
      }
    });

    it.each(sample(n, 6, n))('killed after command %i (journal only)', async (i) => {
      await killThenResume(c, `receive:command:${i}`);
    });

    it.each(sample(n, 4, n + 1))('killed after command %i (checkpoint every 8 KiB)', async (i) => {
      await killThenResume(c, `receive:command:${i}`, { checkpointBytes: 8192 });
    });

    it('killed right after the first checkpoint', async () => {
      await killThenResume(c, 'receive:checkpoint');
    });

    it('killed twice: a resumed receive killed again resumes again', async () => {
      const t = await fresh(c);
      const before = visible(t);
      const first = Math.max(2, Math.floor(n / 3));
      const second = Math.max(first + 1, Math.floor((2 * n) / 3));
      expect(child({ opts: { target: t, ...ALLOW, keepPartial: true }, file: streamFile(c.name) }, `receive:command:${first}`).signal).toBe('SIGKILL');
      const p1 = onlyPartial(t, c);
      const r = child(
        { opts: { target: t, ...ALLOW, keepPartial: true }, file: streamFile(c.name), from: p1.appliedBytes, resume: { id: p1.id, fromByte: p1.appliedBytes } },
        `receive:command:${second}`,
      );
      expect(r.signal).toBe('SIGKILL');
      expect(visible(t)).toEqual(before);
      const p2 = onlyPartial(t, c);
      expect(p2.id).toBe(p1.id);
      expect(p2.appliedBytes).toBeGreaterThan(p1.appliedBytes);
      await resumeAndCheck(t, c, p2, before);
    });
  });

  it('killed between the copy-before-change rename and the directory times (farm seed)', async () => {
    const c = CASES[1];
    await killThenResume(c, 'receive:cow-renamed');
  });

  it('killed between the copy-before-change rename and the directory times, in a directory no later command touches', async () => {
    // Only d/f's data changes: the stream sends no UTIMES for d, so only the
    // recorded fix-up can give d back its times after the kill.
    const [full, incr] = farmPair();
    const ref = path.join(base, `farm-ref-${seq}`);
    await new Receiver({ target: ref, ...ALLOW }).receive(chunks(full));
    await new Receiver({ target: ref, ...ALLOW }).receive(chunks(incr));
    const t = path.join(base, `farm-${seq++}`);
    await new Receiver({ target: t, ...ALLOW }).receive(chunks(full));
    const file = path.join(base, `farm-incr-${seq}.stream`);
    fs.writeFileSync(file, incr);
    const r = child({ opts: { target: t, ...ALLOW, keepPartial: true }, file }, 'receive:cow-renamed');
    expect(r.signal).toBe('SIGKILL');
    const [p] = new Receiver({ target: t }).partials();
    await new Receiver({ target: t, ...ALLOW }).receive(chunks(incr.subarray(p.appliedBytes)), { resume: { id: p.id, fromByte: p.appliedBytes } });
    expect(compareTrees(path.join(ref, 'next'), path.join(t, 'next'))).toEqual([]);
    expect(compareTrees(path.join(ref, 'base'), path.join(t, 'base'))).toEqual([]);
  });

  it('killed after a chown cleared a setuid bit, before it was put back', async () => {
    const b = setuidStream();
    const ref = path.join(base, `suid-ref-${seq}`);
    await new Receiver({ target: ref, ...ALLOW }).receive(chunks(b));
    expect(fs.statSync(path.join(ref, 'snaps', 'tool')).mode & 0o7777).toBe(0o4755);
    const t = path.join(base, `suid-${seq++}`);
    const file = path.join(base, `suid-${seq}.stream`);
    fs.writeFileSync(file, b);
    expect(child({ opts: { target: t, ...ALLOW, keepPartial: true }, file }, 'receive:chown-done').signal).toBe('SIGKILL');
    const [p] = new Receiver({ target: t }).partials();
    await new Receiver({ target: t, ...ALLOW }).receive(chunks(b.subarray(p.appliedBytes)), { resume: { id: p.id, fromByte: p.appliedBytes } });
    expect(compareTrees(path.join(ref, 'snaps'), path.join(t, 'snaps'))).toEqual([]);
  });

  it('killed at random moments while the stream flows (stdin)', async () => {
    const c = CASES[1];
    const b = stream(c.name);
    const rand = rng(99);
    for (let trial = 0; trial < 4; trial++) {
      const t = await fresh(c);
      const before = visible(t);
      const args: ChildArgs = { opts: { target: t, ...ALLOW, keepPartial: true } };
      const proc = spawn(process.execPath, ['-e', CHILD, JSON.stringify(args)], { env: { ...process.env, FERRY_DIST: DIST }, stdio: ['pipe', 'pipe', 'pipe'] });
      const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
      proc.stdin.on('error', () => undefined);
      const cut = Math.floor(rand() * b.length);
      for (let o = 0; o < cut; o += 2048) proc.stdin.write(b.subarray(o, Math.min(cut, o + 2048)));
      await new Promise((r) => setTimeout(r, 300 + Math.floor(rand() * 300)));
      proc.kill('SIGKILL');
      await exited;
      expect(visible(t)).toEqual(before);
      const ps = new Receiver({ target: t, ...ALLOW }).partials();
      if (ps.length === 0) {
        // killed before the first record (still seeding): nothing to resume, nothing left behind
        expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
        continue;
      }
      await resumeAndCheck(t, c, onlyPartial(t, c), before);
    }
  });

  it('the independent treecmp oracle agrees after a kill and a resume', async () => {
    const c = CASES[1];
    const t = await fresh(c);
    expect(child({ opts: { target: t, ...ALLOW, keepPartial: true }, file: streamFile(c.name) }, 'receive:command:40').signal).toBe('SIGKILL');
    await resumeAndCheck(t, c, onlyPartial(t, c), visible(t));
    const r = treecmp(refs.get(`${c.parent}>${c.name}`)!, path.join(t, c.snap), { farmSharedOk: true });
    expect(r.differences).toEqual([]);
  });
}

describeLoopFs('ext4', 'resume onto ext4 (hard-link farm)', (m) => resumeSuite('ext4', m), 256);
describeLoopFs('tmpfs', 'resume onto tmpfs', (m) => resumeSuite('tmpfs', m), 256);

describe('resume rules', () => {
  let work: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-resume-'));
  });
  afterAll(() => rmTree(work));
  let n = 0;
  const target = () => path.join(work, `t${n++}`);

  async function kept(t: string, name = 'full-v1', cutFrac = 0.5): Promise<PartialInfo> {
    const b = stream(name);
    const r = new Receiver({ target: t, ...ALLOW, keepPartial: true });
    await expect(r.receive(chunks(b, 4096, Math.floor(b.length * cutFrac)))).rejects.toThrow('disconnected');
    const ps = r.partials();
    expect(ps).toHaveLength(1);
    return ps[0];
  }

  it('without keepPartial a failure leaves nothing behind (as before)', async () => {
    const t = target();
    const b = stream('full-v1');
    const r = new Receiver({ target: t, ...ALLOW });
    await expect(r.receive(chunks(b, 4096, b.length / 2))).rejects.toThrow('disconnected');
    expect(fs.readdirSync(path.join(t, '.ferry', 'partial'))).toEqual([]);
    expect(r.partials()).toEqual([]);
  });

  it('a kept partial is neither a snapshot nor in the catalog', async () => {
    const t = target();
    await kept(t);
    expect(visible(t)).toEqual({ dirs: [], catalog: [] });
    expect(fs.readdirSync(path.join(t, '.ferry', 'catalog')).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('refuses to resume from a byte that is not the recorded boundary, and keeps the partial', async () => {
    const t = target();
    const p = await kept(t);
    const b = stream('full-v1');
    for (const from of [p.appliedBytes - 1, p.appliedBytes + 1, 0]) {
      const r = new Receiver({ target: t, ...ALLOW, keepPartial: true });
      const e = await r.receive(chunks(b.subarray(from)), { resume: { id: p.id, fromByte: from } }).catch((x) => x);
      expect(e).toBeInstanceOf(FerryError);
      expect((e as FerryError).code).toBe('RECV_RESUME_INVALID');
      expect((e as FerryError).exitCode).toBe(14);
    }
    expect(new Receiver({ target: t }).partials()).toEqual([p]);
  });

  it('refuses an unknown partial id', async () => {
    const t = target();
    const r = new Receiver({ target: t, ...ALLOW });
    for (const id of ['00000000-0000-0000-0000-000000000000', '../../etc', '']) {
      const e = await r.receive(chunks(Buffer.alloc(10)), { resume: { id, fromByte: 100 } }).catch((x) => x);
      expect((e as FerryError).code).toBe('RECV_RESUME_INVALID');
    }
  });

  it('a stream whose prefix differs is refused before a byte reaches the receiver', async () => {
    const t = target();
    const p = await kept(t);
    const other = stream('full-v2'); // another stream of the same snapshot
    const rest = skipPrefix(chunks(other), p.appliedBytes, p.prefixSha256);
    const e = await new Receiver({ target: t, ...ALLOW, keepPartial: true })
      .receive(rest, { resume: { id: p.id, fromByte: p.appliedBytes } })
      .catch((x) => x);
    expect((e as FerryError).code).toBe('REPLICATE_RESUME_MISMATCH');
    // the partial is untouched and still resumable with the right stream
    const [q] = new Receiver({ target: t }).partials();
    expect(q.appliedBytes).toBe(p.appliedBytes);
    const b = stream('full-v1');
    await new Receiver({ target: t, ...ALLOW }).receive(skipPrefix(chunks(b), q.appliedBytes, q.prefixSha256), {
      resume: { id: q.id, fromByte: q.appliedBytes },
    });
    expect(visible(t).dirs).toEqual(['snap1']);
  });

  it('a plain receive sweeps partials without a record and keeps those with one', async () => {
    const t = target();
    const p = await kept(t, 'full-v1');
    const junk = path.join(t, '.ferry', 'partial', '11111111-2222-3333-4444-555555555555');
    fs.mkdirSync(path.join(junk, 'tree'), { recursive: true });
    // an unrelated snapshot received into the same target
    const [other] = await new Receiver({ target: t, ...ALLOW }).receive(chunks(warningStream()));
    expect(other.name).toBe('snapw');
    expect(fs.existsSync(junk)).toBe(false);
    expect(new Receiver({ target: t }).partials().map((x) => x.id)).toEqual([p.id]);
  });

  it('a fresh receive of the same snapshot replaces its partial', async () => {
    const t = target();
    const p = await kept(t, 'full-v1');
    await new Receiver({ target: t, ...ALLOW }).receive(chunks(stream('full-v1')));
    expect(fs.existsSync(path.join(t, '.ferry', 'partial', p.id))).toBe(false);
    expect(new Receiver({ target: t }).partials()).toEqual([]);
    expect(visible(t).dirs).toEqual(['snap1']);
  });

  it('a fresh receive that fails again with keepPartial leaves one partial of that snapshot', async () => {
    const t = target();
    const p = await kept(t, 'full-v1', 0.3);
    const q = await kept(t, 'full-v1', 0.6);
    expect(q.id).not.toBe(p.id);
    expect(new Receiver({ target: t }).partials()).toEqual([q]);
  });

  it('a partial whose writer was still applying when the machine restarted is not resumed', async () => {
    const t = target();
    const p = await kept(t);
    const dir = path.join(t, '.ferry', 'partial', p.id);
    const r = readRecord(dir)!;
    writeRecord(dir, { ...r, final: false, bootId: 'another-boot' });
    expect(new Receiver({ target: t }).partials()).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('a partial recorded at a clean failure survives a restart', async () => {
    const t = target();
    const p = await kept(t);
    const dir = path.join(t, '.ferry', 'partial', p.id);
    const r = readRecord(dir)!;
    expect(r.final).toBe(true);
    writeRecord(dir, { ...r, bootId: 'another-boot' });
    expect(new Receiver({ target: t }).partials()).toEqual([p]);
  });

  it('an incremental partial names its parent, and is dropped when the parent is gone', async () => {
    const t = target();
    await new Receiver({ target: t, ...ALLOW }).receive(chunks(stream('full-v1')));
    const parent = new Catalog(t).list()[0];
    const p = await kept(t, 'incr-v1');
    expect(p.parentUuid).toBe(parent.receivedUuid);
    // the parent goes (as a careless prune would): the partial cannot be finished
    spawnSync('chattr', ['-i', path.join(t, 'snap1')]);
    fs.rmSync(path.join(t, 'snap1'), { recursive: true, force: true });
    expect(new Receiver({ target: t }).partials()).toEqual([]);
  });

  it('a resume under a stricter policy is refused', async () => {
    const t = target();
    const p = await kept(t);
    const e = await new Receiver({ target: t })
      .receive(chunks(stream('full-v1').subarray(p.appliedBytes)), { resume: { id: p.id, fromByte: p.appliedBytes } })
      .catch((x) => x);
    expect((e as FerryError).code).toBe('RECV_RESUME_INVALID');
  });

  it('warnings from before the interruption are reported once by the resumed receive', async () => {
    const b = warningStream();
    const clean = await new Receiver({ target: target(), ...ALLOW }).receive(chunks(b));
    expect(clean[0].warnings).toHaveLength(1);
    // a clean failure after the warning, and a kill right after the command that warned
    const t1 = target();
    const cut = b.length - 40000;
    await expect(new Receiver({ target: t1, ...ALLOW, keepPartial: true }).receive(chunks(b, 4096, cut))).rejects.toThrow('disconnected');
    const t2 = target();
    fs.writeFileSync(path.join(work, 'w.stream'), b);
    expect(child({ opts: { target: t2, ...ALLOW, keepPartial: true }, file: path.join(work, 'w.stream') }, 'receive:command:4').signal).toBe('SIGKILL');
    for (const t of [t1, t2]) {
      const [p] = new Receiver({ target: t }).partials();
      const [done] = await new Receiver({ target: t, ...ALLOW }).receive(chunks(b.subarray(p.appliedBytes)), {
        resume: { id: p.id, fromByte: p.appliedBytes },
      });
      expect(done.warnings).toEqual(clean[0].warnings);
      expect(done.entry.streamSha256).toBe(sha(b));
    }
  });
});

/** A full stream `base` (d/f with fixed times) and an incremental `next` that only rewrites d/f's data. */
function farmPair(): [Buffer, Buffer] {
  const U1 = Buffer.from('a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1', 'hex');
  const U2 = Buffer.from('b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2', 'hex');
  const t0 = { sec: 1600000000n, nsec: 5 };
  const t1 = { sec: 1700000000n, nsec: 7 };
  const full: Command[] = [
    { cmd: Cmd.SUBVOL, attrs: { path: p('base'), uuid: U1, ctransid: 5n } },
    { cmd: Cmd.MKDIR, attrs: { path: p('o257-5-0'), ino: 257n } },
    { cmd: Cmd.RENAME, attrs: { path: p('o257-5-0'), pathTo: p('d') } },
    { cmd: Cmd.MKFILE, attrs: { path: p('o258-5-0'), ino: 258n } },
    { cmd: Cmd.RENAME, attrs: { path: p('o258-5-0'), pathTo: p('d/f') } },
    { cmd: Cmd.WRITE, attrs: { path: p('d/f'), fileOffset: 0n, data: p('old contents\n') } },
    { cmd: Cmd.CHMOD, attrs: { path: p('d/f'), mode: 0o644n } },
    { cmd: Cmd.UTIMES, attrs: { path: p('d/f'), atime: t0, mtime: t0, ctime: t0 } },
    { cmd: Cmd.CHMOD, attrs: { path: p('d'), mode: 0o755n } },
    { cmd: Cmd.UTIMES, attrs: { path: p('d'), atime: t0, mtime: t0, ctime: t0 } },
    { cmd: Cmd.UTIMES, attrs: { path: p(''), atime: t0, mtime: t0, ctime: t0 } },
    { cmd: Cmd.END, attrs: {} },
  ];
  const incr: Command[] = [
    { cmd: Cmd.SNAPSHOT, attrs: { path: p('next'), uuid: U2, ctransid: 6n, cloneUuid: U1, cloneCtransid: 5n } },
    { cmd: Cmd.WRITE, attrs: { path: p('d/f'), fileOffset: 0n, data: p('new contents\n') } },
    { cmd: Cmd.UTIMES, attrs: { path: p('d/f'), atime: t1, mtime: t1, ctime: t1 } },
    { cmd: Cmd.END, attrs: {} },
  ];
  return [encodeAll(full, 1), encodeAll(incr, 1)];
}

/** A full stream `snaps` with a setuid file that is chowned after its mode was set (as btrfs send orders them). */
function setuidStream(): Buffer {
  const t0 = { sec: 1600000000n, nsec: 5 };
  return encodeAll(
    [
      { cmd: Cmd.SUBVOL, attrs: { path: p('snaps'), uuid: Buffer.alloc(16, 0xc3), ctransid: 5n } },
      { cmd: Cmd.MKFILE, attrs: { path: p('o257-5-0'), ino: 257n } },
      { cmd: Cmd.RENAME, attrs: { path: p('o257-5-0'), pathTo: p('tool') } },
      { cmd: Cmd.WRITE, attrs: { path: p('tool'), fileOffset: 0n, data: p('#!/bin/true\n') } },
      { cmd: Cmd.CHMOD, attrs: { path: p('tool'), mode: 0o4755n } },
      { cmd: Cmd.CHOWN, attrs: { path: p('tool'), uid: 1234n, gid: 5678n } },
      { cmd: Cmd.UTIMES, attrs: { path: p('tool'), atime: t0, mtime: t0, ctime: t0 } },
      { cmd: Cmd.UTIMES, attrs: { path: p(''), atime: t0, mtime: t0, ctime: t0 } },
      { cmd: Cmd.END, attrs: {} },
    ],
    1,
  );
}

/** A stream of its own snapshot `snapw` whose 4th command warns (a btrfs property off btrfs), then 160 KiB of data. */
function warningStream(): Buffer {
  const data = Buffer.alloc(32768, 7);
  const cmds: Command[] = [
    { cmd: Cmd.SUBVOL, attrs: { path: p('snapw'), uuid: UUID_B, ctransid: 9n } },
    { cmd: Cmd.MKFILE, attrs: { path: p('o257-9-0'), ino: 257n } },
    { cmd: Cmd.RENAME, attrs: { path: p('o257-9-0'), pathTo: p('a') } },
    { cmd: Cmd.SET_XATTR, attrs: { path: p('a'), xattrName: p('btrfs.compression'), xattrData: p('zstd') } },
  ];
  for (let i = 0; i < 5; i++) cmds.push({ cmd: Cmd.WRITE, attrs: { path: p('a'), fileOffset: BigInt(i * data.length), data } });
  cmds.push({ cmd: Cmd.END, attrs: {} });
  return encodeAll(cmds, 1);
}
