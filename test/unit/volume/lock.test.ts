import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../../../src/errors';
import { Lock } from '../../../src/volume/lock';

function procStart(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function writeHolder(file: string, pid: number): void {
  fs.writeFileSync(file, JSON.stringify({ pid, startedAt: '2026-11-21T00:00:00.000Z', procStart: procStart(pid), purpose: 'test holder' }));
}

describe('Lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-lock-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses while a live process holds it, naming pid and start time, and is retryable', () => {
    const child = spawn('sleep', ['30']);
    try {
      const file = path.join(dir, 'lock');
      writeHolder(file, child.pid!);
      let err: unknown;
      try {
        Lock.acquire(file, 'second');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FerryError);
      expect((err as FerryError).code).toBe('VOLUME_LOCKED');
      expect((err as FerryError).exitCode).toBe(11);
      expect((err as FerryError).message).toContain(`pid ${child.pid}`);
      expect((err as FerryError).message).toContain('2026-11-21T00:00:00.000Z');
      expect((err as FerryError).retryable).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over a lock whose holder is a zombie (exited, never reaped)', async () => {
    // A shell that starts a short-lived child and then execs into sleep never
    // reaps the child: it stays a zombie for as long as the sleep runs.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & exec sleep 30']);
    try {
      let zombie: number | undefined;
      for (let i = 0; i < 100 && zombie === undefined; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const ps = spawnSync('ps', ['-o', 'pid=,stat=', '--ppid', String(parent.pid)], { encoding: 'utf8' }).stdout;
        const z = ps.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[1]?.startsWith('Z'));
        if (z) zombie = Number(z[0]);
      }
      expect(zombie).toBeDefined();
      const file = path.join(dir, 'lock');
      writeHolder(file, zombie!);
      const lock = Lock.acquire(file, 'after zombie');
      expect(JSON.parse(fs.readFileSync(file, 'utf8')).pid).toBe(process.pid);
      lock.release();
      expect(fs.existsSync(file)).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('takes over a lock whose holder is gone, and a torn lock file', () => {
    const gone = spawnSync('true').pid!;
    const file = path.join(dir, 'lock');
    fs.writeFileSync(file, JSON.stringify({ pid: gone, startedAt: 'x', procStart: '1', purpose: 'dead' }));
    Lock.acquire(file, 'new').release();
    fs.writeFileSync(file, '{"pid": 12');
    Lock.acquire(file, 'new').release();
  });
});
