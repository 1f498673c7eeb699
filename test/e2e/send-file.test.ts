/** `ferry send -f FILE`: a regular file is written whole and renamed into place; a device or a pipe is written into, never replaced. */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ferry } from '../helpers/cli';
import { rmTree } from '../helpers/fs';

let work: string;
let vol: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-send-file-'));
  vol = path.join(work, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'a'), 'hello\n');
  expect(ferry(['init', vol, '--method', 'index']).code).toBe(0);
  expect(ferry(['snapshot', vol, '--name', 's']).code).toBe(0);
});
afterEach(() => rmTree(work));

/** The stream written to a regular file (the reference bytes). */
function streamToFile(): Buffer {
  const f = path.join(work, 'ref.stream');
  const r = ferry(['send', `${vol}@s`, '-f', f]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(fs.readdirSync(work).filter((n) => n.includes('.part-'))).toEqual([]);
  return fs.readFileSync(f);
}

test('a FIFO is written into and stays a FIFO', async () => {
  const ref = streamToFile();
  const fifo = path.join(work, 'pipe');
  expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
  const out = path.join(work, 'from-pipe');
  const reader = spawn('sh', ['-c', `cat "$0" > "$1"`, fifo, out]);
  const done = new Promise<number | null>((resolve) => reader.on('close', resolve));
  const r = ferry(['send', `${vol}@s`, '-f', fifo]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(await done).toBe(0);
  expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
  expect(fs.readFileSync(out).equals(ref)).toBe(true);
});

const asRoot = process.getuid?.() === 0;
(asRoot ? test : test.skip)('a character device (a private /dev/null) is written into and stays a device', () => {
  const dev = path.join(work, 'null');
  expect(spawnSync('mknod', ['-m', '666', dev, 'c', '1', '3']).status).toBe(0);
  const r = ferry(['send', `${vol}@s`, '-f', dev]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const st = fs.lstatSync(dev);
  expect(st.isCharacterDevice()).toBe(true);
  expect(st.rdev).toBe(fs.statSync('/dev/null').rdev);
  expect(fs.readdirSync(work).filter((n) => n.includes('.part-'))).toEqual([]);
});

test('a directory is refused with a message that names it', () => {
  const r = ferry(['send', `${vol}@s`, '-f', work]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(`-f ${work} is a directory`);
});
