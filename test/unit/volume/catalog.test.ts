import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog, CatalogEntry } from '../../../src/volume/catalog';

const entry = (name: string, uuid: string, receivedUuid: string): CatalogEntry => ({
  format: 1,
  name,
  uuid,
  receivedUuid,
  ctransid: '1',
  parentUuid: null,
  parentCtransid: null,
  streamSha256: '0'.repeat(64),
  streamBytes: 1,
  receivedAt: '2026-11-21T00:00:00.000Z',
  method: 'full',
});

describe('Catalog.remove', () => {
  it("drops the entry and the manifests kept under its uuid or received uuid, and nobody else's", () => {
    const t = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cat-'));
    try {
      const c = new Catalog(t);
      c.ensure();
      const a = entry('a', '11111111-1111-4111-8111-111111111111', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa');
      const b = entry('b', '22222222-2222-4222-8222-222222222222', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb');
      for (const e of [a, b]) {
        fs.mkdirSync(path.join(t, e.name));
        c.add(e);
      }
      fs.writeFileSync(path.join(c.dir, `${a.uuid}.manifest`), 'm');
      fs.writeFileSync(path.join(c.dir, `${a.receivedUuid}.manifest`), 'm');
      fs.writeFileSync(path.join(c.dir, `${b.receivedUuid}.manifest`), 'm');
      c.remove(a.uuid);
      expect(c.list().map((e) => e.name)).toEqual(['b']);
      expect(fs.readdirSync(c.dir).filter((f) => f.endsWith('.manifest'))).toEqual([`${b.receivedUuid}.manifest`]);
    } finally {
      fs.rmSync(t, { recursive: true, force: true });
    }
  });
});
