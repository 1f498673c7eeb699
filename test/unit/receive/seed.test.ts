import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { seedFromParent } from '../../../src/receive/seed';
import { sys } from '../../../src/sys/linux';

const OLD = new Date('2020-01-02T03:04:05.678Z');

/** Hard-link groups whose names sit in different directories, every directory stamped with an old time. */
function makeParent(root: string): void {
  const n = 12;
  for (let i = 0; i < n; i++) fs.mkdirSync(path.join(root, `d${i}`));
  for (let i = 0; i < n; i++) {
    const f = path.join(root, `d${i}`, `f${i}`);
    fs.writeFileSync(f, `content ${i}\n`);
    fs.linkSync(f, path.join(root, `d${(i + 5) % n}`, `link-of-${i}`));
    fs.linkSync(f, path.join(root, `top-${i}`));
  }
  for (let i = 0; i < n; i++) fs.utimesSync(path.join(root, `d${i}`), OLD, OLD);
  fs.utimesSync(root, OLD, OLD);
}

describe.each(['farm', 'copy'] as const)('seedFromParent (%s)', (method) => {
  let work: string;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-seed-'));
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('keeps every directory time and hard-link group when groups span directories', () => {
    const src = path.join(work, 'parent');
    const dst = path.join(work, 'staging');
    fs.mkdirSync(src);
    makeParent(src);
    fs.mkdirSync(dst);
    seedFromParent(sys(), Buffer.from(src), Buffer.from(dst), method);
    for (const name of ['.', ...fs.readdirSync(src)]) {
      const s = fs.lstatSync(path.join(src, name), { bigint: true });
      if (!s.isDirectory()) continue;
      const d = fs.lstatSync(path.join(dst, name), { bigint: true });
      expect([name, d.mtimeNs]).toEqual([name, s.mtimeNs]);
    }
    for (let i = 0; i < 12; i++) {
      const a = fs.statSync(path.join(dst, `d${i}`, `f${i}`));
      expect(fs.statSync(path.join(dst, `d${(i + 5) % 12}`, `link-of-${i}`)).ino).toBe(a.ino);
      expect(fs.statSync(path.join(dst, `top-${i}`)).ino).toBe(a.ino);
      // A group is never shared with the parent: changing it must not reach the parent.
      expect(a.ino).not.toBe(fs.statSync(path.join(src, `d${i}`, `f${i}`)).ino);
      expect(fs.readFileSync(path.join(dst, `top-${i}`), 'utf8')).toBe(`content ${i}\n`);
    }
  });
});
