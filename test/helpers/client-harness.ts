/**
 * IdportenClient on its own, for tests that drive it directly against a provider started in-process: a tenant
 * built through normaliseConfig, and a Provider that records every request it makes (and may rewrite the
 * provider's discovery document, to play a provider that offers less).
 */
import { normaliseConfig } from '../../src/config/normalise.js';
import type { TenantConfig } from '../../src/config/types.js';
import { Provider, type ProviderTrust } from '../../src/idporten/provider.js';
import type { FetchLike } from '../../src/net/fetch.js';

const SESSION_KEY = Buffer.alloc(32, 7).toString('base64url');

export const PUBLIC_URL = 'http://127.0.0.1:9';
export const REDIRECT_URI = `${PUBLIC_URL}/auth/callback`;

/** One tenant of the gateway, its `idporten` block merged over a client_secret_post default. */
export function tenantFor(issuer: string, clientId: string, idporten: Record<string, unknown> = {}, routes: unknown[] = []): TenantConfig {
  const raw = {
    server: { host: '127.0.0.1', port: 9 },
    session: { store: { type: 'memory', maxSessions: 100 }, keys: [{ id: 'k1', secret: SESSION_KEY }] },
    tenants: [
      {
        id: 'direct',
        publicUrl: PUBLIC_URL,
        idporten: {
          issuer,
          clientId,
          clientAuth: { method: 'client_secret_post', secret: 'unset' },
          scopes: ['openid', 'skatteetaten:mvameldingvalidering'],
          acrValues: 'idporten-loa-substantial',
          postLogoutRedirectUri: `${PUBLIC_URL}/`,
          httpTimeout: '3s',
          ...idporten,
        },
        routes,
      },
    ],
  };
  return normaliseConfig(raw, {}).tenants[0]!;
}

export interface RecordedRequest {
  url: URL;
  method: string;
  headers: Headers;
  body: URLSearchParams;
}

/** A Provider whose every outgoing request is kept; `rewriteMetadata` changes the discovery document it reads. */
export class RecordingProvider extends Provider {
  readonly requests: RecordedRequest[] = [];

  constructor(trust: ProviderTrust, rewriteMetadata?: (metadata: Record<string, unknown>) => void) {
    super(trust);
    const inner = this.fetch;
    (this as { fetch: FetchLike }).fetch = async (url, init) => {
      const body = init?.body;
      this.requests.push({
        url: new URL(url),
        method: init?.method ?? 'GET',
        headers: new Headers(init?.headers),
        body: new URLSearchParams(typeof body === 'string' || body instanceof URLSearchParams ? body : ''),
      });
      const response = await inner(url, init);
      if (!rewriteMetadata || new URL(url).pathname !== '/.well-known/openid-configuration') return response;
      const metadata = (await response.json()) as Record<string, unknown>;
      rewriteMetadata(metadata);
      return new Response(JSON.stringify(metadata), { status: response.status, headers: { 'content-type': 'application/json' } });
    };
  }

  /** The requests to one path of the provider, in order. */
  to(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.url.pathname === path);
  }
}
