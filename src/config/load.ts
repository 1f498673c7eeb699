/**
 * Finding and loading ferry.yaml.
 *
 * Owns: the search order (`-c FILE`, else /etc/ferry/ferry.yaml, else
 * ~/.config/ferry/ferry.yaml — $XDG_CONFIG_HOME/ferry/ferry.yaml when that is
 * set) and the two errors a config can cause: CONFIG_NOT_FOUND and
 * CONFIG_INVALID (exit 12), the latter listing every problem at once, one
 * per line. Never: validates (schema.ts does) or runs anything.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { ConfigProblem, FerryConfig, checkConfig, formatProblem } from './schema';

export const SYSTEM_CONFIG = '/etc/ferry/ferry.yaml';

/** Where ferry looks when no -c FILE is given, in order. */
export function defaultConfigPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || os.homedir();
  const xdg = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home, '.config');
  return [SYSTEM_CONFIG, path.join(xdg, 'ferry', 'ferry.yaml')];
}

/** CONFIG_INVALID with the problems kept apart for `--json`. */
export class ConfigInvalidError extends FerryError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    const n = problems.length;
    super('CONFIG_INVALID', `config ${file} is invalid (${n} problem${n === 1 ? '' : 's'}):\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
      hint: 'fix every line listed; `ferry run --dry-run` checks a config without changing anything',
    });
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file, problems: this.problems.map((p) => ({ ...p, text: formatProblem(p) })) };
  }
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new FerryError('CONFIG_NOT_FOUND', `cannot read the config file: ${code ?? (e as Error).message}`, {
      context: { file },
      hint: code === 'EACCES' ? 'run as a user that can read it (root for /etc/ferry)' : undefined,
      cause: e,
    });
  }
}

/** Parse and check config text; throws ConfigInvalidError listing every problem. */
export function parseConfig(text: string, file: string): FerryConfig {
  const r = checkConfig(text, file);
  if (!r.config) throw new ConfigInvalidError(file, r.problems);
  return r.config;
}

/** Load `file`, or the first default path that exists. */
export function loadConfig(file?: string, o: { candidates?: string[] } = {}): FerryConfig {
  if (file !== undefined) {
    const abs = path.resolve(file);
    const text = read(abs);
    if (text === undefined) {
      throw new FerryError('CONFIG_NOT_FOUND', 'config file not found', { context: { file: abs }, hint: 'check the path given to -c' });
    }
    return parseConfig(text, abs);
  }
  const candidates = o.candidates ?? defaultConfigPaths();
  for (const c of candidates) {
    const text = read(c);
    if (text !== undefined) return parseConfig(text, c);
  }
  throw new FerryError('CONFIG_NOT_FOUND', `no config file found (looked for ${candidates.join(', ')})`, {
    hint: 'write one (see examples/ferry.yaml and docs/jobs.md) or pass -c FILE',
  });
}
