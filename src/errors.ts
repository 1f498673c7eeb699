/**
 * FerryError and the exit-code table.
 *
 * Owns: every error code ferry can raise and the exit code cron will see for
 * it. Invariant: an error code's AREA prefix is the folder that raises it, and
 * `exitCodeFor` is the only place that maps codes to exit numbers. Nothing
 * here exits; only src/cli/ does.
 */

/** Exit codes, fixed by STYLE.md. Scripts depend on these numbers. */
export const Exit = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  WARNINGS: 3,
  NOT_FOUND: 10,
  LOCKED: 11,
  CONFIG: 12,
  TRANSPORT: 13,
  STREAM: 14,
  NO_PARENT: 15,
  UNSAFE: 16,
  NO_SPACE: 17,
  /** A job hook failed or timed out, so the job was skipped (ferry run). */
  HOOK: 18,
  INTERRUPTED: 130,
  TERMINATED: 143,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/**
 * Every error code. The code names its area (the src/ folder raising it) and
 * what went wrong. `grep -r CODE src/` finds the raise site.
 */
export type ErrorCode =
  | 'INTERNAL'
  | 'USAGE'
  | 'STREAM_BAD_MAGIC'
  | 'STREAM_BAD_VERSION'
  | 'STREAM_BAD_CRC'
  | 'STREAM_TRUNCATED'
  | 'STREAM_EMPTY'
  | 'STREAM_TOO_LARGE'
  | 'STREAM_BAD_ATTRIBUTE'
  | 'STREAM_MISSING_ATTRIBUTE'
  | 'STREAM_UNKNOWN_COMMAND'
  | 'STREAM_BAD_ORDER'
  | 'STREAM_ZSTD_CORRUPT'
  | 'STREAM_ENCODE'
  | 'RECV_PATH_INVALID'
  | 'RECV_PATH_ESCAPE'
  | 'RECV_SYMLINK_IN_PATH'
  | 'RECV_DEVICE_REFUSED'
  | 'RECV_SETUID_REFUSED'
  | 'RECV_CLONE_SOURCE'
  | 'RECV_LIMIT'
  | 'RECV_NO_PARENT'
  | 'RECV_EXISTS'
  | 'RECV_NO_SPACE'
  | 'RECV_APPLY_FAILED'
  | 'RECV_UNSUPPORTED'
  | 'RECV_TARGET_INVALID'
  | 'RECV_RESUME_INVALID'
  | 'REPLICATE_RESUME_MISMATCH'
  | 'VOLUME_NOT_FOUND'
  | 'VOLUME_EXISTS'
  | 'VOLUME_METHOD'
  | 'VOLUME_LOCKED'
  | 'VOLUME_BTRFS_FAILED'
  | 'REPLICATE_SEND_FAILED'
  | 'SNAPSHOT_NOT_FOUND'
  | 'SNAPSHOT_EXISTS'
  | 'SNAPSHOT_NAME_INVALID'
  | 'DIFF_INDEX_CORRUPT'
  | 'DIFF_CHANGED_DURING_SEND'
  | 'DIFF_SOURCE_GONE'
  | 'IO_NOT_FOUND'
  | 'IO_FAILED'
  | 'SSH_CONFIG_INVALID'
  | 'SSH_CONNECT_FAILED'
  | 'SSH_HOST_KEY_UNKNOWN'
  | 'SSH_HOST_KEY_MISMATCH'
  | 'SSH_AUTH_FAILED'
  | 'SSH_DISCONNECTED'
  | 'SSH_DEST_INVALID'
  | 'TRANSPORT_PROTOCOL'
  | 'TRANSPORT_REMOTE_FAILED'
  | 'TRANSPORT_RESTRICTED'
  | 'REPLICATE_NO_PARENT'
  | 'REPLICATE_DIVERGED'
  | 'REPLICATE_DEST_INVALID'
  | 'REPLICATE_VERIFY_MISMATCH'
  | 'REPLICATE_NO_MANIFEST'
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'JOB_LOCKED'
  | 'JOB_HOOK_FAILED'
  | 'RETENTION_INVALID'
  | 'ROLLBACK_FAILED';

/** The single switch from error code to exit code. */
export function exitCodeFor(code: ErrorCode): ExitCode {
  switch (code) {
    case 'USAGE':
      return Exit.USAGE;
    case 'STREAM_BAD_MAGIC':
    case 'STREAM_BAD_VERSION':
    case 'STREAM_BAD_CRC':
    case 'STREAM_TRUNCATED':
    case 'STREAM_EMPTY':
    case 'STREAM_TOO_LARGE':
    case 'STREAM_BAD_ATTRIBUTE':
    case 'STREAM_MISSING_ATTRIBUTE':
    case 'STREAM_UNKNOWN_COMMAND':
    case 'STREAM_BAD_ORDER':
    case 'STREAM_ZSTD_CORRUPT':
    case 'RECV_APPLY_FAILED':
    case 'RECV_UNSUPPORTED':
      return Exit.STREAM;
    case 'RECV_PATH_INVALID':
    case 'RECV_PATH_ESCAPE':
    case 'RECV_SYMLINK_IN_PATH':
    case 'RECV_DEVICE_REFUSED':
    case 'RECV_SETUID_REFUSED':
    case 'RECV_CLONE_SOURCE':
    case 'RECV_LIMIT':
      return Exit.UNSAFE;
    case 'RECV_NO_PARENT':
    case 'REPLICATE_NO_PARENT':
    case 'REPLICATE_DIVERGED':
      return Exit.NO_PARENT;
    case 'SSH_CONNECT_FAILED':
    case 'SSH_HOST_KEY_UNKNOWN':
    case 'SSH_HOST_KEY_MISMATCH':
    case 'SSH_AUTH_FAILED':
    case 'SSH_DISCONNECTED':
    case 'TRANSPORT_PROTOCOL':
    case 'TRANSPORT_REMOTE_FAILED':
      return Exit.TRANSPORT;
    case 'TRANSPORT_RESTRICTED':
      return Exit.UNSAFE;
    case 'CONFIG_INVALID':
    case 'CONFIG_NOT_FOUND':
    case 'SSH_CONFIG_INVALID':
    case 'RETENTION_INVALID':
      return Exit.CONFIG;
    case 'JOB_LOCKED':
      return Exit.LOCKED;
    case 'REPLICATE_VERIFY_MISMATCH':
    case 'REPLICATE_RESUME_MISMATCH':
    case 'RECV_RESUME_INVALID':
      return Exit.STREAM;
    case 'REPLICATE_DEST_INVALID':
    case 'SSH_DEST_INVALID':
      return Exit.USAGE;
    case 'JOB_HOOK_FAILED':
      return Exit.HOOK;
    case 'ROLLBACK_FAILED':
    case 'VOLUME_BTRFS_FAILED':
    case 'REPLICATE_SEND_FAILED':
      return Exit.INTERNAL;
    case 'RECV_NO_SPACE':
      return Exit.NO_SPACE;
    case 'VOLUME_LOCKED':
      return Exit.LOCKED;
    case 'IO_NOT_FOUND':
    case 'VOLUME_NOT_FOUND':
    case 'SNAPSHOT_NOT_FOUND':
    case 'REPLICATE_NO_MANIFEST':
    case 'DIFF_SOURCE_GONE':
      return Exit.NOT_FOUND;
    case 'RECV_EXISTS':
    case 'RECV_TARGET_INVALID':
    case 'VOLUME_EXISTS':
    case 'VOLUME_METHOD':
    case 'SNAPSHOT_EXISTS':
    case 'SNAPSHOT_NAME_INVALID':
      return Exit.USAGE;
    case 'DIFF_CHANGED_DURING_SEND':
      return Exit.WARNINGS;
    case 'DIFF_INDEX_CORRUPT':
    case 'STREAM_ENCODE':
    case 'IO_FAILED':
    case 'INTERNAL':
      return Exit.INTERNAL;
  }
}

export interface FerryErrorOptions {
  /** Key/value facts that locate the failure, printed in parentheses. */
  context?: Record<string, string | number | bigint>;
  /** One line telling the user what to do next or what state things are in. */
  hint?: string;
  /** Whether trying again later may succeed (transport hiccups, locks). */
  retryable?: boolean;
  cause?: unknown;
}

/**
 * Base error. Its message reads `<what failed>: <why> (<context>)`; the hint
 * is kept apart so renderers can put it on its own line or in JSON.
 */
export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly retryable: boolean;
  readonly hint?: string;
  readonly context: Record<string, string | number | bigint>;
  readonly summary: string;

  constructor(code: ErrorCode, summary: string, opts: FerryErrorOptions = {}) {
    const context = opts.context ?? {};
    const ctx = Object.entries(context)
      .map(([k, v]) => `${k} ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
      .join(', ');
    super(ctx ? `${summary} (${ctx})` : summary, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FerryError';
    this.code = code;
    this.exitCode = exitCodeFor(code);
    this.retryable = opts.retryable ?? false;
    this.hint = opts.hint;
    this.context = context;
    this.summary = summary;
  }

  /** A plain object for `--json` output. bigint context values become strings. */
  toJSON(): Record<string, unknown> {
    const context: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(this.context)) context[k] = typeof v === 'bigint' ? v.toString() : v;
    return {
      error: this.code,
      exitCode: this.exitCode,
      message: this.message,
      hint: this.hint ?? null,
      retryable: this.retryable,
      context,
    };
  }
}

export function isFerryError(e: unknown): e is FerryError {
  return e instanceof FerryError;
}
