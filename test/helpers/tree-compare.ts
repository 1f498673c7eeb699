/**
 * Two independent tree comparisons for tests:
 *  - ours: type, mode, uid/gid, size, content hash, symlink target, rdev,
 *    xattrs, hard-link groups within each tree, and mtime to the nanosecond;
 *  - treecmp: ../shared/tools/treecmp.py, written outside the project.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '../../src/sys/linux';

export const TREECMP = path.resolve(__dirname, '..', '..', '..', 'shared', 'tools', 'treecmp.py');

interface Entry {
  desc: string;
  ino: bigint;
  isDir: boolean;
}

export interface CompareOptions {
  ignore?: string[];
  /** Ignore xattrs whose names match (e.g. XFS's trusted.SGI_ACL_* mirror of POSIX ACLs). */
  ignoreXattr?: RegExp;
  /** Skip the mtime of directories (the root's mtime, for example). */
  noDirMtime?: boolean;
  /** Skip the mtime of the root directory only. */
  noRootMtime?: boolean;
}

function scan(root: string, opts: CompareOptions): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const s = sys();
  const visit = (rel: string) => {
    const full = rel ? path.join(root, rel) : root;
    const st = fs.lstatSync(full, { bigint: true });
    const type = st.mode & 0o170000n;
    const parts = [`type=${type.toString(8)}`, `mode=${(st.mode & 0o7777n).toString(8)}`, `uid=${st.uid}`, `gid=${st.gid}`];
    if (st.isFile()) {
      parts.push(`size=${st.size}`, `sha=${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
    } else if (st.isSymbolicLink()) {
      parts.push(`target=${fs.readlinkSync(full, { encoding: 'buffer' }).toString('hex')}`);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      parts.push(`rdev=${st.rdev}`);
    }
    const xattrs = s
      .llistxattr(full)
      .filter((n) => !opts.ignoreXattr?.test(n.toString('latin1')))
      .map((n) => `${n.toString('latin1')}=${s.lgetxattr(full, n)?.toString('hex')}`)
      .sort();
    parts.push(`xattrs=[${xattrs.join(',')}]`);
    const skipMtime = (st.isDirectory() && opts.noDirMtime) || (rel === '' && opts.noRootMtime);
    if (!skipMtime) parts.push(`mtime=${st.mtimeNs}`);
    out.set(rel || '.', { desc: parts.join(' '), ino: st.ino, isDir: st.isDirectory() });
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(full).sort()) {
        if (rel === '' && opts.ignore?.includes(n)) continue;
        visit(rel ? path.join(rel, n) : n);
      }
    }
  };
  visit('');
  return out;
}

/** Link groups within one tree: path → sorted list of paths sharing its inode (only groups > 1). */
function groups(m: Map<string, Entry>): Map<string, string> {
  const byIno = new Map<bigint, string[]>();
  for (const [p, e] of m) if (!e.isDir) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), p]);
  const g = new Map<string, string>();
  for (const paths of byIno.values()) if (paths.length > 1) for (const p of paths) g.set(p, paths.sort().join('|'));
  return g;
}

/** Differences between two trees, one line each; empty when equal. */
export function compareTrees(a: string, b: string, opts: CompareOptions = {}): string[] {
  const ea = scan(a, opts);
  const eb = scan(b, opts);
  const ga = groups(ea);
  const gb = groups(eb);
  const diffs: string[] = [];
  for (const p of [...new Set([...ea.keys(), ...eb.keys()])].sort()) {
    const x = ea.get(p);
    const y = eb.get(p);
    if (!x) diffs.push(`only in B: ${p}`);
    else if (!y) diffs.push(`only in A: ${p}`);
    else {
      if (x.desc !== y.desc) diffs.push(`differs: ${p}\n  A: ${x.desc}\n  B: ${y.desc}`);
      if (ga.get(p) !== gb.get(p)) diffs.push(`link group differs: ${p}: ${ga.get(p)} vs ${gb.get(p)}`);
    }
  }
  return diffs;
}

export interface TreecmpResult {
  code: number | null;
  differences: string[];
  summary: string;
}

/**
 * Run the independent treecmp.py. `farmSharedOk` drops exactly the lines a
 * hard-link farm causes by design: a file that is a one-path link group on
 * the received side only because its inode is shared with the parent snapshot.
 */
export function treecmp(a: string, b: string, opts: TreecmpOptions = {}): TreecmpResult {
  const r = spawnSync('python3', [TREECMP, a, b, '--ignore', '.ferry', ...(opts.flags ?? [])], { encoding: 'utf8' });
  if (r.error) throw r.error;
  const raw = r.stdout.replace(/\n$/, '').split('\n');
  const summary = raw.pop() ?? '';
  // A path with a newline spills over lines: glue continuation lines back on.
  const lines: string[] = [];
  for (const l of raw) {
    if (/^(only in [AB]: |hardlinks differ: |\w+ differs: )/.test(l) || lines.length === 0) lines.push(l);
    else lines[lines.length - 1] += '\n' + l;
  }
  let differences = lines;
  if (opts.farmSharedOk) {
    differences = differences.filter((l) => {
      const m = /^hardlinks differ: ([\s\S]*): None vs \((.*),\)$/.exec(l);
      return !(m && pyRepr(m[1]) === m[2]);
    });
  }
  if (opts.xfsAclOk) {
    // XFS lists its on-disk ACL copy as trusted.SGI_ACL_FILE/DEFAULT next to
    // the POSIX ACL xattr; accept a difference only if those keys are all of it.
    differences = differences.filter((l) => {
      const m = /^xattr differs: ([\s\S]*?): \{/.exec(l);
      return !(m && onlySgiAclExtra(path.join(a, m[1]), path.join(b, m[1])));
    });
  }
  return { code: r.status, differences, summary };
}

export interface TreecmpOptions {
  flags?: string[];
  /** Drop one-path link groups caused by a hard-link farm (see above). */
  farmSharedOk?: boolean;
  /** Drop xattr differences that are only XFS's trusted.SGI_ACL_* mirror keys. */
  xfsAclOk?: boolean;
}

const SGI = /^trusted\.SGI_ACL_(FILE|DEFAULT)$/;

function onlySgiAclExtra(a: string, b: string): boolean {
  const s = sys();
  const read = (p: string) => new Map(s.llistxattr(p).map((n) => [n.toString('latin1'), s.lgetxattr(p, n)?.toString('hex')]));
  const xa = read(a);
  const xb = read(b);
  for (const m of [xa, xb]) for (const k of [...m.keys()]) if (SGI.test(k)) m.delete(k);
  return xa.size === xb.size && [...xa].every(([k, v]) => xb.get(k) === v);
}

/** Python's repr() of a str, as treecmp prints tuple members. */
function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return q + out + q;
}
