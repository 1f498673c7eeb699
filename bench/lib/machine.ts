/**
 * What machine a benchmark ran on: CPU, memory, kernel, btrfs-progs, Node.
 * Ratios are only comparable within one run on one machine; this is recorded
 * so a reader can tell which machine a RESULTS.md came from.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  totalMemBytes: number;
  uname: string;
  btrfsProgs: string;
  node: string;
  hostname: string;
  /** 1-, 5- and 15-minute load averages when the run started. */
  loadAvg: number[];
}

function firstLineOf(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status !== 0) return undefined;
  const line = (r.stdout || r.stderr).split('\n')[0].trim();
  return line || undefined;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() || 'unknown',
    cpus: cpus.length,
    totalMemBytes: os.totalmem(),
    uname: firstLineOf('uname', ['-srvm']) ?? `${os.type()} ${os.release()} ${os.arch()}`,
    btrfsProgs: firstLineOf('btrfs', ['--version']) ?? 'not installed',
    node: process.version,
    hostname: os.hostname(),
    loadAvg: os.loadavg(),
  };
}

export function describeMachine(m: MachineInfo): string[] {
  return [
    `CPU: ${m.cpuModel}, ${m.cpus} logical CPUs`,
    `Memory: ${(m.totalMemBytes / 2 ** 30).toFixed(1)} GiB`,
    `Kernel: ${m.uname}`,
    `btrfs-progs: ${m.btrfsProgs}`,
    `Node: ${m.node}`,
    `Load average at start: ${m.loadAvg.map((l) => l.toFixed(2)).join(', ')}`,
  ];
}

/**
 * A warning when other work was running as the benchmark started (a load
 * above half the CPUs): on a small machine that alone can move a throughput
 * by a third. A benchmark run just before counts too.
 */
export function busyWarning(m: MachineInfo): string | undefined {
  const busy = m.loadAvg[0];
  return busy > m.cpus / 2
    ? `the machine was busy (1-minute load ${busy.toFixed(2)} on ${m.cpus} CPUs) when the run started; numbers may be low and noisy`
    : undefined;
}
