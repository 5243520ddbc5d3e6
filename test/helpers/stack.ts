import { generateKeyPair, exportJWK } from 'jose';
import type { Teardown } from './teardown.js';
import type { Logger } from 'pino';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Browser, type BrowserResponse, type FetchInit } from './browser.js';
import { buildApp, type AppDeps, type Gateway } from '../../src/app.js';
import { normaliseConfig } from '../../src/config/normalise.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { startIdportenLookalike, type IdportenLookalike, type IdportenLookalikeOptions } from '../../demo/idporten-op.js';
import { createLogger } from '../../src/logging.js';
import { freePort } from '../../demo/free-port.js';
import { startSkatteetatenLookalike, type SkatteetatenLookalike } from '../../demo/skatteetaten.js';
import { startAltinnLookalike, type AltinnLookalike } from '../../demo/altinn.js';

export type AuthMethod = 'client_secret_post' | 'client_secret_basic' | 'private_key_jwt';

export const CLIENT_SECRET = 'a-client-secret-that-is-long-enough-for-hs256-0123456789';
export const SESSION_KEY = Buffer.alloc(32, 7).toString('base64url');

export interface StackOptions {
  authMethod?: AuthMethod;
  op?: Partial<IdportenLookalikeOptions>;
  /** Extra raw config merged into the gateway's session / tenant idporten sections. */
  session?: Record<string, unknown>;
  server?: Record<string, unknown>;
  /** Give the tenant an https publicUrl, as behind a TLS-terminating load balancer (the gateway itself still speaks http). */
  httpsPublicUrl?: boolean;
  idporten?: Record<string, unknown>;
  tenant?: Record<string, unknown>;
  routes?: Record<string, unknown>[];
  altinnExchangeUrl?: string;
  /**
   * The Altinn look-alike's exchange takes DPoP-bound tokens with proofs only, and the tenant says altinn.dpop: true;
   * `'nonce'`: the exchange also demands its DPoP nonce (RFC 9449 section 9).
   */
  altinnDpop?: boolean | 'nonce';
  appDeps?: AppDeps;
  clientId?: string;
  /**
   * Start the Skatteetaten and Altinn look-alikes and route /mva/validering (validation), /mva/echo (Skatteetaten's /echo/,
   * ID-porten token) and /mva/innsending (the Altinn app, Altinn token) to them.
   */
  upstreams?: boolean;
  /** Changes to the tenant's client registration at the look-alike; a key set to null is left out. */
  registration?: Record<string, unknown>;
  /**
   * Another service on the same provider: a second tenant, "other", with its own client (registered with front-
   * and back-channel logout) at `otherUrl` (http://other.localhost:PORT; a Browser reaches it with `localhostNames`).
   */
  otherService?: boolean;
  /** With `upstreams`: more routes to the look-alikes, next to the three above. */
  upstreamRoutes?: (upstreams: { skatteetaten: SkatteetatenLookalike; altinn: AltinnLookalike }) => Record<string, unknown>[];
}

export interface Stack {
  op: IdportenLookalike;
  gateway: Gateway;
  /** The browser-facing origin, e.g. http://localhost:41234 */
  publicUrl: string;
  clientId: string;
  /** With `otherService`: the other service's origin. */
  otherUrl?: string;
  skatteetaten?: SkatteetatenLookalike;
  altinn?: AltinnLookalike;
  /** The raw configuration the gateway was built from (to start more instances of it, e.g. in another process). */
  rawConfig: unknown;
  /** Every JSON log line the gateway wrote. */
  logs: Record<string, unknown>[];
  logText(): string;
  audit(event?: string): Record<string, unknown>[];
}

/** A gateway tenant's client registration at the ID-porten look-alike (client_secret_post with CLIENT_SECRET). */
export function lookalikeClient(clientId: string, origin: string): never {
  return {
    client_id: clientId,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: [`${origin}/auth/callback`],
    post_logout_redirect_uris: [`${origin}/`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  } as never;
}

const OTHER_CLIENT_ID = 'other-service';

/** The other service's registration: a gateway tenant's, with front- and back-channel logout. */
function otherServiceClient(origin: string): never {
  return {
    ...(lookalikeClient(OTHER_CLIENT_ID, origin) as object),
    frontchannel_logout_uri: `${origin}/auth/logout/frontchannel`,
    backchannel_logout_uri: `${origin}/auth/logout/backchannel`,
    backchannel_logout_session_required: true,
  } as never;
}

/** A stream for JSON log lines: each parsed, and the raw text kept for leak scans. */
export function captureLines(): { stream: Writable; lines: Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString();
      chunks.push(text);
      for (const line of text.split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { stream, lines, text: () => chunks.join('') };
}

/** Captures pino output as parsed lines (and keeps the raw text for leak scans). */
export function captureLogger(level = 'debug'): { logger: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const { stream, lines, text } = captureLines();
  // The production logger (redaction included), at debug level unless asked otherwise, so tests see everything.
  return { logger: createLogger({ level, destination: stream }), lines, text };
}

/** Builds the gateway, listens on loopback at its configured port and warms it up; closed at the test's teardown. */
export async function startGateway(t: Teardown, config: GatewayConfig, deps: AppDeps = {}): Promise<Gateway> {
  const gateway = await buildApp(config, { logger: captureLogger().logger, ...deps });
  await gateway.app.listen({ host: '127.0.0.1', port: config.server.port });
  t.teardown(() => gateway.close());
  await gateway.warmUp();
  return gateway;
}

/**
 * Another instance of a stack's gateway in this process: built from the same configuration (its own store
 * connection, or `deps`), on an ephemeral port of 127.0.0.1, closed at the test's teardown. Reach it with the
 * public Host header, as a load balancer would forward a request.
 */
export async function startPeerGateway(t: Teardown, stack: Stack, deps: AppDeps = {}): Promise<{ gateway: Gateway; port: number; logs: Record<string, unknown>[] }> {
  const captured = captureLogger();
  const gateway = await buildApp(stack.gateway.core.config, { logger: captured.logger, ...deps });
  await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => gateway.close());
  await gateway.warmUp();
  return { gateway, port: (gateway.app.server.address() as AddressInfo).port, logs: captured.lines };
}

/**
 * A browser that keeps sending one session cookie whatever the gateway answers, each request as the load balancer
 * forwards it: to an instance's port (the stack's own gateway when undefined) with the public Host and Origin.
 */
export function keptCookieSender(stack: Stack, cookieValue: string): (port: number | undefined, path: string, init?: FetchInit) => Promise<BrowserResponse> {
  const browser = new Browser();
  const publicHost = new URL(stack.publicUrl).host;
  return (port, path, init = {}) =>
    browser.fetch(port === undefined ? `${stack.publicUrl}${path}` : `http://localhost:${port}${path}`, {
      ...init,
      origin: stack.publicUrl,
      headers: { ...init.headers, host: publicHost, cookie: `bff=${cookieValue}` },
    });
}

/** Starts the ID-porten look-alike and a gateway wired to it, on ephemeral ports, closed at teardown. */
export async function startStack(t: Teardown, opts: StackOptions = {}): Promise<Stack> {
  const authMethod = opts.authMethod ?? 'client_secret_post';
  const clientId = opts.clientId ?? `bff-${authMethod}`;
  const port = await freePort();
  const publicUrl = `${opts.httpsPublicUrl ? 'https' : 'http'}://localhost:${port}`;
  let clientAuth: Record<string, unknown>;
  const client: Record<string, unknown> = {
    client_id: clientId,
    redirect_uris: [`${publicUrl}/auth/callback`],
    post_logout_redirect_uris: [`${publicUrl}/`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: authMethod,
    frontchannel_logout_uri: `${publicUrl}/auth/logout/frontchannel`,
    backchannel_logout_uri: `${publicUrl}/auth/logout/backchannel`,
    backchannel_logout_session_required: true,
  };
  if (authMethod === 'private_key_jwt') {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const priv = { ...(await exportJWK(privateKey)), kid: 'bff-key-1', alg: 'RS256' };
    const pub = { ...(await exportJWK(publicKey)), kid: 'bff-key-1', alg: 'RS256', use: 'sig' };
    client.jwks = { keys: [pub] };
    clientAuth = { method: 'private_key_jwt', privateKeyJwk: JSON.stringify(priv) };
  } else {
    client.client_secret = CLIENT_SECRET;
    clientAuth = { method: authMethod, secret: CLIENT_SECRET };
  }
  for (const [key, value] of Object.entries(opts.registration ?? {})) {
    if (value === null) delete client[key];
    else client[key] = value;
  }
  const otherUrl = opts.otherService ? `http://other.localhost:${port}` : undefined;
  const clients = [client as never, ...(otherUrl ? [otherServiceClient(otherUrl)] : [])];
  const op = await startIdportenLookalike({ clients, ...opts.op });
  t.teardown(() => op.close());

  let skatteetaten: SkatteetatenLookalike | undefined;
  let altinn: AltinnLookalike | undefined;
  const routes = [...(opts.routes ?? [])];
  let altinnExchangeUrl = opts.altinnExchangeUrl;
  if (opts.upstreams) {
    // A DPoP tenant's routes send proofs: the look-alike checks them (and refuses its bound tokens as Bearer).
    skatteetaten = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri, ...(opts.idporten?.dpop === true ? { dpop: {} } : {}) });
    t.teardown(() => skatteetaten!.close());
    altinn = await startAltinnLookalike({ issuer: op.issuer, jwksUri: op.jwksUri, ...(opts.altinnDpop ? { exchangeDpop: { nonce: opts.altinnDpop === 'nonce' } } : {}) });
    t.teardown(() => altinn!.close());
    altinnExchangeUrl ??= altinn.exchangeUrl;
    routes.push(
      { path: '/mva/validering', upstream: skatteetaten.validationUrl, token: 'idporten', methods: ['POST'] },
      { path: '/mva/echo', upstream: `${skatteetaten.url}/echo`, token: 'idporten' },
      { path: '/mva/innsending', upstream: altinn.appUrl, token: 'altinn' },
      ...(opts.upstreamRoutes?.({ skatteetaten, altinn }) ?? []),
    );
  }
  const raw = {
    server: { host: '127.0.0.1', port, logLevel: 'debug', ...opts.server },
    session: { store: { type: 'memory', maxSessions: 1000 }, keys: [{ id: 'k1', secret: SESSION_KEY }], ...opts.session },
    tenants: [
      {
        id: 'test',
        publicUrl,
        idporten: {
          issuer: op.issuer,
          clientId,
          clientAuth,
          scopes: ['openid', 'skatteetaten:mvameldingvalidering', 'skatteetaten:mvameldinginnsending', 'altinn:instances.read', 'altinn:instances.write'],
          acrValues: 'idporten-loa-substantial',
          httpTimeout: '3s',
          ...opts.idporten,
        },
        ...(altinnExchangeUrl ? { altinn: { exchangeUrl: altinnExchangeUrl, ...(opts.altinnDpop ? { dpop: true } : {}) } } : {}),
        routes,
        ...opts.tenant,
      },
      ...(otherUrl
        ? [{
          id: 'other',
          publicUrl: otherUrl,
          idporten: { issuer: op.issuer, clientId: OTHER_CLIENT_ID, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, scopes: ['openid'], httpTimeout: '3s' },
          routes: [],
        }]
        : []),
    ],
  };
  const config = normaliseConfig(raw, {});
  const captured = captureLogger();
  const gateway = await startGateway(t, config, { logger: captured.logger, ...opts.appDeps });
  return {
    op,
    gateway,
    ...(skatteetaten ? { skatteetaten } : {}),
    ...(altinn ? { altinn } : {}),
    publicUrl,
    clientId,
    ...(otherUrl ? { otherUrl } : {}),
    rawConfig: raw,
    logs: captured.lines,
    logText: captured.text,
    audit: (event) => captured.lines.filter((l) => l.audit === true && (event === undefined || l.event === event)),
  };
}
