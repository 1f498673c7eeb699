/**
 * `ferry receive`: turns one input (one or more concatenated streams) into
 * committed snapshots in a target directory.
 *
 * Owns: the target layout, staging and commit. A snapshot is built in
 * TARGET/.ferry/partial/<uuid>/tree, seeded from its parent for incremental
 * streams, and on END: syncfs, catalog entry, rename into TARGET/<name>
 * (never replacing), immutable flag on its root. On any failure the staging
 * tree is removed, so a target's visible snapshots are exactly as before.
 * A per-target lock keeps two receives apart. Never: modifies a committed
 * snapshot, or writes outside TARGET.
 */
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { Cmd } from '../model/command';
import { faultPoint } from '../model/fault';
import { DEFAULT_LIMITS, Limits } from '../model/limits';
import { CommandItem, decodeStream } from '../stream/decoder';
import { formatUuid } from '../stream/dump';
import { Sys, sys as defaultSys } from '../sys/linux';
import { Catalog, CatalogEntry, FERRY_DIR } from '../volume/catalog';
import { fsyncDir } from '../volume/atomic';
import { Lock } from '../volume/lock';
import { Applier, CloneSourceResolver } from './applier';
import { initDecompressors } from './decompress';
import { checkStreamPath, showPath } from './safe-path';
import { SeedMethod, seedFromParent } from './seed';
import { StagingTree } from './staging-tree';

const FS_IMMUTABLE_FL = 0x10;

export interface ReceiveOptions {
  target: string;
  allowDevices?: boolean;
  allowSetuid?: boolean;
  limits?: Partial<Limits>;
  /** Sender's size estimate: refuse early when the target has less free space. */
  expectBytes?: bigint;
  /** How to seed an incremental staging tree from its parent. */
  seed?: SeedMethod | 'auto';
  sys?: Sys;
  /** Called once per committed snapshot. */
  onCommit?: (s: ReceivedSnapshot) => void;
}

export interface ReceivedSnapshot {
  name: string;
  path: string;
  entry: CatalogEntry;
  warnings: string[];
}

/** Space kept free beyond the estimate: 64 MiB or 2 % of it, whichever is more. */
export function spaceMargin(expect: bigint): bigint {
  const pct = expect / 50n;
  return pct > 64n * 1024n * 1024n ? pct : 64n * 1024n * 1024n;
}

/** Hashes the raw input and hands out one digest per stream. */
class StreamHasher {
  private hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingStart = 0;
  private pendingEnd = 0;

  feed(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingEnd += chunk.length;
  }

  /** Digest of everything up to `end` since the previous digest. */
  digestUpTo(end: number): string {
    while (this.pending.length && this.pendingStart < end) {
      const c = this.pending[0];
      const take = Math.min(c.length, end - this.pendingStart);
      this.hash.update(c.subarray(0, take));
      this.pendingStart += take;
      if (take === c.length) this.pending.shift();
      else this.pending[0] = c.subarray(take);
    }
    const d = this.hash.digest('hex');
    this.hash = createHash('sha256');
    return d;
  }
}

interface Active {
  name: string;
  partialDir: string;
  tree: StagingTree;
  applier: Applier;
  uuid: string;
  receivedUuid: string;
  ctransid: bigint;
  parent: CatalogEntry | null;
  method: CatalogEntry['method'];
  startOffset: number;
}

export class Receiver {
  private readonly sys: Sys;
  private readonly limits: Limits;
  readonly catalog: Catalog;
  private readonly partialRoot: string;

  constructor(private readonly opts: ReceiveOptions) {
    this.sys = opts.sys ?? defaultSys();
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.catalog = new Catalog(opts.target);
    this.partialRoot = path.join(opts.target, FERRY_DIR, 'partial');
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
  }

  /** Remove staging trees left by killed runs (we hold the target lock). */
  private sweepStale(): void {
    for (const n of fs.readdirSync(this.partialRoot)) {
      fs.rmSync(path.join(this.partialRoot, n), { recursive: true, force: true });
    }
    this.catalog.sweep();
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

  async receive(source: AsyncIterable<Uint8Array>): Promise<ReceivedSnapshot[]> {
    this.prepareTarget();
    const lock = Lock.acquire(path.join(this.opts.target, FERRY_DIR, 'receive.lock'), `receive into ${this.opts.target}`);
    const done: ReceivedSnapshot[] = [];
    let active: Active | undefined;
    try {
      this.sweepStale();
      this.preflightSpace();
      await initDecompressors();
      const hasher = new StreamHasher();
      const input = async function* () {
        for await (const chunk of source) {
          const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
          hasher.feed(b);
          yield b;
        }
      };
      let streamStart = 0;
      for await (const item of decodeStream(input(), { limits: this.limits })) {
        if (item.kind === 'header') {
          streamStart = item.offset;
          continue;
        }
        switch (item.cmd) {
          case Cmd.SUBVOL:
          case Cmd.SNAPSHOT:
            if (active) {
              // `btrfs send -e`: a new subvolume finishes the previous one.
              done.push(this.commit(active, hasher.digestUpTo(item.offset), item.offset - active.startOffset));
              active = undefined;
            }
            active = this.begin(item, streamStart);
            break;
          case Cmd.END: {
            const a = active!;
            active = undefined;
            done.push(this.commit(a, hasher.digestUpTo(item.offset + item.length), item.offset + item.length - a.startOffset));
            break;
          }
          default:
            active!.applier.apply(item);
            faultPoint(`receive:command:${item.index}`);
        }
      }
      return done;
    } catch (e) {
      if (active) this.discard(active);
      throw e;
    } finally {
      lock.release();
    }
  }

  private begin(item: CommandItem, streamStart: number): Active {
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
    const uuid = randomUUID();
    const partialDir = path.join(this.partialRoot, uuid);
    fs.mkdirSync(partialDir, { mode: 0o700 });
    const treeDir = path.join(partialDir, 'tree');
    fs.mkdirSync(treeDir, { mode: 0o700 });
    let method: CatalogEntry['method'] = 'full';
    let shared = new Set<bigint>();
    if (parent) {
      const r = seedFromParent(this.sys, Buffer.from(path.join(this.opts.target, parent.name)), Buffer.from(treeDir), this.opts.seed ?? 'auto');
      method = r.method;
      shared = r.shared;
    }
    faultPoint('receive:seeded');
    const tree = new StagingTree(treeDir, this.sys, shared);
    const applier = new Applier(
      tree,
      { allowDevices: !!this.opts.allowDevices, allowSetuid: !!this.opts.allowSetuid, limits: this.limits },
      this.cloneResolver(),
      a.uuid!,
    );
    return { name, partialDir, tree, applier, uuid, receivedUuid, ctransid: a.ctransid!, parent, method, startOffset: streamStart };
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

  private commit(a: Active, sha256: string, bytes: number): ReceivedSnapshot {
    a.tree.closeWrite();
    const treeDir = a.tree.root.toString();
    const fd = fs.openSync(treeDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      this.sys.syncfs(fd);
    } finally {
      fs.closeSync(fd);
    }
    const entry: CatalogEntry = {
      format: 1,
      name: a.name,
      uuid: a.uuid,
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
      this.catalog.remove(a.uuid);
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOTEMPTY') {
        throw new FerryError('RECV_EXISTS', `receive refused: ${a.name} appeared in the target during the receive`, {
          context: { target: this.opts.target },
          hint: 'nothing was committed',
        });
      }
      throw e;
    }
    faultPoint('receive:after-rename');
    fsyncDir(this.opts.target);
    fs.rmSync(a.partialDir, { recursive: true, force: true });
    protectSnapshot(this.sys, final);
    const r: ReceivedSnapshot = { name: a.name, path: final, entry, warnings: a.applier.warnings };
    this.opts.onCommit?.(r);
    return r;
  }

  private discard(a: Active): void {
    try {
      a.tree.closeWrite();
    } catch {
      /* ignore */
    }
    fs.rmSync(a.partialDir, { recursive: true, force: true });
  }
}

/** Best effort: mark a committed snapshot's root immutable so it is not changed by accident. */
export function protectSnapshot(sys: Sys, dir: string): boolean {
  return setRootFlag(sys, dir, true);
}

/** Clear the immutable flag of a snapshot's root (before pruning it). */
export function unprotectSnapshot(sys: Sys, dir: string): boolean {
  return setRootFlag(sys, dir, false);
}

function setRootFlag(sys: Sys, dir: string, on: boolean): boolean {
  let fd: number;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const cur = sys.getFlags(fd);
    if (cur === undefined) return false;
    const next = on ? cur | FS_IMMUTABLE_FL : cur & ~FS_IMMUTABLE_FL;
    return next === cur || sys.setFlags(fd, next);
  } finally {
    fs.closeSync(fd);
  }
}
