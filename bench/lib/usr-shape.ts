/**
 * The shape of a real tree, for synthetic data that behaves like one.
 *
 * Measured on /usr/share plus /usr/include of a Debian machine: 56k regular
 * files, 4.1k directories, 5k symlinks, 0.67 GB; mean file 12 KiB; 77% of
 * files under 4 KiB and 99% under 128 KiB, yet about half of the bytes are in
 * the 1% of files above 128 KiB. The buckets below reproduce that closely
 * enough for throughput and per-command overhead to both matter.
 */
import { Prng } from './prng';

/** [probability, min bytes, max bytes]; log-uniform inside a bucket. */
const FILE_SIZE_BUCKETS: ReadonlyArray<readonly [number, number, number]> = [
  [0.06, 0, 64],
  [0.35, 64, 1024],
  [0.3696, 1024, 4096],
  [0.15, 4096, 16 * 1024],
  [0.06, 16 * 1024, 128 * 1024],
  [0.01, 128 * 1024, 1024 * 1024],
  [0.0004, 1024 * 1024, 32 * 1024 * 1024],
];
const WEIGHTS = FILE_SIZE_BUCKETS.map((b) => b[0]);

/** A file size drawn from the /usr-like distribution. */
export function drawUsrFileSize(rng: Prng): number {
  const [, lo, hi] = FILE_SIZE_BUCKETS[rng.weighted(WEIGHTS)];
  if (lo === 0) return rng.int(0, hi);
  return rng.logInt(lo, hi);
}

/** Regular files per directory and per symlink in the measured tree. */
export const FILES_PER_DIR = 14;
export const FILES_PER_SYMLINK = 11;

const SYLLABLES = [
  'lib', 'gtk', 'doc', 'man', 'x11', 'icon', 'font', 'perl', 'py', 'local', 'zone', 'info', 'mime', 'conf',
  'util', 'core', 'net', 'sys', 'linux', 'asm', 'gnu', 'bits', 'std', 'ssl', 'crypto', 'dbus', 'glib',
  'locale', 'themes', 'sound', 'help', 'html', 'terminfo', 'vim', 'bash', 'comp', 'data', 'kern', 'io',
];
const EXTENSIONS = ['', '', '', '.h', '.gz', '.png', '.svg', '.py', '.pm', '.txt', '.html', '.mo', '.xml', '.json', '.conf'];

/** A plausible, unique-by-`serial` file or directory name. */
export function drawName(rng: Prng, serial: number, dir = false): string {
  const n = rng.int(1, 3);
  let s = '';
  for (let i = 0; i < n; i++) s += (i ? rng.pick(['', '-', '_', '.']) : '') + rng.pick(SYLLABLES);
  s += serial.toString(36);
  return dir ? s : s + rng.pick(EXTENSIONS);
}
