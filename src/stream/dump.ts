/**
 * Text dump of a stream, byte for byte as `btrfs receive --dump` of
 * btrfs-progs 6.2 prints it (docs/send-stream.md 4.7).
 *
 * Owns: line formatting only. Lines are Buffers, not strings, because progs
 * prints some values (xattr names and data, clone sources) as raw bytes.
 * Quirks kept on purpose so the two outputs diff clean: strings stop at their
 * first NUL (progs handles them as C strings), times are local time to the
 * second, and fileattr prints a decimal number behind "0x".
 */
import { FerryError } from '../errors';
import { Cmd, Timespec } from '../model/command';
import { CMD_SPECS } from './constants';
import { CommandItem } from './decoder';

const PATH_MAX = 4096;

/** Map a byte to its escaped form as progs' print_path_escaped does. */
const ESCAPES: string[] = (() => {
  const t: string[] = [];
  for (let b = 0; b < 256; b++) {
    if (b >= 0x21 && b <= 0x7e) t.push(b === 0x5c ? '\\\\' : String.fromCharCode(b));
    else t.push('\\' + ((b >> 6) & 3).toString() + ((b >> 3) & 7).toString() + (b & 7).toString());
  }
  const named: Array<[number, string]> = [
    [0x07, '\\a'],
    [0x08, '\\b'],
    [0x1b, '\\e'],
    [0x0c, '\\f'],
    [0x0a, '\\n'],
    [0x0d, '\\r'],
    [0x09, '\\t'],
    [0x0b, '\\v'],
    [0x20, '\\ '],
  ];
  for (const [b, s] of named) t[b] = s;
  return t;
})();

/** Bytes up to the first NUL, as C sees a string. */
function cstr(b: Buffer): Buffer {
  const z = b.indexOf(0);
  return z < 0 ? b : b.subarray(0, z);
}

/** Escaped text, returned as a latin1 string (one char per output byte). */
export function escapeBytes(b: Buffer): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += ESCAPES[b[i]];
  return s;
}

/** Raw bytes as a latin1 string, stopping at the first NUL. */
function raw(b: Buffer): string {
  return cstr(b).toString('latin1');
}

/** progs' path_cat_out: drop one trailing '/' of each side, join with '/'. */
function pathCat(p1: Buffer, p2: Buffer): Buffer {
  let l1 = p1.length;
  let l2 = p2.length;
  if (l1 + l2 + 2 >= PATH_MAX) {
    throw new FerryError('STREAM_TOO_LARGE', `dump: path too long (${l1 + l2 + 1} bytes)`);
  }
  if (l1 && p1[l1 - 1] === 0x2f) l1--;
  if (l2 && p2[l2 - 1] === 0x2f) l2--;
  return Buffer.concat([p1.subarray(0, l1), Buffer.from('/'), p2.subarray(0, l2)]);
}

export function formatUuid(u: Buffer): string {
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** strftime("%FT%T%z") in the process's local time zone, seconds only. */
export function formatLocalTime(t: Timespec): string {
  const ms = Number(t.sec) * 1000;
  const d = new Date(ms);
  if (!Number.isFinite(ms) || Number.isNaN(d.getTime())) {
    throw new FerryError('STREAM_BAD_ATTRIBUTE', `dump: time ${t.sec}.${t.nsec} cannot be converted to local time`);
  }
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  const y = d.getFullYear();
  const year = y < 0 ? '-' + String(-y).padStart(4, '0') : String(y).padStart(4, '0');
  return (
    `${year}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}` +
    `T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}` +
    `${sign}${pad2(Math.floor(a / 60))}${pad2(a % 60)}`
  );
}

export class DumpFormatter {
  /** The "./<subvol>" prefix of the last SUBVOL/SNAPSHOT, as C sees it. */
  private subvolPath: Buffer = Buffer.from('.');

  /** One dump line (with its newline) for a command, or undefined for END. */
  format(item: CommandItem): Buffer | undefined {
    const a = item.attrs;
    const spec = CMD_SPECS[item.cmd]!;
    const path = a.path ? cstr(a.path) : Buffer.alloc(0);
    let details: string | undefined;
    let outPath: Buffer;
    switch (item.cmd) {
      case Cmd.SUBVOL:
      case Cmd.SNAPSHOT:
        this.subvolPath = pathCat(Buffer.from('.'), path);
        outPath = this.subvolPath;
        details = `uuid=${formatUuid(a.uuid!)} transid=${a.ctransid}`;
        if (item.cmd === Cmd.SNAPSHOT) {
          details += ` parent_uuid=${formatUuid(a.cloneUuid!)} parent_transid=${a.cloneCtransid}`;
        }
        return this.line(spec.name, outPath, details);
      case Cmd.END:
        return undefined;
    }
    outPath = pathCat(this.subvolPath, path);
    switch (item.cmd) {
      case Cmd.MKFILE:
      case Cmd.MKDIR:
      case Cmd.MKFIFO:
      case Cmd.MKSOCK:
      case Cmd.UNLINK:
      case Cmd.RMDIR:
        details = undefined;
        break;
      case Cmd.MKNOD:
        details = `mode=${a.mode!.toString(8)} dev=0x${a.rdev!.toString(16)}`;
        break;
      case Cmd.SYMLINK:
        details = `dest=${escapeBytes(cstr(a.pathLink!))}`;
        break;
      case Cmd.RENAME:
        details = `dest=${escapeBytes(pathCat(this.subvolPath, cstr(a.pathTo!)))}`;
        break;
      case Cmd.LINK:
        details = `dest=${escapeBytes(cstr(a.pathLink!))}`;
        break;
      case Cmd.WRITE:
        details = `offset=${a.fileOffset} len=${a.data!.length}`;
        break;
      case Cmd.CLONE:
        details =
          `offset=${a.fileOffset} len=${a.cloneLen} ` +
          `from=${pathCat(this.subvolPath, cstr(a.clonePath!)).toString('latin1')} clone_offset=${a.cloneOffset}`;
        break;
      case Cmd.SET_XATTR: {
        const data = a.xattrData!;
        details = `name=${raw(a.xattrName!)} data=${raw(data)} len=${data.length}`;
        break;
      }
      case Cmd.REMOVE_XATTR:
        details = `name=${raw(a.xattrName!)}`;
        break;
      case Cmd.TRUNCATE:
        details = `size=${a.size}`;
        break;
      case Cmd.CHMOD:
        details = `mode=${a.mode!.toString(8)}`;
        break;
      case Cmd.CHOWN:
        details = `gid=${a.gid} uid=${a.uid}`;
        break;
      case Cmd.UTIMES:
        details =
          `atime=${formatLocalTime(a.atime!)} mtime=${formatLocalTime(a.mtime!)} ` +
          `ctime=${formatLocalTime(a.ctime!)}`;
        break;
      case Cmd.UPDATE_EXTENT:
        details = `offset=${a.fileOffset} len=${a.size}`;
        break;
      case Cmd.FALLOCATE:
        details = `mode=${a.fallocateMode} offset=${a.fileOffset} len=${a.size}`;
        break;
      case Cmd.FILEATTR:
        details = `fileattr=0x${a.fileattr}`;
        break;
      case Cmd.ENCODED_WRITE:
        details =
          `offset=${a.fileOffset} len=${a.data!.length}, unencoded_file_len=${a.unencodedFileLen}, ` +
          `unencoded_len=${a.unencodedLen}, unencoded_offset=${a.unencodedOffset}, ` +
          `compression=${a.compression ?? 0}, encryption=${a.encryption ?? 0}`;
        break;
      case Cmd.ENABLE_VERITY:
        details =
          `algorithm=${a.verityAlgorithm} block_size=${a.verityBlockSize} ` +
          `salt_len=${a.veritySaltData?.length ?? 0} sig_len=${a.veritySigData?.length ?? 0}`;
        break;
    }
    return this.line(spec.name, outPath, details);
  }

  private line(name: string, outPath: Buffer, details: string | undefined): Buffer {
    const esc = escapeBytes(outPath);
    let s = name.padEnd(16, ' ') + esc;
    if (details !== undefined) s += ' '.repeat(Math.max(1, 32 - esc.length)) + details;
    return Buffer.from(s + '\n', 'latin1');
  }
}
