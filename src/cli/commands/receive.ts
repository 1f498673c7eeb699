/**
 * `ferry receive TARGET [-f FILE]`: apply a stream from stdin or FILE and
 * print the name of each snapshot it creates, one per line. zstd input
 * (a `.btrfs-stream.zst` file, `zstd -c` output) is detected by its magic
 * number and decompressed on the way. `--chain DIR [--to NAME]` replays a
 * directory of stream files instead (src/replicate/stream-files.ts).
 */
import { FerryError, Exit } from '../../errors';
import { Receiver } from '../../receive/receiver';
import { decompressIfZstd } from '../../transport/zstd-stream';
import { openInput } from '../io';

export interface ReceiveCliOptions {
  file?: string;
  allowDevices?: boolean;
  allowSetuid?: boolean;
  expectBytes?: string;
  seed?: string;
  json?: boolean;
  chain?: string;
  to?: string;
}

export async function runReceive(target: string, o: ReceiveCliOptions): Promise<number> {
  let expectBytes: bigint | undefined;
  if (o.expectBytes !== undefined) {
    if (!/^\d+$/.test(o.expectBytes)) throw new FerryError('USAGE', `--expect-bytes must be a number of bytes, got "${o.expectBytes}"`);
    expectBytes = BigInt(o.expectBytes);
  }
  const seed = o.seed ?? 'auto';
  if (!['auto', 'snapshot', 'reflink', 'farm', 'copy'].includes(seed)) {
    throw new FerryError('USAGE', `--seed must be auto, snapshot, reflink, farm or copy, got "${seed}"`);
  }
  if (o.chain !== undefined || o.to !== undefined) {
    if (o.chain === undefined) throw new FerryError('USAGE', '--to needs --chain DIR');
    if (o.file !== undefined) throw new FerryError('USAGE', '--chain and -f cannot be used together');
    const { runReceiveChain } = await import('./receive-chain');
    return runReceiveChain(target, o.chain, { to: o.to, json: o.json, allowDevices: o.allowDevices, allowSetuid: o.allowSetuid, expectBytes, seed: seed as 'auto' });
  }
  const input = await openInput(o.file);
  const r = new Receiver({
    target,
    allowDevices: o.allowDevices,
    allowSetuid: o.allowSetuid,
    expectBytes,
    seed: seed as 'auto',
  });
  const done = await r.receive(decompressIfZstd(input));
  if (input !== process.stdin) input.destroy();
  let warnings = 0;
  for (const s of done) {
    if (o.json) {
      process.stdout.write(JSON.stringify({ event: 'received', ...s.entry, path: s.path, warnings: s.warnings }) + '\n');
    } else {
      process.stdout.write(`${s.name}\n`);
    }
    for (const w of s.warnings) process.stderr.write(`ferry: warning: ${s.name}: ${w}\n`);
    warnings += s.warnings.length;
  }
  return warnings ? Exit.WARNINGS : Exit.OK;
}
