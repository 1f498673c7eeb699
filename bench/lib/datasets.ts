/**
 * Datasets for the benchmark suites, all reproducible from a seed:
 *
 * - `usr`: a copy of /usr/share plus /usr/include (a real tree: ~60k entries,
 *   ~0.8 GB), and `mutateTree`, which changes about 1% of its files the same
 *   way for the same seed: appends, deletes, renames, chmods, new files, and
 *   a couple of directory renames;
 * - `many`: N small files in a /usr-like directory shape, with some symlinks
 *   and hard links (the 1,000,000-file RSS budget);
 * - `image`: a sparse (or filled) file of a given size, and K scattered 4 KiB
 *   writes to it (the VM-image budget).
 *
 * Planning is pure (`planMutation`, `planScatteredWrites`) and kept apart
 * from applying, so the plans are unit-tested and printable.
 */
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { Prng } from './prng';
import { FILES_PER_DIR, FILES_PER_SYMLINK, drawName, drawUsrFileSize } from './usr-shape';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface TreeEntry {
  /** Relative to the tree's root, '/'-separated. */
  path: string;
  type: EntryType;
  size: number;
  mode: number;
}

export interface TreeStats {
  files: number;
  dirs: number;
  symlinks: number;
  other: number;
  bytes: number;
}

function typeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/**
 * Every entry under `root` (not root itself), lstat only, sorted by path.
 * Top-level names in `skipTop` are left out with everything below them
 * (e.g. a ferry volume's `.ferry`).
 */
export function listTree(root: string, skipTop: readonly string[] = []): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    for (const name of readdirSync(abs)) {
      if (!rel && skipTop.includes(name)) continue;
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, p));
      const type = typeOf(st);
      out.push({ path: p, type, size: st.size, mode: st.mode & 0o7777 });
      if (type === 'dir') walk(p);
    }
  };
  walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function treeStats(entries: readonly TreeEntry[]): TreeStats {
  const s: TreeStats = { files: 0, dirs: 0, symlinks: 0, other: 0, bytes: 0 };
  for (const e of entries) {
    if (e.type === 'file') {
      s.files++;
      s.bytes += e.size;
    } else if (e.type === 'dir') s.dirs++;
    else if (e.type === 'symlink') s.symlinks++;
    else s.other++;
  }
  return s;
}

export const USR_SOURCES = ['/usr/share', '/usr/include'];

/**
 * Copy the `usr` dataset into `dest` (which must exist): dest/share and
 * dest/include, with modes, owners, times, links and xattrs (`cp -a`).
 */
export function copyUsr(dest: string, sources: readonly string[] = USR_SOURCES): TreeStats {
  execFileSync('cp', ['-a', '--', ...sources, dest], { stdio: ['ignore', 'ignore', 'pipe'] });
  return treeStats(listTree(dest));
}

// ---------------------------------------------------------------------------
// Mutation: about 1% of files change, deterministically for a seed.

export type MutationOp =
  | { kind: 'append'; path: string; bytes: number }
  | { kind: 'delete'; path: string }
  | { kind: 'rename'; from: string; to: string }
  /** New mode = old mode XOR flip (group/other bits only, so the owner keeps access). */
  | { kind: 'chmod'; path: string; flip: number }
  | { kind: 'create'; path: string; bytes: number }
  | { kind: 'rename-dir'; from: string; to: string };

export interface MutationPlan {
  seed: number;
  /** Regular files in the tree the plan was made for. */
  files: number;
  /** File operations first (on original paths), then directory renames. */
  ops: MutationOp[];
}

export interface MutationOptions {
  /** Share of regular files to touch (default 0.01). */
  fraction?: number;
  /** Directories to rename (default 2). */
  dirRenames?: number;
}

/** Relative weights of the file operations. */
const FILE_OPS: ReadonlyArray<readonly [MutationOp['kind'], number]> = [
  ['append', 35],
  ['delete', 15],
  ['rename', 15],
  ['chmod', 15],
  ['create', 20],
];
const CHMOD_FLIPS = [0o001, 0o010, 0o011, 0o020, 0o044];

const isUnder = (p: string, dir: string) => p === dir || p.startsWith(dir + '/');

/**
 * Decide, without touching the disk, what `mutateTree` will do to a tree with
 * these entries. Same entries and seed, same plan; the input order does not
 * matter.
 */
export function planMutation(entries: readonly TreeEntry[], seed: number, opts: MutationOptions = {}): MutationPlan {
  const fraction = opts.fraction ?? 0.01;
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const files = sorted.filter((e) => e.type === 'file').map((e) => e.path);
  const dirs = ['', ...sorted.filter((e) => e.type === 'dir').map((e) => e.path)];
  const rng = new Prng(seed).fork('mutation');
  const ops: MutationOp[] = [];
  const n = files.length ? Math.max(1, Math.round(files.length * fraction)) : 0;
  const weights = FILE_OPS.map((o) => o[1]);
  const join2 = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
  // Names carry the seed so that successive mutations never collide.
  const tag = (seed >>> 0).toString(16);
  let serial = 0;
  for (const idx of rng.sample(files.length, n)) {
    const path = files[idx];
    const kind = FILE_OPS[rng.weighted(weights)][0];
    switch (kind) {
      case 'append':
        ops.push({ kind, path, bytes: rng.logInt(1, 64 * 1024) });
        break;
      case 'delete':
        ops.push({ kind, path });
        break;
      case 'rename': {
        const dir = rng.chance(0.5) ? posix.dirname(path).replace(/^\.$/, '') : rng.pick(dirs);
        ops.push({ kind, from: path, to: join2(dir, `${posix.basename(path)}.mv${tag}-${serial++}`) });
        break;
      }
      case 'chmod':
        ops.push({ kind, path, flip: rng.pick(CHMOD_FLIPS) });
        break;
      case 'create':
        ops.push({
          kind,
          path: join2(rng.pick(dirs), `ferry-bench-${tag}-${serial++}.dat`),
          bytes: rng.chance(0.1) ? 0 : rng.logInt(1, 256 * 1024),
        });
        break;
    }
  }
  // Directory renames, below the top level, none inside another.
  const wanted = opts.dirRenames ?? 2;
  const candidates = dirs.filter((d) => d.includes('/'));
  const chosen: string[] = [];
  for (const i of rng.sample(candidates.length, candidates.length)) {
    if (chosen.length >= wanted) break;
    const d = candidates[i];
    if (chosen.some((c) => isUnder(d, c) || isUnder(c, d))) continue;
    chosen.push(d);
  }
  for (const d of chosen) ops.push({ kind: 'rename-dir', from: d, to: `${d}.renamed${tag}-${serial++}` });
  return { seed, files: files.length, ops };
}

/** Deterministic content for op `i` of a plan. */
function contentFor(seed: number, i: number, bytes: number): Buffer {
  return new Prng(seed).fork(`content-${i}`).fill(Buffer.allocUnsafe(bytes)) as Buffer;
}

/** Carry out a plan made by planMutation for this tree. */
export function applyMutation(root: string, plan: MutationPlan): void {
  plan.ops.forEach((op, i) => {
    switch (op.kind) {
      case 'append':
        appendFileSync(join(root, op.path), contentFor(plan.seed, i, op.bytes));
        break;
      case 'delete':
        unlinkSync(join(root, op.path));
        break;
      case 'rename':
      case 'rename-dir':
        renameSync(join(root, op.from), join(root, op.to));
        break;
      case 'chmod': {
        const p = join(root, op.path);
        chmodSync(p, (lstatSync(p).mode & 0o7777) ^ op.flip);
        break;
      }
      case 'create':
        writeFileSync(join(root, op.path), contentFor(plan.seed, i, op.bytes), { flag: 'wx' });
        break;
    }
  });
}

/** Change about 1% of the files under `root`; the same tree and seed give the same result. */
export function mutateTree(root: string, seed: number, opts: MutationOptions = {}): MutationPlan {
  const plan = planMutation(listTree(root), seed, opts);
  applyMutation(root, plan);
  return plan;
}

/** Counts of a plan's operations by kind, for reports. */
export function planSummary(plan: MutationPlan): Record<string, number> {
  const n: Record<string, number> = {};
  for (const op of plan.ops) n[op.kind] = (n[op.kind] ?? 0) + 1;
  return n;
}

/**
 * The seed of the k-th mutation of a run: distinct for every k, so that
 * successive mutations of one tree never reuse names.
 */
export function mutationSeed(seed: number, k: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + 0x1000 + k) >>> 0;
}

// ---------------------------------------------------------------------------
// many: N small files.

export interface ManyOptions {
  /** Largest file; sizes are log-uniform below it, 10% empty (default 4096). */
  maxFileBytes?: number;
  /** Share of entries that are symlinks (default 1/FILES_PER_SYMLINK). */
  symlinkShare?: number;
  /** Share of entries that are extra hard links to an earlier file (default 0.01). */
  hardlinkShare?: number;
  /** Deepest directory level (default 6). */
  maxDepth?: number;
  /**
   * File sizes: 'small' (default) log-uniform up to maxFileBytes; 'usr'
   * drawn from the measured /usr/share + /usr/include distribution
   * (usr-shape.ts), capped at maxFileBytes when given.
   */
  sizes?: 'small' | 'usr';
}

/**
 * Create `count` entries (files, symlinks, hard links) under `dest` in
 * directories shaped like /usr: about FILES_PER_DIR entries per directory,
 * at most `maxDepth` deep, files clustered in recently made directories.
 */
export function makeMany(dest: string, count: number, seed: number, opts: ManyOptions = {}): TreeStats {
  const rng = new Prng(seed).fork('many');
  const usrSizes = opts.sizes === 'usr';
  const maxFile = opts.maxFileBytes ?? (usrSizes ? Infinity : 4096);
  const symlinkShare = opts.symlinkShare ?? 1 / FILES_PER_SYMLINK;
  const hardlinkShare = opts.hardlinkShare ?? 0.01;
  const maxDepth = opts.maxDepth ?? 6;
  const pool = rng.fork('pool').fill(Buffer.allocUnsafe(1 << 20)) as Buffer;
  const dirs: { path: string; depth: number }[] = [{ path: '', depth: 0 }];
  const parents: number[] = [0]; // indices of dirs that may get subdirectories
  const files: { path: string; size: number }[] = [];
  const stats: TreeStats = { files: 0, dirs: 0, symlinks: 0, other: 0, bytes: 0 };
  let serial = 0;
  const abs = (p: string) => join(dest, p);
  const under = (d: string, name: string) => (d ? `${d}/${name}` : name);
  for (let i = 0; i < count; i++) {
    if (rng.chance(1 / FILES_PER_DIR) || dirs.length === 1) {
      const parent = dirs[rng.pick(parents)];
      const path = under(parent.path, drawName(rng, serial++, true));
      mkdirSync(abs(path));
      dirs.push({ path, depth: parent.depth + 1 });
      if (parent.depth + 1 < maxDepth) parents.push(dirs.length - 1);
      stats.dirs++;
    }
    // 80% of entries go to one of the 32 newest directories.
    const di = rng.chance(0.8) ? Math.max(1, dirs.length - 1 - rng.int(0, 31)) : rng.int(0, dirs.length - 1);
    const path = under(dirs[di].path, drawName(rng, serial++));
    if (files.length && rng.chance(symlinkShare)) {
      const target = rng.pick(files).path;
      symlinkSync(posix.relative(posix.dirname(path), target) || target, abs(path));
      stats.symlinks++;
    } else if (files.length && rng.chance(hardlinkShare)) {
      const target = rng.pick(files);
      linkSync(abs(target.path), abs(path));
      // Counted as listTree counts it: one more name, with the file's size.
      stats.files++;
      stats.bytes += target.size;
    } else {
      if (usrSizes) {
        const size = Math.min(maxFile, drawUsrFileSize(rng));
        writePooled(abs(path), size, pool, rng);
        files.push({ path, size });
        stats.files++;
        stats.bytes += size;
        continue;
      }
      const size = rng.chance(0.1) ? 0 : rng.logInt(1, maxFile);
      const off = rng.int(0, pool.length - size);
      writeFileSync(abs(path), pool.subarray(off, off + size), { flag: 'wx' });
      files.push({ path, size });
      stats.files++;
      stats.bytes += size;
    }
  }
  return stats;
}

/** Write `size` bytes of pool data (random slices, 1 MiB at a time) to a new file. */
function writePooled(path: string, size: number, pool: Buffer, rng: Prng): void {
  const fd = openSync(path, 'wx');
  try {
    for (let at = 0; at < size; ) {
      const n = Math.min(size - at, pool.length, 1 << 20);
      const off = rng.int(0, pool.length - n);
      writeSync(fd, pool, off, n, at);
      at += n;
    }
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// image: a large file and scattered small writes.

export interface ImageOptions {
  /** 'sparse' (default): all holes; 'data': every byte written, from the seed. */
  fill?: 'sparse' | 'data';
}

/** Create a file of `sizeBytes` at `path`. */
export function makeImage(path: string, sizeBytes: number, seed: number, opts: ImageOptions = {}): void {
  const fd = openSync(path, 'wx');
  try {
    ftruncateSync(fd, sizeBytes);
    if (opts.fill === 'data') {
      const rng = new Prng(seed).fork('image');
      const pool = rng.fill(Buffer.allocUnsafe(16 << 20)) as Buffer;
      const chunk = 1 << 20;
      for (let at = 0; at < sizeBytes; at += chunk) {
        const n = Math.min(chunk, sizeBytes - at);
        const off = rng.int(0, pool.length - n);
        writeSync(fd, pool, off, n, at);
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** `count` distinct block-aligned offsets inside a file of `sizeBytes`, in write order. */
export function planScatteredWrites(sizeBytes: number, count: number, seed: number, blockBytes = 4096): number[] {
  const blocks = Math.floor(sizeBytes / blockBytes);
  if (count > blocks) throw new RangeError(`cannot place ${count} distinct ${blockBytes}-byte writes in ${sizeBytes} bytes`);
  return new Prng(seed).fork('scatter').sample(blocks, count).map((b) => b * blockBytes);
}

/** Write one block of seeded data at each offset (from planScatteredWrites). */
export function scatterWrites(path: string, offsets: readonly number[], seed: number, blockBytes = 4096): void {
  const rng = new Prng(seed).fork('scatter-data');
  const block = Buffer.allocUnsafe(blockBytes);
  const fd = openSync(path, 'r+');
  try {
    for (const off of offsets) writeSync(fd, rng.fill(block), 0, blockBytes, off);
  } finally {
    closeSync(fd);
  }
}


/** One allocated run of a VM-style image; everything between runs is a hole. */
export interface ImageRegion {
  offset: number;
  length: number;
  /** binary: incompressible; text: compressible words; zero: written zeros (allocated, reads as zeros). */
  kind: 'binary' | 'text' | 'zero';
}

const REGION_KINDS: ReadonlyArray<readonly [ImageRegion['kind'], number]> = [
  ['binary', 50],
  ['text', 35],
  ['zero', 15],
];

/**
 * The layout of a VM-style disk image of `sizeBytes`: allocated runs
 * (4 KiB aligned, 64 KiB to 1/64 of the image) separated by holes, dense at
 * the start like an installed OS and sparser towards the end; about 40% of
 * the image allocated. Pure: same size and seed, same layout.
 */
export function planVmImage(sizeBytes: number, seed: number): ImageRegion[] {
  const rng = new Prng(seed).fork('vm-image');
  const align = (n: number) => Math.max(4096, Math.floor(n / 4096) * 4096);
  const maxRun = Math.max(64 * 1024, Math.floor(sizeBytes / 64));
  const weights = REGION_KINDS.map((k) => k[1]);
  const out: ImageRegion[] = [];
  let at = 0;
  while (at < sizeBytes) {
    const len = Math.min(align(rng.logInt(64 * 1024, maxRun)), sizeBytes - at);
    if (len <= 0) break;
    out.push({ offset: at, length: len, kind: REGION_KINDS[rng.weighted(weights)][0] });
    at += len;
    // Holes grow towards the end of the disk: the first tenth is nearly full.
    const depth = at / sizeBytes;
    const holeScale = depth < 0.1 ? 0.1 : 2.2 * depth;
    at += align(rng.logInt(64 * 1024, Math.max(64 * 1024, Math.floor(maxRun * holeScale))));
  }
  return out;
}

const WORDS = [
  'the', 'kernel', 'module', 'config', 'error', 'warning', 'user', 'system', 'file', 'data', 'value', 'return',
  'int', 'char', 'struct', 'static', 'void', 'if', 'else', 'for', 'while', 'log', 'debug', 'info', 'service',
  'started', 'stopped', 'network', 'device', 'mount', 'path', 'usr', 'lib', 'share', 'etc', 'var', 'tmp',
];

/** A pool of text-like bytes (log lines, source code): compresses about 3-4x. */
function textPool(rng: Prng, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  let line = 0;
  while (at < bytes) {
    let s = `${(1700000000 + line++ * 7).toString()} host${rng.int(1, 9)} `;
    const n = rng.int(4, 14);
    for (let i = 0; i < n; i++) s += rng.pick(WORDS) + (rng.chance(0.2) ? `=${rng.int(0, 99999)} ` : ' ');
    s += '\n';
    at += out.write(s, at, 'latin1');
  }
  return out;
}

/** Bytes of regions, by kind and in total. */
export function imageAllocated(regions: readonly ImageRegion[]): number {
  return regions.reduce((a, r) => a + r.length, 0);
}

/**
 * Create a VM-style image at `path` (see planVmImage): a sparse file of
 * `sizeBytes` whose allocated runs hold seeded binary data, text, or
 * written zeros. Returns the layout.
 */
export function makeVmImage(path: string, sizeBytes: number, seed: number): ImageRegion[] {
  const regions = planVmImage(sizeBytes, seed);
  const rng = new Prng(seed).fork('vm-image-data');
  const poolBytes = Math.min(16 << 20, Math.max(1 << 20, sizeBytes >> 4));
  const pools = {
    binary: rng.fork('binary').fill(Buffer.allocUnsafe(poolBytes)) as Buffer,
    text: textPool(rng.fork('text'), poolBytes),
    zero: Buffer.alloc(1 << 20),
  };
  const fd = openSync(path, 'wx');
  try {
    ftruncateSync(fd, sizeBytes);
    for (const r of regions) {
      const pool = pools[r.kind];
      for (let done = 0; done < r.length; ) {
        const n = Math.min(r.length - done, 1 << 20, pool.length);
        const off = r.kind === 'zero' ? 0 : rng.int(0, pool.length - n);
        writeSync(fd, pool, off, n, r.offset + done);
        done += n;
      }
    }
  } finally {
    closeSync(fd);
  }
  return regions;
}

/**
 * `count` large files of `bytes` each under `dest` (for throughput over
 * ssh): half binary (incompressible) and half text-like 1 MiB runs, in a
 * seeded order, so zstd has something realistic to do. Returns total bytes.
 */
export function makeLargeFiles(dest: string, count: number, bytes: number, seed: number): number {
  const rng = new Prng(seed).fork('large');
  const poolBytes = Math.min(16 << 20, Math.max(1 << 20, bytes));
  const pools = [rng.fork('binary').fill(Buffer.allocUnsafe(poolBytes)) as Buffer, textPool(rng.fork('text'), poolBytes)];
  for (let i = 0; i < count; i++) {
    const fd = openSync(join(dest, `large-${String(i).padStart(3, '0')}.bin`), 'wx');
    try {
      for (let at = 0; at < bytes; ) {
        const pool = pools[rng.int(0, 1)];
        const n = Math.min(bytes - at, 1 << 20, pool.length);
        writeSync(fd, pool, rng.int(0, pool.length - n), n, at);
        at += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return count * bytes;
}

/** `bytes` of the same mix as makeLargeFiles (1 MiB runs of binary or text-like data), in memory. */
export function mixedBuffer(bytes: number, seed: number): Buffer {
  const rng = new Prng(seed).fork('mixed');
  const poolBytes = Math.min(16 << 20, Math.max(1 << 20, bytes));
  const pools = [rng.fork('binary').fill(Buffer.allocUnsafe(poolBytes)) as Buffer, textPool(rng.fork('text'), poolBytes)];
  const out = Buffer.allocUnsafe(bytes);
  for (let at = 0; at < bytes; ) {
    const pool = pools[rng.int(0, 1)];
    const n = Math.min(bytes - at, 1 << 20, pool.length);
    const off = rng.int(0, pool.length - n);
    pool.copy(out, at, off, off + n);
    at += n;
  }
  return out;
}
