/**
 * The ferry.yaml schema: turns YAML text into a typed FerryConfig, or into
 * the list of every problem found, each with its path and line
 * (`jobs[1].targets[0].path: must be absolute (line 12)`).
 *
 * Owns: the config shape (issue 6; extend, don't rename), its defaults and
 * its checks. Unknown keys are errors, with a "did you mean" when a known
 * key is close, so a typo never silently turns an option off. Pure: reads
 * no files (load.ts does) and never checks that paths exist (a job whose
 * volume is missing fails when it runs, with exit 10).
 *
 * The validator walks the YAML AST (parseDocument + LineCounter) rather
 * than the plain JS value, so every node keeps its line. Aliases and `<<`
 * merge keys are resolved; top-level keys starting with `x-` are ignored so
 * anchors have somewhere to live.
 */
import * as path from 'node:path';
import { Document, LineCounter, Node, Pair, Scalar, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { FerryError } from '../errors';
import { WEEKDAYS, TimeZone, Weekday } from '../retention/calendar';
import { parseSshDest } from '../transport/ssh';
import { BUCKETS, KEEP_ALL, KeepMin, RetentionPolicy } from '../retention/policy';
import { parseDuration, parseRate } from './units';

export interface ConfigProblem {
  /** `jobs[1].targets[0].path`, or `(yaml)` for a syntax error. */
  path: string;
  message: string;
  line: number | null;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path}: ${p.message}${p.line !== null ? ` (line ${p.line})` : ''}`;
}

export interface SshSettings {
  identity?: string;
  knownHosts?: string;
  acceptNew?: boolean;
  configFile?: string;
  connectTimeoutMs?: number;
}

export interface HookConfig {
  command: string;
  timeoutMs: number;
}

export interface TargetConfig {
  /** As written: `/mnt/backup/data` or `backup@nas:/pool/data`. */
  path: string;
  kind: 'local' | 'ssh';
  format: 'tree' | 'stream';
  compress: { level: number } | null;
  /** Bytes per second, or null for no limit. */
  bwlimit: number | null;
  ssh: SshSettings;
  remoteCommand: string | null;
  /** Stream targets: a full stream after this many incrementals. */
  fullEvery: number | null;
  proto: 1 | 2;
  incrementalOnly: boolean;
  /** Effective policy for this target (its own `retention`, or the job's `retention.target`). */
  retention: RetentionPolicy;
  line: number | null;
}

export interface JobConfig {
  name: string;
  /** Absolute, normalized. */
  volume: string;
  snapshot: 'always' | 'onchange';
  targets: TargetConfig[];
  retention: { source: RetentionPolicy };
  hooks: { pre: HookConfig | null; post: HookConfig | null };
  line: number | null;
}

export interface FerryConfig {
  file: string;
  jobs: JobConfig[];
}

export const DEFAULT_HOOK_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_ZSTD_LEVEL = 3;
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const STREAM_SUFFIX = /\.btrfs-stream(?:\.zst)?$/;
const ROOT = '(root)';

const KEYS = {
  root: ['jobs'],
  job: ['name', 'volume', 'snapshot', 'targets', 'retention', 'hooks'],
  target: ['path', 'compress', 'bwlimit', 'ssh', 'format', 'full_every', 'proto', 'incremental_only', 'retention'],
  ssh: ['identity', 'known_hosts', 'accept_new', 'config', 'connect_timeout', 'remote_command'],
  retention: ['source', 'target', 'week_start', 'day_start', 'timezone'],
  policy: ['keep_min', ...BUCKETS, 'week_start', 'day_start', 'timezone'],
  hooks: ['pre', 'post', 'timeout'],
  hook: ['command', 'timeout'],
};

/**
 * The remote path of `[user@]host[:port]:/path` (the ssh transport's own
 * parser decides), undefined for anything else, or the parser's complaint.
 */
export function sshRemotePath(dest: string): string | { error: string } | undefined {
  try {
    return parseSshDest(dest)?.path;
  } catch (e) {
    if (e instanceof FerryError) return { error: e.summary };
    throw e;
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

function suggest(key: string, known: string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase().replace(/-/g, '_'), k);
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

type Entry = { keyNode: Node; value: Node | null };

class Checker {
  readonly problems: ConfigProblem[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lc: LineCounter,
  ) {}

  line(node: Node | null | undefined): number | null {
    const r = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return r ? this.lc.linePos(r[0]).line : null;
  }

  add(p: string, node: Node | null | undefined, message: string, line?: number | null): void {
    this.problems.push({ path: p, message, line: line !== undefined ? line : this.line(node) });
  }

  resolve(node: unknown): Node | null {
    let n = node as Node | null;
    for (let i = 0; i < 64 && n && isAlias(n); i++) n = (n.resolve(this.doc) as Node | undefined) ?? null;
    return n ?? null;
  }

  /**
   * The entries of a mapping, `<<` merges folded in; unknown keys reported.
   * With `extensions`, keys starting with `x-` are skipped (a home for anchors).
   */
  map(node: Node | null, p: string, known: string[], extensions = false): Map<string, Entry> | undefined {
    const n = this.resolve(node);
    if (!n || !isMap(n)) {
      this.add(p, n, `must be a mapping with keys ${known.join(', ')}`);
      return undefined;
    }
    const own = new Map<string, Entry>();
    const merged = new Map<string, Entry>();
    const fold = (m: Node | null, depth: number) => {
      const r = this.resolve(m);
      if (r && isMap(r) && depth < 16) {
        for (const pair of r.items) this.pair(pair as Pair<unknown, unknown>, p, known, merged, depth, fold, extensions);
      } else if (r && isSeq(r)) {
        for (const it of r.items) fold(it as Node, depth + 1);
      } else this.add(`${p}.<<`, r, 'merge key must name a mapping (an alias like *defaults)');
    };
    for (const pair of n.items) this.pair(pair as Pair<unknown, unknown>, p, known, own, 0, fold, extensions);
    for (const [k, v] of merged) if (!own.has(k)) own.set(k, v);
    return own;
  }

  private pair(
    pair: Pair<unknown, unknown>,
    p: string,
    known: string[],
    into: Map<string, Entry>,
    depth: number,
    fold: (m: Node | null, d: number) => void,
    extensions: boolean,
  ): void {
    const keyNode = pair.key as Node;
    const raw = isScalar(keyNode) ? keyNode.value : undefined;
    // With `merge: true` the parser turns a plain `<<` key into Symbol(<<).
    const key = typeof raw === 'symbol' && (keyNode as Scalar).source === '<<' ? '<<' : raw;
    if (key === '<<') {
      fold(pair.value as Node, depth + 1);
      return;
    }
    if (typeof key !== 'string') {
      this.add(p, keyNode, `keys must be plain words, got ${JSON.stringify(isScalar(keyNode) ? keyNode.value : 'a collection')}`);
      return;
    }
    if (extensions && key.startsWith('x-')) return;
    if (!known.includes(key)) {
      this.add(p === ROOT ? key : `${p}.${key}`, keyNode, `unknown key${suggest(key, known)}`);
      return;
    }
    into.set(key, { keyNode, value: this.resolve(pair.value) });
  }

  scalar(e: Entry): unknown {
    return e.value && isScalar(e.value) ? (e.value as Scalar).value : e.value === null ? null : undefined;
  }

  lineOf(e: Entry): number | null {
    return this.line(e.value) ?? this.line(e.keyNode);
  }

  /** A non-empty string, or undefined (problem reported). */
  str(e: Entry, p: string, what = 'a string'): string | undefined {
    const v = this.scalar(e);
    if (typeof v !== 'string' || v.trim() === '') {
      this.add(p, null, `must be ${what}`, this.lineOf(e));
      return undefined;
    }
    return v;
  }

  absPath(e: Entry, p: string): string | undefined {
    const v = this.str(e, p, 'an absolute path');
    if (v === undefined) return undefined;
    if (!v.startsWith('/')) {
      this.add(p, null, 'must be absolute', this.lineOf(e));
      return undefined;
    }
    return path.resolve(v);
  }

  bool(e: Entry, p: string): boolean | undefined {
    const v = this.scalar(e);
    if (typeof v !== 'boolean') {
      this.add(p, null, 'must be true or false', this.lineOf(e));
      return undefined;
    }
    return v;
  }

  int(e: Entry, p: string, min: number, max: number): number | undefined {
    const v = this.scalar(e);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.add(p, null, `must be a whole number from ${min} to ${max}`, this.lineOf(e));
      return undefined;
    }
    return v;
  }

  oneOf<T extends string>(e: Entry, p: string, options: readonly T[]): T | undefined {
    const v = this.scalar(e);
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
      this.add(p, null, `must be one of ${options.join(', ')}`, this.lineOf(e));
      return undefined;
    }
    return v as T;
  }

  duration(e: Entry, p: string): number | undefined {
    const v = this.scalar(e);
    if (typeof v !== 'string') {
      this.add(p, null, 'must be a duration like 30s, 10min, 12h, 1d or 2w', this.lineOf(e));
      return undefined;
    }
    const d = parseDuration(v);
    if ('error' in d) {
      this.add(p, null, `must be a duration: ${d.error}`, this.lineOf(e));
      return undefined;
    }
    return d.value;
  }
}

interface Anchors {
  weekStart: Weekday;
  dayStart: number;
  timezone: TimeZone;
}

function anchorsFrom(c: Checker, m: Map<string, Entry>, p: string, base: Anchors): Anchors {
  const a = { ...base };
  const ws = m.get('week_start');
  if (ws) {
    const w = c.oneOf(ws, `${p}.week_start`, WEEKDAYS);
    if (w !== undefined) a.weekStart = WEEKDAYS.indexOf(w) as Weekday;
  }
  const ds = m.get('day_start');
  if (ds) {
    const h = c.int(ds, `${p}.day_start`, 0, 23);
    if (h !== undefined) a.dayStart = h;
  }
  const tz = m.get('timezone');
  if (tz) {
    const z = c.oneOf(tz, `${p}.timezone`, ['local', 'utc'] as const);
    if (z !== undefined) a.timezone = z;
  }
  return a;
}

function policy(c: Checker, e: Entry, p: string, anchors: Anchors): RetentionPolicy | undefined {
  const m = c.map(e.value, p, KEYS.policy);
  if (!m) return undefined;
  const out: RetentionPolicy = { ...KEEP_ALL, keepMin: { kind: 'none' }, ...anchorsFrom(c, m, p, anchors) };
  const km = m.get('keep_min');
  let any = false;
  if (km) {
    any = true;
    const v = c.scalar(km);
    let k: KeepMin | undefined;
    if (v === 'all') k = { kind: 'all' };
    else if (v === 'latest') k = { kind: 'latest' };
    else if (typeof v === 'string') {
      const d = parseDuration(v);
      if ('error' in d) c.add(`${p}.keep_min`, null, `must be a duration (like 1d, 12h, 2w), latest or all: ${d.error}`, c.lineOf(km));
      else k = { kind: 'age', ms: d.value };
    } else c.add(`${p}.keep_min`, null, 'must be a duration (like 1d, 12h, 2w), latest or all', c.lineOf(km));
    if (k) out.keepMin = k;
  }
  for (const b of BUCKETS) {
    const be = m.get(b);
    if (!be) continue;
    any = true;
    const v = c.scalar(be);
    if (v === 'all') out[b] = Infinity;
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out[b] = v;
    else c.add(`${p}.${b}`, null, 'must be a whole number >= 0 or all', c.lineOf(be));
  }
  if (!any) {
    c.add(p, e.value, `sets nothing to keep: give keep_min (a duration, latest or all) and/or ${BUCKETS.join(', ')}`);
    return undefined;
  }
  return out;
}

function hook(c: Checker, e: Entry, p: string, defaultTimeout: number): HookConfig | undefined {
  const v = c.scalar(e);
  if (typeof v === 'string') {
    if (v.trim() === '') {
      c.add(p, null, 'must be a shell command', c.lineOf(e));
      return undefined;
    }
    return { command: v, timeoutMs: defaultTimeout };
  }
  const m = c.map(e.value, p, KEYS.hook);
  if (!m) return undefined;
  const ce = m.get('command');
  if (!ce) {
    c.add(`${p}.command`, e.value, 'is required');
    return undefined;
  }
  const command = c.str(ce, `${p}.command`, 'a shell command');
  const te = m.get('timeout');
  const timeoutMs = te ? c.duration(te, `${p}.timeout`) ?? defaultTimeout : defaultTimeout;
  return command === undefined ? undefined : { command, timeoutMs };
}

function compress(c: Checker, e: Entry, p: string): { level: number } | null | undefined {
  const v = c.scalar(e);
  if (v === false || v === 'none') return null;
  if (v === true || v === 'zstd') return { level: DEFAULT_ZSTD_LEVEL };
  const m = typeof v === 'string' ? /^zstd:(\d+)$/.exec(v) : null;
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 19) return { level: Number(m[1]) };
  c.add(p, null, 'must be zstd, zstd:LEVEL (1-19) or none', c.lineOf(e));
  return undefined;
}

function target(c: Checker, node: Node | null, p: string, job: { volume?: string; policy: RetentionPolicy; anchors: Anchors }): TargetConfig | undefined {
  const n = c.resolve(node);
  // `- /mnt/backup` is shorthand for `- path: /mnt/backup`.
  const m: Map<string, Entry> | undefined =
    n && isScalar(n) ? new Map([['path', { keyNode: n, value: n }]]) : c.map(n, p, KEYS.target);
  if (!m) return undefined;
  const pe = m.get('path');
  if (!pe) {
    c.add(`${p}.path`, n, 'is required');
    return undefined;
  }
  let dest = c.str(pe, `${p}.path`, 'a local /path or [user@]host[:port]:/path');
  let kind: 'local' | 'ssh' = 'local';
  if (dest !== undefined) {
    const remote = sshRemotePath(dest);
    if (dest.startsWith('/')) {
      dest = path.resolve(dest);
      if (job.volume && (dest === job.volume || dest.startsWith(job.volume + '/'))) {
        c.add(`${p}.path`, null, `must not be inside the job's volume ${job.volume}`, c.lineOf(pe));
      }
    } else if (typeof remote === 'object') {
      c.add(`${p}.path`, null, `is not a valid ssh destination: ${remote.error}`, c.lineOf(pe));
    } else if (remote !== undefined) {
      kind = 'ssh';
      if (!remote.startsWith('/')) {
        c.add(`${p}.path`, null, 'must be absolute on the remote host ([user@]host[:port]:/path)', c.lineOf(pe));
      }
    } else {
      c.add(`${p}.path`, null, 'must be absolute', c.lineOf(pe));
    }
  }
  const fe = m.get('format');
  const format: 'tree' | 'stream' = fe ? c.oneOf(fe, `${p}.format`, ['tree', 'stream'] as const) ?? 'tree' : dest && STREAM_SUFFIX.test(dest) ? 'stream' : 'tree';
  if (format === 'stream' && kind === 'ssh') {
    c.add(fe ? `${p}.format` : `${p}.path`, null, 'stream files must be on this host (a local /path); use a ferry target (format: tree) over ssh', c.lineOf(fe ?? pe));
  }
  const ce = m.get('compress');
  let comp: { level: number } | null = null;
  if (ce) {
    const v = compress(c, ce, `${p}.compress`);
    if (v !== undefined) comp = v;
    if (comp && kind === 'local' && format === 'tree') {
      c.add(`${p}.compress`, null, 'only applies to ssh targets and format: stream (a local tree target has no wire to compress)', c.lineOf(ce));
    }
  }
  const be = m.get('bwlimit');
  let bwlimit: number | null = null;
  if (be) {
    const v = c.scalar(be);
    const r = typeof v === 'string' || typeof v === 'number' ? parseRate(v) : { error: 'must be a rate like 50M' };
    if ('error' in r) c.add(`${p}.bwlimit`, null, r.error.startsWith('must') ? r.error : `must be a rate: ${r.error}`, c.lineOf(be));
    else bwlimit = r.value;
  }
  const ssh: SshSettings = {};
  let remoteCommand: string | null = null;
  const se = m.get('ssh');
  if (se) {
    if (kind !== 'ssh' && dest !== undefined) {
      c.add(`${p}.ssh`, se.keyNode, 'only applies to ssh targets ([user@]host[:port]:/path)');
    }
    const sm = c.map(se.value, `${p}.ssh`, KEYS.ssh);
    if (sm) {
      const q = `${p}.ssh`;
      const id = sm.get('identity');
      if (id) ssh.identity = c.absPath(id, `${q}.identity`);
      const kh = sm.get('known_hosts');
      if (kh) ssh.knownHosts = c.absPath(kh, `${q}.known_hosts`);
      const cf = sm.get('config');
      if (cf) ssh.configFile = c.absPath(cf, `${q}.config`);
      const an = sm.get('accept_new');
      if (an) ssh.acceptNew = c.bool(an, `${q}.accept_new`);
      const ct = sm.get('connect_timeout');
      if (ct) ssh.connectTimeoutMs = c.duration(ct, `${q}.connect_timeout`);
      const rc = sm.get('remote_command');
      if (rc) remoteCommand = c.str(rc, `${q}.remote_command`, 'a command line') ?? null;
      for (const k of Object.keys(ssh) as Array<keyof SshSettings>) if (ssh[k] === undefined) delete ssh[k];
    }
  }
  const fue = m.get('full_every');
  let fullEvery: number | null = null;
  if (fue) {
    const v = c.int(fue, `${p}.full_every`, 1, 1_000_000);
    if (v !== undefined) fullEvery = v;
    if (format !== 'stream') c.add(`${p}.full_every`, null, 'only applies to format: stream (a tree target never needs a full send to bound a chain)', c.lineOf(fue));
  }
  const pr = m.get('proto');
  let proto: 1 | 2 = 1;
  if (pr) {
    const v = c.int(pr, `${p}.proto`, 1, 2);
    if (v !== undefined) proto = v as 1 | 2;
  }
  const io = m.get('incremental_only');
  const incrementalOnly = io ? c.bool(io, `${p}.incremental_only`) ?? false : false;
  const re = m.get('retention');
  const retention = re ? policy(c, re, `${p}.retention`, job.anchors) ?? job.policy : job.policy;
  if (dest === undefined) return undefined;
  return { path: dest, kind, format, compress: comp, bwlimit, ssh, remoteCommand, fullEvery, proto, incrementalOnly, retention, line: c.line(n) };
}

function job(c: Checker, node: Node | null, p: string, names: Map<string, number | null>): JobConfig | undefined {
  const m = c.map(node, p, KEYS.job);
  if (!m) return undefined;
  const n = c.resolve(node);
  const required = (k: string): Entry | undefined => {
    const e = m.get(k);
    if (!e) c.add(`${p}.${k}`, n, 'is required');
    return e;
  };
  const ne = required('name');
  let name: string | undefined;
  if (ne) {
    name = c.str(ne, `${p}.name`, 'a name');
    if (name !== undefined && !JOB_NAME.test(name)) {
      c.add(`${p}.name`, null, 'must be letters, digits, ".", "_" or "-" (at most 64, starting with a letter or digit)', c.lineOf(ne));
      name = undefined;
    } else if (name !== undefined && names.has(name)) {
      c.add(`${p}.name`, null, `duplicate job name "${name}" (first at line ${names.get(name)})`, c.lineOf(ne));
      name = undefined;
    } else if (name !== undefined) names.set(name, c.line(n));
  }
  const ve = required('volume');
  const volume = ve ? c.absPath(ve, `${p}.volume`) : undefined;
  const se = m.get('snapshot');
  const snapshot = se ? c.oneOf(se, `${p}.snapshot`, ['always', 'onchange'] as const) ?? 'always' : 'always';

  let anchors: Anchors = { weekStart: KEEP_ALL.weekStart, dayStart: KEEP_ALL.dayStart, timezone: KEEP_ALL.timezone };
  let sourcePolicy: RetentionPolicy = KEEP_ALL;
  let targetPolicy: RetentionPolicy = KEEP_ALL;
  const re = m.get('retention');
  if (re) {
    const rm = c.map(re.value, `${p}.retention`, KEYS.retention);
    if (rm) {
      anchors = anchorsFrom(c, rm, `${p}.retention`, anchors);
      sourcePolicy = { ...KEEP_ALL, ...anchors };
      targetPolicy = { ...KEEP_ALL, ...anchors };
      const s = rm.get('source');
      if (s) sourcePolicy = policy(c, s, `${p}.retention.source`, anchors) ?? sourcePolicy;
      const t = rm.get('target');
      if (t) targetPolicy = policy(c, t, `${p}.retention.target`, anchors) ?? targetPolicy;
    }
  }

  const targets: TargetConfig[] = [];
  const te = required('targets');
  if (te) {
    const tn = te.value;
    if (!tn || !isSeq(tn) || tn.items.length === 0) {
      c.add(`${p}.targets`, null, 'must be a list of one or more targets (- path: /mnt/backup/data)', c.lineOf(te));
    } else {
      const seen = new Map<string, number | null>();
      tn.items.forEach((it, i) => {
        const t = target(c, it as Node, `${p}.targets[${i}]`, { volume, policy: targetPolicy, anchors });
        if (!t) return;
        if (seen.has(t.path)) c.add(`${p}.targets[${i}].path`, it as Node, `duplicate target ${t.path} (first at line ${seen.get(t.path)})`);
        else seen.set(t.path, t.line);
        targets.push(t);
      });
    }
  }

  const hooks: JobConfig['hooks'] = { pre: null, post: null };
  const he = m.get('hooks');
  if (he) {
    const hm = c.map(he.value, `${p}.hooks`, KEYS.hooks);
    if (hm) {
      const toe = hm.get('timeout');
      const timeout = toe ? c.duration(toe, `${p}.hooks.timeout`) ?? DEFAULT_HOOK_TIMEOUT_MS : DEFAULT_HOOK_TIMEOUT_MS;
      for (const k of ['pre', 'post'] as const) {
        const e = hm.get(k);
        if (!e) continue;
        const h = hook(c, e, `${p}.hooks.${k}`, timeout);
        if (h) hooks[k] = h;
      }
    }
  }
  if (name === undefined || volume === undefined) return undefined;
  return { name, volume, snapshot, targets, retention: { source: sourcePolicy }, hooks, line: c.line(n) };
}

/** Check YAML text. `config` is set only when there are no problems. */
export function checkConfig(text: string, file: string): { config?: FerryConfig; problems: ConfigProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: true });
  const c = new Checker(doc, lc);
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const msg = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      c.add('(yaml)', null, msg, e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line);
    }
    return { problems: c.problems };
  }
  const root = c.resolve(doc.contents as Node | null);
  if (!root || (isScalar(root) && (root.value === null || root.value === ''))) {
    c.add(ROOT, null, 'the file is empty; expected a mapping with a jobs list', 1);
    return { problems: c.problems };
  }
  const m = c.map(root, ROOT, KEYS.root, true);
  if (!m) return { problems: c.problems };
  const je = m.get('jobs');
  const jobs: JobConfig[] = [];
  if (!je) c.add('jobs', root, 'is required: a list of jobs (- name: nightly ...)');
  else if (!je.value || !isSeq(je.value) || je.value.items.length === 0) c.add('jobs', null, 'must be a list of one or more jobs', c.lineOf(je));
  else {
    const names = new Map<string, number | null>();
    je.value.items.forEach((it, i) => {
      const j = job(c, it as Node, `jobs[${i}]`, names);
      if (j) jobs.push(j);
    });
  }
  if (c.problems.length) {
    const byLine = (x: ConfigProblem) => x.line ?? Number.MAX_SAFE_INTEGER;
    return { problems: [...c.problems].sort((a, b) => byLine(a) - byLine(b)) };
  }
  return { config: { file, jobs }, problems: [] };
}
