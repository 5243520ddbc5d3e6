import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import type { IdportenConfig } from '../config/types.js';
import { boundedFetch, isLoopbackUrl, type FetchLike } from '../net/fetch.js';
import { classifyProviderError, OidcError } from './errors.js';
import { ProviderNonces } from './dpop.js';
import { ProviderKeys } from './id-token.js';

/** What a provider is known by: its issuer and how it is reached (the CA it is trusted with, the timeout). */
export type ProviderTrust = Pick<IdportenConfig, 'issuer' | 'caPem' | 'httpTimeoutMs'>;

/** One load of a provider: its metadata and its signing keys, swapped together. */
export interface ProviderState {
  readonly metadata: Readonly<client.ServerMetadata>;
  readonly keys: ProviderKeys;
}

/**
 * One OpenID Provider as every tenant that names it sees it: discovery and JWKS fetched once, however many
 * tenants share it. `load` fetches both again (the background refresh); until a load succeeds the last good
 * state stays in use. Each tenant builds its own openid-client Configuration from `state.metadata`.
 */
export class Provider {
  readonly issuer: string;
  readonly fetch: FetchLike;
  /** The provider's last DPoP-Nonce (RFC 9449 section 8), learnt from any of its tenants' grants, so the next grant's first proof carries it. */
  readonly dpopNonces = new ProviderNonces();
  readonly #timeoutSeconds: number;
  #state: ProviderState | undefined;
  #loading: Promise<ProviderState> | undefined;

  constructor(trust: ProviderTrust) {
    this.issuer = trust.issuer;
    this.fetch = boundedFetch({ timeoutMs: trust.httpTimeoutMs, caPem: trust.caPem });
    this.#timeoutSeconds = Math.ceil(trust.httpTimeoutMs / 1000);
  }

  get ready(): boolean {
    return this.#state !== undefined;
  }

  /** The last good state, if any load has succeeded. */
  get state(): ProviderState | undefined {
    return this.#state;
  }

  /** openid-client's request options for this provider: its fetch, its timeout, plain http on loopback only. */
  configure(config: client.Configuration): client.Configuration {
    config[client.customFetch] = this.dpopNonces.watch(this.fetch) as client.CustomFetch;
    config.timeout = this.#timeoutSeconds;
    if (isLoopbackUrl(this.issuer)) client.allowInsecureRequests(config);
    return config;
  }

  /** The current state, or the first load's (which callers share). */
  async loaded(): Promise<ProviderState> {
    return this.#state ?? this.load();
  }

  /** Fetches metadata and keys again; concurrent callers share one attempt. A failure keeps the last good state. */
  load(): Promise<ProviderState> {
    this.#loading ??= this.#fetchState().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #fetchState(): Promise<ProviderState> {
    let metadata: client.ServerMetadata;
    try {
      // Discovery needs a client id to make a Configuration; only the server metadata is kept from it.
      const discovered = await client.discovery(new URL(this.issuer), 'metadata-only', undefined, client.None(), {
        [client.customFetch]: this.fetch as client.CustomFetch,
        timeout: this.#timeoutSeconds,
        ...(isLoopbackUrl(this.issuer) ? { execute: [client.allowInsecureRequests] } : {}),
      });
      metadata = discovered.serverMetadata();
    } catch (err) {
      throw classifyProviderError(err, 'discovery');
    }
    if (metadata.issuer !== this.issuer) throw new OidcError('rejected', 'discovery issuer does not match the configured issuer');
    if (!metadata.jwks_uri) throw new OidcError('rejected', 'provider metadata has no jwks_uri');
    const keys = await ProviderKeys.fetch(metadata.jwks_uri, this.fetch);
    this.#state = { metadata: Object.freeze(metadata), keys };
    return this.#state;
  }
}

/**
 * The providers in use, one per issuer and trust settings: tenants of the same issuer share its Provider.
 * `keep` drops the ones no tenant names any more (after a reload).
 */
export class Providers {
  readonly #byKey = new Map<string, Provider>();

  for(trust: ProviderTrust): Provider {
    const key = providerKey(trust);
    let provider = this.#byKey.get(key);
    if (!provider) {
      provider = new Provider(trust);
      this.#byKey.set(key, provider);
    }
    return provider;
  }

  keep(inUse: ReadonlySet<Provider>): void {
    for (const [key, provider] of this.#byKey) if (!inUse.has(provider)) this.#byKey.delete(key);
  }

  get size(): number {
    return this.#byKey.size;
  }
}

function providerKey(trust: ProviderTrust): string {
  const ca = trust.caPem === undefined ? '' : createHash('sha256').update(trust.caPem).digest('base64url');
  return `${trust.issuer}\n${trust.httpTimeoutMs}\n${ca}`;
}
