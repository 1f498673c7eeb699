/** Helpers to build small streams and to run the decoder over them in tests. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cmd, Command } from '../../src/model/command';
import { StreamDecoder, StreamItem } from '../../src/stream/decoder';
import { StreamEncoder } from '../../src/stream/encoder';
import { FerryError } from '../../src/errors';

export const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'streams');

export interface Fixture {
  name: string;
  stream: Buffer;
  dump: Buffer;
}

export function fixtures(): Fixture[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.stream'))
    .sort()
    .map((f) => {
      const name = f.replace(/\.stream$/, '');
      return {
        name,
        stream: readFileSync(join(FIXTURE_DIR, f)),
        dump: readFileSync(join(FIXTURE_DIR, `${name}.dump`)),
      };
    });
}

export const p = (s: string) => Buffer.from(s, 'utf8');
export const UUID_A = Buffer.from('dcd653dc63388645a81ed6cbb0cc321a', 'hex');
export const UUID_B = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

/** A small, valid stream touching most command shapes. */
export function sampleCommands(version: number): Command[] {
  const t = { sec: 1700000000n, nsec: 123456789 };
  const cmds: Command[] = [
    { cmd: Cmd.SUBVOL, attrs: { path: p('snap'), uuid: UUID_A, ctransid: 7n } },
    { cmd: Cmd.CHOWN, attrs: { path: p(''), uid: 0n, gid: 0n } },
    { cmd: Cmd.MKFILE, attrs: { path: p('o257-7-0'), ino: 257n } },
    { cmd: Cmd.RENAME, attrs: { path: p('o257-7-0'), pathTo: p('a.txt') } },
    { cmd: Cmd.SET_XATTR, attrs: { path: p('a.txt'), xattrName: p('user.k'), xattrData: p('v\0x') } },
    { cmd: Cmd.WRITE, attrs: { path: p('a.txt'), fileOffset: 0n, data: p('hello\n') } },
    { cmd: Cmd.MKNOD, attrs: { path: p('o258-7-0'), ino: 258n, rdev: 0x103n, mode: 0o20644n } },
    { cmd: Cmd.SYMLINK, attrs: { path: p('o259-7-0'), ino: 259n, pathLink: p('../x y') } },
    { cmd: Cmd.LINK, attrs: { path: p('b.txt'), pathLink: p('a.txt') } },
    {
      cmd: Cmd.CLONE,
      attrs: {
        fileOffset: 0n,
        cloneLen: 4096n,
        path: p('b.txt'),
        cloneUuid: UUID_A,
        cloneCtransid: 7n,
        clonePath: p('a.txt'),
        cloneOffset: 0n,
      },
    },
    { cmd: Cmd.TRUNCATE, attrs: { path: p('a.txt'), size: 6n } },
    { cmd: Cmd.CHMOD, attrs: { path: p('a.txt'), mode: 0o644n } },
    { cmd: Cmd.UTIMES, attrs: { path: p('a.txt'), atime: t, mtime: t, ctime: t, ...(version >= 2 ? { otime: t } : {}) } },
  ];
  if (version >= 2) {
    cmds.push({ cmd: Cmd.FALLOCATE, attrs: { path: p('a.txt'), fallocateMode: 3, fileOffset: 0n, size: 4096n } });
    cmds.push({ cmd: Cmd.FILEATTR, attrs: { path: p('a.txt'), fileattr: 520n } });
  }
  cmds.push({ cmd: Cmd.END, attrs: {} });
  return cmds;
}

export function encodeAll(cmds: Command[], version: number): Buffer {
  const enc = new StreamEncoder(version);
  return Buffer.concat([enc.header(), ...cmds.map((c) => enc.encode(c))]);
}

/** Decode a buffer fed in the given chunk sizes (cycled); returns items or the thrown error. */
export function decodeChunks(buf: Buffer, sizes: number[] = [buf.length], opts = {}): StreamItem[] {
  const dec = new StreamDecoder(opts);
  const items: StreamItem[] = [];
  let i = 0;
  let k = 0;
  while (i < buf.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]);
    items.push(...dec.push(buf.subarray(i, i + n)));
    i += n;
  }
  dec.end();
  return items;
}

export function decodeError(buf: Buffer, sizes?: number[]): FerryError {
  try {
    decodeChunks(buf, sizes);
  } catch (e) {
    if (e instanceof FerryError) return e;
    throw e;
  }
  throw new Error('expected the decoder to fail, but it accepted the input');
}

/** Byte offsets where each command (and the END) starts, plus the total length. */
export function commandBoundaries(buf: Buffer): number[] {
  const items = decodeChunks(buf);
  const out = items.filter((x) => x.kind === 'command').map((x) => x.offset);
  out.push(buf.length);
  return out;
}

/** Deterministic PRNG (mulberry32) for reproducible random tests. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
