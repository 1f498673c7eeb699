/**
 * What a kept staging tree (a "partial") remembers so that its receive can
 * go on later: the durable resume record and the fast progress journal.
 * docs/receive.md ("Resume") explains the protocol; this module owns the
 * files and their formats only.
 *
 * Layout of TARGET/.ferry/partial/<id>/:
 *   tree/          the staging tree
 *   resume.json    the record: written atomically (temp, fsync, rename, fsync
 *                  dir) and only after syncfs of the staging tree, so what it
 *                  claims (stream bytes [0, appliedBytes) applied) is durable
 *   progress       the journal: two fixed slots overwritten in turn with one
 *                  pwrite each, never fsynced. It is trusted only in the boot
 *                  that wrote it (a process kill keeps the page cache; a
 *                  machine crash does not) and only for the record seq it names
 *   warnings.log   one JSON line per warning, tagged with its command's offset
 *   scratch/       temp files of copy-before-change, outside the tree
 *
 * Never: interprets stream bytes, or touches the staging tree itself.
 * Invariant: a partial without a readable resume.json is not resumable and is
 * removed by the next receive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32cUpdate } from '../stream/crc32c';
import { writeFileAtomic } from '../volume/atomic';
import { CatalogEntry } from '../volume/catalog';
import { Sha256State } from './sha256-state';

/** Something a risky step changed that re-applying its command would not put back. */
export type Fixup =
  /** Copy-before-change renamed a private copy into `dir`: give the directory back these times. */
  | { kind: 'dir-times'; dir: string; atimeNs: string; mtimeNs: string }
  /** chown clears setuid/setgid: the file at `path` had this mode before. */
  | { kind: 'mode'; path: string; mode: number };

export interface ResumeRecord {
  format: 1;
  /** The partial's directory name; also the uuid the snapshot gets in the catalog. */
  id: string;
  name: string;
  receivedUuid: string;
  ctransid: string;
  /** Received uuid of the parent (incremental streams), else null. */
  parentUuid: string | null;
  parentCtransid: string | null;
  /** The parent's own catalog uuid, to find it again. */
  parentLocalUuid: string | null;
  method: CatalogEntry['method'];
  /** The policy the tree was built under: a resume under a stricter one is refused. */
  policy: { allowDevices: boolean; allowSetuid: boolean };
  /** The stream's version (from its header). */
  version: number;
  /** Stream bytes [0, appliedBytes) are applied; byte 0 is the stream's header. */
  appliedBytes: number;
  /** Commands of the input before appliedBytes (the decoder numbers on from here). */
  commands: number;
  /** SHA-256 state after bytes [0, appliedBytes). */
  hash: Sha256State;
  /** Hex SHA-256 of bytes [0, appliedBytes) (the same as digestOfState(hash)). */
  prefixSha256: string;
  /** Grows with every record written for this partial; the journal names the one it follows. */
  seq: number;
  /** Kernel boot id when written. */
  bootId: string;
  /** The writer stopped after this record (failure or recovery): nothing was applied after it. */
  final: boolean;
  /** The command at appliedBytes may already be (partly) applied: re-apply it tolerantly. */
  uncertain: boolean;
  /** To redo before re-applying the command at appliedBytes. */
  fixups: Fixup[];
  createdAt: string;
  updatedAt: string;
}

export interface JournalEntry {
  /** Journal write counter: the valid slot with the larger one wins. */
  j: number;
  /** The record seq this entry follows. */
  seq: number;
  bootId: string;
  pos: number;
  commands: number;
  hash: Sha256State;
  uncertain: boolean;
  fixups: Fixup[];
}

export const RECORD_FILE = 'resume.json';
export const JOURNAL_FILE = 'progress';
export const WARNINGS_FILE = 'warnings.log';
export const TREE_DIR = 'tree';
export const SCRATCH_DIR = 'scratch';

/** Each journal slot: large enough for two 4 KiB paths in base64 plus the rest. */
const SLOT_BYTES = 16384;

let bootIdCache: string | undefined;

/** The kernel's boot id (changes at every boot), or '' where unknown. */
export function currentBootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

export function writeRecord(partialDir: string, r: ResumeRecord): void {
  writeFileAtomic(path.join(partialDir, RECORD_FILE), JSON.stringify(r, null, 2) + '\n');
}

/** The record, or undefined when missing or unreadable (such a partial is not resumable). */
export function readRecord(partialDir: string): ResumeRecord | undefined {
  let r: ResumeRecord;
  try {
    r = JSON.parse(fs.readFileSync(path.join(partialDir, RECORD_FILE), 'utf8')) as ResumeRecord;
  } catch {
    return undefined;
  }
  if (
    r.format !== 1 ||
    typeof r.id !== 'string' ||
    typeof r.name !== 'string' ||
    !Number.isSafeInteger(r.appliedBytes) ||
    !Number.isSafeInteger(r.commands) ||
    !Number.isSafeInteger(r.seq) ||
    typeof r.hash?.h !== 'string' ||
    r.hash.bytes !== r.appliedBytes ||
    !Array.isArray(r.fixups)
  ) {
    return undefined;
  }
  return r;
}

/** The journal of a partial, open for the writer. */
export class Journal {
  private fd: number;
  private j: number;
  private buf = Buffer.allocUnsafe(1024);

  constructor(partialDir: string, startAfter = 0) {
    this.fd = fs.openSync(path.join(partialDir, JOURNAL_FILE), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.j = startAfter;
  }

  write(e: Omit<JournalEntry, 'j'>): void {
    const entry: JournalEntry = { j: ++this.j, ...e };
    const json = JSON.stringify(entry);
    const len = Buffer.byteLength(json);
    const head = `${len} `.padStart(8, ' ');
    const buf = this.buf.length >= len + 18 ? this.buf : (this.buf = Buffer.allocUnsafe(len + 18));
    const n = buf.write(json, 18, 'utf8');
    buf.write(`${crc32cUpdate(0, buf.subarray(18, 18 + n)).toString(16).padStart(8, '0')} ${head}\n`, 0, 'latin1');
    if (18 + n > SLOT_BYTES) return; // cannot happen with bounded paths; an old slot stays valid
    fs.writeSync(this.fd, buf, 0, 18 + n, (entry.j % 2) * SLOT_BYTES);
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** The newest intact journal entry, or undefined. */
export function readJournal(partialDir: string): JournalEntry | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path.join(partialDir, JOURNAL_FILE));
  } catch {
    return undefined;
  }
  let best: JournalEntry | undefined;
  for (let slot = 0; slot < 2; slot++) {
    const s = buf.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES);
    const nl = s.indexOf(0x0a);
    if (nl < 0) continue;
    const m = /^([0-9a-f]{8}) +(\d+) $/.exec(s.subarray(0, nl).toString('latin1'));
    if (!m) continue;
    const body = s.subarray(nl + 1, nl + 1 + Number(m[2]));
    if (body.length !== Number(m[2]) || crc32cUpdate(0, body) !== parseInt(m[1], 16)) continue;
    try {
      const e = JSON.parse(body.toString('utf8')) as JournalEntry;
      if (e.hash?.bytes !== e.pos) continue;
      if (!best || e.j > best.j) best = e;
    } catch {
      /* torn or foreign: ignore this slot */
    }
  }
  return best;
}

/** Warnings of commands before `before` (stream offset), in order. */
export function readWarnings(partialDir: string, before: number): Array<{ at: number; w: string }> {
  let text: string;
  try {
    text = fs.readFileSync(path.join(partialDir, WARNINGS_FILE), 'utf8');
  } catch {
    return [];
  }
  const out: Array<{ at: number; w: string }> = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const x = JSON.parse(line) as { at: number; w: string };
      if (typeof x.at === 'number' && typeof x.w === 'string' && x.at < before) out.push(x);
    } catch {
      /* a line cut by a kill: it belongs to a command that is applied again */
    }
  }
  return out;
}

export function rewriteWarnings(partialDir: string, ws: Array<{ at: number; w: string }>): void {
  writeFileAtomic(path.join(partialDir, WARNINGS_FILE), ws.map((x) => JSON.stringify(x) + '\n').join(''));
}

export function appendWarnings(partialDir: string, at: number, ws: string[]): void {
  fs.appendFileSync(path.join(partialDir, WARNINGS_FILE), ws.map((w) => JSON.stringify({ at, w }) + '\n').join(''), { mode: 0o600 });
}

/** How a kept partial stands when its writer is gone (the caller holds the target lock). */
export type PartialVerdict =
  /** Resume from the record as it is. */
  | { kind: 'ready'; record: ResumeRecord }
  /** The record must first be brought forward: to the journal's position, or just marked final. */
  | { kind: 'recover'; record: ResumeRecord; journal?: JournalEntry }
  /** Not resumable: remove it. */
  | { kind: 'stale'; why: string };

/**
 * Decide from the files alone. A record written while its writer went on
 * applying (not final) is only good in the boot that wrote it: after a
 * machine crash, changes made after it may or may not have reached the disk.
 */
export function judgePartial(partialDir: string, bootId = currentBootId()): PartialVerdict {
  const record = readRecord(partialDir);
  if (!record) return { kind: 'stale', why: 'no resume record' };
  if (path.basename(partialDir) !== record.id) return { kind: 'stale', why: 'record names another partial' };
  const sameBoot = record.bootId === bootId;
  if (!sameBoot) {
    return record.final ? { kind: 'ready', record } : { kind: 'stale', why: 'the machine restarted while this receive was applying' };
  }
  const j = readJournal(partialDir);
  if (j && j.bootId === bootId && j.seq === record.seq && j.pos >= record.appliedBytes) {
    return { kind: 'recover', record, journal: j };
  }
  return record.final ? { kind: 'ready', record } : { kind: 'recover', record };
}
