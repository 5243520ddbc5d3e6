/**
 * Core pinning (`taskset`, util-linux) and a process's CPU time from `/proc`, for measuring a server
 * from outside its process: what it spends in every thread (JIT, GC, libuv), not only what it reports itself.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** `taskset` is there and the machine has at least two cores to split. */
export function canPin(): boolean {
  return process.platform === 'linux' && !spawnSync('taskset', ['-V'], { stdio: 'ignore' }).error;
}

/** Pins every thread of `pid` to the given cores (a list such as "0" or "0,1"). */
export function pin(pid: number, cores: string): void {
  const r = spawnSync('taskset', ['-a', '-cp', cores, String(pid)], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`taskset -a -cp ${cores} ${pid} failed (${r.status})`);
}

/**
 * CPU time a process has used, all threads, in microseconds: the on-CPU nanoseconds of each thread from
 * `/proc/<pid>/task/<tid>/schedstat` where the kernel has them, otherwise utime + stime from `/proc/<pid>/stat`
 * (counted in clock ticks, 10 ms each, too coarse for a short run at a low rate). A server's threads live as
 * long as it does, so a sum over those alive at each reading loses nothing between two readings.
 */
export function procCpuMicros(pid: number): number {
  const bySchedstat = schedstatMicros(pid);
  if (bySchedstat !== undefined) return bySchedstat;
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces; the fields after it are space-separated.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clockTicks;
}

function schedstatMicros(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let nanos = 0;
  for (const tid of tids) {
    try {
      nanos += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return Number.isFinite(nanos) && nanos > 0 ? nanos / 1000 : undefined;
}
