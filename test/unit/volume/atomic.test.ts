/**
 * Durable writes (src/volume/atomic.ts): a whole file or a whole stream
 * appears at its name complete or not at all, and a failure leaves neither
 * a temp file nor a changed target behind.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeToFileAtomic, writeFileAtomic } from '../../../src/volume/atomic';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-atomic-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const chunks = (n: number, failAt = -1) =>
  Readable.from(
    (function* () {
      for (let i = 0; i < n; i++) {
        if (i === failAt) throw new Error('source failed');
        yield Buffer.alloc(1024, i);
      }
    })(),
  );

describe('pipeToFileAtomic', () => {
  it('writes every stage through to the file, with the mode asked for, and leaves no temp file', async () => {
    const f = path.join(dir, 'out.stream');
    const upper = new Transform({ transform: (c: Buffer, _e, cb) => cb(null, Buffer.from(c.toString('latin1').toUpperCase(), 'latin1')) });
    await pipeToFileAtomic(f, [Readable.from([Buffer.from('abc'), Buffer.from('def')]), upper], { mode: 0o640 });
    expect(fs.readFileSync(f, 'utf8')).toBe('ABCDEF');
    expect(fs.statSync(f).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(fs.readdirSync(dir)).toEqual(['out.stream']);
  });

  it('a failing source leaves the old file as it was and no temp file', async () => {
    const f = path.join(dir, 'out.stream');
    fs.writeFileSync(f, 'old');
    let before = 0;
    await expect(pipeToFileAtomic(f, [chunks(64, 40)], { beforeRename: () => before++ })).rejects.toThrow('source failed');
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['out.stream']);
    expect(before).toBe(0);
  });

  it('runs beforeRename once the data is complete, before the new file replaces the old one', async () => {
    const f = path.join(dir, 'out.stream');
    fs.writeFileSync(f, 'old');
    const seen: string[] = [];
    await pipeToFileAtomic(f, [chunks(8)], {
      beforeRename: () => {
        seen.push(fs.readFileSync(f, 'utf8'));
        const tmp = fs.readdirSync(dir).filter((n) => n.includes('.part-'));
        expect(tmp).toHaveLength(1);
        expect(fs.statSync(path.join(dir, tmp[0])).size).toBe(8 * 1024);
      },
    });
    expect(seen).toEqual(['old']);
    expect(fs.statSync(f).size).toBe(8 * 1024);
  });

  it('a failing beforeRename keeps the old file', async () => {
    const f = path.join(dir, 'out.stream');
    fs.writeFileSync(f, 'old');
    await expect(
      pipeToFileAtomic(f, [chunks(4)], {
        beforeRename: () => {
          throw new Error('no');
        },
      }),
    ).rejects.toThrow('no');
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['out.stream']);
  });
});

describe('writeFileAtomic', () => {
  it('replaces a file whole and leaves no temp file', () => {
    const f = path.join(dir, 'x.json');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, Buffer.from('two'));
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
  });
});
