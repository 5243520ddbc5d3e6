/**
 * A look-alike of Digdir's self-service API for ID-porten integrations (the clients and their JWKS), enforcing the
 * rules Digdir documents: a Maskinporten access token with an admin scope; the supplier model (the vendor's token
 * may create, read, change and delete integrations it made for any `client_orgno`; `supplier_orgno` is the
 * vendor's); required fields; the allowed combinations of application type, authentication method and grant types;
 * scopes that fit the integration type; logout URIs on a redirect URI's host; localhost only over http in TEST;
 * and at most five public RS256 keys of 2048 bits with `kty, alg, use, e, n` and a `kid` unique across all clients.
 * Refusals are RFC 7591 errors (`invalid_client_metadata`, …). The ID-porten look-alike reads the registered
 * clients from `registry` (findClient), so an integration made here can log in at once.
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import type { JWK, JWTPayload } from 'jose';
import { readBody, sendJson, serve } from './http-server.js';

/** Where the clients collection lives under the host; see the gateway's src/digdir/self-service.ts. */
export const CLIENTS_PATH = '/api/v1/clients';
export const MAX_KEYS = 5;
const KEY_LIFETIME_S = 365 * 24 * 3600;
const ADMIN_SCOPES = { supplier: 'idporten:dcr.supplier', read: 'idporten:dcr.read', write: 'idporten:dcr.write', modify: 'idporten:dcr.modify' };
const INTEGRATION_TYPES = ['idporten', 'api_klient', 'ansattporten', 'maskinporten', 'krr'];
const LOGIN_SCOPES = ['openid', 'profile', 'eidas', 'no_pid'];
const AUTH_METHODS: Record<string, string[]> = {
  web: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
  browser: ['none'],
  native: ['none'],
};
const GRANT_TYPES = ['authorization_code', 'refresh_token'];
const KID = /^[A-Za-z0-9._-]+$/;

export interface RegisteredClient extends Record<string, unknown> {
  client_id: string;
  client_orgno: string;
  supplier_orgno: string;
  integration_type: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  jwks?: { keys: (JWK & { exp: number })[]; created: string; last_updated: string };
}

export interface SelfServiceOptions {
  /** Verifies a Maskinporten access token (the Maskinporten look-alike's verifyAccessToken). */
  verifyAccessToken(token: string): Promise<JWTPayload | undefined>;
  /** The scopes API owners have granted the vendor (e.g. Skatteetaten's), beyond the login scopes. */
  grantedScopes: string[];
  environment?: 'test' | 'prod';
  host?: string;
  port?: number;
}

export interface SelfServiceLookalike {
  /** The API's base, as the gateway's digdir.adminApiUrl takes it. */
  url: string;
  /** Every registered client, the ID-porten look-alike's source of dynamic clients. */
  registry: Map<string, RegisteredClient>;
  /** The calls the API answered, `METHOD path status`, for tests. */
  readonly calls: string[];
  close(): Promise<void>;
}

class Refused extends Error {
  constructor(readonly status: number, readonly error: string, description: string) {
    super(description);
  }
}

const invalid = (description: string) => new Refused(400, 'invalid_client_metadata', description);

export async function startSelfServiceLookalike(opts: SelfServiceOptions): Promise<SelfServiceLookalike> {
  const registry = new Map<string, RegisteredClient>();
  const calls: string[] = [];
  const environment = opts.environment ?? 'test';

  const running = await serve(opts.host ?? '127.0.0.1', opts.port ?? 0, async (req, res, url) => {
    const answer = (status: number, body?: unknown) => {
      calls.push(`${req.method} ${url.pathname} ${status}`);
      if (body === undefined) {
        res.writeHead(status);
        res.end();
      } else sendJson(res, status, body);
    };
    try {
      if (!url.pathname.startsWith(CLIENTS_PATH)) throw new Refused(404, 'not_found', `no such resource: ${url.pathname}`);
      const token = await authorise(req.headers.authorization);
      const [clientId, sub, ...more] = url.pathname.slice(CLIENTS_PATH.length).split('/').filter(Boolean);
      const body = req.method === 'POST' || req.method === 'PUT' ? readJson(await readBody(req, 256 * 1024)) : undefined;
      if (more.length > 0 || (sub !== undefined && sub !== 'jwks')) throw new Refused(404, 'not_found', `no such resource: ${url.pathname}`);
      if (clientId === undefined) {
        if (req.method === 'GET') return answer(200, [...registry.values()].filter((c) => visible(c, token)).map(publicView));
        if (req.method === 'POST') {
          need(token, 'write');
          const client = validate(body, undefined, token);
          registry.set(client.client_id, client);
          return answer(201, publicView(client));
        }
        throw new Refused(405, 'method_not_allowed', `${req.method} is not allowed here`);
      }
      const existing = registry.get(clientId);
      if (!existing || !visible(existing, token)) throw new Refused(404, 'not_found', `no client ${clientId}`);
      if (sub === 'jwks') {
        if (req.method === 'GET') return answer(200, existing.jwks ?? { keys: [] });
        need(token, 'modify');
        if (req.method === 'DELETE') {
          delete existing.jwks;
          return answer(200, { keys: [] });
        }
        if (req.method === 'POST' || req.method === 'PUT') {
          existing.jwks = validateJwks(body, clientId, existing.jwks);
          return answer(201, existing.jwks);
        }
        throw new Refused(405, 'method_not_allowed', `${req.method} is not allowed here`);
      }
      if (req.method === 'GET') return answer(200, publicView(existing));
      if (req.method === 'PUT') {
        need(token, 'modify');
        const client = validate(body, existing, token);
        registry.set(clientId, client);
        return answer(200, publicView(client));
      }
      if (req.method === 'DELETE') {
        need(token, 'write');
        registry.delete(clientId);
        return answer(200);
      }
      throw new Refused(405, 'method_not_allowed', `${req.method} is not allowed here`);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      answer(err.status, { error: err.error, error_description: err.message });
    }
  });

  async function authorise(header: string | undefined): Promise<JWTPayload> {
    const token = /^Bearer (.+)$/.exec(header ?? '')?.[1];
    const claims = token === undefined ? undefined : await opts.verifyAccessToken(token);
    if (!claims) throw new Refused(401, 'invalid_token', 'a valid Maskinporten access token is required');
    return claims;
  }

  function validate(body: unknown, existing: RegisteredClient | undefined, token: JWTPayload): RegisteredClient {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object');
    const c = body as Record<string, unknown>;
    const str = (name: string, required = true): string | undefined => {
      const value = c[name];
      if (value === undefined && !required) return undefined;
      if (typeof value !== 'string' || value === '') throw invalid(`${name} is required and must be a string`);
      return value;
    };
    const list = (name: string, required = true): string[] => {
      const value = c[name];
      if (value === undefined && !required) return [];
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string') || (required && value.length === 0)) throw invalid(`${name} is required and must be a non-empty list of strings`);
      return value as string[];
    };
    const type = str('integration_type')!;
    if (!INTEGRATION_TYPES.includes(type)) throw invalid(`integration_type must be one of ${INTEGRATION_TYPES.join(', ')}`);
    if (existing && existing.integration_type !== type) throw invalid('integration_type cannot be changed');
    const orgno = str('client_orgno')!;
    if (!/^\d{9}$/.test(orgno)) throw invalid('client_orgno must be an organisation number of 9 digits');
    const applicationType = str('application_type')!;
    const methods = AUTH_METHODS[applicationType];
    if (!methods) throw invalid('application_type must be web, browser or native');
    const method = str('token_endpoint_auth_method')!;
    if (!methods.includes(method)) throw invalid(`token_endpoint_auth_method ${method} is not allowed for application_type ${applicationType} (allowed: ${methods.join(', ')})`);
    const grants = list('grant_types');
    const badGrant = grants.find((g) => !GRANT_TYPES.includes(g));
    if (badGrant) throw invalid(`grant type ${badGrant} is not allowed (allowed: ${GRANT_TYPES.join(', ')})`);
    if (!grants.includes('authorization_code')) throw invalid('grant_types must include authorization_code');
    const redirects = list('redirect_uris');
    const postLogout = list('post_logout_redirect_uris');
    const uris = [...redirects, ...postLogout, ...['client_uri', 'frontchannel_logout_uri', 'backchannel_logout_uri'].flatMap((n) => str(n, false) ?? [])];
    for (const uri of uris) checkUri(uri, applicationType);
    const redirectHosts = new Set(redirects.map((u) => new URL(u).host));
    for (const name of ['frontchannel_logout_uri', 'backchannel_logout_uri']) {
      const value = str(name, false);
      if (value !== undefined && !redirectHosts.has(new URL(value).host)) throw invalid(`${name} must be on the host of a redirect URI`);
    }
    const scopes = list('scopes');
    if (!scopes.includes('openid')) throw invalid('scopes must include openid');
    const allowed = type === 'idporten' ? LOGIN_SCOPES : [...LOGIN_SCOPES, ...opts.grantedScopes];
    const badScope = scopes.find((s) => !allowed.includes(s));
    if (badScope) {
      throw invalid(type === 'idporten' && opts.grantedScopes.includes(badScope) ? `scope ${badScope} is not available on integration_type idporten; use api_klient` : `scope ${badScope} is not available to this organisation`);
    }
    const usage = str('refresh_token_usage', false);
    if (usage !== undefined && usage !== 'ONETIME' && usage !== 'REUSE') throw invalid('refresh_token_usage must be ONETIME or REUSE');
    const challenge = str('code_challenge_method', false);
    if (challenge !== undefined && challenge !== 'S256' && challenge !== 'none') throw invalid('code_challenge_method must be S256 or none');
    for (const name of ['access_token_lifetime', 'refresh_token_lifetime', 'authorization_lifetime']) {
      const value = c[name];
      if (value !== undefined && (!Number.isInteger(value) || (value as number) <= 0)) throw invalid(`${name} must be a positive whole number of seconds`);
    }
    const now = new Date().toISOString();
    const supplier = supplierOrgno(token);
    // The secret and the JWKS are kept by their own endpoints; the rest is the whole object (PUT replaces it).
    const { jwks: _ignored, client_secret: _secret, ...fields } = c;
    return {
      access_token_lifetime: 120,
      refresh_token_lifetime: 600,
      authorization_lifetime: 7200,
      ...fields,
      client_id: existing?.client_id ?? randomUUID(),
      client_orgno: orgno,
      supplier_orgno: supplier,
      integration_type: type,
      redirect_uris: redirects,
      post_logout_redirect_uris: postLogout,
      active: true,
      created: (existing?.created as string | undefined) ?? now,
      last_updated: now,
      ...(existing?.jwks ? { jwks: existing.jwks } : {}),
    };
  }

  function checkUri(uri: string, applicationType: string): void {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw invalid(`${uri} is not a URL`);
    }
    const local = url.hostname === 'localhost' || url.hostname.startsWith('127.') || url.hostname === '[::1]';
    if (local && environment === 'prod' && applicationType !== 'native') throw invalid(`${uri}: localhost URIs are not allowed in production`);
    if (local && url.protocol !== 'http:') throw invalid(`${uri}: localhost URIs must use http in TEST`);
    if (!local && url.protocol !== 'https:') throw invalid(`${uri} must use https`);
  }

  function validateJwks(body: unknown, clientId: string, before: RegisteredClient['jwks']): NonNullable<RegisteredClient['jwks']> {
    const keys = (body as { keys?: unknown } | undefined)?.keys;
    if (!Array.isArray(keys) || keys.length === 0) throw invalid('the body must be {"keys": [JWK, …]} with at least one key (DELETE removes them all)');
    if (keys.length > MAX_KEYS) throw invalid(`a client may have at most ${MAX_KEYS} keys, not ${keys.length}`);
    const kids = new Set<string>();
    const now = Math.floor(Date.now() / 1000);
    const checked = keys.map((key: unknown, i) => {
      const k = key as Record<string, unknown>;
      for (const member of ['kty', 'alg', 'use', 'e', 'n']) if (typeof k?.[member] !== 'string') throw invalid(`keys[${i}].${member} is required`);
      if (k.kty !== 'RSA' || k.alg !== 'RS256') throw invalid(`keys[${i}] must be an RSA key for RS256`);
      if (k.use !== 'sig') throw invalid(`keys[${i}].use must be sig`);
      if (['d', 'p', 'q', 'dp', 'dq', 'qi'].some((m) => m in k)) throw invalid(`keys[${i}] is a private key; register the public key only`);
      if (typeof k.kid !== 'string' || !KID.test(k.kid)) throw invalid(`keys[${i}].kid is required, of the characters A-Z a-z 0-9 . _ -`);
      if (kids.has(k.kid)) throw invalid(`keys[${i}].kid repeats another key's kid`);
      for (const other of registry.values()) {
        if (other.client_id !== clientId && other.jwks?.keys.some((o) => o.kid === k.kid)) throw invalid(`keys[${i}].kid ${k.kid} is in use by another client; a kid must be unique`);
      }
      kids.add(k.kid);
      let bits = 0;
      try {
        bits = createPublicKey({ key: { kty: 'RSA', n: k.n as string, e: k.e as string }, format: 'jwk' }).asymmetricKeyDetails?.modulusLength ?? 0;
      } catch {
        throw invalid(`keys[${i}] is not a usable RSA public key`);
      }
      if (bits !== 2048) throw invalid(`keys[${i}] must be a 2048-bit RSA key, not ${bits} bits`);
      // A key already registered keeps its expiry; a new one lives a year from now.
      const kept = before?.keys.find((o) => o.kid === k.kid && o.n === k.n);
      return { kty: 'RSA', alg: 'RS256', use: 'sig', kid: k.kid, e: k.e as string, n: k.n as string, exp: kept?.exp ?? now + KEY_LIFETIME_S };
    });
    const stamp = new Date().toISOString();
    return { keys: checked, created: before?.created ?? stamp, last_updated: stamp };
  }

  return { url: running.url, registry, calls, close: () => running.close() };
}

function scopesOf(token: JWTPayload): string[] {
  return typeof token.scope === 'string' ? token.scope.split(' ') : [];
}

/** The vendor's own orgno, from the token's consumer (`0192:<orgno>`). */
function supplierOrgno(token: JWTPayload): string {
  const id = (token.consumer as { ID?: string } | undefined)?.ID ?? '';
  return id.replace(/^0192:/, '');
}

/** A supplier sees what it made; an organisation's own dcr scopes see its own clients. */
function visible(client: RegisteredClient, token: JWTPayload): boolean {
  const scopes = scopesOf(token);
  if (scopes.includes(ADMIN_SCOPES.supplier) && client.supplier_orgno === supplierOrgno(token)) return true;
  return client.client_orgno === supplierOrgno(token) && scopes.some((s) => s.startsWith('idporten:dcr'));
}

function need(token: JWTPayload, what: 'write' | 'modify'): void {
  const scopes = scopesOf(token);
  if (scopes.includes(ADMIN_SCOPES.supplier) || scopes.includes(ADMIN_SCOPES[what])) return;
  throw new Refused(403, 'insufficient_scope', `the token lacks ${ADMIN_SCOPES.supplier} (or ${ADMIN_SCOPES[what]})`);
}

function publicView(client: RegisteredClient): Record<string, unknown> {
  const { jwks: _jwks, ...rest } = client;
  return rest;
}

function readJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new Refused(400, 'invalid_request', 'the body is not JSON');
  }
}

/**
 * A registered integration as the ID-porten look-alike's client (oidc-provider metadata): what ID-porten takes
 * from the registration to let it log in. Undefined for no such client or one without login grants.
 */
export function loginClientFrom(registry: Map<string, RegisteredClient>, clientId: string): Record<string, unknown> | undefined {
  const c = registry.get(clientId);
  if (!c || !['idporten', 'api_klient'].includes(c.integration_type)) return undefined;
  return {
    client_id: c.client_id,
    client_name: typeof c.client_name === 'string' ? c.client_name : c.client_id,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris,
    grant_types: c.grant_types,
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method,
    ...(c.jwks ? { jwks: { keys: c.jwks.keys.map(({ exp: _exp, ...key }) => key) } } : {}),
    ...(typeof c.backchannel_logout_uri === 'string' ? { backchannel_logout_uri: c.backchannel_logout_uri, backchannel_logout_session_required: true } : {}),
  };
}
