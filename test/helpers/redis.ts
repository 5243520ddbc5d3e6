/**
 * A private redis-server per test file: its own free port on 127.0.0.1, no persistence, killed at teardown.
 * Never the machine's shared Redis on 6379. Tests can stop, restart and pause it to play outages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from '../../demo/free-port.js';

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Kills the server (SIGKILL, like a crash) and waits until it is gone; every key is lost. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until PING answers. */
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open but nothing answers. */
  pause(): void;
  resume(): void;
}

const STARTUP_WAIT_MS = 10_000;

/**
 * Why Redis-backed tests cannot run on this machine, or undefined when they can. Under CI=true a missing
 * redis-server is an error, not a skip: CI must exercise the shared store.
 */
export function redisMissingReason(): string | undefined {
  if (findExecutable('redis-server')) return undefined;
  const reason = 'redis-server is not installed (Debian/Ubuntu: apt-get install redis-server); Redis store tests cannot run';
  if (process.env.CI === 'true') throw new Error(`${reason}. CI=true requires them.`);
  return reason;
}

/** Starts a private redis-server for this test (or file) and kills it in t.teardown. */
export async function startRedis(t: Test): Promise<RedisServer> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error(redisMissingReason() ?? 'redis-server not found');
  const dir = await mkdtemp(join(tmpdir(), 'bff-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;

  async function launch(): Promise<void> {
    const proc = spawn(binary!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    proc.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code, signal) => reject(new Error(`redis-server on port ${port} exited (${code ?? signal}): ${output.trim().slice(-500)}`))),
    );
    exited.catch(() => undefined);
    child = proc;
    await Promise.race([waitForPong(port, STARTUP_WAIT_MS), exited]);
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await gone;
  }

  // A port free a moment ago may be taken by the time redis binds it: try a few.
  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await stop();
      if (attempt === 5) throw err;
    }
  }
  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    async start() {
      if (child) throw new Error('redis-server is already running');
      await launch();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Sends PING over a raw socket until +PONG comes back (no client library, no reconnect noise). */
async function waitForPong(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pingOnce(port)) return;
    if (Date.now() >= deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
