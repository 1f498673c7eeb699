/**
 * Advisory locks between ferry processes: a lock file holding the owner's pid
 * and start time, created with O_EXCL.
 *
 * Owns: taking, reporting and releasing a lock, and taking over a stale one
 * (its pid is gone, or is a different process than the one that took it).
 * Never blocks: a held lock fails at once with VOLUME_LOCKED (exit 11).
 */
import * as fs from 'node:fs';
import { FerryError } from '../errors';

export interface LockInfo {
  pid: number;
  startedAt: string;
  /** /proc/<pid>/stat start time, to tell a reused pid from the owner. */
  procStart: string | null;
  purpose: string;
}

function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) comes after the parenthesised command name.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** Process state letter from /proc/<pid>/stat ('Z' for a zombie), or null. */
function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

function alive(info: LockInfo): boolean {
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // A zombie has exited; it only waits for its parent to reap it. Where the
  // parent never does (a container without an init), it would hold the lock
  // for ever.
  const state = procState(info.pid);
  if (state === 'Z' || state === 'X') return false;
  const now = procStart(info.pid);
  return info.procStart === null || now === null || now === info.procStart;
}

export class Lock {
  private constructor(
    readonly file: string,
    private readonly token: string,
  ) {}

  /** Take the lock or throw VOLUME_LOCKED naming the holder. */
  static acquire(file: string, purpose: string): Lock {
    const info: LockInfo = {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      procStart: procStart(process.pid),
      purpose,
    };
    const token = JSON.stringify(info);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
        try {
          fs.writeSync(fd, token);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        return new Lock(file, token);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let held: LockInfo | undefined;
      try {
        held = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
      } catch {
        held = undefined; // torn or empty: the writer died while creating it
      }
      if (held && alive(held)) {
        throw new FerryError('VOLUME_LOCKED', `locked by another ferry run (pid ${held.pid}, started ${held.startedAt}, ${held.purpose})`, {
          context: { lock: file },
          hint: 'wait for it to finish; the lock is taken over automatically if that process is gone',
          retryable: true,
        });
      }
      // Stale: take it over by renaming a fresh lock over it is not atomic
      // against another taker, so remove and retry the O_EXCL create.
      fs.rmSync(file, { force: true });
    }
    throw new FerryError('VOLUME_LOCKED', 'could not take the lock', { context: { lock: file }, retryable: true });
  }

  release(): void {
    try {
      if (fs.readFileSync(this.file, 'utf8') === this.token) fs.rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}
