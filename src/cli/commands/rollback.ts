/**
 * `ferry rollback VOLUME@NAME [--keep-old] [--from TARGET] [--json]`: make
 * the volume's live tree equal to a snapshot (src/volume/rollback.ts).
 * Prints what was done; warnings go to stderr and make the exit code 3.
 */
import * as path from 'node:path';
import { Exit } from '../../errors';
import { parseSnapshotRef } from '../../replicate/send';
import { rollback } from '../../volume/rollback';

export interface RollbackCliOptions {
  keepOld?: boolean;
  from?: string;
  json?: boolean;
}

export async function runRollback(ref: string, o: RollbackCliOptions): Promise<number> {
  const r = parseSnapshotRef(ref);
  const res = await rollback(r.volume, r.name, { keepOld: o.keepOld, from: o.from });
  if (o.json) {
    process.stdout.write(JSON.stringify({ event: 'rollback', ...res }) + '\n');
  } else {
    if (res.recovered) {
      process.stdout.write(`${res.recovered.outcome === 'completed' ? 'completed' : 'undid'} an interrupted rollback to ${res.volume}@${res.recovered.snapshot}\n`);
    }
    process.stdout.write(`rolled back ${res.volume} to ${res.volume}@${res.snapshot}\n`);
    if (res.kept && 'snapshot' in res.kept) process.stdout.write(`the old tree is kept as snapshot ${res.volume}@${res.kept.snapshot}\n`);
    else if (res.kept) process.stdout.write(`the old tree is kept as ${path.join(path.dirname(res.volume), res.kept.dir)}\n`);
  }
  for (const w of res.warnings) process.stderr.write(`ferry: warning: ${w}\n`);
  return res.warnings.length ? Exit.WARNINGS : Exit.OK;
}
