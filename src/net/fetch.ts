import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * The fetch used for every outgoing call the gateway makes itself (ID-porten, Altinn exchange): bounded by a timeout and, for test environments,
 * trusting an extra CA besides the usual ones. Certificates are always verified.
 */
export function boundedFetch(opts: { timeoutMs: number; caPem?: string | undefined }): FetchLike {
  const dispatcher = opts.caPem ? new Agent({ connect: { ca: withDefaultCas(opts.caPem), rejectUnauthorized: true } }) : undefined;
  return (url, init = {}) => {
    const signal = init.signal ?? AbortSignal.timeout(opts.timeoutMs);
    return undiciFetch(url, { ...(init as object), signal, ...(dispatcher ? { dispatcher } : {}) }) as unknown as Promise<Response>;
  };
}

/**
 * The CA list for a connection that trusts `extraCaPem` as well: TLS's `ca` option replaces the
 * default trust store instead of adding to it, so the default store is listed first. That store is
 * Node's public roots plus the certificates in NODE_EXTRA_CA_CERTS (read from Node itself where it
 * offers tls.getCACertificates, else from the file, as Node does at start-up).
 */
export function withDefaultCas(extraCaPem: string): string[] {
  return [...defaultCas(), extraCaPem];
}

function defaultCas(): string[] {
  const getCACertificates = (tls as { getCACertificates?: (type: 'default') => string[] }).getCACertificates;
  if (typeof getCACertificates === 'function') return getCACertificates('default');
  return [...tls.rootCertificates, ...nodeExtraCaCerts()];
}

function nodeExtraCaCerts(): string[] {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  try {
    return readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  } catch {
    return []; // Node has already warned at start-up that it could not read the file
  }
}

export function isLoopbackUrl(url: string): boolean {
  const { hostname } = new URL(url);
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}
