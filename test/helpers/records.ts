/**
 * Index records of a real directory tree, for planner tests: a stand-in for
 * the walker that assigns generations the way the real index does.
 *
 * Given the parent snapshot's records, an inode whose change key (size,
 * mtime, ctime, mode, uid, gid, nlink, birth, links, xattrs, target) is
 * unchanged keeps the parent's generation (and extents); otherwise it gets
 * the new transid, and each 128 KiB block keeps the parent's generation when
 * its hash is unchanged. All-zero blocks are holes (hash null). Files of
 * SUB_DIGEST_MIN_FILE bytes and more get sub-block digests under TEST_SUB_KEY,
 * as the real index does, so planner tests send changed 4 KiB slices.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { SUB_KEY_BYTES, SubDigester } from '../../src/diff/sub-digests';
import { DataSource, PlanSnapshot } from '../../src/diff/planner';
import { readXattrs, typeOf } from '../../src/diff/walker';
import { Extent, InodeRecord, Link, SUB_DIGEST_MIN_FILE } from '../../src/model/inode';
import { FIEMAP_EXTENT_UNWRITTEN, sys } from '../../src/sys/linux';

export const BLOCK = 128 * 1024;
const ZERO = Buffer.alloc(BLOCK);
export const TEST_SUB_KEY = Buffer.alloc(SUB_KEY_BYTES, 7);
const digester = new SubDigester(TEST_SUB_KEY);

function extentsOf(file: Buffer, size: bigint, gen: bigint, old?: InodeRecord): Extent[] {
  const out: Extent[] = [];
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(BLOCK);
    const oldByOffset = new Map((old?.extents ?? []).map((x) => [x.offset, x]));
    // Blocks no (written) extent touches are holes: no need to read them.
    const mapped = sys().fiemap(fd, 0n, size)?.filter((x) => (x.flags & FIEMAP_EXTENT_UNWRITTEN) === 0);
    const touched = (s: bigint, e: bigint) => !mapped || mapped.some((x) => x.logical < e && x.logical + x.length > s);
    for (let off = 0n; off < size; off += BigInt(BLOCK)) {
      const want = Number(size - off < BigInt(BLOCK) ? size - off : BigInt(BLOCK));
      const got = touched(off, off + BigInt(want)) ? fs.readSync(fd, buf, 0, want, Number(off)) : 0;
      const b = got ? buf.subarray(0, got) : ZERO.subarray(0, want);
      const hash = b.equals(ZERO.subarray(0, b.length)) ? null : createHash('sha256').update(b).digest().subarray(0, 16);
      const prev = oldByOffset.get(off);
      const same = prev && prev.length === b.length && (prev.hash === null ? hash === null : hash !== null && prev.hash.equals(hash));
      const x: Extent = { offset: off, length: b.length, generation: same ? prev.generation : gen, hash };
      if (hash && size >= BigInt(SUB_DIGEST_MIN_FILE)) x.sub = digester.digest(b);
      out.push(x);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function changeKey(r: InodeRecord): string {
  return JSON.stringify([
    r.type,
    r.size.toString(),
    r.mtimeNs.toString(),
    r.ctimeNs.toString(),
    r.mode,
    r.uid,
    r.gid,
    r.nlink,
    r.birth.toString(),
    r.rdev.toString(),
    r.links.map((l) => [l.parent.toString(), l.name.toString('hex')]),
    r.xattrs.map(([k, v]) => [k.toString('hex'), v.toString('hex')]),
    r.target?.toString('hex'),
  ]);
}

export interface CaptureOptions {
  uuid: Buffer;
  transid: bigint;
  parent?: PlanSnapshot;
  /** Names at the top level to leave out (e.g. '.ferry'). */
  ignore?: string[];
}

/** Walk `root` (lstat only) into a PlanSnapshot. */
export function capture(root: string, opts: CaptureOptions): PlanSnapshot {
  const recs = new Map<bigint, InodeRecord>();
  const links = new Map<bigint, Link[]>();
  const paths = new Map<bigint, Buffer>();
  const oldByIno = new Map((opts.parent?.records ?? []).map((r) => [r.ino, r]));
  const visit = (full: Buffer, parentIno: bigint | undefined, name: Buffer | undefined) => {
    const st = fs.lstatSync(full, { bigint: true });
    if (parentIno !== undefined) {
      const l = links.get(st.ino) ?? [];
      l.push({ parent: parentIno, name: name! });
      links.set(st.ino, l);
    }
    if (recs.has(st.ino)) return;
    paths.set(st.ino, full);
    const type = typeOf(Number(st.mode));
    const xattrs = readXattrs(full);
    const rec: InodeRecord = {
      ino: st.ino,
      birth: st.birthtimeNs,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' || type === 'symlink' ? st.size : 0n,
      rdev: type === 'chr' || type === 'blk' ? st.rdev : 0n,
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      nlink: Number(st.nlink),
      xattrs,
      links: [],
      generation: opts.transid,
    };
    if (type === 'symlink') rec.target = fs.readlinkSync(full, { encoding: 'buffer' });
    recs.set(st.ino, rec);
    if (type === 'dir') {
      const names = (fs.readdirSync(full, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
      for (const n of names) {
        if (parentIno === undefined && opts.ignore?.includes(n.toString())) continue;
        visit(Buffer.concat([full, Buffer.from('/'), n]), st.ino, n);
      }
    }
  };
  const rootSt = fs.lstatSync(root, { bigint: true });
  visit(Buffer.from(root), undefined, undefined);
  const records = [...recs.values()].sort((a, b) => (a.ino < b.ino ? -1 : a.ino > b.ino ? 1 : 0));
  for (const r of records) {
    r.links = (links.get(r.ino) ?? []).sort((a, b) => (a.parent < b.parent ? -1 : a.parent > b.parent ? 1 : Buffer.compare(a.name, b.name)));
    const old = oldByIno.get(r.ino);
    const unchanged = old && changeKey(old) === changeKey(r);
    if (unchanged) {
      r.generation = old.generation;
      if (old.extents) r.extents = old.extents;
    } else if (r.type === 'file') {
      r.extents = extentsOf(paths.get(r.ino)!, r.size, opts.transid, old && old.type === r.type && old.birth === r.birth ? old : undefined);
    }
  }
  return { uuid: opts.uuid, ctransid: opts.transid, rootIno: rootSt.ino, records, subKey: TEST_SUB_KEY.toString('hex') };
}

/** Reads the live tree (the "child snapshot" of a test). */
export function dirSource(root: string): DataSource {
  return {
    read(p: Buffer, offset: bigint, length: number): Buffer {
      const fd = fs.openSync(Buffer.concat([Buffer.from(root + '/'), p]), 'r');
      try {
        const buf = Buffer.alloc(length);
        const got = fs.readSync(fd, buf, 0, length, Number(offset));
        return buf.subarray(0, got);
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}
