/**
 * `ferry send` for `btrfs` volumes: the kernel writes the stream
 * (`btrfs send [-p PARENT] --proto N SNAPSHOT`), ferry passes its bytes on.
 *
 * Owns: the `btrfs send` command line, streaming its stdout with
 * backpressure (the child is paused while the consumer is busy), and turning
 * a failure into REPLICATE_SEND_FAILED with the tool's stderr. Never: writes
 * to the volume; leaves the child running when the consumer stops early (it
 * holds the snapshot busy; it is killed).
 *
 * The stream's uuid and ctransid are the snapshot subvolume's, which is what
 * the volume recorded for it (src/volume/volume.ts), so catalogs agree.
 */
import { spawn } from 'node:child_process';
import { FerryError } from '../errors';
import { SnapshotInfo } from '../volume/volume';

export interface BtrfsSendOptions {
  snapshot: SnapshotInfo;
  parent?: SnapshotInfo;
  version: 1 | 2;
}

/** The `btrfs` arguments for a send (exported for tests and --dry-run style output). */
export function btrfsSendArgs(o: BtrfsSendOptions): string[] {
  // dataRoot is the snapshot subvolume, named as the snapshot (the stream carries that name).
  return ['-q', 'send', '--proto', String(o.version), ...(o.parent ? ['-p', o.parent.dataRoot] : []), o.snapshot.dataRoot];
}

/** The kernel's stream for a btrfs volume snapshot, chunk by chunk. */
export async function* sendBtrfs(o: BtrfsSendOptions): AsyncGenerator<Buffer> {
  if (o.parent && BigInt(o.parent.meta.transid) > BigInt(o.snapshot.meta.transid)) {
    throw new FerryError('USAGE', `parent ${o.parent.meta.name} is not older than ${o.snapshot.meta.name}`);
  }
  const args = btrfsSendArgs(o);
  const child = spawn('btrfs', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  let spawnError: Error | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      resolve(null);
    });
    child.once('close', (code) => resolve(code));
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await exited;
    if (code !== 0) {
      throw new FerryError('REPLICATE_SEND_FAILED', `btrfs send failed: ${(spawnError?.message ?? stderr).trim() || `exit ${code}`}`, {
        context: { snapshot: o.snapshot.meta.name, ...(o.parent ? { parent: o.parent.meta.name } : {}) },
        hint: spawnError ? 'install btrfs-progs' : 'btrfs send needs root; the parent must be a read-only snapshot of the same filesystem',
      });
    }
    finished = true;
  } finally {
    if (!finished && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}
