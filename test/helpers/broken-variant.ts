/**
 * Deliberately broken gateways for the fault-injection suite to catch. Chosen by an environment variable read in
 * the gateway's child process (see gateway-process.ts), so that a whole run, its harness unchanged, can be pointed
 * at one:
 *
 * - `lock`: a session lock that excludes nothing, so instances no longer take turns refreshing a session. On
 *   its own it must cost nothing: correctness rests on the store's conditions, not on the lock.
 * - `cas`: the configured Redis store without its conditions — a claim always succeeds, a token update overwrites
 *   whatever version the record holds, a logout deletes whatever it finds — as the write path was before them.
 *   With the lock it breaks where a lease lapses (a frozen Redis, a failover); `lock+cas` breaks everywhere.
 */
import type { AppDeps } from '../../src/app.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/logging.js';
import { createRedisStore } from '../../src/session/redis-store.js';
import type { SessionLock, SessionStore } from '../../src/session/store.js';

export const BROKEN_ENV = 'BFF_TEST_BROKEN';
export const BROKEN_VARIANTS = ['lock', 'cas', 'lock+cas'] as const;
export type BrokenVariant = (typeof BROKEN_VARIANTS)[number];

/** withLock runs fn at once, whoever else is running it. */
export const noLock: SessionLock = {
  withLock: (_id, fn) => fn(new AbortController().signal),
};

/** The store with its compare-and-set and claims taken out: what the record holds is never checked. */
export function unconditional(inner: SessionStore): SessionStore {
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'claim') return async (id: string) => ((await target.get(id)) ? { state: 'claimed' } : { state: 'gone' });
      if (property === 'update') {
        return async (...[id, value, ttlMs, indexKeys, , holder]: Parameters<SessionStore['update']>) => {
          const now = await target.get(id);
          return now ? target.update(id, value, ttlMs, indexKeys, now.version ?? '', holder) : 'gone';
        };
      }
      if (property === 'delete') return (id: string) => target.delete(id);
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The store and lock of the broken variant `env` names (BROKEN_ENV), or nothing: the gateway as configured. */
export async function brokenDeps(config: GatewayConfig, env: NodeJS.ProcessEnv = process.env): Promise<AppDeps> {
  const variant = env[BROKEN_ENV];
  if (variant === undefined || variant === '') return {};
  if (!(BROKEN_VARIANTS as readonly string[]).includes(variant)) throw new Error(`${BROKEN_ENV}: one of ${BROKEN_VARIANTS.join(', ')}`);
  const store = config.session.store;
  if (store.type !== 'redis') throw new Error(`${BROKEN_ENV} needs a Redis store`);
  const created = await createRedisStore(store, createLogger({ level: config.server.logLevel }));
  return {
    store: variant === 'lock' ? created.store : unconditional(created.store),
    lock: variant === 'cas' ? created.lock : noLock,
  };
}
