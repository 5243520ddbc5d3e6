import { Agent, fetch as undiciFetch } from 'undici';

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * The fetch used for every outgoing call the gateway makes itself (ID-porten, Altinn exchange): bounded by a timeout and, for test environments,
 * trusting an extra CA. Certificates are always verified.
 */
export function boundedFetch(opts: { timeoutMs: number; caPem?: string | undefined }): FetchLike {
  const dispatcher = opts.caPem ? new Agent({ connect: { ca: opts.caPem, rejectUnauthorized: true } }) : undefined;
  return (url, init = {}) => {
    const signal = init.signal ?? AbortSignal.timeout(opts.timeoutMs);
    return undiciFetch(url, { ...(init as object), signal, ...(dispatcher ? { dispatcher } : {}) }) as unknown as Promise<Response>;
  };
}

export function isLoopbackUrl(url: string): boolean {
  const { hostname } = new URL(url);
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}
