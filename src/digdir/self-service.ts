/**
 * Digdir's self-service API for ID-porten integrations: the clients collection and each client's JWKS, called with
 * the admin access token (maskinporten.ts).
 */
import type { JsonWebKey } from 'node:crypto';
import { DigdirUnavailable, refusal, request } from './errors.js';

/**
 * The clients collection under the API's host. Digdir's pages say `{host}/clients/`, while the public clients that
 * run against the API call `{host}/api/v1/clients`; the latter is taken here (unconfirmed: change it here only).
 */
export const CLIENTS_PATH = 'api/v1/clients';
/** The API keeps at most this many keys on a client (Digdir's documentation and both public clients agree). */
export const MAX_KEYS = 5;

export type RegisteredClient = Record<string, unknown> & { client_id: string };
export type PublicJwk = JsonWebKey & { kid: string; exp?: number };

export class SelfServiceApi {
  readonly #base: string;
  readonly #token: () => Promise<string>;

  /** `adminApiUrl` ends in '/'; `token` gives an admin access token (asked once, then kept). */
  constructor(adminApiUrl: string, token: () => Promise<string>) {
    this.#base = new URL(CLIENTS_PATH, adminApiUrl).toString();
    let pending: Promise<string> | undefined;
    this.#token = () => (pending ??= token());
  }

  list(): Promise<RegisteredClient[]> {
    return this.#call('GET', '', 'listing the integrations');
  }

  create(client: Record<string, unknown>): Promise<RegisteredClient> {
    return this.#call('POST', '', 'creating the integration', client);
  }

  update(clientId: string, client: Record<string, unknown>): Promise<RegisteredClient> {
    return this.#call('PUT', `/${clientId}`, `updating integration ${clientId}`, client);
  }

  remove(clientId: string): Promise<void> {
    return this.#call('DELETE', `/${clientId}`, `deleting integration ${clientId}`);
  }

  async keys(clientId: string): Promise<PublicJwk[]> {
    const body = await this.#call<{ keys?: PublicJwk[] } | undefined>('GET', `/${clientId}/jwks`, `reading the keys of ${clientId}`);
    return body?.keys ?? [];
  }

  /** Replaces the whole key set (the API has no other way to add or remove one key). */
  async setKeys(clientId: string, keys: PublicJwk[]): Promise<void> {
    if (keys.length > MAX_KEYS) throw new Error(`an integration takes at most ${MAX_KEYS} keys`);
    await this.#call('POST', `/${clientId}/jwks`, `registering the keys of ${clientId}`, { keys: keys.map(({ exp: _exp, ...key }) => key) });
  }

  async #call<T>(method: string, path: string, what: string, body?: unknown): Promise<T> {
    const response = await request(`self-service API (${what})`, `${this.#base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await this.#token()}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!response.ok) throw await refusal(`Digdir refused ${what}`, response);
    const text = await response.text();
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new DigdirUnavailable(`self-service API (${what}): the answer is not JSON`);
    }
  }
}
