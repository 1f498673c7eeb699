import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pendingCleanups } from '../../../bench/lib/cleanup';
import { LoopFsType, withLoopFs } from '../../../bench/lib/loopfs';
import { peakRss, peakRssPipe } from '../../../bench/lib/rss';
import { SkipError } from '../../../bench/lib/suite';
import { loopFsTest } from '../../helpers/loopfs';

function fstypeOf(dir: string): string {
  return spawnSync('findmnt', ['-no', 'FSTYPE', dir], { encoding: 'utf8' }).stdout.trim();
}

describe('bench withLoopFs', () => {
  const kinds: LoopFsType[] = ['btrfs', 'xfs', 'ext4'];
  for (const kind of kinds) {
    loopFsTest(kind)(`mounts ${kind} and removes it afterwards`, async () => {
      let mp = '';
      await withLoopFs({ type: kind, sizeBytes: 1 }, async (fs) => {
        mp = fs.mountPoint;
        expect(fstypeOf(mp)).toBe(kind);
        writeFileSync(join(mp, 'a'), 'x'.repeat(100000));
        if (kind === 'xfs') {
          const r = spawnSync('cp', ['--reflink=always', join(mp, 'a'), join(mp, 'b')]);
          expect(r.status).toBe(0);
        }
      });
      expect(fstypeOf(mp)).toBe('');
      expect(existsSync(dirname(mp))).toBe(false);
      expect(pendingCleanups()).toBe(0);
    });
  }

  loopFsTest('btrfs')('unmounts and removes everything when the body throws', async () => {
    let mp = '';
    await expect(
      withLoopFs({ type: 'btrfs', sizeBytes: 128 << 20 }, async (fs) => {
        mp = fs.mountPoint;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(mp).not.toBe('');
    expect(fstypeOf(mp)).toBe('');
    expect(existsSync(dirname(mp))).toBe(false);
    expect(pendingCleanups()).toBe(0);
    expect(spawnSync('losetup', ['-j', join(dirname(mp), 'btrfs.img')], { encoding: 'utf8' }).stdout).toBe('');
  });

  if (process.getuid?.() !== 0) {
    test('is skipped, not crashed, without root', async () => {
      await expect(withLoopFs({ type: 'btrfs', sizeBytes: 1 }, async () => undefined)).rejects.toBeInstanceOf(SkipError);
    });
  }
});

describe('peakRss', () => {
  const script = 'const b = Buffer.alloc(150e6, 1); setTimeout(() => process.exit(b[0] === 1 ? 3 : 0), 150)';

  it.each([false, true])('measures a child that touches 150 MB (poll only: %s)', async (forcePoll) => {
    const r = await peakRss(process.execPath, ['-e', script], { forcePoll });
    expect(r.code).toBe(3);
    expect(r.peakRssBytes).toBeGreaterThan(150e6);
    expect(r.peakRssBytes).toBeLessThan(400e6);
    expect(r.seconds).toBeGreaterThan(0.1);
    if (forcePoll) expect(r.method).toBe('vmhwm-poll');
  });

  it('reports a failing command instead of throwing', async () => {
    const r = await peakRss(process.execPath, ['-e', 'console.error("nope"); process.exit(2)']);
    expect(r.code).toBe(2);
    expect(r.stderrTail).toContain('nope');
  });
});

describe('peakRssPipe', () => {
  const writer = [process.execPath, '-e', 'const b = Buffer.alloc(120e6, 1); process.stdout.write(b.subarray(0, 1e6))'];
  const reader = [process.execPath, '-e', 'let n = 0; process.stdin.on("data", (d) => (n += d.length)).on("end", () => console.log(n))'];

  it.each([false, true])('measures both ends of a pipe and returns the reader output (poll only: %s)', async (forcePoll) => {
    const r = await peakRssPipe(writer, reader, { forcePoll });
    expect(r.stdout.trim()).toBe('1000000');
    expect(r.peakRssBytes[0]).toBeGreaterThan(120e6);
    expect(r.peakRssBytes[1]).toBeLessThan(120e6);
    if (forcePoll) expect(r.method).toBe('vmhwm-poll');
  });

  it.each([false, true])('throws a CommandError naming the tool when either end fails (poll only: %s)', async (forcePoll) => {
    await expect(peakRssPipe(writer, [process.execPath, '-e', 'process.exit(5)'], { tool: 'ferry', forcePoll })).rejects.toMatchObject({
      name: 'CommandError',
      tool: 'ferry',
    });
  });
});
