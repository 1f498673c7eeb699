/**
 * The decoder's resume mode (used by a resumed receive): started at any
 * command boundary of a stream, without its header, it yields exactly the
 * commands a decode of the whole stream yields from there, with the same
 * offsets and indexes, and still demands the END.
 */
import { FerryError } from '../../../src/errors';
import { createHash } from 'node:crypto';
import { CommandItem, StreamDecoder, StreamItem } from '../../../src/stream/decoder';
import { commandBoundaries, decodeChunks, encodeAll, fixtures, sampleCommands } from '../../helpers/streams';

/** An item as a short string: position, numbering and a digest of its attributes. */
function brief(x: StreamItem): string {
  if (x.kind !== 'command') return `header ${x.offset}`;
  const attrs = JSON.stringify(x.attrs, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v));
  return `${x.offset}+${x.length} #${x.index} s${x.streamIndex} v${x.version} cmd ${x.cmd} ${createHash('sha256').update(attrs).digest('hex')}`;
}

function resumeAt(buf: Buffer, at: number, version: number, commandIndex: number, sizes = [buf.length]) {
  const dec = new StreamDecoder({ resume: { version, offset: at, commandIndex } });
  const out = [];
  let i = at;
  let k = 0;
  while (i < buf.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]);
    out.push(...dec.push(buf.subarray(i, Math.min(buf.length, i + n))));
    i += n;
  }
  dec.end();
  return out;
}

describe('decoder resume mode', () => {
  const streams = [
    ...[1, 2].map((v) => ({ name: `sample-v${v}`, stream: encodeAll(sampleCommands(v), v) })),
    ...fixtures().filter((f) => ['incr-v1', 'incr-v2c'].includes(f.name)),
  ];

  it.each(streams)('$name: from every command boundary, the same items as a whole decode', ({ stream }) => {
    const all = decodeChunks(stream) as CommandItem[];
    const want = all.filter((x) => x.kind === 'command').map(brief);
    const version = all[0].version;
    const bounds = commandBoundaries(stream).slice(1, -1); // after SUBVOL/SNAPSHOT, before the end
    bounds.forEach((at, i) => {
      const got = resumeAt(stream, at, version, i + 1, i % 2 ? [1, 7, 300] : [stream.length]);
      expect(got.map(brief)).toEqual(want.slice(i + 1));
    });
  });

  it('demands the END like a whole decode', () => {
    const stream = encodeAll(sampleCommands(1), 1);
    const b = commandBoundaries(stream);
    const cut = stream.subarray(0, b[b.length - 2]); // without END
    const dec = new StreamDecoder({ resume: { version: 1, offset: b[3], commandIndex: 3 } });
    dec.push(cut.subarray(b[3]));
    expect(() => dec.end()).toThrow(expect.objectContaining({ code: 'STREAM_TRUNCATED' }));
  });

  it('an empty resumed input is truncated, not empty', () => {
    const dec = new StreamDecoder({ resume: { version: 1, offset: 100, commandIndex: 3 } });
    expect(() => dec.end()).toThrow(expect.objectContaining({ code: 'STREAM_TRUNCATED' }));
  });

  it('refuses an impossible resume point', () => {
    for (const r of [
      { version: 0, offset: 100, commandIndex: 1 },
      { version: 9, offset: 100, commandIndex: 1 },
      { version: 1, offset: 5, commandIndex: 1 },
    ]) {
      expect(() => new StreamDecoder({ resume: r })).toThrow(FerryError);
    }
  });

  it('a bit flipped after the resume point still fails its CRC', () => {
    const stream = Buffer.from(encodeAll(sampleCommands(1), 1));
    const b = commandBoundaries(stream);
    stream[b[4] + 12] ^= 0x40;
    expect(() => resumeAt(stream, b[2], 1, 2)).toThrow(expect.objectContaining({ code: 'STREAM_BAD_CRC' }));
  });
});
