/**
 * Is a received tree equal to its source? Compared per path: type, mode
 * bits, uid, gid, size, content (SHA-256), symlink target, rdev, xattrs,
 * mtime to the nanosecond, and hard-link groups within each tree.
 *
 * The same attributes as ../shared/tools/treecmp.py, with one difference
 * that matters for ferry: a link group is the set of paths *inside the tree*
 * that share an inode, and a group of one is no group. An incremental
 * receive seeds its tree as a hard-link farm of the parent snapshot, so its
 * files have nlink > 1 with their other names outside the tree; treecmp.py
 * reports each of those as a difference, this does not.
 *
 * Reads only; `.ferry` at the top of either tree is ignored.
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { sys } from '../../src/sys/linux';

interface Entry {
  /** "name=value" attributes joined by spaces (a string, to stay small for million-file trees). */
  desc: string;
  ino: bigint;
  dir: boolean;
}

function sha256(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function scan(root: string, ignoreTop: readonly string[]): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const s = sys();
  const visit = (rel: string) => {
    const full = rel ? join(root, rel) : root;
    for (const name of readdirSync(full).sort()) {
      if (!rel && ignoreTop.includes(name)) continue;
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p, { bigint: true });
      const parts = [`type=${(st.mode & 0o170000n).toString(8)}`, `mode=${(st.mode & 0o7777n).toString(8)}`, `uid=${st.uid}`, `gid=${st.gid}`];
      if (st.isFile()) parts.push(`size=${st.size}`, `sha=${sha256(p)}`);
      else if (st.isSymbolicLink()) parts.push(`target=${readlinkSync(p, { encoding: 'buffer' }).toString('hex')}`);
      else if (st.isCharacterDevice() || st.isBlockDevice()) parts.push(`rdev=${st.rdev}`);
      const xattrs = s
        .llistxattr(p)
        .map((n) => `${n.toString('latin1')}=${s.lgetxattr(p, n)?.toString('hex')}`)
        .sort();
      if (xattrs.length) parts.push(`xattrs=[${xattrs.join(',')}]`);
      parts.push(`mtime=${st.mtimeNs}`);
      out.set(r, { desc: parts.join(' '), ino: st.ino, dir: st.isDirectory() });
      if (st.isDirectory()) visit(r);
    }
  };
  visit('');
  return out;
}

function fields(desc: string): Map<string, string> {
  return new Map(desc.split(' ').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
}

function groups(m: Map<string, Entry>): Map<string, string> {
  const byIno = new Map<bigint, string[]>();
  for (const [p, e] of m) if (!e.dir) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), p]);
  const g = new Map<string, string>();
  for (const paths of byIno.values()) if (paths.length > 1) for (const p of paths) g.set(p, paths.sort().join('|'));
  return g;
}

export interface TreeDiff {
  /** Entries in each tree. */
  entries: [number, number];
  /** Number of differences. */
  count: number;
  /** The first differences, one line each. */
  first: string[];
}

export function compareTrees(a: string, b: string, opts: { ignoreTop?: string[]; max?: number } = {}): TreeDiff {
  const ignore = opts.ignoreTop ?? ['.ferry'];
  const max = opts.max ?? 10;
  const ea = scan(a, ignore);
  const eb = scan(b, ignore);
  const ga = groups(ea);
  const gb = groups(eb);
  const first: string[] = [];
  let count = 0;
  const diff = (s: string) => {
    if (count++ < max) first.push(s);
  };
  for (const p of [...new Set([...ea.keys(), ...eb.keys()])].sort()) {
    const x = ea.get(p);
    const y = eb.get(p);
    if (!x) diff(`only in received: ${p}`);
    else if (!y) diff(`only in source: ${p}`);
    else {
      if (x.desc !== y.desc) {
        const fx = fields(x.desc);
        const fy = fields(y.desc);
        const keys = [...new Set([...fx.keys(), ...fy.keys()])].filter((k) => fx.get(k) !== fy.get(k));
        diff(`${p}: ${keys.join(', ')} differ${keys.includes('mtime') ? ` (mtime ${fx.get('mtime')} vs ${fy.get('mtime')})` : ''}`);
      }
      if ((ga.get(p) ?? '') !== (gb.get(p) ?? '')) diff(`${p}: hard links differ (${ga.get(p) ?? 'none'} vs ${gb.get(p) ?? 'none'})`);
    }
  }
  return { entries: [ea.size, eb.size], count, first };
}
