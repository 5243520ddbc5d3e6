/**
 * Session lifetime, cookie and key-ring settings.
 */

import { resolve } from 'node:path';
import type { IssueList } from './errors.js';
import { formatDuration, parseDurationMs } from './duration.js';
import { childPath } from './path.js';
import type { RawConfig } from './schema.js';
import { normaliseKeys } from './session-keys.js';
import { isPlaintextRemoteRedis, parseRedisUrl } from './urls.js';
import type { RedisStoreConfig, SessionConfig, StoreConfig } from './types.js';

/** Skatteetaten's scopes end an ID-porten login after 8 hours; no session may outlive it. */
const MAX_LIFETIME_MS = 8 * 3_600_000;
/** The idle timeout when none is written, or the absolute lifetime when that is shorter. */
const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;

/** `baseDir`: where a relative `journalDir` is taken from (the configuration file's folder). */
export function normaliseSession(raw: RawConfig['session'], issues: IssueList, baseDir: string): SessionConfig {
  const absoluteLifetimeMs = issues.attempt('session.absoluteLifetime', () => parseDurationMs(raw.absoluteLifetime ?? '8h'));
  if (absoluteLifetimeMs !== undefined && absoluteLifetimeMs > MAX_LIFETIME_MS) {
    issues.add(
      'session.absoluteLifetime',
      "must be at most 8h: Skatteetaten's scopes cap an ID-porten login at 8 hours, so a longer session could not keep valid tokens",
    );
  }
  // Unwritten, the idle timeout follows a short lifetime down; only a written one can contradict it.
  const idleTimeoutMs =
    raw.idleTimeout === undefined
      ? Math.min(DEFAULT_IDLE_TIMEOUT_MS, absoluteLifetimeMs ?? DEFAULT_IDLE_TIMEOUT_MS)
      : issues.attempt('session.idleTimeout', () => parseDurationMs(raw.idleTimeout));
  if (idleTimeoutMs !== undefined && absoluteLifetimeMs !== undefined && idleTimeoutMs > absoluteLifetimeMs) {
    issues.add('session.idleTimeout', `must not be longer than session.absoluteLifetime (${formatDuration(absoluteLifetimeMs)})`);
  }
  const cookieName = raw.cookieName ?? 'bff';
  if (/^__(host|secure)-/i.test(cookieName)) {
    issues.add('session.cookieName', 'must not carry a __Host- or __Secure- prefix: the gateway adds __Host- itself on https');
  }
  return {
    store: normaliseStore(raw.store, issues),
    absoluteLifetimeMs: absoluteLifetimeMs ?? 0,
    idleTimeoutMs: idleTimeoutMs ?? 0,
    cookieName,
    sameSite: raw.sameSite ?? 'strict',
    keys: normaliseKeys(raw.keys, issues),
    refreshLeewayMs: issues.attempt('session.refreshLeeway', () => parseDurationMs(raw.refreshLeeway ?? '30s')) ?? 0,
    // Whether it can be written is found out at start-up, where it is opened (a --check may run elsewhere).
    ...(raw.journalDir === undefined ? {} : { journalDir: resolve(baseDir, raw.journalDir) }),
  };
}

function normaliseStore(raw: RawConfig['session']['store'], issues: IssueList): StoreConfig {
  if (raw?.type === 'redis') return normaliseRedisStore(raw, issues);
  return { type: 'memory', maxSessions: raw?.maxSessions ?? 100_000 };
}

type RawRedisStore = Extract<NonNullable<RawConfig['session']['store']>, { type: 'redis' }>;
const REDIS_MODES = ['url', 'cluster', 'sentinel'] as const;
const PLAINTEXT_REDIS =
  'uses redis:// (no TLS) to a server off this machine, so sessions and tokens would cross the network unencrypted; ' +
  'use rediss://, or set session.store.allowPlaintext: true if that network is trusted';

/** Placeholders ('' or []) stand in for values that failed; the issues stop start-up before they are used. */
function normaliseRedisStore(raw: RawRedisStore, issues: IssueList): RedisStoreConfig {
  const at = 'session.store';
  const given = REDIS_MODES.filter((key) => raw[key] !== undefined);
  if (given.length === 0) issues.add(at, 'needs exactly one of url (one server), cluster or sentinel');
  given.slice(1).forEach((key) => {
    issues.add(childPath(at, key), `cannot be combined with ${childPath(at, given[0] ?? '')}; give exactly one of url, cluster or sentinel`);
  });

  const allowPlaintext = raw.allowPlaintext ?? false;
  const checkUrl = (path: string, text: string): string => {
    const url = issues.attempt(path, () => parseRedisUrl(text));
    if (url !== undefined && !allowPlaintext && isPlaintextRemoteRedis(url)) issues.add(path, PLAINTEXT_REDIS);
    return url ?? '';
  };
  const checkNodes = (key: 'cluster' | 'sentinel', nodes: string[]): string[] => {
    const listPath = childPath(childPath(at, key), 'nodes');
    const urls = nodes.map((node, index) => checkUrl(childPath(listPath, index), node));
    // One client speaks to every node the same way, with TLS or without.
    const schemes = new Set(urls.filter((url) => url !== '').map((url) => new URL(url).protocol));
    if (schemes.size > 1) issues.add(listPath, 'must all use rediss:// or all use redis://');
    return urls;
  };

  const base = { type: 'redis', keyPrefix: raw.keyPrefix ?? 'bff:', allowPlaintext } as const;
  if (raw.url === undefined && raw.cluster !== undefined) {
    const nodes = checkNodes('cluster', raw.cluster.nodes);
    return { ...base, mode: 'cluster', url: nodes[0] ?? '', nodes };
  }
  if (raw.url === undefined && raw.sentinel !== undefined) {
    const nodes = checkNodes('sentinel', raw.sentinel.nodes);
    const replicaAckTimeoutMs = issues.attempt(childPath(childPath(at, 'sentinel'), 'replicaAckTimeout'), () => parseDurationMs(raw.sentinel?.replicaAckTimeout ?? '500ms')) ?? 0;
    return { ...base, mode: 'sentinel', url: nodes[0] ?? '', nodes, name: raw.sentinel.name, replicaAcks: raw.sentinel.replicaAcks ?? 1, replicaAckTimeoutMs };
  }
  const url = raw.url === undefined ? '' : checkUrl(childPath(at, 'url'), raw.url);
  return { ...base, mode: 'single', url };
}

