/** The control protocol's framing: round trips at any split, bounds, garbage, eof, errors, backpressure. */
import { PassThrough, Writable } from 'node:stream';
import { FerryError } from '../../../src/errors';
import { ByteReader, ControlPeer, errorFromWire, errorToWire, FrameWriter, Incoming, MAX_DATA, MAX_MESSAGE, PREAMBLE } from '../../../src/transport/control';

/** Everything a FrameWriter writes, as one buffer. */
async function encode(fn: (w: FrameWriter) => Promise<void>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(c, _e, cb) {
      parts.push(c);
      cb();
    },
  });
  const w = new FrameWriter(sink);
  await fn(w);
  return Buffer.concat(parts);
}

/** Read all frames from `bytes` delivered in the given chunk sizes. */
async function decode(bytes: Buffer, split: (i: number) => number = () => bytes.length): Promise<Incoming[]> {
  const input = new PassThrough();
  const peer = new ControlPeer(input, new PassThrough());
  const out: Incoming[] = [];
  let failure: unknown;
  const reading = (async () => {
    for (;;) {
      const f = await peer.next();
      out.push(f);
      if (f.kind === 'eof') return;
    }
  })().catch((e) => {
    failure = e;
    input.resume(); // let the rest of the input drain
  });
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = Math.max(1, split(i));
    input.write(bytes.subarray(off, off + n));
    off += n;
    await new Promise((r) => setImmediate(r));
  }
  input.end();
  await reading;
  if (failure) throw failure;
  return out;
}

const frame = (type: number, payload: Buffer) => {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
};

describe('framing', () => {
  const big = Buffer.alloc(MAX_DATA * 2 + 17, 7);
  let bytes: Buffer;
  beforeAll(async () => {
    bytes = await encode(async (w) => {
      await w.preamble();
      await w.message({ t: 'hello', version: 1, x: 'ünïcode' });
      await w.data(Buffer.from('abc'));
      await w.data(big); // split into frames of at most MAX_DATA
      await w.message({ t: 'end', wireBytes: 3 + big.length });
    });
  });

  const expectFrames = (fs: Incoming[]) => {
    expect(fs[0]).toEqual({ kind: 'message', message: { t: 'hello', version: 1, x: 'ünïcode' } });
    expect(fs[1]).toEqual({ kind: 'data', data: Buffer.from('abc') });
    const data = fs.slice(2, -2);
    expect(data.map((f) => (f.kind === 'data' ? f.data.length : -1))).toEqual([MAX_DATA, MAX_DATA, 17]);
    expect(Buffer.concat(data.map((f) => (f.kind === 'data' ? f.data : Buffer.alloc(0)))).equals(big)).toBe(true);
    expect(fs[fs.length - 2]).toEqual({ kind: 'message', message: { t: 'end', wireBytes: 3 + big.length } });
    expect(fs[fs.length - 1]).toEqual({ kind: 'eof', partial: false });
  };

  test('round trip in one piece', async () => expectFrames(await decode(bytes)));
  test('round trip byte by byte (head)', async () => {
    const head = bytes.subarray(0, PREAMBLE.length + 200);
    const fs = await decode(head, () => 1);
    expect(fs[0]).toEqual({ kind: 'message', message: { t: 'hello', version: 1, x: 'ünïcode' } });
    expect(fs[fs.length - 1]).toEqual({ kind: 'eof', partial: true });
  });
  test('round trip at random splits', async () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 70000) + 1;
    expectFrames(await decode(bytes, rnd));
  });

  test('input ending inside a frame is a partial eof; between frames a clean one', async () => {
    const ok = Buffer.concat([PREAMBLE, frame(1, Buffer.from('{"t":"x"}'))]);
    expect((await decode(ok)).pop()).toEqual({ kind: 'eof', partial: false });
    expect((await decode(ok.subarray(0, ok.length - 1))).pop()).toEqual({ kind: 'eof', partial: true });
    expect((await decode(ok.subarray(0, PREAMBLE.length + 3))).pop()).toEqual({ kind: 'eof', partial: true });
    expect(await decode(Buffer.alloc(0))).toEqual([{ kind: 'eof', partial: false }]);
  });
});

describe('violations are TRANSPORT_PROTOCOL', () => {
  const fails = async (bytes: Buffer, re: RegExp) => {
    const e = await decode(bytes).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(FerryError);
    expect((e as FerryError).code).toBe('TRANSPORT_PROTOCOL');
    expect((e as FerryError).exitCode).toBe(13);
    expect((e as FerryError).message).toMatch(re);
  };

  test('garbage instead of the preamble (a chatty shell) is shown in the message', () =>
    fails(Buffer.from('Welcome to nas!\nLast login: yesterday\n'), /did not start with the ferry preamble.*Welcome to nas/));
  test('another protocol version says so', () => fails(Buffer.from('ferry-control/7\n'), /version mismatch: the other side speaks 7/));
  test('oversized frames are refused from the header alone', async () => {
    const h = Buffer.alloc(5);
    h[0] = 2;
    h.writeUInt32BE(MAX_DATA + 1, 1);
    await fails(Buffer.concat([PREAMBLE, h]), /data frame of 262145 bytes/);
    h[0] = 1;
    h.writeUInt32BE(0xffffffff, 1);
    await fails(Buffer.concat([PREAMBLE, h]), /message frame of 4294967295 bytes/);
    expect(MAX_MESSAGE).toBeLessThan(0xffffffff);
  });
  test('empty frames, unknown types, non-JSON and untyped messages', async () => {
    await fails(Buffer.concat([PREAMBLE, frame(2, Buffer.alloc(0))]), /data frame of 0 bytes/);
    await fails(Buffer.concat([PREAMBLE, frame(9, Buffer.from('x'))]), /unknown frame type 9/);
    await fails(Buffer.concat([PREAMBLE, frame(1, Buffer.from('{not json'))]), /not JSON/);
    await fails(Buffer.concat([PREAMBLE, frame(1, Buffer.from('[1,2]'))]), /no type/);
    await fails(Buffer.concat([PREAMBLE, frame(1, Buffer.from('{"t":5}'))]), /no type/);
  });
});

describe('errors across the wire', () => {
  test('a FerryError keeps its code, summary, hint, context and retryable flag, and says where it came from', () => {
    const e = new FerryError('RECV_NO_SPACE', 'receive refused: not enough free space on the target', {
      context: { target: '/t', needed: 10n, available: 3 },
      hint: 'free space',
      retryable: false,
    });
    const back = errorFromWire(JSON.parse(JSON.stringify(errorToWire(e))), 'nas');
    expect(back).toBeInstanceOf(FerryError);
    expect(back.code).toBe('RECV_NO_SPACE');
    expect(back.exitCode).toBe(17);
    expect(back.summary).toBe(e.summary);
    expect(back.hint).toBe('free space');
    expect(back.context).toEqual({ target: '/t', needed: '10', available: 3, remote: 'nas' });
    const r = errorFromWire(errorToWire(new FerryError('VOLUME_LOCKED', 'locked', { retryable: true })), 'x');
    expect(r.retryable).toBe(true);
  });

  test('an unknown code becomes TRANSPORT_REMOTE_FAILED; a plain Error is INTERNAL; junk is a protocol error', () => {
    const u = errorFromWire({ code: 'FUTURE_THING', summary: 'new', hint: null, retryable: false, context: {} }, 'h');
    expect(u.code).toBe('TRANSPORT_REMOTE_FAILED');
    expect(u.message).toContain('FUTURE_THING');
    const i = errorFromWire(errorToWire(new TypeError('boom')), 'h');
    expect(i.code).toBe('INTERNAL');
    expect(i.summary).toContain('boom');
    expect(errorFromWire('nope', 'h').code).toBe('TRANSPORT_PROTOCOL');
    expect(errorFromWire({ code: 1 }, 'h').code).toBe('TRANSPORT_PROTOCOL');
  });
});

describe('backpressure', () => {
  test('a writer waits for drain: it gets ahead of a reader by at most the pipe buffer', async () => {
    const pipe = new PassThrough({ highWaterMark: 64 * 1024 });
    const w = new FrameWriter(pipe);
    let written = 0;
    const writing = (async () => {
      await w.preamble();
      for (let i = 0; i < 64; i++) {
        await w.data(Buffer.alloc(MAX_DATA, i));
        written++;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    // Nobody reads: the writer is stuck after filling the buffers.
    expect(written).toBeLessThanOrEqual(2);
    const reader = new ControlPeer(pipe, new PassThrough());
    let got = 0;
    for (let i = 0; i < 64; i++) {
      const f = await reader.next();
      expect(f.kind).toBe('data');
      if (f.kind === 'data') {
        expect(f.data[0]).toBe(i);
        got += f.data.length;
      }
    }
    await writing;
    expect(got).toBe(64 * MAX_DATA);
  });

  test('the reader takes bytes from its stream only when asked', async () => {
    const s = new PassThrough();
    const r = new ByteReader(s);
    s.write(Buffer.alloc(10, 1));
    s.write(Buffer.alloc(10, 2));
    const a = await r.read(5);
    expect(a).toEqual(Buffer.alloc(5, 1));
    s.end();
    expect((await r.read(100)).length).toBe(15);
    expect((await r.read(1)).length).toBe(0);
  });

  test('a write to a closed stream rejects instead of hanging', async () => {
    const s = new PassThrough();
    s.destroy();
    const w = new FrameWriter(s);
    await expect(w.message({ t: 'x' })).rejects.toBeTruthy();
  });
});
