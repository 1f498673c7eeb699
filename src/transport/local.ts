/**
 * The local Endpoint: commands run on this host as child processes, the same
 * way the ssh endpoint runs them remotely, so a local `ferry sync DIR TARGET`
 * exercises exactly the code path of a remote one (`ferry serve` on the
 * other end of a pipe).
 *
 * Owns: spawning (through /bin/sh -c, like sshd does, so FERRY_REMOTE_COMMAND
 * means the same thing locally and remotely), the child's exit status, and
 * tearing its process group down on close(). Never: interprets the bytes.
 */
import { spawn } from 'node:child_process';
import { Channel, ChannelExit, Endpoint } from './channel';

/** Quote one argument for a POSIX shell. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line from argv, quoted for /bin/sh. */
export function shellJoin(argv: string[]): string {
  return argv.map(shellQuote).join(' ');
}

export function localEndpoint(): Endpoint {
  const children = new Set<Channel>();
  return {
    describe: 'local',
    async exec(command: string): Promise<Channel> {
      // Own process group, so close() ends the whole command (sh and what it started).
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      const done = new Promise<ChannelExit>((resolve) => {
        child.once('error', () => resolve({ code: 127, signal: null }));
        child.once('close', (code, signal) => resolve({ code, signal }));
      });
      // Failing writes after the child died surface through the protocol, not as unhandled errors.
      child.stdin.on('error', () => undefined);
      let closed = false;
      const channel: Channel = {
        input: child.stdout,
        output: child.stdin,
        stderr: child.stderr,
        done,
        close() {
          if (closed) return;
          closed = true;
          children.delete(channel);
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
            try {
              process.kill(-child.pid, 'SIGTERM');
            } catch {
              /* already gone */
            }
          }
          child.stdin.destroy();
          child.stdout.destroy();
          child.stderr.destroy();
        },
      };
      children.add(channel);
      void done.then(() => children.delete(channel));
      return channel;
    },
    close() {
      for (const c of [...children]) c.close();
    },
  };
}
