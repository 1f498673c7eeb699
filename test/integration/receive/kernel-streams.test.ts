/**
 * Kernel streams (test/fixtures/streams, made by `btrfs send`) received by
 * ferry onto ext4, XFS (reflink) and tmpfs, compared with what the real
 * `btrfs receive` makes of the same streams on btrfs: with treecmp.py and
 * with our own comparison.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs, LoopFsKind } from '../../helpers/loopfs';
import { ferry } from '../../helpers/cli';
import { FIXTURE_DIR } from '../../helpers/streams';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const SGI_ACL = /^trusted\.SGI_ACL_(FILE|DEFAULT)$/;
const S = (n: string) => path.join(FIXTURE_DIR, `${n}.stream`);

describeLoopFs('btrfs', 'kernel streams received by ferry match btrfs receive', (btrfs) => {
  let truth: string;
  beforeAll(() => {
    truth = path.join(btrfs().dir, 'truth');
    fs.mkdirSync(truth);
    for (const f of ['full-v1', 'incr-v1']) {
      const r = spawnSync('btrfs', ['receive', '-f', S(f), truth], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`btrfs receive ${f}: ${r.stderr}`);
    }
  });

  const kinds: Array<[LoopFsKind, number]> = [
    ['ext4', 256],
    ['xfs', 320],
    ['tmpfs', 256],
  ];
  for (const [kind, size] of kinds) {
    describeLoopFs(
      kind,
      `onto ${kind}`,
      (mnt) => {
        const cases: Array<[string, string[]]> = [
          ['v1', ['full-v1', 'incr-v1']],
          ['v2', ['full-v2', 'incr-v2']],
          ['v2 compressed (ENCODED_WRITE)', ['full-v2c', 'incr-v2c']],
          ['concatenated (send snap1 snap2)', ['multi-v1']],
          ['send -e', ['multi-e-v1']],
        ];
        for (const [label, files] of cases) {
          it(`${label}: snap1 and snap2 equal the btrfs result`, () => {
            const target = path.join(mnt().dir, label.replace(/\W+/g, '-'));
            const names: string[] = [];
            for (const f of files) {
              const r = ferry(['receive', target, '-f', S(f), '--allow-devices', '--allow-setuid']);
              expect(r.stderr).toBe('');
              expect(r.code).toBe(0);
              names.push(...r.stdout.toString().trim().split('\n'));
            }
            expect(names).toEqual(['snap1', 'snap2']);
            for (const snap of names) {
              const a = path.join(truth, snap);
              const b = path.join(target, snap);
              // The root's mtime depends on receive time when the stream sends no UTIMES for it (spec 3.7).
              const t = treecmp(a, b, { farmSharedOk: true, xfsAclOk: kind === 'xfs' });
              expect(t.differences.filter((l) => !/^mtime differs: \.:/.test(l))).toEqual([]);
              expect(compareTrees(a, b, { noRootMtime: true, ignoreXattr: kind === 'xfs' ? SGI_ACL : undefined })).toEqual([]);
            }
          });
        }
      },
      size,
    );
  }
}, 512);
