/**
 * `ferry prune DIR|TARGET [--dry-run] [--json] [-c FILE] [--job NAME]
 *   [--keep-min D] [--hourly N] [--daily N] [--weekly N] [--monthly N]
 *   [--yearly N] [--week-start DAY] [--day-start H] [--timezone local|utc]
 *   [--source DIR] [--format tree|stream]`
 *
 * The policy comes from the flags when any is given, else from the job
 * (in -c FILE or the default config) whose volume or target DIR is. Prints
 * what it removed (every decision with --dry-run); exits 0, or the code of
 * the failure (docs/jobs.md).
 */
import * as path from 'node:path';
import { loadConfig } from '../../config/load';
import { FerryConfig, JobConfig, TargetConfig } from '../../config/schema';
import { parseDuration } from '../../config/units';
import { Exit, FerryError } from '../../errors';
import { defaultDeps } from '../../job/ports';
import { isRemote, isVolume, pruneOne } from '../../job/prune-one';
import { WEEKDAYS, Weekday } from '../../retention/calendar';
import { checkPolicy, KEEP_ALL, KeepMin, RetentionPolicy } from '../../retention/policy';
import { makeJobRenderer } from '../job-render';

export interface PruneCliOptions {
  dryRun?: boolean;
  json?: boolean;
  config?: string;
  job?: string;
  keepMin?: string;
  hourly?: string;
  daily?: string;
  weekly?: string;
  monthly?: string;
  yearly?: string;
  weekStart?: string;
  dayStart?: string;
  timezone?: string;
  source?: string;
  format?: string;
}

const BUCKET_FLAGS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

function invalid(why: string): FerryError {
  return new FerryError('RETENTION_INVALID', `invalid retention flag: ${why}`, { hint: 'for example: ferry prune /srv/data --keep-min 1d --daily 7 --weekly 4' });
}

/** The policy the flags describe, or undefined when no policy flag was given. */
export function policyFromFlags(o: PruneCliOptions): RetentionPolicy | undefined {
  const given = o.keepMin !== undefined || BUCKET_FLAGS.some((b) => o[b] !== undefined);
  if (!given) {
    if (o.weekStart !== undefined || o.dayStart !== undefined || o.timezone !== undefined) {
      throw invalid('--week-start, --day-start and --timezone need --keep-min or a count (--daily N ...)');
    }
    return undefined;
  }
  const p: RetentionPolicy = { ...KEEP_ALL, keepMin: { kind: 'none' } };
  if (o.keepMin !== undefined) {
    let k: KeepMin;
    if (o.keepMin === 'all' || o.keepMin === 'latest') k = { kind: o.keepMin };
    else {
      const d = parseDuration(o.keepMin);
      if ('error' in d) throw invalid(`--keep-min ${d.error}`);
      k = { kind: 'age', ms: d.value };
    }
    p.keepMin = k;
  }
  for (const b of BUCKET_FLAGS) {
    const v = o[b];
    if (v === undefined) continue;
    if (v === 'all') p[b] = Infinity;
    else if (/^\d+$/.test(v)) p[b] = Number(v);
    else throw invalid(`--${b} must be a whole number or all, got "${v}"`);
  }
  if (o.weekStart !== undefined) {
    const i = (WEEKDAYS as readonly string[]).indexOf(o.weekStart.toLowerCase());
    if (i < 0) throw invalid(`--week-start must be one of ${WEEKDAYS.join(', ')}`);
    p.weekStart = i as Weekday;
  }
  if (o.dayStart !== undefined) {
    if (!/^\d+$/.test(o.dayStart)) throw invalid('--day-start must be an hour 0-23');
    p.dayStart = Number(o.dayStart);
  }
  if (o.timezone !== undefined) {
    if (o.timezone !== 'local' && o.timezone !== 'utc') throw invalid('--timezone must be local or utc');
    p.timezone = o.timezone;
  }
  checkPolicy(p);
  return p;
}

/** The job (and target) `where` belongs to. */
function findJob(cfg: FerryConfig, where: string, name: string | undefined, volume: boolean): { job: JobConfig; target?: TargetConfig } | undefined {
  const abs = isRemote(where) ? where : path.resolve(where);
  const jobs = name ? cfg.jobs.filter((j) => j.name === name) : cfg.jobs;
  if (name && jobs.length === 0) {
    throw new FerryError('USAGE', `no job named "${name}" in ${cfg.file}`, { hint: `jobs in this config: ${cfg.jobs.map((j) => j.name).join(', ')}` });
  }
  for (const j of jobs) {
    if (volume && j.volume === abs) return { job: j };
    const t = j.targets.find((x) => x.path === abs);
    if (!volume && t) return { job: j, target: t };
  }
  return undefined;
}

export async function runPrune(where: string, o: PruneCliOptions): Promise<number> {
  if (o.format !== undefined && o.format !== 'tree' && o.format !== 'stream') {
    throw new FerryError('USAGE', `--format must be tree or stream, got "${o.format}"`);
  }
  const volume = isVolume(where);
  let policy = policyFromFlags(o);
  let found: { job: JobConfig; target?: TargetConfig } | undefined;
  if (o.config !== undefined || o.job !== undefined || policy === undefined) {
    let cfg: FerryConfig;
    try {
      cfg = loadConfig(o.config);
    } catch (e) {
      if (policy === undefined && e instanceof FerryError && e.code === 'CONFIG_NOT_FOUND' && o.config === undefined) {
        throw new FerryError('USAGE', 'no retention policy given and no config file found', {
          hint: 'give a policy (--keep-min 1d --daily 7 ...) or a config with a job for this volume or target (-c FILE [--job NAME])',
          cause: e,
        });
      }
      throw e;
    }
    found = findJob(cfg, where, o.job, volume);
    if (!found && policy === undefined) {
      throw new FerryError('USAGE', `no job in ${cfg.file} has ${volume ? 'volume' : 'target'} ${where}`, {
        hint: 'name the job with --job NAME, or give a policy (--keep-min 1d --daily 7 ...)',
      });
    }
  }
  if (policy === undefined) policy = volume ? found!.job.retention.source : found!.target!.retention;
  const renderer = makeJobRenderer(o.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain', process.stdout, process.stderr);
  try {
    const out = await pruneOne(
      {
        where,
        policy,
        job: found?.job,
        target: found?.target,
        source: o.source,
        format: o.format as 'tree' | 'stream' | undefined,
        dryRun: !!o.dryRun,
        onEvent: (e) => renderer.event(e),
      },
      defaultDeps(),
    );
    const exitCode = out.error ? out.error.exitCode : Exit.OK;
    if (o.json) process.stdout.write(JSON.stringify({ event: 'summary', command: 'prune', result: out.error ? 'failed' : 'ok', exitCode, prune: out }) + '\n');
    return exitCode;
  } finally {
    renderer.close();
  }
}
