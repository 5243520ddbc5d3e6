/**
 * Core pinning (`taskset`, util-linux) and a process's CPU time from `/proc/<pid>/stat`, for measuring a server
 * from outside its process: what it spends in every thread (JIT, GC, libuv), not only what it reports itself.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

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

/** utime + stime of a process, all threads, in microseconds. */
export function procCpuMicros(pid: number): number {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces; the fields after it are space-separated.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clockTicks;
}
