/**
 * `ferry serve [--restrict-to PATH]`: the remote end of `ferry sync`,
 * speaking the control protocol on stdin/stdout. Not for humans; usable as
 * an authorized_keys forced command:
 *   command="ferry serve --restrict-to /srv/backup",restrict ssh-ed25519 AAAA...
 * Diagnostics go to stderr; stdout carries protocol frames only.
 */
import { FerryError } from '../../errors';
import { serve } from '../../replicate/serve';
import { widenStdPipe } from '../io';

export async function runServe(o: { restrictTo?: string }): Promise<number> {
  if (process.stdin.isTTY || process.stdout.isTTY) {
    throw new FerryError('USAGE', 'ferry serve speaks a binary protocol on stdin/stdout and is started by ferry sync', {
      hint: 'run `ferry sync DIR host:/path` on the other side instead',
    });
  }
  // sshd hands a session pipes (or sockets, left as they are).
  widenStdPipe(0);
  widenStdPipe(1);
  return serve({
    input: process.stdin,
    output: process.stdout,
    restrictTo: o.restrictTo,
    version: require('../../../../package.json').version as string,
    log: (l) => process.stderr.write(l + '\n'),
  });
}
