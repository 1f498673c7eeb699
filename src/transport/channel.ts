/**
 * A byte channel to a remote `ferry serve`: the one shape every transport
 * (a local child process, an ssh2 exec channel, an in-process pair in tests)
 * hands to replication.
 *
 * Owns: the interface only. Implementations live beside it (local.ts,
 * ssh.ts). Never: knows the control protocol spoken over it.
 */
import { Readable, Writable } from 'node:stream';

export interface ChannelExit {
  code: number | null;
  signal: string | null;
}

export interface Channel {
  /** Bytes from the remote command's stdout. */
  readonly input: Readable;
  /** Bytes to the remote command's stdin. */
  readonly output: Writable;
  /** The remote command's stderr (diagnostics, shown to the user on failure). */
  readonly stderr: Readable;
  /** Settles when the remote command has ended (never rejects). */
  readonly done: Promise<ChannelExit>;
  /** Tear the channel down at once (abort). Safe to call twice. */
  close(): void;
}

/** Somewhere commands can be run: this host, or a host over ssh. */
export interface Endpoint {
  /** For messages: `local`, `backup@nas:22`. */
  readonly describe: string;
  /** Run a command (a shell command line on ssh; argv joined on local). */
  exec(command: string): Promise<Channel>;
  /** Close the connection behind the endpoint. Safe to call twice. */
  close(): void;
}
