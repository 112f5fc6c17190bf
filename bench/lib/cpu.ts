// CPU time of other processes (Linux /proc), to show how the shared cores were spent in a run.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** User + system CPU seconds a process has used so far; NaN if it cannot be read (gone, not Linux). */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/**
 * Measures the CPU a set of processes used since the meter started: usedSeconds() the CPU
 * seconds so far, stop() the cores (1.0 = one core busy).
 */
export function cpuMeter(pids: () => (number | undefined)[]): { usedSeconds(): number; stop(): number } {
  const ids = pids();
  const before = ids.map(processCpuSeconds);
  const startedAt = performance.now();
  const usedSeconds = (): number => ids.reduce((sum: number, pid, i) => sum + processCpuSeconds(pid) - before[i]!, 0);
  return {
    usedSeconds,
    stop() {
      return usedSeconds() / ((performance.now() - startedAt) / 1000);
    },
  };
}

/** CPU seconds used by this process's children that have exited and been waited for (redis-benchmark runs). */
export function exitedChildrenCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all time but idle and iowait); NaN if it cannot be read. */
export function machineBusySeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/**
 * Measures the cores that everything else on the machine used between start and stop: all busy
 * time but that of `pids`, this process and its children that exited meanwhile (redis-benchmark
 * runs). Other work shows here; a benchmark on a shared machine reports it beside its numbers.
 */
export function otherCpuMeter(pids: () => (number | undefined)[]): { stop(): number } {
  const own = (): number => {
    const self = process.cpuUsage();
    return pids().reduce((sum: number, pid) => sum + (processCpuSeconds(pid) || 0), 0) + (self.user + self.system) / 1e6 + exitedChildrenCpuSeconds();
  };
  const machineBefore = machineBusySeconds();
  const ownBefore = own();
  const startedAt = performance.now();
  return {
    stop() {
      const seconds = (performance.now() - startedAt) / 1000;
      return Math.max(0, machineBusySeconds() - machineBefore - (own() - ownBefore)) / seconds;
    },
  };
}
