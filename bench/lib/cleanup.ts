/**
 * Cleanup that happens whatever way the benchmark ends: normal return, an
 * exception, SIGINT/SIGTERM/SIGHUP, or process exit.
 *
 * Owns: one process-wide list of synchronous cleanup actions (unmount,
 * detach, remove). Invariants: every action runs at most once; actions run
 * newest first (a mount is undone before its directory is removed); a failing
 * action is reported and never stops the others. On a signal the actions run
 * and the signal is re-raised, so the exit status is the usual 130/143.
 */

type Action = { label: string; fn: () => void };

const pending = new Set<Action>();
let installed = false;

function runAll(): void {
  const list = [...pending].reverse();
  pending.clear();
  for (const a of list) {
    try {
      a.fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup "${a.label}" failed: ${(e as Error).message}\n`);
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  if (pending.size) process.stderr.write(`\nbench: ${signal}: cleaning up ${pending.size} item(s)\n`);
  runAll();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function install(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', runAll);
}

/**
 * Register a synchronous cleanup action. Returns a function that runs it now
 * (once) and unregisters it; call that in a `finally`.
 */
export function registerCleanup(label: string, fn: () => void): () => void {
  install();
  const action: Action = { label, fn };
  pending.add(action);
  return () => {
    if (!pending.delete(action)) return;
    fn();
  };
}

/** Number of registered actions not yet run (for tests and leak checks). */
export function pendingCleanups(): number {
  return pending.size;
}
