import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { CpuProfile, describeProfiles, foldProfile, foldProfileDir, phaseOfFrame } from '../../../bench/lib/profile';

const SRC = 'file:///repo/dist/src';

/** A profile from (stack, microseconds) pairs; a stack lists frames root-first as "url fn". */
function profile(samples: Array<[string[], number]>): CpuProfile {
  const nodes: CpuProfile['nodes'] = [{ id: 1, callFrame: { functionName: '(root)', url: '' }, children: [] }];
  const ids: number[] = [];
  for (const [stack] of samples) {
    let parent = nodes[0];
    for (const frame of stack) {
      const [url, functionName] = frame.split(' ');
      const found = (parent.children ?? []).map((c) => nodes.find((n) => n.id === c)!).find((n) => n.callFrame.url === url && n.callFrame.functionName === functionName);
      if (found) {
        parent = found;
        continue;
      }
      const n = { id: nodes.length + 1, callFrame: { functionName, url }, children: [] as number[] };
      nodes.push(n);
      parent.children!.push(n.id);
      parent = n;
    }
    ids.push(parent.id);
  }
  // timeDeltas[i + 1] is how long sample i lasted.
  const deltas = [0, ...samples.map(([, us]) => us)];
  const total = samples.reduce((a, [, us]) => a + us, 0);
  return { nodes, startTime: 0, endTime: total, samples: ids, timeDeltas: deltas.slice(0, samples.length) };
}

describe('phaseOfFrame', () => {
  it('maps ferry source files to phases and passes shared helpers to their caller', () => {
    expect(phaseOfFrame({ url: `${SRC}/diff/walker.js`, functionName: 'walkTree' })).toBe('walk');
    expect(phaseOfFrame({ url: `${SRC}/diff/generations.js`, functionName: 'hashBlocks' })).toBe('hash');
    expect(phaseOfFrame({ url: `${SRC}/replicate/send.js`, functionName: 'read' })).toBe('read data');
    expect(phaseOfFrame({ url: `${SRC}/replicate/send.js`, functionName: 'filePaths' })).toBe('plan');
    expect(phaseOfFrame({ url: `${SRC}/receive/applier.js`, functionName: 'apply' })).toBe('apply');
    expect(phaseOfFrame({ url: `${SRC}/sys/linux.js`, functionName: 'cloneFile' })).toBeNull();
    expect(phaseOfFrame({ url: `${SRC}/stream/crc32c.js`, functionName: 'update' })).toBeNull();
    expect(phaseOfFrame({ url: `${SRC}/sys/linux.js`, functionName: 'syncfs' })).toBe('fsync');
    expect(phaseOfFrame({ url: '', functionName: '(idle)' })).toBe('idle');
    expect(phaseOfFrame({ url: '', functionName: '(garbage collector)' })).toBe('gc');
    expect(phaseOfFrame({ url: 'file:///repo/node_modules/ssh2/lib/client.js', functionName: 'x' })).toBe('ssh (ssh2)');
  });
});

describe('foldProfile', () => {
  it('charges each sample to the nearest phase above it and adds the time up', () => {
    const p = profile([
      [[`${SRC}/cli/main.js main`, `${SRC}/diff/walker.js walkTree`, 'node:fs lstatSync'], 3000],
      [[`${SRC}/cli/main.js main`, `${SRC}/diff/generations.js hashBlocks`, `${SRC}/sys/linux.js fiemap`], 5000],
      [[`${SRC}/receive/receiver.js commit`, `${SRC}/sys/linux.js syncfs`], 2000],
      [[`${SRC}/stream/decoder.js push`, `${SRC}/stream/crc32c.js update`], 1000],
      [['(idle)'].map((f) => ` ${f}`), 4000],
      [[`${SRC}/cli/main.js main`], 1000],
    ]);
    const f = foldProfile(p);
    expect(f.wallSeconds).toBeCloseTo(0.016, 6);
    expect(f.phases).toEqual({ walk: 0.003, hash: 0.005, fsync: 0.002, decode: 0.001, idle: 0.004, other: 0.001 });
  });

  it('reads every profile in a directory and describes the biggest phases', () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'ferry-prof-test-'));
    try {
      writeFileSync(join(dir, 'a.cpuprofile'), JSON.stringify(profile([[[`${SRC}/diff/walker.js w`], 2_000_000]])));
      writeFileSync(join(dir, 'b.cpuprofile'), JSON.stringify(profile([[[`${SRC}/diff/planner.js p`], 1_000_000]])));
      writeFileSync(join(dir, 'ignored.txt'), 'x');
      // Node's own names: the main thread (thread 0) counts, a worker thread does not.
      writeFileSync(join(dir, 'CPU.20261122.082740.4242.0.001.cpuprofile'), JSON.stringify(profile([[[`${SRC}/diff/generations.js h`], 500_000]])));
      writeFileSync(join(dir, 'CPU.20261122.082740.4242.1.002.cpuprofile'), JSON.stringify(profile([[['(program)'], 9_000_000]])));
      const f = foldProfileDir(dir)!;
      expect(f.phases).toEqual({ walk: 2, plan: 1, hash: 0.5 });
      expect(describeProfiles({ snapshot: f })).toBe('snapshot 3.50 s (walk 2.00, plan 1.00, hash 0.50)');
      expect(foldProfileDir(join(dir, 'missing'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
