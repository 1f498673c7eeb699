/**
 * One remote command over ssh, as a Channel (see channel.ts).
 *
 * Owns: adapting an ssh2 exec channel to plain Node streams that behave under
 * pipeline(): `input` (remote stdout) with backpressure down to the ssh
 * window, `output` (remote stdin) whose writes complete only when ssh2 has
 * window for them, `stderr`, and `done`.
 *
 * Why wrappers: an ssh2 channel ends its readable side cleanly when the
 * connection drops (a truncated stream would look complete), never calls
 * back a write once the channel is closed (a writer would hang), and emits
 * its own 'close' with exit arguments, which confuses stream.finished().
 *
 * Invariants: when the connection is lost before the remote sent EOF, `input`
 * errors with SSH_DISCONNECTED (retryable) instead of ending; an unfinished
 * `output` errors with the same error; `done` resolves (never rejects) with
 * the exit status, or, when the status was lost with the connection, with
 * `{ code: null, signal: null, error }`. A write the remote command can no
 * longer read (it exited) fails with TRANSPORT_REMOTE_FAILED rather than
 * hanging. Never: knows what the bytes mean.
 */
import { Readable, Writable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { FerryError } from '../errors';
import type { Channel, ChannelExit } from './channel';

/** `done` of an ssh channel: `error` is set when the exit status was lost with the connection. */
export interface SshChannelExit extends ChannelExit {
  error?: FerryError;
}

export interface SshChannel extends Channel {
  readonly done: Promise<SshChannelExit>;
}

/**
 * How a channel learns that its connection is gone. The callback gets
 * SSH_DISCONNECTED, or undefined when the endpoint was closed on purpose.
 * It runs before ssh2 tears the channels down. Returns an unsubscribe.
 */
export type ConnectionWatch = (onLost: (err: FerryError | undefined) => void) => () => void;

const HIGH_WATER = 256 * 1024;

/**
 * Destroy a stream with an error without crashing the process when nobody
 * listens: the error stays visible through `errored`, finished() and
 * pipeline(), and through the channel's `done`.
 */
function fail(s: Readable | Writable, err: Error): void {
  if (s.destroyed) return;
  if (s.listenerCount('error') === 0) s.on('error', () => {});
  s.destroy(err);
}

export function wrapExecChannel(ch: ClientChannel, watch: ConnectionWatch, where: Record<string, string | number>): SshChannel {
  const exit: { code: number | null; signal: string | null; known: boolean } = { code: null, signal: null, known: false };
  let settled = false;
  let resolveDone!: (e: SshChannelExit) => void;
  const done = new Promise<SshChannelExit>((r) => (resolveDone = r));

  /** Set once writes can no longer succeed; later writes fail with it. */
  let writeFailure: Error | undefined;
  /** The callback of the write (or final) ssh2 still holds. */
  let pending: ((err?: Error | null) => void) | undefined;

  const input = new Readable({
    highWaterMark: HIGH_WATER,
    read() {
      ch.resume();
    },
  });
  ch.on('data', (b: Buffer) => {
    if (input.destroyed) return; // the reader gave up; keep draining so exit status still arrives
    if (!input.push(b)) ch.pause();
  });
  ch.on('end', () => {
    if (!input.destroyed) input.push(null);
  });

  const failWrites = (err: Error) => {
    writeFailure ??= err;
    const cb = pending;
    pending = undefined;
    if (cb) {
      if (output.listenerCount('error') === 0) output.on('error', () => {}); // see fail()
      cb(err);
    }
  };

  const output = new Writable({
    highWaterMark: HIGH_WATER,
    write(chunk: Buffer, _enc, cb) {
      if (writeFailure) return cb(writeFailure);
      pending = cb;
      ch.write(chunk, (err?: Error | null) => {
        if (pending !== cb) return;
        pending = undefined;
        cb(err ?? undefined);
      });
    },
    final(cb) {
      // Ending after the command exited loses nothing (every write before
      // this one completed); ending after the connection was lost fails.
      if (writeFailure) return cb(exit.known ? undefined : writeFailure);
      pending = cb;
      ch.end(() => {
        if (pending !== cb) return;
        pending = undefined;
        cb();
      });
    },
    destroy(err, cb) {
      pending = undefined;
      cb(err);
    },
  });

  const settle = (error?: FerryError) => {
    if (settled) return;
    settled = true;
    unsubscribe();
    resolveDone(exit.known || !error ? { code: exit.code, signal: exit.signal } : { code: null, signal: null, error });
  };

  ch.on('exit', (code: number | null, signal?: string) => {
    if (exit.known) return;
    exit.known = true;
    exit.code = typeof code === 'number' ? code : null;
    exit.signal = signal ?? null;
    // The command is gone: whatever it has not read it never will.
    if (!output.writableFinished) {
      const status = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
      failWrites(
        new FerryError('TRANSPORT_REMOTE_FAILED', `remote command exited before reading all its input (${status})`, {
          context: where,
          hint: "see the remote command's error output",
        }),
      );
    }
    settle();
  });
  ch.on('close', () => settle());

  const unsubscribe = watch((err) => {
    if (!err) {
      // The endpoint was closed on purpose: tear down quietly.
      input.destroy();
      output.destroy();
      settle();
      return;
    }
    // ssh2 has not torn the channel down yet, so its state tells whether the
    // remote's EOF arrived (everything it wrote is already here).
    const state = (ch as unknown as { incoming?: { state?: string } }).incoming?.state;
    if (state === undefined || state === 'open') fail(input, err);
    // Once the command has exited, its exit already decided the writes' fate.
    if (!output.writableFinished && !exit.known) {
      failWrites(err);
      fail(output, err);
    }
    settle(err);
  });

  return {
    input,
    output,
    stderr: ch.stderr,
    done,
    close() {
      if (settled && input.destroyed && output.destroyed) return;
      try {
        ch.signal('TERM');
      } catch {
        // the channel is already gone
      }
      try {
        ch.close();
      } catch {
        // the channel is already gone
      }
      input.destroy();
      output.destroy();
      settle();
    },
  };
}
