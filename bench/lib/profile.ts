/**
 * Where ferry's time goes: V8 CPU profiles (`node --cpu-prof`) of ferry's
 * processes, folded into the phases the design talks about.
 *
 * Each sample is charged to the first frame, from the sampled function up
 * towards the root, that belongs to a phase: walk, hash, index, reflink
 * copy, plan, read data, encode, decode, apply, seed (link farm), fsync,
 * metadata, transport... Helpers shared by several phases (src/sys, CRC,
 * src/model, node internals) pass the sample up to their caller, so a
 * syncfs() reached from the receiver is "fsync" and a CRC computed for the
 * decoder is "decode". "idle" is the event loop waiting (on a pipe, a child,
 * a socket): in a pipeline, the side that idles is waiting for the other.
 *
 * Pure apart from reading the profile files. The rules are unit-tested on a
 * synthetic profile (test/unit/bench/profile.test.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface PhaseProfile {
  /** From the profiler's start to the process's exit (Node's own startup before that is not included). */
  wallSeconds: number;
  /** Seconds per phase; they add up to about wallSeconds (the profiler's sampling interval is 1 ms). */
  phases: Record<string, number>;
}

const FSYNC = /^(fsyncSync|fsync|fdatasync|fdatasyncSync|syncfs|fsyncDir)$/;

/** Source-file rules, by the path below src/ (dist/src/ in the build). */
const SRC_RULES: ReadonlyArray<readonly [RegExp, string | null | ((fn: string) => string | null)]> = [
  [/^diff\/walker\b/, 'walk'],
  [/^diff\/generations\b/, 'hash'],
  [/^diff\/(index-file|manifest)\b/, 'index'],
  [/^volume\/reflink-copy\b/, 'reflink copy'],
  [/^diff\//, 'plan'],
  [/^replicate\/send\b/, (fn) => (fn === 'read' ? 'read data' : 'plan')],
  [/^stream\/(encoder|coalesce)\b/, 'encode'],
  [/^stream\/decoder\b/, 'decode'],
  [/^stream\/crc32c\b/, null],
  [/^stream\//, 'encode'],
  [/^receive\/seed\b/, 'seed (link farm)'],
  [/^receive\/receiver\b/, 'receive loop'],
  [/^receive\//, 'apply'],
  [/^volume\/(catalog|atomic|lock|holds)\b/, 'metadata'],
  [/^volume\//, 'snapshot (other)'],
  [/^transport\/zstd/, 'zstd'],
  [/^transport\//, 'transport'],
  [/^replicate\//, 'sync'],
  // src/sys, src/model, src/errors, src/cli: charged to the caller.
];

/** The phase a single frame belongs to, or null to ask its caller. */
export function phaseOfFrame(f: CallFrame): string | null {
  const fn = f.functionName;
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'other';
  if (FSYNC.test(fn)) return 'fsync';
  const url = f.url;
  const at = url.lastIndexOf('/src/');
  if (at >= 0 && !url.includes('/node_modules/')) {
    const rel = url.slice(at + 5);
    for (const [re, phase] of SRC_RULES) if (re.test(rel)) return typeof phase === 'function' ? phase(fn) : phase;
    return null;
  }
  if (url.includes('/node_modules/ssh2/')) return 'ssh (ssh2)';
  if (url.includes('/node_modules/zstd-codec/')) return 'zstd';
  if (url.startsWith('node:internal/modules') || fn === 'compileForInternalLoader' || fn === 'wrapSafe') return 'startup';
  return null;
}

/** Fold one profile into phases. */
export function foldProfile(p: CpuProfile): PhaseProfile {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const memo = new Map<number, string>();
  const phaseOf = (id: number): string => {
    const chain: number[] = [];
    let cur: number | undefined = id;
    let found: string | undefined;
    while (cur !== undefined) {
      const m = memo.get(cur);
      if (m !== undefined) {
        found = m;
        break;
      }
      chain.push(cur);
      const own = phaseOfFrame(byId.get(cur)!.callFrame);
      if (own !== null) {
        found = own;
        break;
      }
      cur = parent.get(cur);
    }
    const result = found ?? 'other';
    for (const c of chain) memo.set(c, result);
    return result;
  };
  const phases: Record<string, number> = {};
  // timeDeltas[i] is the time between sample i-1 (or the start) and sample i;
  // sample i lasts until sample i+1, the last one until the profile ends.
  const n = p.samples.length;
  const lastAt = p.startTime + p.timeDeltas.slice(0, n).reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) {
    const us = i + 1 < n ? p.timeDeltas[i + 1] : p.endTime - lastAt;
    const ph = phaseOf(p.samples[i]);
    phases[ph] = (phases[ph] ?? 0) + Math.max(0, us) / 1e6;
  }
  return { wallSeconds: (p.endTime - p.startTime) / 1e6, phases };
}

/**
 * Node names a profile CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile;
 * thread 0 is the process's main thread, the others are worker threads.
 */
const NODE_PROFILE_NAME = /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/;

/**
 * Fold every main-thread .cpuprofile in `dir` (one per process) and add them
 * up. Worker threads' profiles are left out: a helper runs beside the main
 * thread, so adding its time (mostly waiting for work) would count the same
 * wall time twice.
 */
export function foldProfileDir(dir: string): PhaseProfile | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && (NODE_PROFILE_NAME.exec(f)?.[1] ?? '0') === '0');
  } catch {
    return undefined;
  }
  if (!files.length) return undefined;
  const total: PhaseProfile = { wallSeconds: 0, phases: {} };
  for (const f of files) {
    const one = foldProfile(JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile);
    total.wallSeconds += one.wallSeconds;
    for (const [k, v] of Object.entries(one.phases)) total.phases[k] = (total.phases[k] ?? 0) + v;
  }
  return total;
}

/** Profiles of several processes, by label (e.g. snapshot, send, receive), each from its own directory. */
export function foldProfiles(dirs: Record<string, string>): Record<string, PhaseProfile> {
  const out: Record<string, PhaseProfile> = {};
  for (const [label, dir] of Object.entries(dirs)) {
    const p = foldProfileDir(dir);
    if (p) out[label] = p;
  }
  return out;
}

/** "snapshot 2.10 s (hash 1.50, walk 0.40); send 3.0 s (...)": the biggest phases of each process. */
export function describeProfiles(profiles: Record<string, PhaseProfile>, top = 4): string {
  const parts: string[] = [];
  for (const [label, p] of Object.entries(profiles)) {
    const ranked = Object.entries(p.phases)
      .filter(([, s]) => s >= 0.05 * p.wallSeconds && s >= 0.001)
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, s]) => `${k} ${s.toFixed(2)}`);
    parts.push(`${label} ${p.wallSeconds.toFixed(2)} s${ranked.length ? ` (${ranked.join(', ')})` : ''}`);
  }
  return parts.join('; ');
}

/** Round a profile's numbers for the JSON report. */
export function roundProfiles(profiles: Record<string, PhaseProfile>): Record<string, PhaseProfile> {
  const r = (x: number) => Math.round(x * 1000) / 1000;
  const out: Record<string, PhaseProfile> = {};
  for (const [k, p] of Object.entries(profiles)) {
    out[k] = { wallSeconds: r(p.wallSeconds), phases: Object.fromEntries(Object.entries(p.phases).sort((a, b) => b[1] - a[1]).map(([n, s]) => [n, r(s)])) };
  }
  return out;
}
