/**
 * `ferry sync DIR DEST`: snapshot, choose the parent, send, commit (push), or
 * `ferry sync [user@]host:/volume TARGET` (pull). Options are parsed and
 * checked here; the work is src/replicate/sync.ts. Progress: a bar on a
 * terminal, plain lines otherwise, NDJSON with --json. Exit 3 when the sync
 * finished with warnings; SIGINT/SIGTERM stop it (130/143) and leave what
 * was applied for the next run to resume.
 */
import { Exit, FerryError } from '../../errors';
import { parseRate } from '../../replicate/rate-limit';
import { syncVolume, SyncOptions } from '../../replicate/sync';
import { ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL } from '../../transport/codec';
import { createProgress } from '../progress';

export interface SyncCliOptions {
  name?: string;
  snapshot?: string;
  proto?: string;
  compress?: string;
  bwlimit?: string;
  incrementalOnly?: boolean;
  json?: boolean;
  sshIdentity?: string;
  sshKnownHosts?: string;
  sshAcceptNew?: boolean;
  remoteCommand?: string;
  format?: string;
  fullEvery?: string;
}

/** `zstd` (level 3) or `zstd:LEVEL`. */
export function parseCompress(s: string): { level: number } {
  const m = /^zstd(?::(\d+))?$/.exec(s);
  const level = m ? (m[1] === undefined ? 3 : Number(m[1])) : NaN;
  if (!m || level < ZSTD_MIN_LEVEL || level > ZSTD_MAX_LEVEL) {
    throw new FerryError('USAGE', `invalid --compress "${s}"`, { hint: `use zstd or zstd:LEVEL with LEVEL ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}` });
  }
  return { level };
}

export function syncOptionsFrom(volume: string, dest: string, o: SyncCliOptions, env: NodeJS.ProcessEnv): SyncOptions {
  const proto = o.proto ?? '1';
  if (proto !== '1' && proto !== '2') throw new FerryError('USAGE', `--proto must be 1 or 2, got "${proto}"`);
  if (o.name !== undefined && o.snapshot !== undefined) throw new FerryError('USAGE', '--name names a new snapshot and --snapshot sends an existing one; give one of them');
  let format: 'tree' | 'stream' | undefined;
  if (o.format !== undefined) {
    if (o.format !== 'tree' && o.format !== 'stream') throw new FerryError('USAGE', `--format must be tree or stream, got "${o.format}"`);
    format = o.format;
  }
  let fullEvery: number | undefined;
  if (o.fullEvery !== undefined) {
    if (!/^\d+$/.test(o.fullEvery) || Number(o.fullEvery) < 1) throw new FerryError('USAGE', `--full-every must be a positive number, got "${o.fullEvery}"`);
    fullEvery = Number(o.fullEvery);
  }
  return {
    volume,
    dest,
    name: o.name,
    snapshotName: o.snapshot,
    proto: proto === '2' ? 2 : 1,
    compress: o.compress !== undefined ? parseCompress(o.compress) : undefined,
    bwlimit: o.bwlimit !== undefined ? parseRate(o.bwlimit) : undefined,
    incrementalOnly: !!o.incrementalOnly,
    remoteCommand: o.remoteCommand ?? env.FERRY_REMOTE_COMMAND,
    ssh: { identity: o.sshIdentity, knownHosts: o.sshKnownHosts, acceptNew: !!o.sshAcceptNew },
    format,
    fullEvery,
  };
}

export async function runSync(volume: string, dest: string, o: SyncCliOptions): Promise<number> {
  const opts = syncOptionsFrom(volume, dest, o, process.env);
  const mode = o.json ? 'json' : process.stderr.isTTY ? 'bar' : 'plain';
  const progress = createProgress(mode, process.stdout, process.stderr);
  const ac = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled ??= sig;
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const summary = await syncVolume({ ...opts, onEvent: (e) => progress.onEvent(e), signal: ac.signal });
    progress.summary(summary);
    return summary.warnings.length ? Exit.WARNINGS : Exit.OK;
  } catch (e) {
    progress.stop();
    if (signalled) {
      process.stderr.write(`ferry: sync interrupted by ${signalled}; run it again to resume\n`);
      return signalled === 'SIGINT' ? Exit.INTERRUPTED : Exit.TERMINATED;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
