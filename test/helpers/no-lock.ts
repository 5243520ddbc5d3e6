/**
 * A deliberately broken gateway for the fault-injection suite to catch: the configured Redis store with a session
 * lock that excludes nothing, so instances no longer take turns refreshing a session and present its one-time
 * refresh token twice. Chosen by an environment variable read in the gateway's child process (see
 * gateway-process.ts), so that a whole run, its harness unchanged, can be pointed at it.
 */
import type { AppDeps } from '../../src/app.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/logging.js';
import { createRedisStore } from '../../src/session/redis-store.js';
import type { SessionLock } from '../../src/session/store.js';

export const NO_LOCK_ENV = 'BFF_TEST_NO_SESSION_LOCK';

/** withLock runs fn at once, whoever else is running it. */
export const noLock: SessionLock = {
  withLock: (_id, fn) => fn(new AbortController().signal),
};

/** The store and the no-op lock when `env` asks for the broken variant (NO_LOCK_ENV=1), otherwise nothing. */
export async function brokenLockDeps(config: GatewayConfig, env: NodeJS.ProcessEnv = process.env): Promise<AppDeps> {
  if (env[NO_LOCK_ENV] !== '1') return {};
  const store = config.session.store;
  if (store.type !== 'redis') throw new Error(`${NO_LOCK_ENV} needs a Redis store`);
  const { store: redisStore } = await createRedisStore(store, createLogger({ level: config.server.logLevel }));
  return { store: redisStore, lock: noLock };
}
