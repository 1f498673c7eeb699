/**
 * Error rendering for the CLI: text for humans, one JSON object with --json.
 *
 * Owns: how a failure looks on stderr. Never exits; main.ts does.
 */
import { FerryError } from '../errors';

export function renderError(err: FerryError, json: boolean): string {
  if (json) return JSON.stringify(err.toJSON()) + '\n';
  let s = `ferry: ${err.message}\n`;
  if (err.hint) s += `hint: ${err.hint}\n`;
  return s;
}

export function renderInternal(err: unknown, json: boolean): string {
  const e = err instanceof Error ? err : new Error(String(err));
  if (json) return JSON.stringify({ error: 'INTERNAL', exitCode: 1, message: e.message, stack: e.stack ?? null }) + '\n';
  return `ferry: internal error: ${e.message}\n${e.stack ?? ''}\nThis is a bug in ferry; please report it with the lines above.\n`;
}
