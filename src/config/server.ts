/**
 * The listening side of the process: address, proxies trusted for X-Forwarded-*, shutdown, logs.
 */

import { isIP } from 'node:net';
import type { IssueList } from './errors.js';
import { parseDurationMs } from './duration.js';
import type { RawConfig } from './schema.js';
import type { ServerConfig } from './types.js';

const DEFAULT_SHUTDOWN_TIMEOUT = '10s';
/** Names the proxy-address matcher understands besides addresses and CIDRs. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

export function normaliseServer(raw: RawConfig['server'] = {}, issues: IssueList): ServerConfig {
  const port = raw.port ?? 3000;
  const server: ServerConfig = {
    host: raw.host ?? '127.0.0.1',
    port,
    trustProxy: raw.trustProxy ?? false,
    shutdownTimeoutMs: issues.attempt('server.shutdownTimeout', () => parseDurationMs(raw.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT)) ?? 0,
    logLevel: raw.logLevel ?? 'info',
  };
  if (Array.isArray(raw.trustProxy)) {
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
  }
  return server;
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
