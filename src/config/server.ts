/**
 * The listening side of the process: address, proxies trusted for X-Forwarded-*, shutdown, logs.
 */

import { isIP } from 'node:net';
import type { IssueList } from './errors.js';
import { formatDuration, parseDurationMs } from './duration.js';
import type { RawConfig } from './schema.js';
import type { ServerConfig } from './types.js';

const DEFAULT_SHUTDOWN_TIMEOUT = '10s';
const DEFAULT_REQUEST_TIMEOUT = '60s';
/** The headers timeout when none is written, or the request timeout when that is shorter. */
const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_LOGIN_RATE = { max: 30, window: '1m' } as const;
/** The internal listener's address unless server.metricsHost names one: this machine only. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
/** Names the proxy-address matcher understands besides addresses and CIDRs. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

export function normaliseServer(raw: RawConfig['server'] = {}, issues: IssueList): ServerConfig {
  const port = raw.port ?? 3000;
  const server: ServerConfig = {
    host: raw.host ?? '127.0.0.1',
    port,
    trustProxy: Array.isArray(raw.trustProxy) ? raw.trustProxy : false,
    shutdownTimeoutMs: issues.attempt('server.shutdownTimeout', () => parseDurationMs(raw.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT)) ?? 0,
    logLevel: raw.logLevel ?? 'info',
    ...timeouts(raw, issues),
    rateLimit: {
      login: {
        max: raw.rateLimit?.login?.max ?? DEFAULT_LOGIN_RATE.max,
        windowMs: issues.attempt('server.rateLimit.login.window', () => parseDurationMs(raw.rateLimit?.login?.window ?? DEFAULT_LOGIN_RATE.window)) ?? 0,
      },
    },
  };
  if (raw.trustProxy === true) {
    issues.add(
      'server.trustProxy',
      'true trusts every peer, so a client could name its own address in the left-most X-Forwarded-For entry (and escape the login rate limit): list the addresses or CIDRs of your proxies instead, e.g. [10.0.0.0/8], or [loopback] for a proxy on this machine; false when none is in front',
    );
  } else if (Array.isArray(raw.trustProxy)) {
    raw.trustProxy.forEach((entry, index) => {
      if (!isProxyAddress(entry)) {
        issues.add(`server.trustProxy[${index}]`, 'must be an IP address, a CIDR such as 10.0.0.0/8, or loopback, linklocal or uniquelocal');
      }
    });
  }
  if (raw.metricsPort !== undefined) {
    if (raw.metricsPort !== 0 && raw.metricsPort === port) {
      issues.add('server.metricsPort', 'must differ from server.port (leave it out to serve /metrics on the main port)');
    }
    server.metricsPort = raw.metricsPort;
    // Its own address: /admin/ and the detailed /readyz must not be reachable wherever the public port is.
    server.metricsHost = raw.metricsHost ?? DEFAULT_METRICS_HOST;
  } else if (raw.metricsHost !== undefined) {
    issues.add('server.metricsHost', 'needs server.metricsPort: it is the address of the internal listener');
  }
  if (raw.admin !== undefined) {
    if (raw.metricsPort === undefined) issues.add('server.admin', 'needs server.metricsPort: session administration is served on the internal listener only');
    server.admin = { credential: raw.admin.credential };
  }
  return server;
}

/** Node refuses a headers timeout above the request timeout, so the file may not ask for one. */
function timeouts(raw: NonNullable<RawConfig['server']>, issues: IssueList): Pick<ServerConfig, 'requestTimeoutMs' | 'headersTimeoutMs'> {
  const requestTimeoutMs = issues.attempt('server.requestTimeout', () => parseDurationMs(raw.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT));
  // Unwritten, the headers timeout follows a short request timeout down; only a written one can contradict it.
  const headersTimeoutMs =
    raw.headersTimeout === undefined
      ? Math.min(DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS)
      : issues.attempt('server.headersTimeout', () => parseDurationMs(raw.headersTimeout));
  if (headersTimeoutMs !== undefined && requestTimeoutMs !== undefined && headersTimeoutMs > requestTimeoutMs) {
    issues.add('server.headersTimeout', `must not be longer than server.requestTimeout (${formatDuration(requestTimeoutMs)})`);
  }
  return { requestTimeoutMs: requestTimeoutMs ?? 0, headersTimeoutMs: headersTimeoutMs ?? 0 };
}

function isProxyAddress(entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}
