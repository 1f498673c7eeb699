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
    .option('--seed <METHOD>', 'how an incremental snapshot starts from its parent: auto, reflink, farm or copy', 'auto')
    .option('--json', 'print one JSON object per received snapshot')
    .action((target: string, o: Record<string, unknown>) => {
      setCode(import('./commands/receive').then((m) => m.runReceive(target, o)));
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
  if (e.code === 'EPIPE') process.exit(Exit.OK);
}
process.stdout.on('error', onEpipe);

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const json = wantsJson();
    if (isFerryError(err)) {
      process.stderr.write(renderError(err as FerryError, json));
      process.exitCode = err.exitCode;
    } else if ((err as NodeJS.ErrnoException)?.code === 'EPIPE') {
      process.exitCode = Exit.OK;
    } else {
      process.stderr.write(renderInternal(err, json));
      process.exitCode = Exit.INTERNAL;
    }
  },
);
