/**
 * `ferry verify TARGET@NAME [--json]`: check a received snapshot against
 * the manifest its sender wrote. Clean: one summary line, exit 0.
 * Differences: one line each on stdout (the report), then
 * REPLICATE_VERIFY_MISMATCH (exit 14). With --json the report is one JSON
 * object on stdout.
 */
import { Exit, FerryError } from '../../errors';
import { differenceCount, verifySnapshot } from '../../replicate/verify';

function parseTargetRef(s: string): { target: string; name: string } {
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) {
    throw new FerryError('USAGE', `expected TARGET@NAME, got "${s}"`, { hint: 'for example /backup/data@20261121T031500Z' });
  }
  return { target: s.slice(0, at), name: s.slice(at + 1) };
}

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`;
}

export async function runVerify(ref: string, o: { json?: boolean }): Promise<number> {
  const { target, name } = parseTargetRef(ref);
  const r = await verifySnapshot(target, name);
  const n = differenceCount(r);
  if (o.json) {
    process.stdout.write(JSON.stringify({ event: 'verify', ok: n === 0, ...r }) + '\n');
  } else if (n === 0) {
    process.stdout.write(`${ref}: ok, ${r.entries} entries and ${human(r.bytes)} of file data match the manifest\n`);
  } else {
    const lines: string[] = [];
    for (const p of r.missing) lines.push(`missing  ${p}`);
    for (const p of r.extra) lines.push(`extra    ${p}`);
    for (const d of r.different) lines.push(`differs  ${d.path}: ${d.detail}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  if (n) {
    throw new FerryError('REPLICATE_VERIFY_MISMATCH', `verify failed: ${name} differs from its manifest in ${n} place${n === 1 ? '' : 's'}`, {
      context: { target, missing: r.missing.length, extra: r.extra.length, different: r.different.length },
      hint: 'the snapshot was changed after it was received, or damaged; receive it again from the source',
    });
  }
  return Exit.OK;
}
