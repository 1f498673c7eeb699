import { Cmd } from '../../../src/model/command';
import { DumpFormatter, escapeBytes, formatLocalTime } from '../../../src/stream/dump';
import { decodeChunks, encodeAll, fixtures, p, UUID_A } from '../../helpers/streams';

function dumpOf(stream: Buffer): Buffer {
  const f = new DumpFormatter();
  const lines: Buffer[] = [];
  for (const it of decodeChunks(stream, undefined, { firstStreamOnly: true })) {
    if (it.kind !== 'command') continue;
    const l = f.format(it);
    if (l) lines.push(l);
  }
  return Buffer.concat(lines);
}

describe('dump formatter', () => {
  const saved = process.env.TZ;
  beforeAll(() => {
    process.env.TZ = 'UTC';
  });
  afterAll(() => {
    process.env.TZ = saved;
  });

  it.each(fixtures().map((f) => [f.name, f]))('%s matches btrfs receive --dump byte for byte', (_n, f) => {
    const ours = dumpOf(f.stream);
    if (!ours.equals(f.dump)) {
      // Show the first differing line for a readable failure.
      const a = ours.toString('latin1').split('\n');
      const b = f.dump.toString('latin1').split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      expect(a[i]).toBe(b[i]);
    }
    expect(ours.equals(f.dump)).toBe(true);
  });

  it('escapes like print_path_escaped', () => {
    expect(escapeBytes(Buffer.from('a b\\c\n\t\x1b\x7f'))).toBe('a\\ b\\\\c\\n\\t\\e\\177');
    expect(escapeBytes(Buffer.from('é'))).toBe('\\303\\251');
  });

  it('pads short paths to 32 columns and gives long ones one space', () => {
    const long = 'x'.repeat(40);
    const s = encodeAll(
      [
        { cmd: Cmd.SUBVOL, attrs: { path: p('s'), uuid: UUID_A, ctransid: 1n } },
        { cmd: Cmd.TRUNCATE, attrs: { path: p('a'), size: 5n } },
        { cmd: Cmd.TRUNCATE, attrs: { path: p(long), size: 5n } },
        { cmd: Cmd.FILEATTR, attrs: { path: p('a'), fileattr: 520n } },
        { cmd: Cmd.END, attrs: {} },
      ],
      2,
    );
    expect(dumpOf(s).toString()).toBe(
      'subvol          ./s                             uuid=dcd653dc-6338-8645-a81e-d6cbb0cc321a transid=1\n' +
        'truncate        ./s/a                           size=5\n' +
        `truncate        ./s/${long} size=5\n` +
        'fileattr        ./s/a                           fileattr=0x520\n',
    );
  });

  it('prints local time in the ISO form strftime gives (TZ=UTC here; other zones in the e2e test)', () => {
    expect(formatLocalTime({ sec: 1700000000n, nsec: 0 })).toBe('2023-11-14T22:13:20+0000');
  });
});
