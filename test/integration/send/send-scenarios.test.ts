/**
 * ferry's own sender, end to end through the real binary: for every scenario
 * (send-stream.md section 7 and ferry's own), on an ext4 volume (index
 * method) and an XFS volume (reflink method): init, parent script, snapshot,
 * child script, snapshot, `ferry send` full and incremental, then receive
 * both streams with the real `btrfs receive` (on btrfs) and with
 * `ferry receive` (on the volume's filesystem), and compare each result with
 * the live tree using treecmp.py and our own comparison.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeLoopFs, LoopFs, LoopFsKind } from '../../helpers/loopfs';
import { ferry } from '../../helpers/cli';
import { SCENARIOS, Scenario } from '../../helpers/scenarios';
import { compareTrees, treecmp } from '../../helpers/tree-compare';

const SGI_ACL = /^trusted\.SGI_ACL_(FILE|DEFAULT)$/;
const have = (cmd: string) => spawnSync('bash', ['-c', `command -v ${cmd}`]).status === 0;

function usable(s: Scenario, kind: LoopFsKind): boolean {
  for (const n of s.needs ?? []) {
    if (n === 'btrfs') return false;
    if (n === 'reflink' && kind !== 'xfs') return false;
    if (n !== 'reflink' && !have(n)) return false;
  }
  return true;
}

function sh(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`script failed in ${cwd}: ${r.stderr}`);
}

function ok(args: string[]): string {
  const r = ferry(args);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.toString();
}

describeLoopFs(
  'btrfs',
  'ferry send: streams accepted by btrfs receive and ferry receive',
  (btrfs) => {
    const volumes: Array<[LoopFsKind, number]> = [
      ['ext4', 1024],
      ['xfs', 1024],
    ];
    for (const [kind, size] of volumes) {
      describeLoopFs(
        kind,
        `${kind} volume`,
        (mnt: () => LoopFs) => {
          for (const s of SCENARIOS.filter((x) => usable(x, kind))) {
            it(`${s.id}: ${s.title}`, () => {
              const base = path.join(mnt().dir, s.id);
              const vol = path.join(base, 'vol');
              fs.mkdirSync(vol, { recursive: true });
              expect(ok(['init', vol]).trim()).toBe(kind === 'xfs' ? 'reflink' : 'index');
              const full = path.join(base, 'full.stream');
              const incr = path.join(base, 'incr.stream');
              // An index volume's data is the live tree: each snapshot is sent
              // before the next change, as `ferry sync` does.
              sh(s.parent, vol);
              ok(['snapshot', vol, '--name', 'p']);
              ok(['send', `${vol}@p`, '-f', full]);
              sh(s.child, vol);
              ok(['snapshot', vol, '--name', 'c']);
              ok(['send', `${vol}@c`, '-p', `${vol}@p`, '-f', incr]);
              // determinism: the same pair gives the same bytes
              expect(ferry(['send', `${vol}@c`, '-p', `${vol}@p`]).stdout.equals(fs.readFileSync(incr))).toBe(true);

              const truth = path.join(btrfs().dir, `${kind}-${s.id}`);
              fs.mkdirSync(truth);
              for (const f of [full, incr]) {
                const r = spawnSync('btrfs', ['receive', '-f', f, truth], { encoding: 'utf8' });
                expect(r.stderr.replace(/^At (subvol|snapshot) \S+\n/gm, '')).toBe('');
                expect(r.status).toBe(0);
              }
              const target = path.join(base, 'target');
              ok(['receive', target, '-f', full, '--allow-devices', '--allow-setuid']);
              ok(['receive', target, '-f', incr, '--allow-devices', '--allow-setuid']);

              for (const got of [path.join(truth, 'c'), path.join(target, 'c')]) {
                const t = treecmp(vol, got, { farmSharedOk: true, xfsAclOk: kind === 'xfs' });
                expect(t.differences).toEqual([]);
                expect(compareTrees(vol, got, { ignore: ['.ferry'], ignoreXattr: SGI_ACL })).toEqual([]);
              }
              if (kind === 'xfs') {
                // reflink volumes keep a frozen copy of p: both received parents equal it
                const frozen = path.join(vol, '.ferry', 'snapshots', 'p', 'tree');
                for (const got of [path.join(truth, 'p'), path.join(target, 'p')]) {
                  expect(compareTrees(frozen, got, { noRootMtime: true, ignoreXattr: SGI_ACL })).toEqual([]);
                }
              }
            });
          }
        },
        size,
        // ext4 stores xattrs above one block (s7-37's 6 KiB values) only with ea_inode
        kind === 'ext4' ? { mkfsExtra: ['-O', 'ea_inode'] } : {},
      );
    }
  },
  2048,
);
