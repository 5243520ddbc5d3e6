import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts `idporten-bff ARGS` (src/main.ts through tsx) with only PATH and `env` in its environment (and, under the
 * test runner, the variables by which it records the child's coverage), and `stdin`
 * written to its standard input (closed at once when there is none). `done` resolves once the process has
 * exited and its output streams have closed ('close', not 'exit': output can still be in flight at 'exit').
 */
export function spawnCli(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): { child: ChildProcessByStdio<Writable | null, Readable, Readable>; done: Promise<CliRun>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...coverageEnv(), ...opts.env },
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  const done = new Promise<CliRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, output: () => stdout + stderr };
}

/** How a run ended, for an assertion's message: the status, or the signal, and what it said on stderr. */
export function describeRun(run: CliRun): string {
  const ended = run.signal ? `killed by ${run.signal}` : `exit ${String(run.code)}`;
  return run.stderr.trim() === '' ? ended : `${ended}; stderr: ${run.stderr.trim().slice(0, 2000)}`;
}

/** The test runner's variables that make a child process record its coverage too (`_TAPJS_PROCESSINFO_*`, NODE_V8_COVERAGE). */
function coverageEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => /^(_TAPJS_PROCESSINFO_|NODE_V8_COVERAGE$)/.test(e[0]) && e[1] !== undefined));
}
