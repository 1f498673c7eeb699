/**
 * Suites the benchmark issue asks for that need `ferry send`/`ferry receive`,
 * registered now so the report lists them. Each is skipped as "not
 * implemented yet" (never passing) until someone replaces its placeholder
 * with a real Suite in its own file (see bench/lib/suite.ts for the contract
 * and bench/suites/codec.ts for an example).
 *
 * What each will measure, from DESIGN.md "Performance budgets":
 *
 * - full: /usr/share + /usr/include (datasets.copyUsr) on an index and a
 *   reflink (XFS) volume, `ferry send | ferry receive` end to end, against
 *   `btrfs send | btrfs receive` on btrfs loop mounts; time ratio <= 1.25.
 * - incremental: the same tree after datasets.mutateTree (about 1% of files),
 *   1 and 10 snapshots behind; time against `rsync -aHAX --delete` <= 1/3,
 *   and stream bytes against the kernel's `btrfs send -p` <= 1.1.
 * - image: datasets.makeImage of 4 GiB plus scatterWrites of 1,000 4 KiB
 *   blocks; stream bytes against `btrfs send -p` <= 1.1, and on a reflink
 *   volume no unchanged data read (bytes read from /proc/<pid>/io).
 * - scale: datasets.makeMany of 1,000,000 files; peak RSS (rss.peakRss) of
 *   send and of receive <= 300 MB; walk and index compare timed against
 *   `find -printf`.
 * - ssh: `ferry sync` to localhost over ssh against `rsync -aHAX --delete -e
 *   ssh` for the incremental case; same 1/3 budget.
 */
import { Requirements, SkipError, Suite } from '../lib/suite';

const NOT_YET = 'not implemented yet (needs ferry send/receive)';

function placeholder(name: string, title: string, requires: Requirements): Suite {
  return {
    name,
    title,
    requires,
    pending: NOT_YET,
    run: async () => {
      throw new SkipError(NOT_YET, 'not-implemented');
    },
  };
}

const LOOP = { root: true, loopDevices: true };

export const pendingSuites: Suite[] = [
  placeholder('full', 'full send of /usr/share + /usr/include vs btrfs send | btrfs receive (budget ≤ 1.25×)', {
    ...LOOP,
    tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs'],
  }),
  placeholder('incremental', '1% change, 1 and 10 behind: time vs rsync -aHAX --delete (≤ 1/3), bytes vs btrfs send -p (≤ 1.1×)', {
    ...LOOP,
    tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs', 'rsync'],
  }),
  placeholder('image', '4 GiB image, 1,000 scattered 4 KiB writes: stream bytes vs btrfs send -p (≤ 1.1×)', {
    ...LOOP,
    tools: ['btrfs', 'mkfs.btrfs', 'mkfs.xfs'],
  }),
  placeholder('scale', '1,000,000 files: peak RSS of send and receive (≤ 300 MB); walk vs find -printf', {
    ...LOOP,
    tools: ['find', 'mkfs.ext4'],
  }),
  placeholder('ssh', 'ferry sync over ssh to localhost vs rsync -aHAX --delete -e ssh (≤ 1/3)', {
    tools: ['ssh', 'sshd', 'rsync'],
  }),
];
