/**
 * The validated, normalised configuration every other module consumes.
 * Durations are milliseconds, sizes are bytes, URLs carry no trailing slash.
 * The raw file format (what users write) is the TypeBox schema in schema.ts; the value sets shared
 * by both sides come from there.
 */

import type { ACR_LEVELS, LOG_LEVELS, SAME_SITE, TOKEN_KINDS } from './schema.js';

export type SameSite = (typeof SAME_SITE)[number];
export type AcrLevel = (typeof ACR_LEVELS)[number];
export type TokenKind = (typeof TOKEN_KINDS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface GatewayConfig {
  server: ServerConfig;
  session: SessionConfig;
  tenants: TenantConfig[];
  /** `tenantsDir`, resolved: where its files are, the folder relative paths in them start from, and the ids they gave. */
  tenantsDir?: TenantsDir;
  /**
   * Tenants without idporten.clientId and clientAuth in the file: their client comes from the integration
   * `idporten-bff integrations apply` made (src/digdir/applied-integrations.ts moves them into `tenants`).
   */
  awaitingClient?: TenantSettings[];
  /** The vendor's admin client for Digdir's self-service API. */
  digdir?: DigdirConfig;
}

export interface TenantsDir {
  path: string;
  baseDir: string;
  /** The ids its files gave to tenants with a client of their own: the admin API may change these. */
  ids: string[];
  /** The ids of its tenants whose client comes from `integrations apply`, which keeps them in their files. */
  applied: string[];
}

/** A tenant as the file describes it when its ID-porten client comes from an applied integration. */
export type TenantSettings = Omit<TenantConfig, 'idporten'> & {
  idporten: Omit<IdportenConfig, 'clientId' | 'clientAuth'>;
  /** What apply wrote into the tenant's file in tenantsDir (the private keys sealed under session.keys). */
  appliedIntegration?: AppliedIntegrationRecord;
  /** The tenant's file, when it came from tenantsDir (where apply keeps its record without Redis). */
  sourceFile?: string;
};

export interface AppliedIntegrationRecord {
  clientId: string;
  /** The first key signs; the others are registered still, until their retireAt (ISO 8601). */
  keys: { kid: string; sealedJwk: string; retireAt?: string }[];
}

export interface DigdirConfig {
  environment: 'test' | 'prod';
  clientId: string;
  /** The admin client's key: a JWK (kid in the grant's header) or an enterprise certificate (x5c). */
  key: { kind: 'jwk'; jwk: JsonWebKeyWithKid } | { kind: 'certificate'; x5c: string[]; privateKeyPem: string };
  /** The self-service API's base URL, ending in '/'. */
  adminApiUrl: string;
  /** Maskinporten's issuer, verbatim (the grant's aud). */
  maskinportenIssuer: string;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** false, or the trusted proxies' addresses/CIDRs; X-Forwarded-* is honoured only from them (`true` is refused). */
  trustProxy: false | string[];
  /** How long SIGTERM waits for in-flight requests before closing anyway. */
  shutdownTimeoutMs: number;
  /** Serve /metrics on this separate port instead of the main one (undefined = main port). */
  metricsPort?: number;
  /** The address the internal listener binds, with metricsPort (default 127.0.0.1; never `host`'s). */
  metricsHost?: string;
  /** Session administration on the internal listener, with this bearer credential (undefined = not served). */
  admin?: { credential: string };
  /** pino level for the process log. */
  logLevel: LogLevel;
  /** How long a client may take to send a whole request (Node's server.requestTimeout). */
  requestTimeoutMs: number;
  /** How long a client may take to send the request headers (Node's server.headersTimeout); never above requestTimeoutMs. */
  headersTimeoutMs: number;
  rateLimit: RateLimitConfig;
}

export interface RateLimitConfig {
  /** /auth/login and /auth/callback, counted per client address and tenant. */
  login: { max: number; windowMs: number };
}

export type StoreConfig = MemoryStoreConfig | RedisStoreConfig;

export interface MemoryStoreConfig {
  type: 'memory';
  maxSessions: number;
}

/** How the gateway finds Redis: one server, a Redis Cluster, or a primary named by Redis Sentinel. */
export type RedisMode = 'single' | 'cluster' | 'sentinel';

interface RedisStoreBase {
  type: 'redis';
  /**
   * single: the server's URL as written. cluster and sentinel: the first of `nodes`, so that a store which
   * knows only single servers still has a URL; such a store must check `mode` before using it.
   */
  url: string;
  keyPrefix: string;
  /** The operator allowed redis:// (no TLS) to a server off this machine. */
  allowPlaintext: boolean;
}

export type RedisStoreConfig =
  | (RedisStoreBase & { mode: 'single' })
  /** `nodes`: seed URLs, at least one; the cluster's other nodes are discovered from them. */
  | (RedisStoreBase & { mode: 'cluster'; nodes: string[] })
  /**
   * `nodes`: the Sentinels' URLs, at least one; `name`: the monitored primary's name; a write counts once
   * `replicaAcks` replicas confirm it within `replicaAckTimeoutMs`.
   */
  | (RedisStoreBase & { mode: 'sentinel'; nodes: string[]; name: string; replicaAcks: number; replicaAckTimeoutMs: number });

export interface SessionKey {
  id: string;
  /** 32 raw bytes derived from the configured secret. */
  secret: Buffer;
}

export interface SessionConfig {
  store: StoreConfig;
  /** Hard cap from login; never above 8 h. */
  absoluteLifetimeMs: number;
  idleTimeoutMs: number;
  cookieName: string;
  sameSite: SameSite;
  /** First key encrypts; all keys decrypt. */
  keys: SessionKey[];
  /** Refresh the access token when it expires within this window (scaled down for short-lived tokens). */
  refreshLeewayMs: number;
  /** Absolute path of this instance's back-channel logout journal; undefined: pending logouts are kept in memory only. */
  journalDir?: string;
}

export type ClientAuth =
  | { method: 'private_key_jwt'; privateKeyJwk: JsonWebKeyWithKid }
  | { method: 'client_secret_post' | 'client_secret_basic'; secret: string };

export interface JsonWebKeyWithKid extends JsonWebKey {
  kid?: string;
}

export interface IdportenConfig {
  issuer: string;
  clientId: string;
  clientAuth: ClientAuth;
  scopes: string[];
  /**
   * The RFC 8707 resource indicators of the tenant's routes (`routes[].resource`), each once, in route order: the
   * authorization request names them all. normaliseConfig sets it when a route has one; absent: none.
   */
  resources?: string[];
  acrValues: AcrLevel;
  /** acr values a login request may ask for with ?acr= (always includes acrValues). */
  allowedAcrValues: AcrLevel[];
  uiLocales: string;
  /** ui_locales a login request may ask for with ?locale=. */
  allowedLocales: string[];
  postLogoutRedirectUri: string;
  /** What the end-session form carries: the ID token as id_token_hint (default) or only client_id. */
  logoutHint: 'id_token' | 'client_id';
  /** Use PAR when the provider advertises it (default true). */
  usePar: boolean;
  /**
   * DPoP (RFC 9449): sessions get a key pair and ID-porten binds their tokens to it. normaliseConfig always sets it
   * (default false); absent only in a hand-built config, where it means false.
   */
  dpop?: boolean;
  /** Timeout for every call to the provider. */
  httpTimeoutMs: number;
  /** Extra CA certificates (PEM) to trust for the provider, for test environments. */
  caPem?: string;
}

export interface AltinnConfig {
  exchangeUrl: string;
  /** The exchange gets the bound ID-porten token as DPoP with a proof (only with idporten.dpop). */
  dpop?: boolean;
}

export interface RouteConfig {
  /** Path prefix on the gateway, e.g. /mva/validering (no trailing slash). */
  path: string;
  /** Absolute upstream URL; the remainder after `path` is appended to its path. */
  upstream: string;
  /** 'none': a public pass-through, no session needed and no bearer sent. */
  token: TokenKind;
  /**
   * Lower-case request header names passed to the upstream besides the built-in allow-list (never
   * authorization, cookie, host, X-Forwarded-* or hop-by-hop names). normaliseConfig always sets it;
   * absent only in a hand-built RouteConfig, where it means [].
   */
  forwardHeaders?: string[];
  /** Upper-case HTTP methods allowed on this route. */
  methods: string[];
  timeoutMs: number;
  bodyLimitBytes: number;
  /**
   * The route sends its token as `Authorization: DPoP` with a proof per request (RFC 9449 section 7): set for routes
   * with token idporten on a tenant with idporten.dpop, unless the route says dpop: false. Absent means Bearer.
   */
  dpop?: boolean;
  /** The assurance level a session needs here; a session below it is asked to log in again at this level. */
  acr?: AcrLevel;
  /**
   * RFC 8707 resource indicator (absolute URI, no fragment; `token: idporten` only): the route's bearer is an
   * access token requested with `resource=` this URI, kept per resource in the session. Absent: the session's
   * own access token.
   */
  resource?: string;
}

export interface TenantConfig {
  id: string;
  /** Origin the browser uses, e.g. https://mva.example.no (no path, no trailing slash). */
  publicUrl: string;
  idporten: IdportenConfig;
  altinn?: AltinnConfig;
  routes: RouteConfig[];
  /** Extra CA certificates (PEM) to trust for this tenant's upstreams and Altinn exchange. */
  upstreamCaPem?: string;
  /** The SPA served on the tenant's origin; absent when the tenant has none. */
  app?: AppConfig;
  /** Strict-Transport-Security on every answer for this tenant (hsts.ts); absent: none. */
  hsts?: HstsPolicy;
  /**
   * Whether /auth/session includes the user's pid. normaliseConfig always sets it (default false);
   * absent only in a hand-built TenantConfig, where it means false.
   */
  exposePid?: boolean;
  /** This tenant's own key ring for its sessions and login transactions (absent: the session key ring). */
  sessionKeys?: SessionKey[];
  /** The customer's organisation number: the client_orgno of its ID-porten integration. */
  orgno?: string;
}

/** HTTP Strict Transport Security (RFC 6797) for a tenant on https. */
export interface HstsPolicy {
  maxAgeSeconds: number;
  includeSubDomains: boolean;
}

export type AppConfig =
  /** `dir`: absolute path of an existing directory holding the built SPA. */
  | ({ kind: 'static'; dir: string } & AppOptions)
  /** `url`: the dev server or frontend container, no trailing slash. */
  | ({ kind: 'upstream'; url: string } & AppOptions);

export interface AppOptions {
  /** A top-level navigation without a live session is redirected to /auth/login?returnTo=<path>. */
  requireLogin: boolean;
  /** Path globs (config/path-glob.ts) that requireLogin lets through without a session; checked, trailing slash removed. */
  publicPaths: string[];
  /** Response headers added to every app answer; names lower-cased. */
  headers: Record<string, string>;
}
