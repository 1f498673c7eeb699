/**
 * `ferry run [-c FILE] [JOB...] [--dry-run] [--json] [--metrics-file PATH]`:
 * load the config, run its jobs (src/job/run.ts), render what happens, and
 * return the run's exit code (docs/jobs.md "Exit codes").
 *
 * SIGINT/SIGTERM abort the run cleanly (the current transfer stops and is
 * left resumable, locks are released) and exit 130/143.
 */
import { loadConfig } from '../../config/load';
import { Exit } from '../../errors';
import { writeMetricsFile } from '../../job/metrics';
import { defaultDeps } from '../../job/ports';
import { runJobs } from '../../job/run';
import { makeJobRenderer } from '../job-render';

export interface RunCliOptions {
  config?: string;
  dryRun?: boolean;
  json?: boolean;
  metricsFile?: string;
}

export async function runRun(jobs: string[], o: RunCliOptions): Promise<number> {
  const cfg = loadConfig(o.config);
  const renderer = makeJobRenderer(o.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain', process.stdout, process.stderr);
  const ac = new AbortController();
  const onInt = () => ac.abort('SIGINT');
  const onTerm = () => ac.abort('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  try {
    const deps = defaultDeps();
    const summary = await runJobs(cfg, { jobs, dryRun: o.dryRun, signal: ac.signal, onEvent: (e) => renderer.event(e) }, deps);
    renderer.summary(summary);
    let code = summary.exitCode;
    if (o.metricsFile && !o.dryRun) {
      try {
        writeMetricsFile(o.metricsFile, summary, deps.now());
      } catch (e) {
        process.stderr.write(`ferry: warning: could not write the metrics file: ${(e as Error).message} (file ${JSON.stringify(o.metricsFile)})\n`);
        if (code === Exit.OK) code = Exit.WARNINGS;
      }
    }
    return code;
  } finally {
    renderer.close();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
