/**
 * Stage one of path safety: string checks on stream paths, with no I/O.
 *
 * Owns: deciding whether a PATH, PATH_TO, PATH_LINK (of LINK) or CLONE_PATH
 * from a stream is acceptable at all. Invariant: a path that passes is
 * relative, has no empty, "." or ".." component, no NUL, and is within the
 * length and depth limits. The empty path (the subvolume root) passes only
 * where the caller allows it. Stage two (lstat of every parent, no-follow
 * opens) is in staging-tree.ts.
 */
import { FerryError } from '../errors';
import { Limits } from '../model/limits';

export interface PathContext {
  /** Which attribute this is, for the message: "path", "dest", "link source", "clone source". */
  what: string;
  command: number;
  offset: number;
  cmd: string;
}

const SLASH = 0x2f;
const DOT = 0x2e;

/** Printable form of a hostile path for messages: JSON-escaped, truncated. */
export function showPath(p: Buffer): string {
  const s = p.toString('utf8');
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}

/**
 * Check a stream path; returns its components. Throws RECV_PATH_INVALID,
 * RECV_PATH_ESCAPE or RECV_LIMIT.
 */
export function checkStreamPath(path: Buffer, ctx: PathContext, limits: Limits, allowRoot: boolean): Buffer[] {
  const fail = (code: 'RECV_PATH_INVALID' | 'RECV_PATH_ESCAPE' | 'RECV_LIMIT', why: string): never => {
    throw new FerryError(code, `receive refused: ${ctx.what} ${why}`, {
      context: { path: showPath(path), command: ctx.command, cmd: ctx.cmd, offset: ctx.offset },
      hint: 'nothing was committed; the stream is corrupt or hostile',
    });
  };
  if (path.length === 0) {
    if (allowRoot) return [];
    fail('RECV_PATH_INVALID', 'is empty');
  }
  if (path.length > limits.maxPathBytes) fail('RECV_LIMIT', `is longer than ${limits.maxPathBytes} bytes`);
  if (path.indexOf(0) >= 0) fail('RECV_PATH_INVALID', 'contains a NUL byte');
  if (path[0] === SLASH) fail('RECV_PATH_ESCAPE', 'is absolute');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue;
    const len = i - start;
    if (len === 0) fail('RECV_PATH_INVALID', 'has an empty component');
    if (len === 1 && path[start] === DOT) fail('RECV_PATH_INVALID', 'has a "." component');
    if (len === 2 && path[start] === DOT && path[start + 1] === DOT) fail('RECV_PATH_ESCAPE', 'leaves target');
    if (len > 255) fail('RECV_LIMIT', 'has a component longer than 255 bytes');
    parts.push(path.subarray(start, i));
    start = i + 1;
  }
  if (parts.length > limits.maxPathDepth) fail('RECV_LIMIT', `is deeper than ${limits.maxPathDepth} components`);
  return parts;
}
