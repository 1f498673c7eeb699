/**
 * `ferry receive`: turns one input (one or more concatenated streams) into
 * committed snapshots in a target directory.
 *
 * Owns: the target layout, staging, commit and resume. A snapshot is built
 * in TARGET/.ferry/partial/<uuid>/tree (a btrfs subvolume where the target
 * allows: snapshot-trees.ts), seeded from its parent for incremental
 * streams, and on END: syncfs, received uuid (subvolumes), catalog entry,
 * rename into TARGET/<name> (never replacing), then read-only (subvolumes)
 * or the immutable flag on its root (directories). A per-target
 * lock keeps two receives apart. Never: modifies a committed snapshot, or
 * writes outside TARGET; a partial is never visible as a snapshot nor listed
 * in the catalog.
 *
 * On failure the staging tree is removed, unless `keepPartial`: then it is
 * kept with a resume record, and `receive(rest, { resume })` carries on from
 * the recorded stream byte (docs/receive.md, "Resume"). Invariants of a kept
 * partial: its record claims bytes [0, X) only once their changes are durable
 * (syncfs first); between records a journal says how far a live run got, so
 * a killed run resumes where it stopped and no command whose effect is on
 * disk is applied again, except the one in flight, which is re-applied
 * tolerantly (Applier NON_IDEMPOTENT).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { Cmd } from '../model/command';
import { faultPoint } from '../model/fault';
import { DEFAULT_LIMITS, Limits } from '../model/limits';
import { CommandItem, DecoderOptions, decodeStream } from '../stream/decoder';
import { formatUuid } from '../stream/dump';
import { Sys, sys as defaultSys } from '../sys/linux';
import { Catalog, CatalogEntry, FERRY_DIR } from '../volume/catalog';
import { fsyncDir } from '../volume/atomic';
import { isSubvolume } from '../volume/btrfs';
import { Lock } from '../volume/lock';
import { Applier, CloneSourceResolver, NON_IDEMPOTENT } from './applier';
import { initDecompressors } from './decompress';
import {
  Fixup,
  Journal,
  PartialVerdict,
  ResumeRecord,
  SCRATCH_DIR,
  TREE_DIR,
  appendWarnings,
  currentBootId,
  judgePartial,
  readJournal,
  readRecord,
  readWarnings,
  rewriteWarnings,
  writeRecord,
} from './resume-record';
import { checkStreamPath, showPath } from './safe-path';
import { InoSet } from './ino-set';
import { SeedMethod, seedFromParent } from './seed';
import { TreeKind, chooseKind, makeTree, markReceived, protectTree, removeTree, snapshotTree, sweepRemoved, writableSubvolume } from './snapshot-trees';
import { Sha256State, StreamHash, digestOfState, resumableSha256, streamSha256 } from './sha256-state';
import { RiskyStep, StagingTree, joinParts, nsToTimespec } from './staging-tree';

const MiB = 1024 * 1024;
/** Journal at least this often (stream bytes, ms) so a killed run resends little. */
const JOURNAL_BYTES = MiB;
const JOURNAL_MS = 250;
const PARTIAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface ReceiveOptions {
  target: string;
  allowDevices?: boolean;
  allowSetuid?: boolean;
  limits?: Partial<Limits>;
  /** Sender's size estimate: refuse early when the target has less free space. */
  expectBytes?: bigint;
  /**
   * How to seed an incremental staging tree from its parent. 'auto' makes
   * every tree a btrfs subvolume where the target allows (see
   * snapshot-trees.ts), seeded as a snapshot of the parent's; 'snapshot'
   * insists on that; the others make plain directories.
   */
  seed?: SeedMethod | 'auto' | 'snapshot';
  sys?: Sys;
  /** Called once per committed snapshot. */
  onCommit?: (s: ReceivedSnapshot) => void;
  /**
   * On failure (error, disconnect, kill) keep the staging tree and its resume
   * record instead of removing it, so `receive(rest, { resume })` can finish it.
   */
  keepPartial?: boolean;
  /** Durable checkpoint at least every this many stream bytes (default 64 MiB)... */
  checkpointBytes?: number;
  /** ...or this many milliseconds (default 5000), whichever comes first. */
  checkpointMs?: number;
}

export interface ReceiveCallOptions {
  /**
   * Carry on with a kept partial. The source yields the original stream's
   * bytes from `fromByte` on, which must be the partial's `appliedBytes`.
   */
  resume?: { id: string; fromByte: number };
}

export interface ReceivedSnapshot {
  name: string;
  path: string;
  entry: CatalogEntry;
  warnings: string[];
  /** Stream byte this receive started from (0 unless resumed). */
  resumedFromByte: number;
}

/** A kept, resumable staging tree (never a snapshot). */
export interface PartialInfo {
  id: string;
  name: string;
  receivedUuid: string;
  /** Received uuid of the parent it is built on: retention must keep that snapshot. */
  parentUuid: string | null;
  ctransid: string;
  version: number;
  /** Stream bytes [0, appliedBytes) are durably applied; resume from here. */
  appliedBytes: number;
  /** SHA-256 of stream bytes [0, appliedBytes). */
  prefixSha256: string;
}

/** Space kept free beyond the estimate: 64 MiB or 2 % of it, whichever is more. */
export function spaceMargin(expect: bigint): bigint {
  const pct = expect / 50n;
  return pct > 64n * 1024n * 1024n ? pct : 64n * 1024n * 1024n;
}

/**
 * Hashes the input as it flows, one stream at a time, in decoder offsets.
 * Chunks are kept until hashed, so the state can be taken at any command
 * boundary not yet passed.
 */
class InputTap {
  private pending: Buffer[] = [];
  /** Decoder offset of pending[0][0]; everything before it is hashed or dropped. */
  private pos: number;
  private hash: StreamHash | undefined;

  constructor(start = 0, hash?: StreamHash) {
    this.pos = start;
    this.hash = hash;
  }

  feed(b: Buffer): void {
    if (b.length) this.pending.push(b);
  }

  /** A new stream starts at `at`: drop what lies before it and hash from there with `hash`. */
  restart(at: number, hash: StreamHash): void {
    this.hash = undefined;
    this.consume(at);
    this.hash = hash;
  }

  /** Hash (or drop, between streams) everything before `to`. */
  consume(to: number): void {
    while (this.pos < to && this.pending.length) {
      const c = this.pending[0];
      const take = Math.min(c.length, to - this.pos);
      this.hash?.update(take === c.length ? c : c.subarray(0, take));
      this.pos += take;
      if (take === c.length) this.pending.shift();
      else this.pending[0] = c.subarray(take);
    }
    if (this.pos !== to) throw new FerryError('INTERNAL', `input hash cannot reach offset ${to} (at ${this.pos})`);
  }

  /** Keep memory bounded when no state is needed at finer points. */
  maybeConsume(to: number): void {
    if (to - this.pos >= MiB) this.consume(to);
  }

  state(at: number): Sha256State {
    this.consume(at);
    return this.hash!.state();
  }

  digest(at: number): string {
    this.consume(at);
    return this.hash!.digest();
  }
}

/** What a resumable receive tracks for the snapshot it is building. */
interface KeepState {
  record: ResumeRecord;
  journal: Journal;
  ckptPos: number;
  ckptAt: number;
  jPos: number;
  jAt: number;
  /** Stream offset of the command being applied, or null between commands. */
  inProgress: number | null;
  /** Risky steps of the command in progress. */
  fixups: Fixup[];
  /** End of the last applied command and its index. */
  end: number;
  commands: number;
  /** The next command may already have been applied by a killed run. */
  again: boolean;
}

interface Active {
  id: string;
  name: string;
  partialDir: string;
  tree: StagingTree;
  applier: Applier;
  receivedUuid: string;
  ctransid: bigint;
  parent: CatalogEntry | null;
  method: CatalogEntry['method'];
  /** Decoder offset of stream byte 0 (the stream's header). */
  base: number;
  version: number;
  tap: InputTap;
  resumedFromByte: number;
  keep?: KeepState;
}

function syncTree(sys: Sys, dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    sys.syncfs(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const b64 = (parts: Buffer[]) => joinParts(parts.length ? parts : [Buffer.alloc(0)]).toString('base64');
const unb64 = (s: string): Buffer[] => {
  const b = Buffer.from(s, 'base64');
  if (b.length === 0) return [];
  const out: Buffer[] = [];
  let i = 0;
  for (let j = b.indexOf(0x2f); j >= 0; j = b.indexOf(0x2f, i)) {
    out.push(b.subarray(i, j));
    i = j + 1;
  }
  out.push(b.subarray(i));
  return out;
};

function toFixup(s: RiskyStep): Fixup {
  return s.kind === 'dir-times'
    ? { kind: 'dir-times', dir: b64(s.dir), atimeNs: s.atimeNs.toString(), mtimeNs: s.mtimeNs.toString() }
    : { kind: 'mode', path: b64(s.path), mode: s.mode };
}

/** Inode numbers of every regular file under `root` (the farm's shared set, rebuilt on resume). */
function fileInodes(root: string): InoSet {
  const out = new InoSet();
  const stack: Buffer[] = [Buffer.from(root)];
  const slash = Buffer.from('/');
  while (stack.length) {
    const dir = stack.pop()!;
    for (const ent of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
      const p = Buffer.concat([dir, slash, ent.name as unknown as Buffer]);
      if (ent.isDirectory()) stack.push(p);
      else if (ent.isFile()) out.add(fs.lstatSync(p, { bigint: true }).ino);
    }
  }
  return out;
}

export class Receiver {
  private readonly sys: Sys;
  private readonly limits: Limits;
  readonly catalog: Catalog;
  private readonly partialRoot: string;
  private readonly ckptBytes: number;
  private readonly ckptMs: number;
  /** Plain directories or btrfs subvolumes (chosen in prepareTarget). */
  private kind: TreeKind = 'dir';

  constructor(private readonly opts: ReceiveOptions) {
    this.sys = opts.sys ?? defaultSys();
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.catalog = new Catalog(opts.target);
    this.partialRoot = path.join(opts.target, FERRY_DIR, 'partial');
    this.ckptBytes = opts.checkpointBytes ?? 64 * MiB;
    this.ckptMs = opts.checkpointMs ?? 5000;
  }

  /** Create the target and its metadata directories if missing. */
  private prepareTarget(): void {
    const t = this.opts.target;
    try {
      fs.mkdirSync(t, { recursive: true });
      const st = fs.lstatSync(t);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (e) {
      throw new FerryError('RECV_TARGET_INVALID', `cannot use target: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
        context: { target: t },
        cause: e,
      });
    }
    fs.mkdirSync(path.join(t, FERRY_DIR), { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.partialRoot, { recursive: true, mode: 0o700 });
    this.catalog.ensure();
    const seed = this.opts.seed ?? 'auto';
    this.kind = chooseKind(t, seed === 'snapshot' ? 'always' : seed === 'auto' ? 'auto' : 'never');
  }

  private lock(): Lock {
    return Lock.acquire(path.join(this.opts.target, FERRY_DIR, 'receive.lock'), `receive into ${this.opts.target}`);
  }

  /**
   * With the target lock held (so no writer is alive): remove staging trees
   * that cannot be resumed (no record, made before a machine restart, already
   * committed, parent gone), bring the records of the others up to where
   * their killed writers got, and sweep catalog entries of killed commits.
   */
  private sweepStale(): void {
    this.catalog.sweep();
    sweepRemoved(this.opts.target);
    const committed = this.catalog.list();
    // A commit killed between its rename and making the subvolume read-only.
    for (const e of committed) {
      const p = path.join(this.opts.target, e.name);
      if (writableSubvolume(this.sys, p)) protectTree(this.sys, p);
    }
    for (const n of fs.readdirSync(this.partialRoot)) {
      const dir = path.join(this.partialRoot, n);
      const v = judgePartial(dir);
      if (v.kind === 'stale') {
        removeTree(dir);
        continue;
      }
      const r = v.record;
      const done = committed.some((e) => e.receivedUuid === r.receivedUuid);
      const parentGone = r.parentLocalUuid !== null && !committed.some((e) => e.uuid === r.parentLocalUuid);
      if (done || parentGone) {
        removeTree(dir);
        continue;
      }
      if (v.kind === 'recover') this.recover(dir, v);
    }
  }

  /** Make what the dead writer applied durable, then say so in a final record. */
  private recover(dir: string, v: Extract<PartialVerdict, { kind: 'recover' }>): void {
    syncTree(this.sys, path.join(dir, TREE_DIR));
    const j = v.journal;
    const base = v.record;
    const r: ResumeRecord = {
      ...base,
      ...(j && j.pos > base.appliedBytes
        ? { appliedBytes: j.pos, commands: j.commands, hash: j.hash, prefixSha256: digestOfState(j.hash), uncertain: j.uncertain, fixups: j.fixups }
        : j && j.pos === base.appliedBytes
          ? { uncertain: base.uncertain || j.uncertain, fixups: j.fixups.length ? j.fixups : base.fixups }
          : {}),
      seq: base.seq + 1,
      bootId: currentBootId(),
      final: true,
      updatedAt: new Date().toISOString(),
    };
    writeRecord(dir, r);
  }

  /** Kept partials that `receive(rest, { resume })` can finish. Takes the target lock briefly. */
  partials(): PartialInfo[] {
    if (!fs.existsSync(this.partialRoot)) return [];
    const lock = this.lock();
    try {
      this.sweepStale();
      const out: PartialInfo[] = [];
      for (const n of fs.readdirSync(this.partialRoot).sort()) {
        const r = readRecord(path.join(this.partialRoot, n));
        if (!r) continue;
        out.push({
          id: r.id,
          name: r.name,
          receivedUuid: r.receivedUuid,
          parentUuid: r.parentUuid,
          ctransid: r.ctransid,
          version: r.version,
          appliedBytes: r.appliedBytes,
          prefixSha256: r.prefixSha256,
        });
      }
      return out;
    } finally {
      lock.release();
    }
  }

  /** Remove a kept partial (for a sender that must start over). Returns whether it existed. */
  discardPartial(id: string): boolean {
    if (!PARTIAL_ID.test(id)) return false;
    const dir = path.join(this.partialRoot, id);
    if (!fs.existsSync(dir)) return false;
    const lock = this.lock();
    try {
      removeTree(dir);
      return true;
    } finally {
      lock.release();
    }
  }

  private preflightSpace(): void {
    const expect = this.opts.expectBytes;
    if (expect === undefined) return;
    const { available } = this.sys.freeBytes(this.opts.target);
    const need = expect + spaceMargin(expect);
    if (available < need) {
      throw new FerryError('RECV_NO_SPACE', 'receive refused: not enough free space on the target', {
        context: { target: this.opts.target, needed: need, available },
        hint: 'nothing was written; free space or choose another target',
      });
    }
  }

  async receive(source: AsyncIterable<Uint8Array>, call: ReceiveCallOptions = {}): Promise<ReceivedSnapshot[]> {
    this.prepareTarget();
    const lock = this.lock();
    const done: ReceivedSnapshot[] = [];
    let active: Active | undefined;
    let committing = false;
    const resumable = !!this.opts.keepPartial || !!call.resume;
    let tap = new InputTap();
    try {
      this.sweepStale();
      this.preflightSpace();
      await initDecompressors();
      const decOpts: DecoderOptions = { limits: this.limits };
      if (call.resume) {
        active = this.reopen(call.resume);
        tap = active.tap;
        decOpts.resume = { version: active.version, offset: call.resume.fromByte, commandIndex: active.keep!.commands };
      }
      const feed = tap;
      const input = async function* () {
        for await (const chunk of source) {
          const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
          feed.feed(b);
          yield b;
        }
      };
      let streamStart = 0;
      let version = 0;
      for await (const item of decodeStream(input(), decOpts)) {
        if (item.kind === 'header') {
          streamStart = item.offset;
          version = item.version;
          tap.restart(item.offset, streamSha256(resumable));
          continue;
        }
        switch (item.cmd) {
          case Cmd.SUBVOL:
          case Cmd.SNAPSHOT:
            if (active) {
              // `btrfs send -e`: a new subvolume finishes the previous one.
              committing = true;
              done.push(this.commit(active, item.offset));
              committing = false;
              active = undefined;
            }
            active = this.begin(item, streamStart, version, tap);
            break;
          case Cmd.END: {
            committing = true;
            done.push(this.commit(active!, item.offset + item.length));
            committing = false;
            active = undefined;
            break;
          }
          default:
            this.applyOne(active!, item);
            faultPoint(`receive:command:${item.index}`);
        }
      }
      return done;
    } catch (e) {
      if (active) this.fail(active, committing);
      throw e;
    } finally {
      lock.release();
    }
  }

  private begin(item: CommandItem, streamStart: number, version: number, tap: InputTap): Active {
    const a = item.attrs;
    const ctx = { what: 'snapshot name', command: item.index, offset: item.offset, cmd: item.cmd === Cmd.SUBVOL ? 'subvol' : 'snapshot' };
    const parts = checkStreamPath(a.path!, ctx, { ...this.limits, maxPathDepth: 1 }, false);
    const name = parts[0].toString('utf8');
    if (!parts[0].equals(Buffer.from(name, 'utf8')) || name === FERRY_DIR) {
      throw new FerryError('RECV_PATH_INVALID', 'receive refused: snapshot name is not usable here', {
        context: { name: showPath(a.path!), command: item.index, offset: item.offset },
        hint: 'nothing was committed',
      });
    }
    const receivedUuid = formatUuid(a.uuid!);
    if (fs.existsSync(path.join(this.opts.target, name))) {
      throw new FerryError('RECV_EXISTS', `receive refused: ${name} already exists in the target`, {
        context: { target: this.opts.target, name },
        hint: 'nothing was changed; remove or rename the existing snapshot to receive it again',
      });
    }
    const dup = this.catalog.list().find((e) => e.receivedUuid === receivedUuid);
    if (dup) {
      throw new FerryError('RECV_EXISTS', `receive refused: this snapshot was already received as ${dup.name}`, {
        context: { uuid: receivedUuid },
        hint: 'nothing was changed',
      });
    }
    let parent: CatalogEntry | null = null;
    if (item.cmd === Cmd.SNAPSHOT) {
      const want = formatUuid(a.cloneUuid!);
      parent = this.catalog.findByUuid(want) ?? null;
      if (!parent) {
        const have = this.catalog.list();
        const list = have.length ? have.map((e) => `${e.name} (${e.receivedUuid}, ctransid ${e.ctransid})`).join('; ') : 'none';
        throw new FerryError('RECV_NO_PARENT', `receive refused: parent snapshot ${want} (ctransid ${a.cloneCtransid}) is not in the target`, {
          context: { target: this.opts.target, has: list },
          hint: 'send a full stream first, or an incremental one from a snapshot the target has',
        });
      }
    }
    // A fresh receive of a snapshot replaces a kept partial of the same one.
    for (const n of fs.readdirSync(this.partialRoot)) {
      const r = readRecord(path.join(this.partialRoot, n));
      if (r && r.receivedUuid === receivedUuid) removeTree(path.join(this.partialRoot, n));
    }
    const id = randomUUID();
    const partialDir = path.join(this.partialRoot, id);
    fs.mkdirSync(partialDir, { mode: 0o700 });
    try {
      const treeDir = path.join(partialDir, TREE_DIR);
      const scratch = path.join(partialDir, SCRATCH_DIR);
      if (this.opts.keepPartial) fs.mkdirSync(scratch, { mode: 0o700 });
      let method: CatalogEntry['method'] = 'full';
      let shared = new InoSet();
      const parentDir = parent && path.join(this.opts.target, parent.name);
      if (parentDir && snapshotTree(parentDir, treeDir, this.kind)) {
        method = 'snapshot';
      } else {
        makeTree(treeDir, this.kind);
        if (parentDir) {
          const seed = this.opts.seed ?? 'auto';
          const r = seedFromParent(this.sys, Buffer.from(parentDir), Buffer.from(treeDir), seed === 'snapshot' ? 'auto' : seed);
          method = r.method;
          shared = r.shared;
        }
      }
      faultPoint('receive:seeded');
      const holder: { a?: Active } = {};
      const tree = new StagingTree(
        treeDir,
        this.sys,
        shared,
        this.opts.keepPartial ? { scratch, onStep: (s) => holder.a && this.onStep(holder.a, s) } : {},
      );
      const applier = new Applier(tree, this.policy(), this.cloneResolver(), a.uuid!);
      const act: Active = {
        id,
        name,
        partialDir,
        tree,
        applier,
        receivedUuid,
        ctransid: a.ctransid!,
        parent,
        method,
        base: streamStart,
        version,
        tap,
        resumedFromByte: 0,
      };
      holder.a = act;
      if (this.opts.keepPartial) {
        const end = item.offset + item.length - streamStart;
        const now = new Date().toISOString();
        syncTree(this.sys, treeDir);
        const hash = tap.state(item.offset + item.length);
        const record: ResumeRecord = {
          format: 1,
          id,
          name,
          receivedUuid,
          ctransid: a.ctransid!.toString(),
          parentUuid: parent ? parent.receivedUuid : null,
          parentCtransid: parent ? parent.ctransid : null,
          parentLocalUuid: parent ? parent.uuid : null,
          method,
          policy: { allowDevices: !!this.opts.allowDevices, allowSetuid: !!this.opts.allowSetuid },
          version,
          appliedBytes: end,
          commands: item.index,
          hash,
          prefixSha256: digestOfState(hash),
          seq: 1,
          bootId: currentBootId(),
          final: false,
          uncertain: false,
          fixups: [],
          createdAt: now,
          updatedAt: now,
        };
        writeRecord(partialDir, record);
        act.keep = this.keepState(record, new Journal(partialDir), false);
        faultPoint('receive:checkpoint');
      }
      return act;
    } catch (e) {
      removeTree(partialDir);
      throw e;
    }
  }

  private policy(): ResumeRecord['policy'] & { limits: Limits } {
    return { allowDevices: !!this.opts.allowDevices, allowSetuid: !!this.opts.allowSetuid, limits: this.limits };
  }

  private keepState(record: ResumeRecord, journal: Journal, again: boolean): KeepState {
    const now = Date.now();
    return {
      record,
      journal,
      ckptPos: record.appliedBytes,
      ckptAt: now,
      jPos: record.appliedBytes,
      jAt: now,
      inProgress: null,
      fixups: [],
      end: record.appliedBytes,
      commands: record.commands,
      again,
    };
  }

  /** Open a kept partial to go on from `fromByte` (the caller holds the lock and has swept). */
  private reopen(resume: { id: string; fromByte: number }): Active {
    const refuse = (why: string, hint: string, context: Record<string, string | number> = {}): never => {
      throw new FerryError('RECV_RESUME_INVALID', `resume refused: ${why}`, { context: { id: resume.id, ...context }, hint });
    };
    const dir = PARTIAL_ID.test(resume.id) ? path.join(this.partialRoot, resume.id) : undefined;
    const record = dir ? readRecord(dir) : undefined;
    if (!dir || !record) refuse('no resumable partial receive with this id', 'send the whole stream again');
    const r = record!;
    const partialDir = dir!;
    if (resume.fromByte !== r.appliedBytes) {
      refuse(`the stream would start at byte ${resume.fromByte}, but the partial stops at byte ${r.appliedBytes}`, 'resume from the partial\'s appliedBytes; the partial was kept', {
        fromByte: resume.fromByte,
        appliedBytes: r.appliedBytes,
      });
    }
    if ((r.policy.allowDevices && !this.opts.allowDevices) || (r.policy.allowSetuid && !this.opts.allowSetuid)) {
      refuse('the partial was received with --allow-devices or --allow-setuid, this run is stricter', 'pass the same options as the interrupted receive, or send the whole stream again');
    }
    if (fs.existsSync(path.join(this.opts.target, r.name))) {
      throw new FerryError('RECV_EXISTS', `receive refused: ${r.name} already exists in the target`, {
        context: { target: this.opts.target, name: r.name },
        hint: 'the partial was kept; remove or rename the existing snapshot, then resume',
      });
    }
    let parent: CatalogEntry | null = null;
    if (r.parentLocalUuid !== null) {
      parent = this.catalog.list().find((e) => e.uuid === r.parentLocalUuid) ?? null;
      if (!parent) refuse('the parent snapshot is gone from the target', 'send the whole stream again');
    }
    const treeDir = path.join(partialDir, TREE_DIR);
    const scratch = path.join(partialDir, SCRATCH_DIR);
    fs.rmSync(scratch, { recursive: true, force: true });
    fs.mkdirSync(scratch, { mode: 0o700 });
    const shared = r.method === 'farm' && parent ? fileInodes(path.join(this.opts.target, parent.name)) : new InoSet();
    const holder: { a?: Active } = {};
    const tree = new StagingTree(treeDir, this.sys, shared, { scratch, onStep: (s) => holder.a && this.onStep(holder.a, s) });
    this.applyFixups(tree, r.fixups);
    const applier = new Applier(tree, this.policy(), this.cloneResolver(), Buffer.from(r.receivedUuid.replace(/-/g, ''), 'hex'));
    const ws = readWarnings(partialDir, r.appliedBytes);
    rewriteWarnings(partialDir, ws);
    applier.warnings.push(...ws.map((x) => x.w));
    const tap = new InputTap(r.appliedBytes, resumableSha256(r.hash));
    // From here on this run may change the tree: the record is no longer final.
    const begin: ResumeRecord = { ...r, seq: r.seq + 1, bootId: currentBootId(), final: false, updatedAt: new Date().toISOString() };
    writeRecord(partialDir, begin);
    const journal = new Journal(partialDir, readJournal(partialDir)?.j ?? 0);
    const act: Active = {
      id: r.id,
      name: r.name,
      partialDir,
      tree,
      applier,
      receivedUuid: r.receivedUuid,
      ctransid: BigInt(r.ctransid),
      parent,
      method: r.method,
      base: 0,
      version: r.version,
      tap,
      resumedFromByte: r.appliedBytes,
      keep: this.keepState(begin, journal, r.uncertain),
    };
    holder.a = act;
    return act;
  }

  /** Redo what a killed command did that applying it again would not (see Fixup). */
  private applyFixups(tree: StagingTree, fixups: Fixup[]): void {
    const ctx = { command: 0, offset: 0, cmd: 'resume' };
    for (const f of fixups) {
      if (f.kind === 'dir-times') {
        const parts = unb64(f.dir);
        const p = tree.resolve(parts, ctx);
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (st?.isDirectory()) this.sys.lutimens(p, nsToTimespec(BigInt(f.atimeNs)), nsToTimespec(BigInt(f.mtimeNs)));
      } else {
        const parts = unb64(f.path);
        const p = tree.resolve(parts, ctx);
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (st?.isFile() && (st.mode & 0o7777) !== f.mode) fs.chmodSync(p, f.mode);
      }
    }
  }

  private onStep(a: Active, s: RiskyStep): void {
    const k = a.keep;
    if (!k || k.inProgress === null) return;
    k.fixups.push(toFixup(s));
    this.journal(a, k.inProgress, true);
  }

  private journal(a: Active, pos: number, uncertain: boolean): void {
    const k = a.keep!;
    k.journal.write({
      seq: k.record.seq,
      bootId: k.record.bootId,
      pos,
      commands: k.commands,
      hash: a.tap.state(pos + a.base),
      uncertain: uncertain || k.again,
      fixups: k.fixups,
    });
    k.jPos = pos;
    k.jAt = Date.now();
  }

  private checkpoint(a: Active, pos: number, final: boolean, uncertain: boolean, fixups: Fixup[]): void {
    const k = a.keep!;
    syncTree(this.sys, a.tree.root.toString());
    const hash = a.tap.state(pos + a.base);
    const r: ResumeRecord = {
      ...k.record,
      appliedBytes: pos,
      commands: k.commands,
      hash,
      prefixSha256: digestOfState(hash),
      seq: k.record.seq + 1,
      bootId: currentBootId(),
      final,
      uncertain,
      fixups,
      updatedAt: new Date().toISOString(),
    };
    writeRecord(a.partialDir, r);
    k.record = r;
    k.ckptPos = k.jPos = pos;
    k.ckptAt = k.jAt = Date.now();
    faultPoint('receive:checkpoint');
  }

  private applyOne(a: Active, item: CommandItem): void {
    const k = a.keep;
    if (!k) {
      a.applier.apply(item);
      a.tap.maybeConsume(item.offset + item.length);
      return;
    }
    const start = item.offset - a.base;
    const end = start + item.length;
    k.inProgress = start;
    k.fixups = [];
    // Before a command that must not run twice (or a CLONE, whose source may
    // change later), the journal must say that everything before it is done.
    if (NON_IDEMPOTENT.has(item.cmd) || item.cmd === Cmd.CLONE) this.journal(a, start, true);
    const warned = a.applier.warnings.length;
    a.applier.apply(item, k.again);
    k.again = false;
    if (a.applier.warnings.length > warned) appendWarnings(a.partialDir, start, a.applier.warnings.slice(warned));
    k.inProgress = null;
    k.fixups = [];
    k.end = end;
    k.commands = item.index;
    const now = Date.now();
    if (end - k.ckptPos >= this.ckptBytes || now - k.ckptAt >= this.ckptMs) this.checkpoint(a, end, false, false, []);
    else if (item.cmd === Cmd.CLONE || end - k.jPos >= JOURNAL_BYTES || now - k.jAt >= JOURNAL_MS) this.journal(a, end, false);
  }

  private cloneResolver(): CloneSourceResolver {
    const cache = new Map<string, StagingTree | undefined>();
    return {
      snapshotRoot: (uuid: Buffer) => {
        const u = formatUuid(uuid);
        if (!cache.has(u)) {
          const e = this.catalog.findByUuid(u);
          cache.set(u, e ? new StagingTree(path.join(this.opts.target, e.name), this.sys) : undefined);
        }
        return cache.get(u);
      },
    };
  }

  private commit(a: Active, endOffset: number): ReceivedSnapshot {
    const sha256 = a.tap.digest(endOffset);
    const bytes = endOffset - a.base;
    a.tree.closeWrite();
    a.keep?.journal.close();
    const treeDir = a.tree.root.toString();
    syncTree(this.sys, treeDir);
    // The tree's kind is what begin() made (a resumed partial may predate this run's choice).
    const subvolume = isSubvolume(treeDir);
    if (subvolume) markReceived(this.sys, treeDir, Buffer.from(a.receivedUuid.replace(/-/g, ''), 'hex'), a.ctransid);
    const entry: CatalogEntry = {
      format: 1,
      name: a.name,
      uuid: a.id,
      receivedUuid: a.receivedUuid,
      ctransid: a.ctransid.toString(),
      parentUuid: a.parent ? a.parent.receivedUuid : null,
      parentCtransid: a.parent ? a.parent.ctransid : null,
      streamSha256: sha256,
      streamBytes: bytes,
      receivedAt: new Date().toISOString(),
      method: a.method,
    };
    const final = path.join(this.opts.target, a.name);
    faultPoint('receive:before-catalog');
    this.catalog.add(entry);
    faultPoint('receive:after-catalog');
    try {
      this.sys.renameNoReplace(treeDir, final);
    } catch (e) {
      this.catalog.remove(a.id);
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOTEMPTY') {
        throw new FerryError('RECV_EXISTS', `receive refused: ${a.name} appeared in the target during the receive`, {
          context: { target: this.opts.target },
          hint: 'nothing was committed',
        });
      }
      throw e;
    }
    faultPoint('receive:after-rename');
    if (subvolume) {
      // Read-only at once (a kill before it is mended by the next sweep);
      // syncfs commits btrfs' transaction: an fsync logs no subvolume rename.
      protectTree(this.sys, final);
      syncTree(this.sys, this.opts.target);
    } else {
      fsyncDir(this.opts.target);
    }
    removeTree(a.partialDir);
    if (!subvolume) protectTree(this.sys, final);
    const r: ReceivedSnapshot = { name: a.name, path: final, entry, warnings: a.applier.warnings, resumedFromByte: a.resumedFromByte };
    this.opts.onCommit?.(r);
    return r;
  }

  /**
   * A receive failed with `a` open. Without keepPartial, or once the commit
   * has begun, the staging tree goes. Otherwise a final record is written at
   * the last command boundary (the failed command, if one was in flight, is
   * marked to be re-applied tolerantly); if even that fails, the previous
   * record and the journal still describe the partial.
   */
  private fail(a: Active, committing: boolean): void {
    try {
      a.tree.closeWrite();
    } catch {
      /* ignore */
    }
    const k = a.keep;
    if (!k || committing) {
      k?.journal.close();
      removeTree(a.partialDir);
      return;
    }
    try {
      const inFlight = k.inProgress !== null;
      this.checkpoint(a, inFlight ? k.inProgress! : k.end, true, inFlight || k.again, inFlight ? k.fixups : []);
    } catch {
      /* keep what is there */
    } finally {
      k.journal.close();
    }
  }
}

