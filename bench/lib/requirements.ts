/**
 * Can a suite run here? Root, tools on PATH, loop devices. Each check
 * returns a human reason when it fails, which becomes "skipped: <reason>".
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Requirements } from './suite';

/** sbin is searched too: mkfs.* and losetup live there and PATH may lack it. */
const EXTRA_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable, or undefined. */
export function findTool(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_PATH];
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The first unmet requirement as a reason, or undefined when all are met. */
export function unmetRequirement(req: Requirements | undefined): string | undefined {
  if (!req) return undefined;
  if (req.root && !isRoot()) return 'needs root (loop mounts); run as root';
  if (req.loopDevices && !existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control is missing)';
  const missing = (req.tools ?? []).filter((t) => !findTool(t));
  if (missing.length) return `missing tool${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`;
  return undefined;
}
