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
  /** Share of CPU time idle over the second before the run started (0 to 1). */
  cpuIdle: number;
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}

/** Share of CPU time idle over the next `ms` milliseconds (blocks meanwhile). */
function measureIdle(ms: number): number {
  const a = cpuTimes();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = cpuTimes();
  return b.total > a.total ? (b.idle - a.idle) / (b.total - a.total) : 1;
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
    cpuIdle: measureIdle(1000),
  };
}

export function describeMachine(m: MachineInfo): string[] {
  return [
    `CPU: ${m.cpuModel}, ${m.cpus} logical CPUs`,
    `Memory: ${(m.totalMemBytes / 2 ** 30).toFixed(1)} GiB`,
    `Kernel: ${m.uname}`,
    `btrfs-progs: ${m.btrfsProgs}`,
    `Node: ${m.node}`,
    `At start: CPU ${(m.cpuIdle * 100).toFixed(0)}% idle over 1 s; load average ${m.loadAvg.map((l) => l.toFixed(2)).join(', ')}`,
  ];
}

/**
 * A warning when other work was running as the benchmark started (less than
 * 85% of CPU time idle in the second before): on a small machine that alone
 * can halve a throughput.
 */
export function busyWarning(m: MachineInfo): string | undefined {
  return m.cpuIdle < 0.85
    ? `other work was running when the run started (CPU ${(m.cpuIdle * 100).toFixed(0)}% idle on ${m.cpus} CPUs, ` +
        `load average ${m.loadAvg[0].toFixed(2)}); numbers may be low and noisy`
    : undefined;
}
