/**
 * A private redis-server per test file: its own free port on 127.0.0.1, no persistence, killed at teardown.
 * Never the machine's shared Redis on 6379. Tests can stop, restart and pause it to play outages.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Teardown } from './teardown.js';
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

export interface RedisOptions {
  /** Keep the data across stop()/start(): an append-only file fsynced on every write. */
  persist?: boolean;
}

/** Starts a private redis-server for this test (or file) and kills it in t.teardown. */
export async function startRedis(t: Teardown, opts: RedisOptions = {}): Promise<RedisServer> {
  const persist = opts.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  return startProcess(t, 'redis-server', (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persist, '--dir', dir]);
}

/**
 * One redis process (server or sentinel) on a free port: `args` builds its command line for a port and a
 * private directory. A port free a moment ago may be taken by the time redis binds it: it tries a few.
 */
async function startProcess(
  t: Teardown,
  name: 'redis-server',
  args: (port: number, dir: string) => string[],
  opts: { portOk?: (port: number) => Promise<boolean>; ready?: (port: number) => Promise<void> } = {},
): Promise<RedisServer> {
  const binary = findExecutable(name);
  if (!binary) throw new Error(redisMissingReason() ?? 'redis-server not found');
  const dir = await mkdtemp(join(tmpdir(), 'bff-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;

  async function launch(): Promise<void> {
    const proc = spawn(binary!, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    let output = '';
    proc.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    proc.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code, signal) => reject(new Error(`redis on port ${port} exited (${code ?? signal}): ${output.trim().slice(-500)}`))),
    );
    exited.catch(() => undefined);
    child = proc;
    await Promise.race([(opts.ready ?? ((p) => waitForPong(p, STARTUP_WAIT_MS)))(port), exited]);
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await gone;
  }

  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    if (opts.portOk && !(await opts.portOk(port))) continue;
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
      if (child) throw new Error('redis is already running');
      await launch();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}

export interface RedisClusterSetup {
  /** Every node, masters first (masters[i]'s replica, if any, is replicas[i]). */
  readonly masters: RedisServer[];
  readonly replicas: RedisServer[];
  /** Seed URLs for the gateway (every node). */
  readonly nodes: string[];
  /** The node that now serves `key`'s slot as master (asks the cluster, so it holds after a failover). */
  masterFor(key: string): Promise<RedisServer>;
  /** Waits until every slot has a master that answers (after a failover or a restart). */
  waitHealthy(timeoutMs?: number): Promise<void>;
}

/**
 * A real Redis Cluster: `masters` masters (at least 3) with `replicasPerMaster` replicas each, slots spread by
 * redis-cli --cluster create. A node failure is noticed after 1 s (cluster-node-timeout), so a replica takes
 * over a killed master within a few seconds.
 */
export async function startRedisCluster(t: Teardown, opts: { masters?: number; replicasPerMaster?: 0 | 1 } = {}): Promise<RedisClusterSetup> {
  const masterCount = opts.masters ?? 3;
  const replicasPer = opts.replicasPerMaster ?? 0;
  const cli = findExecutable('redis-cli');
  if (!cli) throw new Error('redis-cli not found');
  const nodeArgs = (port: number, dir: string) => [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000',
    '--cluster-replica-validity-factor', '0',
  ];
  // The cluster bus listens on port + 10000.
  const busFree = async (port: number) => port + 10_000 < 65_536 && (await portFree(port + 10_000));
  const all: RedisServer[] = [];
  for (let i = 0; i < masterCount * (1 + replicasPer); i += 1) all.push(await startProcess(t, 'redis-server', nodeArgs, { portOk: busFree }));
  const masters = all.slice(0, masterCount);
  const replicas = all.slice(masterCount);
  await run(cli, ['--cluster', 'create', ...all.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicasPer), '--cluster-yes']);
  const byPort = new Map(all.map((n) => [n.port, n]));

  /** The slot ranges of the masters that are up, as [start, end, port], from the first node that answers. */
  async function slots(): Promise<Array<[number, number, number]>> {
    for (const node of all) {
      const text = await run(cli!, ['-p', String(node.port), 'CLUSTER', 'NODES'], 2_000).catch(() => '');
      const ranges: Array<[number, number, number]> = [];
      // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
      for (const line of text.split('\n')) {
        const [, address, flags, , , , , link, ...ranges_] = line.trim().split(' ');
        if (!address || !flags || !flags.split(',').includes('master') || flags.includes('fail') || link !== 'connected') continue;
        const port = Number(address.split('@')[0]!.split(':').pop());
        for (const range of ranges_) {
          if (range.startsWith('[')) continue;
          const [start, end = start] = range.split('-').map(Number) as [number, number?];
          ranges.push([start, end, port]);
        }
      }
      if (ranges.length > 0) return ranges;
    }
    throw new Error('no cluster node answered CLUSTER NODES');
  }

  async function keySlot(key: string): Promise<number> {
    for (const node of all) {
      const out = await run(cli!, ['-p', String(node.port), 'CLUSTER', 'KEYSLOT', key], 2_000).catch(() => '');
      if (out.trim() !== '') return Number(out.trim());
    }
    throw new Error('no cluster node answered CLUSTER KEYSLOT');
  }

  async function waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let ok = false;
      try {
        const ranges = await slots();
        const covered = ranges.reduce((n, [a, b]) => n + (b - a + 1), 0);
        const states = await Promise.all(
          [...new Set(ranges.map(([, , p]) => p))].map((p) => run(cli!, ['-p', String(p), 'CLUSTER', 'INFO'], 2_000).catch(() => '')),
        );
        ok = covered === 16_384 && states.every((s) => s.includes('cluster_state:ok'));
      } catch {
        ok = false;
      }
      if (ok) return;
      if (Date.now() >= deadline) throw new Error('the cluster did not become healthy');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  await waitHealthy();
  return {
    masters,
    replicas,
    nodes: all.map((n) => n.url),
    async masterFor(key: string) {
      const slot = await keySlot(key);
      const range = (await slots()).find(([start, end]) => slot >= start && slot <= end);
      const node = range && byPort.get(range[2]);
      if (!node) throw new Error(`no master for slot ${slot}`);
      return node;
    },
    waitHealthy,
  };
}

export interface RedisSentinelSetup {
  readonly master: RedisServer;
  /** The first replica (the one promoted when it is the only one). */
  readonly replica: RedisServer;
  /** Every replica the set-up started with. */
  readonly replicas: RedisServer[];
  readonly sentinels: RedisServer[];
  /** The Sentinels' URLs, for the gateway's `nodes`. */
  readonly nodes: string[];
  readonly name: string;
  /** The port Sentinel now names as the primary (changes after a failover). */
  primaryPort(): Promise<number>;
  /** Waits until the Sentinels name the server on `port` as the primary; resolves with the time that was seen. */
  waitForPrimary(port: number, timeoutMs?: number): Promise<number>;
  /** Runs a command on every Sentinel (redis-cli arguments), e.g. an ACL change; resolves with each one's output. */
  each(...args: string[]): Promise<string[]>;
  /** A coordinated failover (SENTINEL FAILOVER, asked of the first Sentinel): the replica is promoted. */
  failover(): Promise<void>;
  /** The server Sentinel now names as the primary. */
  primary(): Promise<RedisServer>;
  /**
   * Waits until every Sentinel names the same primary, that server answers as one, and the other is its
   * replica, in sync and known to every Sentinel (after start-up, and after a failover before the next).
   */
  settled(timeoutMs?: number): Promise<void>;
}

/**
 * A real Sentinel set-up: a primary, one replica (or two), and `sentinels` Sentinels (quorum: a majority) that
 * declare the primary down after 1 s and promote a replica. With two replicas, the one not promoted follows the
 * new primary at once, so the set-up has a replica again right after a failover, as production set-ups do.
 */
export async function startRedisSentinel(t: Teardown, opts: { sentinels?: 1 | 3; replicas?: 1 | 2 } = {}): Promise<RedisSentinelSetup> {
  const cli = findExecutable('redis-cli');
  if (!cli) throw new Error('redis-cli not found');
  const name = 'bffprimary';
  // A replica (a demoted primary too) is sent the data set at once, not after the default 5 s of waiting for others.
  const base = (port: number, dir: string) => [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--repl-diskless-sync-delay', '0',
  ];
  const master = await startProcess(t, 'redis-server', base);
  const replicas: RedisServer[] = [];
  for (let i = 0; i < (opts.replicas ?? 1); i += 1) {
    replicas.push(await startProcess(t, 'redis-server', (port, dir) => [...base(port, dir), '--replicaof', '127.0.0.1', String(master.port)]));
  }
  const replica = replicas[0]!;
  const servers = [master, ...replicas];
  const count = opts.sentinels ?? 1;
  const quorum = Math.floor(count / 2) + 1;
  const sentinels: RedisServer[] = [];
  for (let i = 0; i < count; i += 1) {
    sentinels.push(
      await startProcess(t, 'redis-server', (port, dir) => {
        // Sentinel rewrites its config file: each gets its own, written before it starts.
        const file = join(dir, `sentinel-${port}.conf`);
        writeFileSync(
          file,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${name} 127.0.0.1 ${master.port} ${quorum}`,
            `sentinel down-after-milliseconds ${name} 1000`,
            `sentinel failover-timeout ${name} 5000`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
        );
        return [file, '--sentinel'];
      }),
    );
  }
  const sentinelsKnowEachOther = async (): Promise<boolean> => {
    const peers = await Promise.all(sentinels.map((s) => run(cli, ['-p', String(s.port), 'SENTINEL', 'sentinels', name], 2_000).catch(() => '')));
    return peers.every((p) => (p.match(/^name$/gm) ?? []).length === count - 1);
  };
  const named = async (s: RedisServer): Promise<number> => {
    const out = await run(cli, ['-p', String(s.port), 'SENTINEL', 'get-master-addr-by-name', name], 2_000).catch(() => '');
    return Number(out.split('\n')[1]?.trim()) || 0;
  };
  const setup: RedisSentinelSetup = {
    master,
    replica,
    replicas,
    sentinels,
    nodes: sentinels.map((s) => s.url),
    name,
    async primaryPort() {
      for (const s of sentinels) {
        const port = await named(s);
        if (port) return port;
      }
      throw new Error('no sentinel named a primary');
    },
    async waitForPrimary(port, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if ((await setup.primaryPort().catch(() => 0)) === port) return Date.now();
        if (Date.now() >= deadline) throw new Error(`the Sentinels did not name port ${port} as the primary`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    each(...args) {
      return Promise.all(sentinels.map((s) => run(cli, ['-p', String(s.port), ...args], 2_000)));
    },
    async failover() {
      const out = await run(cli, ['-p', String(sentinels[0]!.port), 'SENTINEL', 'FAILOVER', name], 2_000);
      if (out.trim() !== 'OK') throw new Error(`SENTINEL FAILOVER: ${out.trim()}`);
    },
    async primary() {
      const port = await setup.primaryPort();
      const server = servers.find((s) => s.port === port);
      if (!server) throw new Error(`Sentinel names port ${port}, which is none of the servers`);
      return server;
    },
    async settled(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ports = await Promise.all(sentinels.map(named));
        const primaryPort = ports[0]!;
        const others = servers.filter((s) => s.port !== primaryPort);
        if (others.length === replicas.length && ports.every((p) => p === primaryPort)) {
          const role = await run(cli, ['-p', String(primaryPort), 'INFO', 'replication'], 2_000).catch(() => '');
          const infos = await Promise.all(others.map((o) => run(cli, ['-p', String(o.port), 'INFO', 'replication'], 2_000).catch(() => '')));
          const known = await Promise.all(sentinels.map((s) => run(cli, ['-p', String(s.port), 'SENTINEL', 'replicas', name], 2_000).catch(() => '')));
          if (
            role.includes('role:master')
            && infos.every((info) => info.includes(`master_port:${primaryPort}`) && info.includes('master_link_status:up'))
            && known.every((k) => others.every((o) => k.includes(String(o.port))))
            && (await sentinelsKnowEachOther())
          ) return;
        }
        if (Date.now() >= deadline) throw new Error('the Sentinel set-up did not settle');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
  };
  // Ready once the replica is in sync and every Sentinel knows of it and of the other Sentinels (a failover
  // needs a majority of them to agree).
  await setup.settled();
  return setup;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Runs a command and resolves with its stdout; rejects on a non-zero exit or after timeoutMs. */
function run(binary: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${binary} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
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
