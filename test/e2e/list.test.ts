/** `ferry list` on a target reads its catalog (runs the built binary). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ferry } from '../helpers/cli';
import { Catalog } from '../../src/volume/catalog';

test('list TARGET prints catalog entries as a table and as NDJSON', () => {
  const t = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-list-'));
  try {
    const cat = new Catalog(t);
    cat.add({
      format: 1,
      name: 'snap1',
      uuid: 'aaaaaaaa-0000-0000-0000-000000000001',
      receivedUuid: 'bbbbbbbb-0000-0000-0000-000000000001',
      ctransid: '7',
      parentUuid: null,
      parentCtransid: null,
      streamSha256: '00',
      streamBytes: 2048,
      receivedAt: '2026-01-01T00:00:00.000Z',
      method: 'full',
    });
    fs.mkdirSync(path.join(t, 'snap1'));
    const json = ferry(['list', t, '--json']);
    expect(json.code).toBe(0);
    const rows = json.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual([expect.objectContaining({ kind: 'received', name: 'snap1', ctransid: '7' })]);
    const text = ferry(['list', t]);
    expect(text.code).toBe(0);
    expect(text.stdout.toString()).toMatch(/snap1 +aaaaaaaa-0000-0000-0000-000000000001 +bbbbbbbb/);
    expect(ferry(['list', path.join(t, 'snap1')]).code).toBe(10);
  } finally {
    fs.rmSync(t, { recursive: true, force: true });
  }
});
