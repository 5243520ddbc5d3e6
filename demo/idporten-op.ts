/**
 * A local ID-porten look-alike: a real OpenID Provider (oidc-provider) configured the
 * way ID-porten behaves — code flow only, PKCE S256 for everyone, PAR, RFC 9207 `iss`,
 * pairwise `sub`, `pid`/`acr`/`amr`/`sid`/`locale` in the ID token, JWT access tokens with
 * `scope`, rotating refresh tokens without `offline_access`, revocation, RP-initiated
 * and back-channel logout — plus switches tests need (token endpoint outage, key rotation).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import Provider, { interactionPolicy, type Adapter, type ClientMetadata, type KoaContextWithOIDC } from 'oidc-provider';
import { fingerprint } from '../src/audit/fingerprint.js';
import { OpMemoryStore } from './op-memory-adapter.js';
import { renderAutoLogoutPage, renderErrorPage, renderLoggedOutPage, renderLoginPage } from './op-pages.js';
import { findTestUser } from './test-users.js';

export type { ClientMetadata } from 'oidc-provider';

export interface IdportenLookalikeOptions {
  host?: string;
  port?: number;
  clients: ClientMetadata[];
  /**
   * Clients registered elsewhere (the self-service API look-alike), looked up by id at each use: a client
   * registered there logs in here at once.
   */
  findClient?: (clientId: string) => ClientMetadata | undefined;
  accessTokenTtlSeconds?: number;
  /** Refresh token lifetime without use (ID-porten: 600 s). */
  refreshTokenIdleSeconds?: number;
  /** Cap on the whole grant / refresh chain (ID-porten: 7200 s). */
  authorizationTtlSeconds?: number;
  idTokenTtlSeconds?: number;
  /**
   * Holds the answer to a successful refresh grant this long, after the provider rotated the refresh token
   * (the old one is consumed already): plays a slow provider, and lets a test kill the client before it
   * hears the answer, so that the new refresh token is lost with it.
   */
  refreshAnswerDelayMs?: number;
  /**
   * DPoP (RFC 9449), which ID-porten offers without registration, is always on (bound tokens carry cnf.jkt);
   * with this the token endpoint also demands a server nonce (section 8), as ID-porten may.
   */
  dpopNonce?: boolean;
}

/**
 * RFC 8707 resource indicators: a request naming `resource` gets an access token (a JWT) for that resource alone,
 * its `aud` the indicator, as ID-porten copies `resource` into `aud`. Without one the token is for the look-alike's
 * default API, as before. oidc-provider only issues a token for a resource the authorization request named.
 */
export const API_RESOURCE = 'urn:lookalike:idporten:api';

export interface IdportenLookalikeStats {
  refreshGrants: number;
  codeGrants: number;
  revocations: number;
  refreshGrantErrors: number;
}

/**
 * One request at the token endpoint as the provider decided it. Tokens appear as fingerprints only, so that a
 * report built from these records never shows one.
 */
export interface TokenGrantRecord {
  /** `authorization_code` or `refresh_token` (or whatever else the client sent). */
  grantType: string;
  /** Epoch ms at which the provider decided. */
  at: number;
  ok: boolean;
  /** A refused grant's error and detail, e.g. `invalid_grant: refresh token already used`. */
  error?: string;
  /** The grant (one login's authorization) the request belongs to, where the provider got that far. */
  grantId?: string;
  /** Fingerprint of the refresh token presented (refresh grants). */
  presented?: string;
  /** The RFC 8707 `resource` the grant asked for, if any. */
  resource?: string;
  /** Fingerprint of the refresh token the answer carries (the rotated one, on a refresh grant). */
  issued?: string;
  /** The TCP connection the request came on, numbered as `onConnection` announces them. */
  connection: number;
}

/** One authorization request as the provider resolved it (through PAR or not). */
export interface AuthorizationRecord {
  clientId: string;
  /** Whether the front-channel request named a pushed request (request_uri) instead of carrying its parameters. */
  par: boolean;
  /** The parameters the provider acted on (those of the pushed request, with PAR). */
  prompt?: string;
  maxAge?: string;
  acrValues?: string;
  uiLocales?: string;
  /** The login the provider asked the user for, and why (e.g. `login_prompt`, `max_age`); absent: its session sufficed. */
  interaction?: { name: string; reasons: string[] };
}

/** What the look-alike saw, for tests that check a client's behaviour from the provider's side. */
export interface IdportenLookalikeObservations {
  /** Every authorization request the provider accepted, in order (a resumed one once, as it started). */
  readonly authorizations: AuthorizationRecord[];
  /** Every token-endpoint grant request that reached the provider, in the order it decided them. */
  readonly grants: TokenGrantRecord[];
  /** The grant each access token the provider issued belongs to, by the token's `jti`. */
  readonly accessTokenGrants: Map<string, string>;
  /** Fingerprints of the tokens posted to the revocation endpoint, in order. */
  readonly revoked: string[];
  /** Called as each grant is decided, before the answer is sent. Returns a function that stops the calls. */
  onGrant(listener: (record: TokenGrantRecord) => void): () => void;
  /**
   * Called as the look-alike accepts a TCP connection (its number, the caller's address and port), and at once for
   * each connection open when the listener is added. Returns a function that stops the calls.
   */
  onConnection(listener: (connection: { id: number; remoteAddress: string; remotePort: number }) => void): () => void;
}

export interface IdportenLookalike {
  issuer: string;
  url: string;
  /** The current provider instance (replaced when the signing key rotates). */
  readonly provider: Provider;
  jwksUri: string;
  /** Every token value the OP issued (access, refresh, id) — for leak checks in tests. */
  issuedTokens: Set<string>;
  stats: IdportenLookalikeStats;
  observed: IdportenLookalikeObservations;
  /** False once a refresh token is consumed by rotation, revoked, expired, or its grant is gone. */
  isRefreshTokenActive(token: string): Promise<boolean>;
  /** While true the token endpoint answers 503, as ID-porten does when it is down. */
  setTokenEndpointDown(down: boolean): void;
  /** While refused, a token request naming this resource is answered `invalid_target` (RFC 8707 section 2). */
  refuseResource(resource: string, refused: boolean): void;
  /** A new RS256 key signs from now on; the old one stays in the JWKS unless dropOld. */
  rotateSigningKey(opts?: { dropOld?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export const ACR_SUBSTANTIAL = 'idporten-loa-substantial';
export const ACR_HIGH = 'idporten-loa-high';
/** Ordered from lowest to highest level of assurance. */
export const ACR_VALUES = [ACR_SUBSTANTIAL, ACR_HIGH] as const;

export const API_SCOPES = [
  'skatteetaten:mvameldingvalidering',
  'skatteetaten:mvameldinginnsending',
  'altinn:instances.read',
  'altinn:instances.write',
] as const;

/**
 * The resource server an access token is issued for when the client names none (API_RESOURCE). Defaulting to
 * one resource makes oidc-provider issue JWT access tokens carrying the API scopes next to `openid`, as ID-porten
 * does.
 */
const RESOURCE_SCOPES = ['openid', 'profile', ...API_SCOPES].join(' ');

/** Endpoint paths named like ID-porten's. */
const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  jwks: '/jwks.json',
  pushed_authorization_request: '/par',
  revocation: '/revoke',
  end_session: '/endsession',
  userinfo: '/userinfo',
} as const;

const INTERACTION_PREFIX = '/interaction/';
/** Query parameter naming a logout form posted to /endsession and kept server side. */
const LOGOUT_HANDLE = 'logout_request';
const MAX_FORM_BYTES = 16 * 1024;

export async function startIdportenLookalike(opts: IdportenLookalikeOptions): Promise<IdportenLookalike> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const settings: ProviderSettings = {
    issuer,
    clients: opts.clients.map(normaliseClient),
    ...(opts.findClient ? { findClient: opts.findClient } : {}),
    accessTokenTtl: opts.accessTokenTtlSeconds ?? 120,
    refreshIdle: opts.refreshTokenIdleSeconds ?? 600,
    authorizationTtl: opts.authorizationTtlSeconds ?? 7200,
    idTokenTtl: opts.idTokenTtlSeconds ?? opts.accessTokenTtlSeconds ?? 120,
    store: new OpMemoryStore(),
    cookieKeys: [randomBytes(32).toString('base64url')],
    pairwiseSalt: randomBytes(32),
    signingKeys: [await newSigningKey()],
    refusedResources: new Set(),
    dpopNonceSecret: opts.dpopNonce ? randomBytes(32) : undefined,
  };

  const issuedTokens = new Set<string>();
  const stats: IdportenLookalikeStats = { refreshGrants: 0, codeGrants: 0, revocations: 0, refreshGrantErrors: 0 };
  let tokenEndpointDown = false;
  /** Token requests whose answer is held back (refreshAnswerDelayMs). */
  const delayedAnswers = new WeakSet<IncomingMessage>();
  const observed = observe(server);

  const build = (): { provider: Provider; handle: (req: IncomingMessage, res: ServerResponse) => void } => {
    const provider = createProvider(settings);
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
      const grantType = ctx.oidc?.params?.grant_type;
      if (grantType === 'authorization_code') stats.codeGrants += 1;
      if (grantType === 'refresh_token') {
        stats.refreshGrants += 1;
        if (opts.refreshAnswerDelayMs) delayedAnswers.add(ctx.req);
      }
      observed.record(ctx);
    });
    provider.on('grant.error', (ctx: KoaContextWithOIDC, err: { error?: string; error_detail?: string; error_description?: string }) => {
      if (ctx.oidc?.params?.grant_type === 'refresh_token') stats.refreshGrantErrors += 1;
      observed.record(ctx, `${err.error ?? 'error'}: ${err.error_detail ?? err.error_description ?? ''}`);
    });
    provider.on('authorization.accepted', (ctx: KoaContextWithOIDC) => observed.authorization(ctx));
    provider.on('interaction.started', (ctx: KoaContextWithOIDC, prompt: { name: string; reasons: string[] }) => observed.authorization(ctx, prompt));
    provider.on('access_token.issued', (token: { jti: string; grantId?: string }) => {
      if (token.grantId) observed.view.accessTokenGrants.set(token.jti, token.grantId);
    });
    return { provider, handle: provider.callback() };
  };
  let current = build();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(req, res).catch(() => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/html; charset=utf-8' });
        res.end(renderErrorPage({ error: 'server_error', error_description: 'the look-alike failed to handle this request' }));
      } else {
        res.destroy();
      }
    });
  });

  const pendingLogouts = new Map<string, string>();

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname.startsWith(INTERACTION_PREFIX)) {
      await handleInteraction(current.provider, settings, req, res, url);
      return;
    }
    if (req.method === 'POST' && url.pathname === ROUTES.token) {
      if (tokenEndpointDown) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'token endpoint is down' }));
        return;
      }
      if (settings.refusedResources.size > 0) {
        const form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
        if (form.getAll('resource').some((resource) => settings.refusedResources.has(resource))) {
          // RFC 8707 section 2: an error answer, before anything is issued or rotated.
          if (form.get('grant_type') === 'refresh_token') stats.refreshGrantErrors += 1;
          res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end(JSON.stringify({ error: 'invalid_target', error_description: 'the resource is refused' }));
          return;
        }
        req = replayOf(req, form);
      }
      onResponseBody(res, (status, body) => {
        if (status === 200) recordTokens(body, issuedTokens);
      });
      if (opts.refreshAnswerDelayMs) delayAnswer(req, res, delayedAnswers, opts.refreshAnswerDelayMs);
    }
    if (req.method === 'POST' && url.pathname === ROUTES.end_session) {
      // ID-porten takes the logout form as a POST. oidc-provider only accepts POST here with
      // SameSite=None cookies, which plain http cannot carry; a 303 to the GET form keeps the
      // OP's Lax session cookie flowing, since browsers send Lax cookies on top-level GETs.
      // The form stays here under a random handle, so the ID token never lands in a URL.
      const form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
      const handle = randomBytes(16).toString('base64url');
      pendingLogouts.set(handle, form.toString());
      setTimeout(() => pendingLogouts.delete(handle), 5 * 60_000).unref();
      res.writeHead(303, { location: `${ROUTES.end_session}?${LOGOUT_HANDLE}=${handle}`, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const handle = req.method === 'GET' && url.pathname === ROUTES.end_session ? url.searchParams.get(LOGOUT_HANDLE) : null;
    if (handle !== null) {
      const form = pendingLogouts.get(handle);
      pendingLogouts.delete(handle);
      req.url = `${ROUTES.end_session}?${form ?? ''}`;
    }
    if (req.method === 'POST' && url.pathname === ROUTES.revocation) {
      onResponseBody(res, (status) => {
        if (status === 200) stats.revocations += 1;
      });
      const { replay, token } = await withoutStructuredToken(req);
      if (token) observed.view.revoked.push(fingerprint(token)!);
      current.handle(replay, res);
      return;
    }
    current.handle(req, res);
  }

  return {
    issuer,
    url: issuer,
    get provider() {
      return current.provider;
    },
    jwksUri: `${issuer}${ROUTES.jwks}`,
    issuedTokens,
    stats,
    observed: observed.view,
    async isRefreshTokenActive(token) {
      try {
        const refreshToken = await current.provider.RefreshToken.find(token);
        if (!refreshToken?.isValid || !refreshToken.grantId) return false;
        return (await current.provider.Grant.find(refreshToken.grantId)) !== undefined;
      } catch {
        return false;
      }
    },
    setTokenEndpointDown(down) {
      tokenEndpointDown = down;
    },
    refuseResource(resource, refused) {
      if (refused) settings.refusedResources.add(resource);
      else settings.refusedResources.delete(resource);
    },
    async rotateSigningKey(rotateOpts) {
      const key = await newSigningKey();
      settings.signingKeys = rotateOpts?.dropOld ? [key] : [key, ...settings.signingKeys];
      current = build();
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
  };
}

/**
 * Records every token-endpoint grant as the provider decides it, and numbers the server's connections so that a
 * record names the one its request came on. Observation only: nothing here changes an answer.
 */
function observe(server: ReturnType<typeof createServer>): {
  view: IdportenLookalikeObservations;
  record(ctx: KoaContextWithOIDC, error?: string): void;
  authorization(ctx: KoaContextWithOIDC, interaction?: { name: string; reasons: string[] }): void;
} {
  const grants: TokenGrantRecord[] = [];
  const authorizations: AuthorizationRecord[] = [];
  const accessTokenGrants = new Map<string, string>();
  const revoked: string[] = [];
  const grantListeners = new Set<(record: TokenGrantRecord) => void>();
  const connectionListeners = new Set<(connection: { id: number; remoteAddress: string; remotePort: number }) => void>();
  const connections = new WeakMap<Socket, number>();
  const open = new Map<number, { id: number; remoteAddress: string; remotePort: number }>();
  let lastConnection = 0;
  server.on('connection', (socket: Socket) => {
    const id = (lastConnection += 1);
    const connection = { id, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 };
    connections.set(socket, id);
    open.set(id, connection);
    socket.once('close', () => open.delete(id));
    for (const listener of connectionListeners) listener(connection);
  });
  return {
    view: {
      authorizations,
      grants,
      accessTokenGrants,
      revoked,
      onGrant(listener) {
        grantListeners.add(listener);
        return () => grantListeners.delete(listener);
      },
      onConnection(listener) {
        connectionListeners.add(listener);
        for (const connection of open.values()) listener(connection);
        return () => connectionListeners.delete(listener);
      },
    },
    authorization(ctx, interaction) {
      // A request resumed after its login is the one recorded as it started.
      if (ctx.oidc.route !== 'authorization') return;
      const params = ctx.oidc.params ?? {};
      const text = (name: string) => (typeof params[name] === 'string' || typeof params[name] === 'number' ? { [name]: String(params[name]) } : {});
      const { prompt, max_age: maxAge, acr_values: acrValues, ui_locales: uiLocales } = { ...text('prompt'), ...text('max_age'), ...text('acr_values'), ...text('ui_locales') };
      authorizations.push({
        clientId: String(params.client_id ?? ''),
        par: ctx.URL.searchParams.has('request_uri'),
        ...(prompt !== undefined ? { prompt } : {}),
        ...(maxAge !== undefined ? { maxAge } : {}),
        ...(acrValues !== undefined ? { acrValues } : {}),
        ...(uiLocales !== undefined ? { uiLocales } : {}),
        ...(interaction ? { interaction: { name: interaction.name, reasons: [...interaction.reasons] } } : {}),
      });
    },
    record(ctx, error) {
      const { params, entities } = ctx.oidc ?? {};
      const body = (error === undefined ? ctx.body : undefined) as { refresh_token?: unknown } | undefined;
      const grantId: unknown = entities?.RefreshToken?.grantId ?? entities?.AuthorizationCode?.grantId ?? entities?.Grant?.jti;
      const record: TokenGrantRecord = {
        grantType: String(params?.grant_type ?? ''),
        at: Date.now(),
        ok: error === undefined,
        ...(error !== undefined ? { error } : {}),
        ...(typeof grantId === 'string' ? { grantId } : {}),
        ...(typeof params?.refresh_token === 'string' ? { presented: fingerprint(params.refresh_token) } : {}),
        ...(typeof params?.resource === 'string' ? { resource: params.resource } : {}),
        ...(typeof body?.refresh_token === 'string' ? { issued: fingerprint(body.refresh_token) } : {}),
        connection: connections.get(ctx.req.socket as Socket) ?? 0,
      };
      grants.push(record);
      for (const listener of grantListeners) listener(record);
    },
  };
}

interface ProviderSettings {
  issuer: string;
  clients: ClientMetadata[];
  findClient?: (clientId: string) => ClientMetadata | undefined;
  accessTokenTtl: number;
  refreshIdle: number;
  authorizationTtl: number;
  idTokenTtl: number;
  store: OpMemoryStore;
  cookieKeys: string[];
  pairwiseSalt: Buffer;
  /** Private JWKs; the first one signs. */
  signingKeys: JWK[];
  /** Resource indicators answered `invalid_target` (refuseResource). */
  refusedResources: Set<string>;
  /** Set when the token endpoint demands DPoP nonces. */
  dpopNonceSecret: Buffer | undefined;
}

function createProvider(s: ProviderSettings): Provider {
  const policy = interactionPolicy.base();
  // ID-porten asks for no consent: grants are created automatically (see loadExistingGrant).
  policy.remove('consent');
  // prompt=select_account: the login page again, where the user may pick another account (eID or person).
  policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);
  // A remembered login only counts when its level of assurance meets the request.
  policy.get('login').checks.add(new interactionPolicy.Check(
    'acr_too_low',
    'a higher level of assurance is required',
    (ctx: KoaContextWithOIDC) => Boolean(ctx.oidc.session.accountId)
      && acrRank(ctx.oidc.acr) < acrRank(lowestRequestedAcr(ctx.oidc.params.acr_values)),
  ));

  const resourceServerInfo = {
    scope: RESOURCE_SCOPES,
    accessTokenFormat: 'jwt',
    accessTokenTTL: s.accessTokenTtl,
    jwt: { sign: { alg: 'RS256' } },
  } as const;
  const provider = new Provider(s.issuer, {
    adapter: (name: string) => clientAdapter(name, s) ?? s.store.adapterFor(name),
    clients: s.clients,
    routes: ROUTES,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    responseTypes: ['code'],
    subjectTypes: ['pairwise'],
    pairwiseIdentifier: async (_ctx: unknown, accountId: string, client: { clientId: string }) =>
      // Per-client pairwise subject, as ID-porten gives each integration its own `sub`.
      createHmac('sha256', s.pairwiseSalt).update(`${client.clientId}\0${accountId}`).digest('base64url'),
    // Sector identifier URIs are synthesised for multi-host clients (normaliseClient); never fetch them.
    sectorIdentifierUriValidate: () => false,
    pkce: { required: () => true },
    acrValues: [...ACR_VALUES],
    scopes: ['openid', 'profile'],
    claims: {
      acr: null,
      amr: null,
      sid: null,
      auth_time: null,
      iss: null,
      openid: ['sub', 'pid', 'locale', 'acr', 'amr', 'auth_time'],
      profile: ['name'],
    },
    conformIdTokenClaims: false,
    discovery: { ui_locales_supported: ['nb', 'nn', 'en', 'se'] },
    findAccount: async (_ctx: unknown, id: string) => {
      const user = findTestUser(id);
      if (!user) return undefined;
      return {
        accountId: user.pid,
        claims: async () => ({ sub: user.pid, pid: user.pid, locale: user.locale, name: user.name }),
      };
    },
    loadExistingGrant: (ctx: KoaContextWithOIDC) => autoGrant(ctx, resourceServerInfo),
    extraTokenClaims: async (ctx: KoaContextWithOIDC, token: { accountId?: string }) => {
      const source = ctx.oidc.entities.RefreshToken ?? ctx.oidc.entities.AuthorizationCode;
      return {
        ...(token.accountId ? { pid: token.accountId } : {}),
        ...(source?.acr ? { acr: source.acr } : {}),
        client_amr: ctx.oidc.client?.clientAuthMethod,
      };
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    // Tokens carrying API scopes outlive the ID-porten session (logout does not revoke them).
    expiresWithSession: async (_ctx: unknown, source: { scopes: Set<string> }) =>
      !API_SCOPES.some((scope) => source.scopes.has(scope)),
    ttl: {
      AccessToken: () => s.accessTokenTtl,
      IdToken: () => s.idTokenTtl,
      RefreshToken: (_ctx: unknown, token: { iiat?: number }) => {
        const now = Math.floor(Date.now() / 1000);
        const remaining = s.authorizationTtl - (now - (token.iiat ?? now));
        return Math.max(1, Math.min(s.refreshIdle, remaining));
      },
      Grant: () => s.authorizationTtl,
      Session: () => s.authorizationTtl,
      Interaction: () => 600,
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      revocation: { enabled: true },
      dPoP: {
        enabled: true,
        ...(s.dpopNonceSecret ? { nonceSecret: s.dpopNonceSecret, requireNonce: () => true } : {}),
      },
      backchannelLogout: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.body = renderAutoLogoutPage(form, frontChannelLogoutUris(ctx, s));
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.body = renderLoggedOutPage();
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => API_RESOURCE,
        useGrantedResource: async () => true,
        // Every resource is a JWT audience (`aud` = the indicator) with the same scopes (refuseResource answers
        // before the provider sees the request: oidc-provider refuses a refresh grant's target only after rotating).
        getResourceServerInfo: async () => resourceServerInfo,
      },
    },
    interactions: {
      policy,
      url: async (_ctx: unknown, interaction: { uid: string }) => `${INTERACTION_PREFIX}${interaction.uid}`,
    },
    renderError: async (ctx: KoaContextWithOIDC, out: Record<string, unknown>) => {
      ctx.type = 'html';
      ctx.body = renderErrorPage(out);
    },
    cookies: {
      keys: s.cookieKeys,
      // Plain-http 127.0.0.1: Koa only adds Secure on TLS connections, so these work in tests.
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    jwks: { keys: s.signingKeys },
    // oidc-provider blocks outgoing requests to loopback addresses; back-channel logout
    // tokens must reach gateways listening on 127.0.0.1 here, NAME.localhost included.
    fetch: (url: string | URL, options: RequestInit & { dispatcher?: unknown }) => {
      const { dispatcher, ...rest } = options;
      const { hostname } = new URL(url);
      if (hostname.endsWith('.localhost')) return undiciFetch(url, { ...(rest as object), dispatcher: localhostNames() }) as unknown as Promise<Response>;
      return isLoopback(hostname) ? fetch(url, rest) : fetch(url, options as RequestInit);
    },
  });
  return provider;
}

/**
 * OIDC Front-Channel Logout 1.0 section 4 (oidc-provider has no front-channel logout): the `frontchannel_logout_uri`
 * of every client in the ending session but the one that asked for the logout, with `iss` and `sid`.
 */
function frontChannelLogoutUris(ctx: KoaContextWithOIDC, s: ProviderSettings): string[] {
  const authorizations = (ctx.oidc.session?.authorizations ?? {}) as Record<string, { sid?: string }>;
  const initiator: string | undefined = ctx.oidc.client?.clientId;
  return Object.entries(authorizations).flatMap(([clientId, { sid }]) => {
    const uri = s.clients.find((client) => client.client_id === clientId)?.frontchannel_logout_uri;
    if (clientId === initiator || typeof uri !== 'string' || !sid) return [];
    const url = new URL(uri);
    url.searchParams.set('iss', s.issuer);
    url.searchParams.set('sid', sid);
    return [url.toString()];
  });
}

/**
 * Grants whatever the client asked for, as ID-porten does without a consent screen.
 * Also asks for `sid` in the ID token: ID-porten always sends it, oidc-provider only
 * when requested or required by back-channel logout.
 */
async function autoGrant(ctx: KoaContextWithOIDC, resourceServerInfo: object): Promise<unknown> {
  const { oidc } = ctx;
  const accountId: string = oidc.session.accountId;
  const clientId: string = oidc.client.clientId;
  const grantId: string | undefined = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== accountId) {
    grant = new oidc.provider.Grant({ accountId, clientId });
  }
  // A request naming resources still gets the default API's token when it names none at the token endpoint (as
  // ID-porten issues its usual token then), so the default resource is granted beside those named.
  const resourceServers = oidc.resourceServers as Record<string, unknown>;
  if (!(API_RESOURCE in resourceServers)) resourceServers[API_RESOURCE] = new oidc.provider.ResourceServer(API_RESOURCE, resourceServerInfo);
  const oidcScopes = [...(oidc.requestParamOIDCScopes as Set<string>)].join(' ');
  if (oidcScopes) grant.addOIDCScope(oidcScopes);
  for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers as Record<string, { scopes: Set<string> }>)) {
    const scopes = [...(oidc.requestParamScopes as Set<string>)].filter((scope) => resourceServer.scopes.has(scope));
    if (scopes.length) grant.addResourceScope(indicator, scopes.join(' '));
  }
  await grant.save();
  oidc.claims = { ...oidc.claims, id_token: { ...oidc.claims?.id_token, sid: null } };
  return grant;
}

async function handleInteraction(
  provider: Provider,
  settings: ProviderSettings,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const [uid, action] = url.pathname.slice(INTERACTION_PREFIX.length).split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    sendHtml(res, 400, renderErrorPage({ error: 'invalid_request', error_description: 'login session expired or unknown' }));
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, renderErrorPage({ error: 'invalid_request', error_description: 'interaction mismatch' }));
    return;
  }
  const requestedAcr = lowestRequestedAcr(details.params.acr_values);
  const clientId = String(details.params.client_id ?? '');
  const client = settings.clients.find((c) => c.client_id === clientId) ?? settings.findClient?.(clientId);
  const clientName = typeof client?.client_name === 'string' ? client.client_name : clientId;

  if (action === undefined && req.method === 'GET') {
    sendHtml(res, 200, renderLoginPage({ uid: details.uid, clientName, requestedAcr, acrValues: ACR_VALUES }));
    return;
  }
  if (action === 'cancel' && req.method === 'GET') {
    // The user pressed "Avbryt": the client receives error=access_denied.
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'The end-user cancelled the login',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
    const user = findTestUser(form.get('pid') ?? '');
    if (!user) {
      sendHtml(res, 400, renderLoginPage({
        uid: details.uid, clientName, requestedAcr, acrValues: ACR_VALUES, error: 'Unknown test user',
      }));
      return;
    }
    const chosen = form.get('acr') ?? requestedAcr;
    // The returned acr is never below what the client asked for.
    const acr = acrRank(chosen) > acrRank(requestedAcr) ? chosen : requestedAcr;
    await provider.interactionFinished(req, res, {
      login: { accountId: user.pid, acr, amr: ['TestID'], remember: true },
      // The account was chosen on this page: a select_account prompt is resolved too.
      ...(details.prompt.name === 'select_account' ? { select_account: {} } : {}),
    }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(405, { allow: 'GET, POST' });
  res.end();
}

function acrRank(acr: unknown): number {
  return ACR_VALUES.indexOf(acr as (typeof ACR_VALUES)[number]);
}

/** The level a request asks for: the lowest listed known value (ID-porten default: substantial). */
function lowestRequestedAcr(acrValues: unknown): string {
  const requested = typeof acrValues === 'string' ? acrValues.split(' ') : [];
  return ACR_VALUES.find((acr) => requested.includes(acr)) ?? ACR_SUBSTANTIAL;
}

/**
 * Client metadata as ID-porten registers it: pairwise subjects for everyone. oidc-provider
 * needs a sector identifier when redirect URIs span hosts; the look-alike derives `sub` from
 * the client id, so a synthetic one (never fetched) satisfies the check.
 */
/** oidc-provider reads a client it has not been configured with from the 'Client' model's adapter. */
function clientAdapter(name: string, s: ProviderSettings): Adapter | undefined {
  const find = s.findClient;
  if (name !== 'Client' || find === undefined) return undefined;
  const unsupported = async () => {
    throw new Error('clients are registered through the self-service API');
  };
  return {
    find: async (id: string) => {
      const found = find(id);
      return found === undefined ? undefined : normaliseClient(found);
    },
    upsert: unsupported,
    findByUid: unsupported,
    findByUserCode: unsupported,
    consume: unsupported,
    destroy: unsupported,
    revokeByGrantId: unsupported,
  };
}

function normaliseClient(client: ClientMetadata): ClientMetadata {
  const hosts = new Set((client.redirect_uris ?? []).map((uri) => new URL(uri).host));
  if (hosts.size > 1 && !client.sector_identifier_uri) {
    return {
      ...client,
      sector_identifier_uri: `https://sector.lookalike.invalid/${encodeURIComponent(client.client_id)}`,
    };
  }
  return { ...client };
}

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg: 'RS256', use: 'sig', kid: await calculateJwkThumbprint(jwk) };
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname.startsWith('127.');
}

let localhostNamesAgent: Agent | undefined;

/**
 * Connections for `NAME.localhost`, which is loopback (RFC 6761 section 6.3) although the system resolver may not
 * know the name: made to 127.0.0.1, the URL's host name kept in the Host header.
 */
function localhostNames(): Agent {
  localhostNamesAgent ??= new Agent({
    connect: {
      lookup: (_hostname, options, callback) => {
        if ((options as { all?: boolean }).all) callback(null, [{ address: '127.0.0.1', family: 4 }] as never);
        else callback(null, '127.0.0.1' as never, 4);
      },
    },
  });
  return localhostNamesAgent;
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Calls `done` with the status and full body once the response has been written. */
/** Holds res.end for requests in `delayed` by ms (the answer is already decided; only its delivery waits). */
function delayAnswer(req: IncomingMessage, res: ServerResponse, delayed: WeakSet<IncomingMessage>, ms: number): void {
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.end = ((...args: unknown[]) => {
    if (!delayed.has(req)) return end(...args);
    setTimeout(() => {
      if (!res.destroyed) end(...args);
    }, ms).unref();
    return res;
  }) as typeof res.end;
}

function onResponseBody(res: ServerResponse, done: (status: number, body: string) => void): void {
  const chunks: Buffer[] = [];
  const collect = (chunk: unknown): void => {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    collect(chunk);
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    collect(chunk);
    done(res.statusCode, Buffer.concat(chunks).toString('utf8'));
    return end(chunk, ...rest);
  }) as typeof res.end;
}

function recordTokens(body: string, into: Set<string>): void {
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    for (const name of ['access_token', 'refresh_token', 'id_token']) {
      const value = parsed[name];
      if (typeof value === 'string') into.add(value);
    }
  } catch {
    // not a token response
  }
}

/**
 * oidc-provider refuses to revoke JWT access tokens (400 unsupported_token_type), while
 * ID-porten accepts them. Swap such a token for an unknown opaque value: the provider still
 * authenticates the client and answers 200, as RFC 7009 §2.2 prescribes for unknown tokens.
 * The JWT itself stays valid until it expires, like any self-contained token.
 */
async function withoutStructuredToken(req: IncomingMessage): Promise<{ replay: IncomingMessage; token: string | null }> {
  const body = await readBody(req, MAX_FORM_BYTES);
  const form = new URLSearchParams(body);
  const token = form.get('token');
  if (token && looksLikeJwt(token)) form.set('token', randomBytes(32).toString('base64url'));
  return { replay: replayOf(req, form), token };
}

/** A request whose form body was read, to hand on as if it had not been. */
function replayOf(req: IncomingMessage, form: URLSearchParams): IncomingMessage {
  const replay = new IncomingMessage(req.socket);
  const buffer = Buffer.from(form.toString(), 'utf8');
  replay.method = req.method;
  replay.url = req.url;
  replay.httpVersion = req.httpVersion;
  replay.headers = { ...req.headers, 'content-length': String(buffer.length) };
  replay.push(buffer);
  replay.push(null);
  // Marks the replayed message as fully received so that destroying it never closes the socket.
  replay.complete = true;
  return replay;
}

function looksLikeJwt(value: string): boolean {
  try {
    decodeProtectedHeader(value);
    return true;
  } catch {
    return false;
  }
}

