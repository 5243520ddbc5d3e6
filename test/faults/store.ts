/**
 * The session store under test and the faults it can suffer: one redis-server (paused with SIGSTOP, or every
 * client connection dropped with CLIENT KILL), or a Sentinel set-up (a primary, a replica, three Sentinels) whose
 * primary is paused until the Sentinels promote the replica and then resumed, so that it takes the gateways'
 * writes until it is demoted and those writes are discarded.
 */
import { Redis } from 'ioredis';
import { sleep } from '../../bench/report.js';
import { startRedis, startRedisSentinel, type RedisSentinelSetup, type RedisServer } from '../helpers/redis.js';
import type { Teardown } from '../helpers/teardown.js';

export interface FaultyStore {
  /** The gateway's `session.store` (raw configuration). */
  readonly config: Record<string, unknown>;
  /** Freezes the (primary) server for `ms`, then lets it go on. */
  pause(ms: number): Promise<void>;
  /** Closes every client connection of the (primary) server from a connection of its own. */
  dropConnections(): Promise<number>;
  /**
   * Sentinel only: pauses the primary until the Sentinels name the replica, holds it `extraMs` longer, resumes it
   * (a primary that does not know it was replaced) and waits until the set-up has settled again. Resolves with the
   * moments of the promotion and of the resumption (epoch ms).
   */
  failover?(extraMs: number): Promise<{ promotedAt: number; resumedAt: number }>;
  /** Undoes whatever a fault left behind (a paused server resumed, a failover settled). */
  heal(): Promise<void>;
}

const KEY_PREFIX = 'bff-faults:';
/** Generous: the Sentinels notice a frozen primary after 1 s and promote within a few more. */
const PROMOTION_BOUND_MS = 30_000;

export async function singleRedis(t: Teardown): Promise<FaultyStore> {
  const server = await startRedis(t);
  const paused = new Set<RedisServer>();
  return {
    config: { type: 'redis', url: server.url, keyPrefix: KEY_PREFIX },
    pause: (ms) => pauseFor(server, ms, paused),
    dropConnections: () => dropClients(server),
    async heal() {
      for (const s of paused) s.resume();
      paused.clear();
    },
  };
}

export async function sentinelRedis(t: Teardown): Promise<FaultyStore> {
  // Two replicas, as production set-ups have: after a failover the new primary has a replica to confirm writes at once.
  const setup = await startRedisSentinel(t, { sentinels: 3, replicas: 2 });
  const paused = new Set<RedisServer>();
  return {
    config: { type: 'redis', sentinel: { nodes: setup.nodes, name: setup.name }, keyPrefix: KEY_PREFIX },
    pause: async (ms) => pauseFor(await setup.primary(), ms, paused),
    dropConnections: async () => dropClients(await setup.primary()),
    failover: (extraMs) => failover(setup, extraMs, paused),
    async heal() {
      for (const s of paused) s.resume();
      paused.clear();
      await setup.settled(PROMOTION_BOUND_MS);
    },
  };
}

async function pauseFor(server: RedisServer, ms: number, paused: Set<RedisServer>): Promise<void> {
  paused.add(server);
  server.pause();
  await sleep(ms);
  server.resume();
  paused.delete(server);
}

/** CLIENT KILL TYPE normal skips the connection that sends it: every other client is cut off. */
async function dropClients(server: RedisServer): Promise<number> {
  const admin = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    return Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'normal'));
  } finally {
    admin.disconnect();
  }
}

async function failover(setup: RedisSentinelSetup, extraMs: number, paused: Set<RedisServer>): Promise<{ promotedAt: number; resumedAt: number }> {
  const old = await setup.primary();
  paused.add(old);
  old.pause();
  const deadline = Date.now() + PROMOTION_BOUND_MS;
  while ((await setup.primaryPort().catch(() => old.port)) === old.port) {
    if (Date.now() >= deadline) throw new Error('the Sentinels did not promote the replica');
    await sleep(50);
  }
  const promotedAt = Date.now();
  await sleep(extraMs);
  old.resume();
  paused.delete(old);
  const resumedAt = Date.now();
  await setup.settled(PROMOTION_BOUND_MS);
  return { promotedAt, resumedAt };
}
