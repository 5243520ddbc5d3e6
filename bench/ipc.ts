/**
 * Request/answer calls between the bench runner and the processes it forks. Every server under
 * measurement runs in its own process so that the load generator never shares its event loop.
 */
import { fork } from 'node:child_process';
import { createInterface } from 'node:readline';

interface CallMessage {
  id: number;
  method: string;
  params: unknown;
}

interface AnswerMessage {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export type Handlers = Record<string, (params: never) => unknown>;

export interface Child {
  readonly pid: number;
  call<T>(method: string, params?: unknown): Promise<T>;
  /** Asks the child to close its servers and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the child at once (SIGKILL: no cleanup, like a crash or an OOM kill) and waits until it is gone. */
  kill(): Promise<void>;
}

const CALL_TIMEOUT_MS = 120_000;

// oidc-provider warns on every start that it prefers Node 22; the look-alike works on 20 and the line is noise here.
const KNOWN_NOISE = /oidc-provider WARNING: Unsupported runtime/;

/**
 * Forks a TypeScript child (through tsx) with `--expose-gc`, plus `execArgv` (e.g. `--cpu-prof`); its stdout (the
 * gateway's log) is discarded, stderr kept.
 */
export function forkChild(file: URL, opts: { execArgv?: string[] } = {}): Promise<Child> {
  const proc = fork(file, [], {
    execArgv: ['--import', 'tsx', '--expose-gc', ...(opts.execArgv ?? [])],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  if (proc.stderr) {
    createInterface({ input: proc.stderr }).on('line', (line) => {
      if (!KNOWN_NOISE.test(line)) process.stderr.write(`${line}\n`);
    });
  }
  let nextId = 1;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.on('message', (message: AnswerMessage) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(message.error));
  });
  proc.once('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`child ${file.pathname} exited with ${code}`));
    pending.clear();
  });

  const child: Child = {
    pid: proc.pid ?? 0,
    call<T>(method: string, params?: unknown): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${method} did not answer within ${CALL_TIMEOUT_MS} ms`));
        }, CALL_TIMEOUT_MS);
        pending.set(id, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
        proc.send({ id, method, params } satisfies CallMessage);
      });
    },
    async stop(): Promise<void> {
      if (proc.exitCode !== null) return;
      await child.call('close').catch(() => undefined);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    async kill(): Promise<void> {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  return new Promise((resolve, reject) => {
    proc.once('spawn', () => resolve(child));
    proc.once('error', reject);
  });
}

/** Child side: answers calls with the named handler; `close` exits after answering. Dies with its parent. */
export function serveCalls(handlers: Handlers & { close: () => Promise<unknown> }): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: CallMessage) => {
    const handler = handlers[message.method] as ((params: unknown) => unknown) | undefined;
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown call ${message.method}`);
        return handler(message.params);
      })
      .then(
        (result) => reply({ id: message.id, ok: true, result }, message.method === 'close'),
        (err: unknown) => reply({ id: message.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }, false),
      );
  });
}

function reply(answer: AnswerMessage, thenExit: boolean): void {
  process.send?.(answer, undefined, undefined, () => {
    if (thenExit) process.exit(0);
  });
}
