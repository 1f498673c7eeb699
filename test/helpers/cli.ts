/** Run the built ferry binary (npm test builds first) and capture everything. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const FERRY = join(__dirname, '..', '..', 'bin', 'ferry');

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function ferry(args: string[], opts: { input?: Buffer; env?: Record<string, string>; cwd?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [FERRY, ...args], {
    input: opts.input,
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}
