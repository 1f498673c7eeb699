/**
 * `ferry receive TARGET --chain DIR [--to NAME]`: replay a directory of
 * stream files (src/replicate/stream-files.ts) into TARGET. Prints the name
 * of each snapshot it creates, one per line (NDJSON with --json); streams
 * whose snapshot TARGET already has are skipped with a note on stderr.
 */
import { Exit } from '../../errors';
import { SeedMethod } from '../../receive/seed';
import { replayChain } from '../../replicate/stream-files';

export interface ReceiveChainOptions {
  to?: string;
  json?: boolean;
  allowDevices?: boolean;
  allowSetuid?: boolean;
  expectBytes?: bigint;
  seed?: SeedMethod | 'auto' | 'snapshot';
}

export async function runReceiveChain(target: string, dir: string, o: ReceiveChainOptions): Promise<number> {
  let warnings = 0;
  await replayChain({
    target,
    from: dir,
    upTo: o.to,
    receive: { allowDevices: o.allowDevices, allowSetuid: o.allowSetuid, expectBytes: o.expectBytes, seed: o.seed },
    onSkip: (s) => {
      if (o.json) process.stdout.write(JSON.stringify({ event: 'skipped', name: s.name, uuid: s.uuid, file: s.file, reason: 'already in the target' }) + '\n');
      else process.stderr.write(`ferry: ${s.name}: already in the target, skipped\n`);
    },
    onApplied: (s, r) => {
      if (o.json) process.stdout.write(JSON.stringify({ event: 'received', ...r.entry, path: r.path, file: s.file, warnings: r.warnings }) + '\n');
      else process.stdout.write(`${r.name}\n`);
      for (const w of r.warnings) process.stderr.write(`ferry: warning: ${r.name}: ${w}\n`);
      warnings += r.warnings.length;
    },
  });
  return warnings ? Exit.WARNINGS : Exit.OK;
}
