/**
 * What `ferry run` last sent to each target, kept on the source volume, so
 * source retention can still protect a target's incremental parent on a
 * night that target cannot be reached (a NAS that is off, a USB disk that
 * is not plugged in).
 *
 * Owns: VOLUME/.ferry/job-targets/<sha256(dest)[:16]>.json, one small file
 * per destination, written atomically after a successful send. Never:
 * decides retention, and never trusted over a fresh listing of the target
 * (a listing is the truth; this is the fallback).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../volume/atomic';
import { FERRY_DIR } from '../volume/catalog';

export interface TargetState {
  format: 1;
  /** The destination as configured. */
  dest: string;
  job: string;
  /** The source snapshot the target received last (its newest common one). */
  snapshot: string;
  uuid: string;
  at: string;
}

const dirOf = (volume: string) => path.join(volume, FERRY_DIR, 'job-targets');
const fileOf = (volume: string, dest: string) => path.join(dirOf(volume), `${createHash('sha256').update(dest).digest('hex').slice(0, 16)}.json`);

export function recordSent(volume: string, s: Omit<TargetState, 'format'>): void {
  fs.mkdirSync(dirOf(volume), { recursive: true, mode: 0o700 });
  writeFileAtomic(fileOf(volume, s.dest), JSON.stringify({ format: 1, ...s }, null, 2) + '\n');
}

/** Every recorded target of `volume`; unreadable files are skipped (they protect nothing they cannot name). */
export function listTargetStates(volume: string): TargetState[] {
  let names: string[];
  try {
    names = fs.readdirSync(dirOf(volume));
  } catch {
    return [];
  }
  const out: TargetState[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dirOf(volume), n), 'utf8')) as TargetState;
      if (s && typeof s.dest === 'string' && typeof s.snapshot === 'string') out.push(s);
    } catch {
      /* torn temp file never renamed in */
    }
  }
  return out;
}
