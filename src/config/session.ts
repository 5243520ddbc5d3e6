/**
 * Session lifetime, cookie and key-ring settings.
 */

import type { IssueList } from './errors.js';
import { formatDuration, parseDurationMs } from './duration.js';
import { childPath } from './path.js';
import type { RawConfig } from './schema.js';
import { deriveSessionKey } from './session-keys.js';
import { parseRedisUrl } from './urls.js';
import type { SessionConfig, SessionKey, StoreConfig } from './types.js';

/** Skatteetaten's scopes end an ID-porten login after 8 hours; no session may outlive it. */
const MAX_LIFETIME_MS = 8 * 3_600_000;
/** The idle timeout when none is written, or the absolute lifetime when that is shorter. */
const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;

export function normaliseSession(raw: RawConfig['session'], issues: IssueList): SessionConfig {
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
  };
}

function normaliseStore(raw: RawConfig['session']['store'], issues: IssueList): StoreConfig {
  if (raw?.type === 'redis') {
    const url = issues.attempt('session.store.url', () => parseRedisUrl(raw.url)) ?? '';
    return { type: 'redis', url, keyPrefix: raw.keyPrefix ?? 'bff:' };
  }
  return { type: 'memory', maxSessions: raw?.maxSessions ?? 100_000 };
}

function normaliseKeys(raw: RawConfig['session']['keys'], issues: IssueList): SessionKey[] {
  const keys: SessionKey[] = [];
  const firstIndexOf = new Map<string, number>();
  raw.forEach((entry, index) => {
    const at = childPath('session.keys', index);
    const earlier = firstIndexOf.get(entry.id);
    if (earlier !== undefined) {
      issues.add(childPath(at, 'id'), `repeats session.keys[${earlier}].id; key ids must be unique`);
      return;
    }
    firstIndexOf.set(entry.id, index);
    const key = issues.attempt(childPath(at, 'secret'), () => deriveSessionKey(entry.id, entry.secret));
    if (key) keys.push(key);
  });
  return keys;
}
