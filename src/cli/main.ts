/**
 * ferry's command line: commander wiring, and the one catch that turns every
 * error into an exit code (STYLE.md's table, via FerryError.exitCode).
 *
 * Commands are loaded lazily so `ferry dump` does not pay for ssh2. This is
 * the only module that calls process.exit or looks at argv.
 */
import { Command, CommanderError } from 'commander';
import { Exit, FerryError, isFerryError } from '../errors';
import { renderError, renderInternal } from './render';

const wantsJson = () => process.argv.includes('--json');

function buildProgram(setCode: (p: Promise<number>) => void): Command {
  const program = new Command();
  program
    .name('ferry')
    .description('snapshot-based incremental replication using the btrfs send stream, on any Linux filesystem')
    .version(require('../../../package.json').version as string)
    .exitOverride()
    .showHelpAfterError(false);

  program
    .command('init')
    .description('make DIR a volume; prints the snapshot method chosen')
    .argument('<DIR>', 'the directory tree to put under ferry\'s care')
    .option('--method <METHOD>', 'auto, btrfs, reflink or index', 'auto')
    .option('--json', 'print the volume as a JSON object')
    .action((dir: string, o: { method?: string; json?: boolean }) => {
      setCode(import('./commands/init').then((m) => m.runInit(dir, o)));
    });

  program
    .command('snapshot')
    .description('take a snapshot of volume DIR; prints DIR@NAME')
    .argument('<DIR>', 'the volume')
    .option('--name <NAME>', 'snapshot name (default: UTC time YYYYMMDDTHHMMSSZ)')
    .option('--json', 'print the snapshot as a JSON object')
    .action((dir: string, o: { name?: string; json?: boolean }) => {
      setCode(import('./commands/snapshot').then((m) => m.runSnapshot(dir, o)));
    });

  program
    .command('list')
    .description("list a volume's snapshots or a target's received snapshots")
    .argument('<DIR>', 'a volume or a target')
    .option('--json', 'one JSON object per line')
    .action((dir: string, o: { json?: boolean }) => {
      setCode(import('./commands/list').then((m) => m.runList(dir, o)));
    });

  program
    .command('send')
    .description('write a snapshot as a btrfs send stream (full, or incremental with -p)')
    .argument('<VOLUME@NAME>', 'the snapshot to send')
    .option('-p, --parent <VOLUME@PARENT>', 'send only the changes since this older snapshot')
    .option('--proto <N>', 'stream protocol version: 1 (every btrfs receive) or 2', '1')
    .option('-f, --file <FILE>', 'write the stream to FILE instead of stdout')
    .option('--strict', 'fail instead of warning when a live file changed after the snapshot (index volumes)')
    .option('--json', 'report errors as a JSON object on stderr')
    .action((ref: string, o: Record<string, unknown>) => {
      setCode(import('./commands/send').then((m) => m.runSend(ref, o)));
    });

  program
    .command('dump')
    .description('print a send stream as `btrfs receive --dump` does')
    .option('-f, --file <FILE>', 'read the stream from FILE instead of stdin')
    .option('--all', 'print every stream of a concatenation, not only the first')
    .option('--json', 'report errors as a JSON object on stderr')
    .action((o: { file?: string; all?: boolean }) => {
      setCode(import('./commands/dump').then((m) => m.runDump(o)));
    });

  program
    .command('receive')
    .description('apply a send stream (stdin or -f FILE) and create the snapshot in TARGET')
    .argument('<TARGET>', 'directory that holds received snapshots (created if missing)')
    .option('-f, --file <FILE>', 'read the stream from FILE instead of stdin')
    .option('--allow-devices', 'create device nodes the stream contains (refused by default)')
    .option('--allow-setuid', 'apply setuid/setgid bits and file capabilities (refused by default)')
    .option('--expect-bytes <N>', 'refuse before applying anything if TARGET has less free space than N plus a margin')
    .option('--seed <METHOD>', 'how an incremental snapshot starts from its parent: auto, snapshot (btrfs subvolumes), reflink, farm or copy', 'auto')
    .option('--json', 'print one JSON object per received snapshot')
    .option('--chain <DIR>', 'replay a directory of stream files (full first, each parent before its child), skipping what TARGET has')
    .option('--to <NAME>', 'with --chain: stop at snapshot NAME (apply only its chain)')
    .action((target: string, o: Record<string, unknown>) => {
      setCode(import('./commands/receive').then((m) => m.runReceive(target, o)));
    });

  program
    .command('diff')
    .description('list the paths that changed between two snapshots of a volume, like zfs diff')
    .argument('<VOLUME@A>', 'the older snapshot')
    .argument('<VOLUME@B>', 'the newer snapshot')
    .option('--json', 'one JSON object per change')
    .action((a: string, b: string, o: { json?: boolean }) => {
      setCode(import('./commands/diff').then((m) => m.runDiff(a, b, o)));
    });

  program
    .command('sync')
    .description('snapshot DIR, choose the parent, send and commit into DEST (a directory or [user@]host[:port]:/path); pull with host:/volume TARGET')
    .argument('<DIR>', 'the volume (or [user@]host[:port]:/volume to pull)')
    .argument('<DEST>', 'a target directory, or [user@]host[:port]:/path')
    .option('--name <NAME>', 'name of the snapshot taken (default: UTC time)')
    .option('--snapshot <NAME>', 'send this existing snapshot instead of taking one')
    .option('--proto <N>', 'stream protocol version: 1 or 2', '1')
    .option('--compress <zstd[:LEVEL]>', 'compress the stream on the wire with zstd (default level 3)')
    .option('--bwlimit <RATE>', 'cap the wire rate, bytes per second (K, M, G suffixes: 50M)')
    .option('--incremental-only', 'refuse a full send when no common snapshot exists (exit 15)')
    .option('--format <FORMAT>', 'tree (a ferry target) or stream (stream files with sidecars)')
    .option('--full-every <N>', 'stream files: at most N streams per chain (one full, then incrementals)')
    .option('--ssh-identity <FILE>', 'private key for ssh')
    .option('--ssh-known-hosts <FILE>', 'known_hosts file to verify the host key against')
    .option('--ssh-accept-new', 'accept and remember an unknown host key')
    .option('--remote-command <CMD>', 'command that starts ferry serve on the other side (env FERRY_REMOTE_COMMAND)')
    .option('--json', 'NDJSON progress events and a summary object on stdout')
    .action((dir: string, dest: string, o: Record<string, unknown>) => {
      setCode(import('./commands/sync').then((m) => m.runSync(dir, dest, o)));
    });

  program
    .command('serve')
    .description('the remote end of ferry sync (control protocol on stdin/stdout); not for humans')
    .option('--restrict-to <PATH>', 'refuse every target or volume outside PATH (for authorized_keys forced commands)')
    .action((o: { restrictTo?: string }) => {
      setCode(import('./commands/serve').then((m) => m.runServe(o)));
    });

  program
    .command('run')
    .description('run the jobs of a config: snapshot, send to every target, prune (default config /etc/ferry/ferry.yaml, then ~/.config/ferry/ferry.yaml)')
    .argument('[JOB...]', 'run only these jobs (default: all, in config order)')
    .option('-c, --config <FILE>', 'the config file')
    .option('--dry-run', 'print every decision with its reason; change nothing')
    .option('--json', 'NDJSON events, then one summary object, on stdout')
    .option('--metrics-file <PATH>', 'write Prometheus textfile-collector metrics to PATH (atomically)')
    .action((jobs: string[], o: Record<string, unknown>) => {
      setCode(import('./commands/run').then((m) => m.runRun(jobs, o)));
    });

  program
    .command('prune')
    .description("apply a retention policy to a volume's snapshots or a target's received snapshots")
    .argument('<DIR|TARGET>', 'a volume, a target directory, or [user@]host[:port]:/path')
    .option('--dry-run', 'print every keep/remove decision with its reason; remove nothing')
    .option('--json', 'one JSON line per decision, then a summary object')
    .option('-c, --config <FILE>', 'take the policy from the job in FILE whose volume or target this is')
    .option('--job <NAME>', 'the job to take the policy from')
    .option('--keep-min <DURATION>', 'keep everything younger than this (1d, 12h, 2w), or latest, or all')
    .option('--hourly <N>', 'keep the first snapshot of each of the last N hours')
    .option('--daily <N>', 'keep the first snapshot of each of the last N days')
    .option('--weekly <N>', 'keep the first snapshot of each of the last N weeks')
    .option('--monthly <N>', 'keep the first weekly snapshot of each of the last N months')
    .option('--yearly <N>', 'keep the first monthly snapshot of each of the last N years')
    .option('--week-start <DAY>', 'the day a week begins (default monday)')
    .option('--day-start <HOUR>', 'the hour a day begins (default 0)')
    .option('--timezone <TZ>', 'local (default) or utc')
    .option('--source <DIR>', 'for a target: the volume it receives from (its newest common snapshot is kept)')
    .option('--format <FORMAT>', 'for a target: tree (default) or stream (stream files)')
    .action((where: string, o: Record<string, unknown>) => {
      setCode(import('./commands/prune').then((m) => m.runPrune(where, o)));
    });

  program
    .command('rollback')
    .description("make a volume's live tree equal to one of its snapshots (swapped in atomically)")
    .argument('<VOLUME@NAME>', 'the snapshot to roll back to')
    .option('--keep-old', 'keep the current tree: as snapshot pre-rollback-TIME, or (index volumes) as DIR@pre-rollback-TIME beside it')
    .option('--from <TARGET>', "copy the snapshot from a target that received it (required for index volumes)")
    .option('--json', 'print the result as a JSON object')
    .action((ref: string, o: { keepOld?: boolean; from?: string; json?: boolean }) => {
      setCode(import('./commands/rollback').then((m) => m.runRollback(ref, o)));
    });

  program
    .command('verify')
    .description("check a received snapshot against its sender's manifest (per-file content digests)")
    .argument('<TARGET@NAME>', 'the received snapshot')
    .option('--json', 'print the report as one JSON object')
    .action((ref: string, o: { json?: boolean }) => {
      setCode(import('./commands/verify').then((m) => m.runVerify(ref, o)));
    });

  return program;
}

async function main(argv: string[]): Promise<number> {
  let run: Promise<number> | undefined;
  const program = buildProgram((p) => (run = p));
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        return Exit.OK;
      }
      return Exit.USAGE;
    }
    throw e;
  }
  return run ? await run : Exit.OK;
}

function onEpipe(e: NodeJS.ErrnoException): void {
  // The reader went away (e.g. `ferry dump | head`): stop quietly, like cat.
  // This is the only quiet EPIPE: a broken pipe to a child or a socket
  // reaches the handler below as a failure.
  if (e.code === 'EPIPE') process.exit(Exit.OK);
}
process.stdout.on('error', onEpipe);

let settled = false;
// A command whose promise never settles (a wait nothing will ever wake) would
// otherwise end with status 0 and no word: cron would call that a success.
process.on('beforeExit', () => {
  if (settled) return;
  settled = true;
  process.stderr.write(renderInternal(new Error('ferry stopped before the command finished (nothing left to wait for)'), wantsJson()));
  process.exitCode = Exit.INTERNAL;
});

main(process.argv).then(
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (err: unknown) => {
    settled = true;
    const json = wantsJson();
    if (isFerryError(err)) {
      process.stderr.write(renderError(err as FerryError, json));
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(renderInternal(err, json));
      process.exitCode = Exit.INTERNAL;
    }
  },
);
