/**
 * `serve()` in-process over a pair of pipes, driven by a hand-written client:
 * the order of messages, restrict-to, structured errors that keep the session
 * alive, and protocol violations that end it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { resolveRestricted, serve } from '../../../src/replicate/serve';
import { ControlPeer, Message, PREAMBLE } from '../../../src/transport/control';
import { rmTree } from '../../helpers/fs';

jest.setTimeout(20000);

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-serve-'));
});
afterAll(() => rmTree(work));

function start(restrictTo?: string) {
  const toServe = new PassThrough();
  const fromServe = new PassThrough();
  const log: string[] = [];
  const done = serve({ input: toServe, output: fromServe, restrictTo, version: '9.9.9', log: (l) => log.push(l) });
  const client = new ControlPeer(fromServe, toServe);
  const ask = async (m: Message): Promise<Message> => {
    await client.send(m);
    const f = await client.next();
    if (f.kind !== 'message') throw new Error(`expected a message, got ${f.kind}`);
    return f.message;
  };
  return { client, done, ask, log, raw: toServe };
}

test('hello, open, list, bye', async () => {
  const s = start();
  await s.client.writer.preamble();
  expect(await s.ask({ t: 'hello', version: 1 })).toMatchObject({ t: 'hello', version: 1, ferry: '9.9.9', features: expect.arrayContaining(['resume']), restricted: false });
  const target = path.join(work, 'empty-target');
  expect(await s.ask({ t: 'open', role: 'target', path: target })).toEqual({ t: 'opened', role: 'target', path: target });
  expect(await s.ask({ t: 'list' })).toEqual({ t: 'list', snapshots: [], partials: [] });
  expect(await s.ask({ t: 'held' })).toEqual({ t: 'held', uuids: [] });
  expect(await s.ask({ t: 'bye' })).toEqual({ t: 'bye' });
  expect(await s.done).toBe(0);
  // serve never created the target just by listing it.
  expect(fs.existsSync(target)).toBe(false);
});

test('a refused request is a structured error and the session goes on', async () => {
  const allowed = path.join(work, 'allowed');
  fs.mkdirSync(allowed, { recursive: true });
  const s = start(allowed);
  await s.client.writer.preamble();
  expect(await s.ask({ t: 'hello', version: 1 })).toMatchObject({ restricted: true });
  const r = await s.ask({ t: 'open', role: 'target', path: '/etc/ferry-test' });
  expect(r).toMatchObject({ t: 'error', error: { code: 'TRANSPORT_RESTRICTED', summary: 'serve refused: path is outside the allowed directory' } });
  expect((r.error as { context: Record<string, string> }).context.allowed).toBe(fs.realpathSync(allowed));
  const v = await s.ask({ t: 'open', role: 'volume', path: path.join(allowed, 'not-a-volume') });
  expect(v).toMatchObject({ t: 'error', error: { code: 'VOLUME_NOT_FOUND' } });
  expect(await s.ask({ t: 'open', role: 'target', path: path.join(allowed, 't') })).toMatchObject({ t: 'opened' });
  s.raw.end();
  expect(await s.done).toBe(0);
});

test.each([
  ['a request before hello', [{ t: 'list' }], /list before hello/],
  ['an unknown message', [{ t: 'hello', version: 1 }, { t: 'format-disk' }], /unknown message "format-disk"/],
  ['a request of the other role', [{ t: 'hello', version: 1 }, { t: 'open', role: 'target', path: '/nonexistent/t' }, { t: 'snapshot' }], /snapshot is not valid on a target/],
  ['another protocol version', [{ t: 'hello', version: 2 }], /version mismatch: client speaks 2/],
  ['a second hello', [{ t: 'hello', version: 1 }, { t: 'hello', version: 1 }], /second hello/],
  ['a malformed field', [{ t: 'hello', version: 1 }, { t: 'open', role: 'target', path: 7 }], /open.path is not a string/],
])('%s ends the session with TRANSPORT_PROTOCOL', async (_name, msgs, re) => {
  const s = start();
  await s.client.writer.preamble();
  let last: Message | undefined;
  for (const m of msgs) last = await s.ask(m as Message);
  expect(last).toMatchObject({ t: 'error', error: { code: 'TRANSPORT_PROTOCOL' } });
  expect((last!.error as { summary: string }).summary).toMatch(re);
  expect(await s.done).toBe(13);
  expect((await s.client.next()).kind).toBe('eof');
});

test('garbage instead of the client preamble: one error, then serve stops', async () => {
  const s = start();
  s.raw.write('GET / HTTP/1.1\r\n\r\n');
  const f = await s.client.next();
  expect(f).toMatchObject({ kind: 'message', message: { t: 'error', error: { code: 'TRANSPORT_PROTOCOL' } } });
  expect(await s.done).toBe(13);
});

test('a data frame outside a transfer ends the session', async () => {
  const s = start();
  await s.client.writer.preamble();
  await s.ask({ t: 'hello', version: 1 });
  await s.client.sendData(Buffer.from('stray'));
  const f = await s.client.next();
  expect(f).toMatchObject({ kind: 'message', message: { t: 'error', error: { code: 'TRANSPORT_PROTOCOL' } } });
  expect(await s.done).toBe(13);
});

test('a receive whose stream is not a send stream fails cleanly and the session survives', async () => {
  const target = path.join(work, 'recv-garbage');
  const s = start();
  await s.client.writer.preamble();
  await s.ask({ t: 'hello', version: 1 });
  await s.ask({ t: 'open', role: 'target', path: target });
  const ready = await s.ask({
    t: 'receive',
    snapshot: { name: 's', uuid: '00000000-0000-4000-8000-000000000001', transid: '1' },
    parent: null,
    expectBytes: 0,
    compressed: false,
    resume: null,
  });
  expect(ready).toEqual({ t: 'ready' });
  await s.client.sendData(Buffer.from('this is not btrfs-stream\0\0\0\0\0\0\0\0'));
  await s.client.send({ t: 'end', wireBytes: 33 });
  const f = await s.client.next();
  expect(f).toMatchObject({ kind: 'message', message: { t: 'error', error: { code: 'STREAM_BAD_MAGIC' } } });
  // Still serving; the stale end was drained.
  expect(await s.ask({ t: 'list' })).toEqual({ t: 'list', snapshots: [], partials: [] });
  expect(fs.readdirSync(target).filter((n) => n !== '.ferry')).toEqual([]);
  s.raw.end();
  expect(await s.done).toBe(0);
});

test('resolveRestricted follows symlinks and .. before comparing', () => {
  const root = path.join(work, 'rr');
  fs.mkdirSync(path.join(root, 'in'), { recursive: true });
  fs.mkdirSync(path.join(work, 'rr-out'), { recursive: true });
  fs.symlinkSync(path.join(work, 'rr-out'), path.join(root, 'in', 'jump'));
  const real = fs.realpathSync(root);
  expect(resolveRestricted(path.join(root, 'in', 'new', 'deeper'), root)).toBe(path.join(real, 'in', 'new', 'deeper'));
  expect(resolveRestricted(root, root)).toBe(real);
  expect(() => resolveRestricted(path.join(root, 'in', 'jump', 'x'), root)).toThrow(expect.objectContaining({ code: 'TRANSPORT_RESTRICTED' }));
  expect(() => resolveRestricted(path.join(root, '..', 'rr-out'), root)).toThrow(expect.objectContaining({ code: 'TRANSPORT_RESTRICTED' }));
  // A sibling whose name starts with the root's name is outside.
  expect(() => resolveRestricted(`${root}-out`, root)).toThrow(expect.objectContaining({ code: 'TRANSPORT_RESTRICTED' }));
  expect(() => resolveRestricted('/x', path.join(work, 'missing-root'))).toThrow(expect.objectContaining({ code: 'TRANSPORT_RESTRICTED' }));
  expect(PREAMBLE.toString()).toBe('ferry-control/1\n');
});
