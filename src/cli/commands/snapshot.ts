/**
 * `ferry snapshot DIR [--name NAME]`: take a snapshot; prints DIR@NAME.
 * Exit 3 when it finished with warnings (a file changed as it was read, a
 * mount point was skipped), which go to stderr.
 */
import { Exit } from '../../errors';
import { openVolume, snapshot } from '../../volume/volume';

export async function runSnapshot(dir: string, o: { name?: string; json?: boolean }): Promise<number> {
  const vol = openVolume(dir);
  const r = await snapshot(vol, { name: o.name });
  const ref = `${dir.length > 1 ? dir.replace(/\/+$/, '') : dir}@${r.meta.name}`;
  if (o.json) process.stdout.write(JSON.stringify({ event: 'snapshot', ref, ...r.meta, warnings: r.warnings }) + '\n');
  else process.stdout.write(`${ref}\n`);
  for (const w of r.warnings) process.stderr.write(`ferry: warning: ${w}\n`);
  return r.warnings.length ? Exit.WARNINGS : Exit.OK;
}
