/** `ferry init DIR [--method auto|btrfs|reflink|index]`: make DIR a volume; prints the method chosen. */
import { Exit, FerryError } from '../../errors';
import { InitMethod, initVolume } from '../../volume/volume';

export async function runInit(dir: string, o: { method?: string; json?: boolean }): Promise<number> {
  const method = o.method ?? 'auto';
  if (!['auto', 'btrfs', 'reflink', 'index'].includes(method)) {
    throw new FerryError('USAGE', `--method must be auto, btrfs, reflink or index, got "${method}"`);
  }
  const vol = initVolume(dir, method as InitMethod);
  if (o.json) process.stdout.write(JSON.stringify({ event: 'initialized', dir: vol.dir, ...vol.meta }) + '\n');
  else process.stdout.write(`${vol.meta.method}\n`);
  return Exit.OK;
}
