/**
 * How fast the zstd stream compressor (src/transport/zstd-stream.ts) runs
 * on real file data, alone: `node dist/scripts/zstd-throughput.js [DIR]
 * [--mb N] [--level L] [--workers W] [--block BYTES] [--reps R]`.
 *
 * Reads regular files under DIR (default /usr/share) into memory until N
 * MiB (default 256) are collected, concatenated as a tar-like stream would
 * carry them, then pushes them through createZstdCompressor in 1 MiB writes
 * R times (default 3). Prints, per rep, the wall rate, the process CPU time
 * (main thread + workers) and the ratio. Worker start-up is included. Run
 * it on a quiet machine; it is a measurement, not a test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdCompressor, ZSTD_DEFAULT_LEVEL } from '../src/transport/zstd-stream';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function collect(dir: string, limit: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (total >= limit) return;
      const p = path.join(d, n);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && st.size < 64 << 20) {
        try {
          const b = fs.readFileSync(p);
          parts.push(b);
          total += b.length;
        } catch {
          /* unreadable: skip */
        }
      }
    }
  };
  walk(dir);
  return Buffer.concat(parts).subarray(0, limit);
}

async function main(): Promise<void> {
  const dir = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : '/usr/share';
  const mb = arg('--mb', 256);
  const level = arg('--level', ZSTD_DEFAULT_LEVEL);
  const workers = arg('--workers', 2);
  const block = arg('--block', 0) || undefined;
  const reps = arg('--reps', 3);
  const data = collect(dir, mb << 20);
  process.stdout.write(`${(data.length / 2 ** 20).toFixed(0)} MiB of files from ${dir}; level ${level}, ${workers} workers, block ${block ?? 'default'}\n`);
  for (let r = 0; r < reps; r++) {
    const chunks: Buffer[] = [];
    for (let o = 0; o < data.length; o += 1 << 20) chunks.push(data.subarray(o, o + (1 << 20)));
    let out = 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await pipeline(
      Readable.from(chunks),
      createZstdCompressor({ level, workers, blockSize: block }),
      new Writable({
        write(c: Buffer, _e, cb) {
          out += c.length;
          cb();
        },
      }),
    );
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    process.stdout.write(
      `rep ${r + 1}: ${(data.length / 1e6 / s).toFixed(0)} MB/s wall, ${cpuS.toFixed(2)} s CPU (${(data.length / 1e6 / cpuS).toFixed(0)} MB per CPU-second), ratio ${(out / data.length).toFixed(3)}\n`,
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
