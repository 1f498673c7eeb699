/**
 * A synthetic full-send stream, as prebuilt Command objects, for the codec
 * suite: the command sequence the kernel sends for a /usr-like tree (see
 * usr-shape.ts), so both bulk WRITE throughput and per-command overhead
 * count. Files are created under orphan names and renamed into place, then
 * written in 128 KiB (protocol 2) WRITEs, then chown, chmod, utimes; some
 * carry an xattr; directories and symlinks are mixed in.
 *
 * Deterministic for a seed. WRITE data are views into one preallocated pool,
 * so building the commands costs no per-write allocation and the encoder is
 * timed on encoding alone.
 */
import { Cmd, Command, CommandAttrs } from '../../src/model/command';
import { splitWrite } from '../../src/stream/encoder';
import { Prng } from './prng';
import { FILES_PER_DIR, FILES_PER_SYMLINK, drawName, drawUsrFileSize } from './usr-shape';

export interface SyntheticStream {
  version: number;
  commands: Command[];
  /** Bytes of file data carried by WRITE commands. */
  dataBytes: number;
  /** Estimated encoded size, header included (the encoder gives the exact one). */
  estimatedBytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** Commands by name, e.g. { write: 4100, rename: 52000 }. */
  counts: Record<string, number>;
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(Cmd).map(([k, v]) => [v, k.toLowerCase()]));

/** Encoded size of a command: 10-byte header plus TLVs (v2: DATA has a 2-byte header). */
function encodedSize(c: Command): number {
  let n = 10;
  for (const [k, v] of Object.entries(c.attrs)) {
    if (k === 'data') n += 2 + (v as Buffer).length;
    else if (Buffer.isBuffer(v)) n += 4 + v.length;
    else if (typeof v === 'bigint') n += 12;
    else if (typeof v === 'number') n += 8;
    else n += 16; // timespec
  }
  return n;
}

const XATTRS = ['user.mime_type', 'security.capability', 'user.xdg.origin.url', 'security.selinux'];

/**
 * Commands of a protocol-2 full send of about `targetBytes` encoded bytes,
 * ending with END.
 */
export function syntheticStream(targetBytes: number, seed: number): SyntheticStream {
  const version = 2;
  const rng = new Prng(seed).fork('synthetic-stream');
  const pool = rng.fork('pool').fill(Buffer.allocUnsafe(Math.max(1 << 20, Math.min(64 << 20, targetBytes)))) as Buffer;
  const ctransid = 7n;
  const commands: Command[] = [];
  const s: SyntheticStream = { version, commands, dataBytes: 0, estimatedBytes: 17, files: 0, dirs: 0, symlinks: 0, counts: {} };
  const push = (cmd: Command['cmd'], attrs: CommandAttrs) => {
    const c: Command = { cmd, attrs };
    commands.push(c);
    s.estimatedBytes += encodedSize(c);
    s.counts[NAMES[cmd]] = (s.counts[NAMES[cmd]] ?? 0) + 1;
  };
  const b = (str: string) => Buffer.from(str, 'utf8');
  const time = () => ({ sec: 1_700_000_000n + BigInt(rng.int(0, 30_000_000)), nsec: rng.int(0, 999_999_999) });
  const stamp = (path: Buffer) => {
    const t = time();
    push(Cmd.UTIMES, { path, atime: time(), mtime: t, ctime: t, otime: t });
  };
  const owner = (path: Buffer) => push(Cmd.CHOWN, { path, uid: 0n, gid: rng.chance(0.97) ? 0n : 50n });

  push(Cmd.SUBVOL, { path: b('bench'), uuid: rng.fill(Buffer.alloc(16)) as Buffer, ctransid });
  owner(b(''));
  push(Cmd.CHMOD, { path: b(''), mode: 0o755n });

  const dirs: { path: string; depth: number }[] = [{ path: '', depth: 0 }];
  const parents: number[] = [0];
  const targets: string[] = [];
  let ino = 257;
  let serial = 0;
  const under = (d: string, name: string) => (d ? `${d}/${name}` : name);
  const orphan = (i: number) => b(`o${i}-${ctransid}-0`);

  while (s.estimatedBytes < targetBytes - 64) {
    if (rng.chance(1 / FILES_PER_DIR) || dirs.length === 1) {
      const parent = dirs[rng.pick(parents)];
      const path = under(parent.path, drawName(rng, serial++, true));
      const i = ino++;
      push(Cmd.MKDIR, { path: orphan(i), ino: BigInt(i) });
      const p = b(path);
      push(Cmd.RENAME, { path: orphan(i), pathTo: p });
      owner(p);
      push(Cmd.CHMOD, { path: p, mode: 0o755n });
      stamp(p);
      dirs.push({ path, depth: parent.depth + 1 });
      if (parent.depth + 1 < 6) parents.push(dirs.length - 1);
      s.dirs++;
      continue;
    }
    const di = rng.chance(0.8) ? Math.max(1, dirs.length - 1 - rng.int(0, 31)) : rng.int(0, dirs.length - 1);
    const path = under(dirs[di].path, drawName(rng, serial++));
    const p = b(path);
    const i = ino++;
    if (targets.length && rng.chance(1 / FILES_PER_SYMLINK)) {
      push(Cmd.SYMLINK, { path: orphan(i), ino: BigInt(i), pathLink: b(`../${rng.pick(targets)}`) });
      push(Cmd.RENAME, { path: orphan(i), pathTo: p });
      owner(p);
      stamp(p);
      s.symlinks++;
      continue;
    }
    push(Cmd.MKFILE, { path: orphan(i), ino: BigInt(i) });
    push(Cmd.RENAME, { path: orphan(i), pathTo: p });
    if (rng.chance(0.05)) {
      push(Cmd.SET_XATTR, { path: p, xattrName: b(rng.pick(XATTRS)), xattrData: rng.fill(Buffer.alloc(rng.int(8, 64))) as Buffer });
    }
    const size = Math.min(drawUsrFileSize(rng), Math.max(0, targetBytes - s.estimatedBytes));
    if (size > 0) {
      const off = rng.int(0, Math.max(0, pool.length - Math.min(size, pool.length)));
      // Files larger than the pool wrap around it; each WRITE stays one view.
      for (let at = 0; at < size; ) {
        const start = (off + at) % pool.length;
        const n = Math.min(size - at, pool.length - start);
        for (const w of splitWrite(p, BigInt(at), pool.subarray(start, start + n), version)) push(w.cmd, w.attrs);
        at += n;
      }
      s.dataBytes += size;
    }
    owner(p);
    push(Cmd.CHMOD, { path: p, mode: rng.chance(0.1) ? 0o755n : 0o644n });
    stamp(p);
    targets.push(path);
    s.files++;
  }
  stamp(b(''));
  push(Cmd.END, {});
  return s;
}
