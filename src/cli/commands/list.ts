/**
 * `ferry list DIR|TARGET [--json]`: a volume's snapshots, or a target's
 * catalog. Text is a table; --json is one object per line (NDJSON).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Exit, FerryError } from '../../errors';
import { Catalog, FERRY_DIR } from '../../volume/catalog';
import { listSnapshots, openVolume, volumeFile } from '../../volume/volume';
import { rollbackMetadataBeside } from '../../volume/rollback';

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

function humanBytes(s: string): string {
  let n = Number(s);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${n}B` : `${n.toFixed(1)}${units[u]}`;
}

export async function runList(dir: string, o: { json?: boolean }): Promise<number> {
  const out: string[] = [];
  // (a rollback killed mid-swap keeps the metadata beside DIR; openVolume finishes it)
  if (fs.existsSync(volumeFile(dir)) || rollbackMetadataBeside(path.resolve(dir))) {
    const vol = openVolume(dir);
    const snaps = listSnapshots(vol);
    if (o.json) {
      for (const s of snaps) out.push(JSON.stringify({ kind: 'snapshot', volume: vol.dir, ...s.meta, dataRoot: s.dataRoot }));
    } else {
      const rows = [['NAME', 'UUID', 'TRANSID', 'PARENT', 'SIZE', 'CREATED']];
      for (const s of snaps) {
        const m = s.meta;
        rows.push([m.name, m.uuid, m.transid, m.parentName ?? '-', humanBytes(m.counts.bytes), m.created]);
      }
      process.stdout.write(table(rows));
      return Exit.OK;
    }
  } else if (fs.existsSync(path.join(dir, FERRY_DIR, 'catalog'))) {
    const entries = new Catalog(dir).list();
    if (o.json) {
      for (const e of entries) out.push(JSON.stringify({ kind: 'received', target: path.resolve(dir), ...e }));
    } else {
      const rows = [['NAME', 'UUID', 'RECEIVED_UUID', 'CTRANSID', 'PARENT_UUID', 'BYTES', 'RECEIVED']];
      for (const e of entries) rows.push([e.name, e.uuid, e.receivedUuid, e.ctransid, e.parentUuid ?? '-', humanBytes(String(e.streamBytes)), e.receivedAt]);
      process.stdout.write(table(rows));
      return Exit.OK;
    }
  } else {
    throw new FerryError('VOLUME_NOT_FOUND', 'neither a ferry volume nor a target', {
      context: { dir },
      hint: 'a volume has .ferry/volume.json (ferry init); a target has .ferry/catalog (ferry receive)',
    });
  }
  if (out.length) process.stdout.write(out.join('\n') + '\n');
  return Exit.OK;
}
