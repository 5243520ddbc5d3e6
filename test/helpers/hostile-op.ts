/**
 * A tiny hand-made OpenID Provider for hostile tests: every answer it gives can be bent per test.
 * It speaks just enough OIDC for the gateway (discovery, a plain authorization redirect, a token
 * endpoint with client_secret_post and PKCE S256, a rotatable JWKS, refresh, revocation, end session)
 * and lets a test lie about the authorization response and the ID token.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Test } from 'tap';
import type { Gateway } from '../../src/app.js';
import { normaliseConfig } from '../../src/config/normalise.js';
import type { Browser } from './browser.js';
import { freePort } from '../../demo/free-port.js';
import { captureLogger, CLIENT_SECRET, SESSION_KEY, startGateway } from './stack.js';

export interface OpSigningKey {
  /** undefined: the key is published and used without a `kid`. */
  kid: string | undefined;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** What the authorization endpoint received (one entry per request). */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  state: string | undefined;
  nonce: string | undefined;
  codeChallenge: string;
  codeChallengeMethod: string;
  acrValues: string | undefined;
  scope: string;
  uiLocales: string | undefined;
}

/**
 * The ID token about to be issued. A tamper function may change anything: header (alg, kid), claims,
 * the signing key (another RSA key, or the client secret's bytes for HS256), or post-process the
 * compact JWT (`finish`, e.g. to corrupt the signature). `alg: none` produces an unsigned token.
 */
export interface IdTokenDraft {
  header: Record<string, unknown> & { alg: string };
  claims: Record<string, unknown>;
  key: CryptoKey | Uint8Array;
  finish?: (jwt: string) => string;
}

export type IdTokenTamper = (draft: IdTokenDraft, context: { grant: 'authorization_code' | 'refresh_token'; op: HostileOp }) => void | Promise<void>;
/** Changes the redirect back to the client (code, state, iss; or error instead of code). */
export type AuthorizationResponseTamper = (params: URLSearchParams, request: AuthorizationRequest) => void;

interface IssuedCode {
  request: AuthorizationRequest;
  used: boolean;
  /** Access tokens issued for this code, revoked if the code is replayed (RFC 6749 4.1.2). */
  accessTokens: string[];
}

interface RefreshGrant {
  sub: string;
  request: AuthorizationRequest;
}

export interface HostileOpOptions {
  clientId: string;
  clientSecret: string;
  /** Redirect URIs the client registered; the authorization endpoint refuses any other. */
  redirectUris: string[];
}

export class HostileOp {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris: string[];
  /** Keys published in the JWKS, in order. */
  published: OpSigningKey[] = [];
  /** The key ID tokens are signed with by default. */
  activeKey!: OpSigningKey;
  /** Per-test lies. Both stay in force until changed. */
  tamperIdToken: IdTokenTamper | undefined;
  tamperAuthorizationResponse: AuthorizationResponseTamper | undefined;
  /** Changes a token endpoint answer before it is sent (the DPoP proof the request carried, if any, at hand). */
  tamperTokenResponse: ((tokens: Record<string, unknown>, context: { grant: 'authorization_code' | 'refresh_token'; dpopProof: string | undefined }) => void | Promise<void>) | undefined;
  /** The subject the OP logs every user in as (pairwise in ID-porten). */
  sub = 'pairwise-sub-0001';

  readonly authorizationRequests: AuthorizationRequest[] = [];
  readonly tokenRequests: URLSearchParams[] = [];
  /** The DPoP header of each token request (undefined where it had none), in the order of tokenRequests. */
  readonly tokenRequestProofs: (string | undefined)[] = [];
  /** Token endpoint answers that were errors, by OAuth error code. */
  readonly tokenErrors: string[] = [];
  readonly revoked = new Set<string>();
  /** Every access, refresh and ID token issued, and every authorization code, for leak checks. */
  readonly issuedTokens = new Set<string>();
  readonly issuedCodes = new Set<string>();
  jwksRequests = 0;

  readonly #server: Server;
  readonly #codes = new Map<string, IssuedCode>();
  readonly #refreshTokens = new Map<string, RefreshGrant>();
  #keysUsed = 0;

  private constructor(server: Server, issuer: string, opts: HostileOpOptions) {
    this.#server = server;
    this.issuer = issuer;
    this.clientId = opts.clientId;
    this.clientSecret = opts.clientSecret;
    this.redirectUris = opts.redirectUris;
  }

  static async start(opts: HostileOpOptions): Promise<HostileOp> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const op = new HostileOp(server, `http://127.0.0.1:${port}`, opts);
    const first = await op.generateKey('op-key-1');
    op.published = [first];
    op.activeKey = first;
    server.on('request', (req, res) => {
      op.#handle(req, res).catch((err: Error) => send(res, 500, { error: 'server_error', error_description: err.message }));
    });
    return op;
  }

  /** An RS256 key pair this OP has not used before (not published until a test says so). */
  async generateKey(kid: string | undefined): Promise<OpSigningKey> {
    const { privateKey, publicKey } = await pooledKeyPair(this.#keysUsed++);
    const publicJwk: JWK = { ...(await exportJWK(publicKey)), alg: 'RS256', use: 'sig', ...(kid ? { kid } : {}) };
    return { kid, privateKey, publicJwk };
  }

  /** Starts signing with a new key; the old one stays published unless `retireOld`. */
  async rotateKey(opts: { kid?: string; retireOld?: boolean } = {}): Promise<OpSigningKey> {
    const next = await this.generateKey(opts.kid ?? `op-key-${randomUUID().slice(0, 8)}`);
    this.published = opts.retireOld ? [next] : [next, ...this.published];
    this.activeKey = next;
    return next;
  }

  /** The URL the gateway sent the browser to last (for tests that stop before the OP answers). */
  get lastAuthorizationRequest(): AuthorizationRequest | undefined {
    return this.authorizationRequests.at(-1);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.issuer);
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /.well-known/openid-configuration':
        return send(res, 200, this.#metadata());
      case 'GET /jwks':
        this.jwksRequests += 1;
        return send(res, 200, { keys: this.published.map((k) => k.publicJwk) });
      case 'GET /authorize':
        return this.#authorize(url, res);
      case 'POST /token':
        return this.#token(new URLSearchParams(await readBody(req)), res, typeof req.headers.dpop === 'string' ? req.headers.dpop : undefined);
      case 'POST /revoke': {
        const form = new URLSearchParams(await readBody(req));
        if (!this.#clientAuthenticated(form)) return send(res, 401, { error: 'invalid_client' });
        this.revoked.add(form.get('token') ?? '');
        res.writeHead(200).end();
        return;
      }
      case 'GET /endsession':
      case 'POST /endsession': {
        const form = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
        const back = form.get('post_logout_redirect_uri');
        if (!back) return send(res, 200, { ok: true });
        const target = new URL(back);
        const state = form.get('state');
        if (state) target.searchParams.set('state', state);
        res.writeHead(302, { location: target.toString() }).end();
        return;
      }
      default:
        return send(res, 404, { error: 'not_found' });
    }
  }

  #metadata(): Record<string, unknown> {
    // No pushed_authorization_request_endpoint: the gateway must use a plain redirect.
    return {
      issuer: this.issuer,
      authorization_endpoint: `${this.issuer}/authorize`,
      token_endpoint: `${this.issuer}/token`,
      jwks_uri: `${this.issuer}/jwks`,
      revocation_endpoint: `${this.issuer}/revoke`,
      end_session_endpoint: `${this.issuer}/endsession`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      subject_types_supported: ['pairwise'],
      code_challenge_methods_supported: ['S256'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post'],
      acr_values_supported: ['idporten-loa-substantial', 'idporten-loa-high'],
      ui_locales_supported: ['nb', 'nn', 'en', 'se'],
      authorization_response_iss_parameter_supported: true,
    };
  }

  #authorize(url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    const request: AuthorizationRequest = {
      clientId: q.get('client_id') ?? '',
      redirectUri: q.get('redirect_uri') ?? '',
      state: q.get('state') ?? undefined,
      nonce: q.get('nonce') ?? undefined,
      codeChallenge: q.get('code_challenge') ?? '',
      codeChallengeMethod: q.get('code_challenge_method') ?? '',
      acrValues: q.get('acr_values') ?? undefined,
      scope: q.get('scope') ?? '',
      uiLocales: q.get('ui_locales') ?? undefined,
    };
    this.authorizationRequests.push(request);
    // Refuse to redirect anywhere unregistered, and insist on PKCE S256 (RFC 7636 4.3, as ID-porten does).
    if (request.clientId !== this.clientId || !this.redirectUris.includes(request.redirectUri)) {
      return send(res, 400, { error: 'invalid_request', error_description: 'unknown client or redirect_uri' });
    }
    const back = new URL(request.redirectUri);
    if (q.get('response_type') !== 'code' || request.codeChallengeMethod !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(request.codeChallenge)) {
      back.searchParams.set('error', 'invalid_request');
    } else {
      const code = randomBytes(24).toString('base64url');
      this.#codes.set(code, { request, used: false, accessTokens: [] });
      this.issuedCodes.add(code);
      back.searchParams.set('code', code);
    }
    if (request.state !== undefined) back.searchParams.set('state', request.state);
    back.searchParams.set('iss', this.issuer);
    this.tamperAuthorizationResponse?.(back.searchParams, request);
    res.writeHead(302, { location: back.toString(), 'cache-control': 'no-store' }).end();
  }

  #clientAuthenticated(form: URLSearchParams): boolean {
    return form.get('client_id') === this.clientId && form.get('client_secret') === this.clientSecret;
  }

  async #token(form: URLSearchParams, res: ServerResponse, dpopProof: string | undefined): Promise<void> {
    this.tokenRequests.push(form);
    this.tokenRequestProofs.push(dpopProof);
    const refuse = (status: number, error: string, description: string) => {
      this.tokenErrors.push(error);
      send(res, status, { error, error_description: description });
    };
    if (!this.#clientAuthenticated(form)) return refuse(401, 'invalid_client', 'client authentication failed');

    if (form.get('grant_type') === 'authorization_code') {
      const issued = this.#codes.get(form.get('code') ?? '');
      if (!issued) return refuse(400, 'invalid_grant', 'unknown code');
      if (issued.used) {
        // RFC 6749 4.1.2: a code used twice is refused, and what it bought is revoked.
        for (const token of issued.accessTokens) this.revoked.add(token);
        return refuse(400, 'invalid_grant', 'code already used');
      }
      issued.used = true;
      if (form.get('redirect_uri') !== issued.request.redirectUri) return refuse(400, 'invalid_grant', 'redirect_uri mismatch');
      // RFC 7636 4.6: BASE64URL(SHA256(code_verifier)) must equal the stored code_challenge.
      const verifier = form.get('code_verifier') ?? '';
      if (createHash('sha256').update(verifier).digest('base64url') !== issued.request.codeChallenge) {
        return refuse(400, 'invalid_grant', 'PKCE verification failed');
      }
      const tokens = await this.#issue('authorization_code', this.sub, issued.request);
      issued.accessTokens.push(tokens.access_token);
      await this.tamperTokenResponse?.(tokens, { grant: 'authorization_code', dpopProof });
      return send(res, 200, tokens);
    }

    if (form.get('grant_type') === 'refresh_token') {
      const presented = form.get('refresh_token') ?? '';
      const grant = this.#refreshTokens.get(presented);
      if (!grant || this.revoked.has(presented)) return refuse(400, 'invalid_grant', 'unknown refresh token');
      // Rotating refresh tokens, as ID-porten may use: the presented one is spent.
      this.#refreshTokens.delete(presented);
      const tokens = await this.#issue('refresh_token', grant.sub, grant.request);
      await this.tamperTokenResponse?.(tokens, { grant: 'refresh_token', dpopProof });
      return send(res, 200, tokens);
    }
    return refuse(400, 'unsupported_grant_type', 'grant type not supported');
  }

  async #issue(grant: 'authorization_code' | 'refresh_token', sub: string, request: AuthorizationRequest) {
    const accessToken = `at-${randomBytes(24).toString('base64url')}`;
    const refreshToken = `rt-${randomBytes(24).toString('base64url')}`;
    this.#refreshTokens.set(refreshToken, { sub, request });
    const idToken = await this.#idToken(grant, sub, request);
    for (const token of [accessToken, refreshToken, idToken]) this.issuedTokens.add(token);
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: 120,
      refresh_token: refreshToken,
      id_token: idToken,
      scope: request.scope,
    };
  }

  async #idToken(grant: 'authorization_code' | 'refresh_token', sub: string, request: AuthorizationRequest): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const requestedAcr = request.acrValues?.split(' ')[0] ?? 'idporten-loa-substantial';
    const draft: IdTokenDraft = {
      header: { alg: 'RS256', typ: 'JWT', ...(this.activeKey.kid ? { kid: this.activeKey.kid } : {}) },
      claims: {
        iss: this.issuer,
        aud: this.clientId,
        sub,
        iat: now,
        exp: now + 120,
        auth_time: now,
        // OIDC Core 12.2: a refreshed ID token carries no nonce.
        ...(grant === 'authorization_code' && request.nonce !== undefined ? { nonce: request.nonce } : {}),
        acr: requestedAcr,
        amr: ['TestID'],
        pid: '24079409630',
        locale: 'nb',
        sid: `sid-${randomUUID()}`,
        jti: randomUUID(),
      },
      key: this.activeKey.privateKey,
    };
    await this.tamperIdToken?.(draft, { grant, op: this });
    const jwt = await signDraft(draft);
    return draft.finish ? draft.finish(jwt) : jwt;
  }
}

/**
 * RSA key generation takes about a second here, so OPs share a pool: within one OP every key is distinct,
 * while the n-th key of every OP is the same pair (each gateway has its own JWKS cache, so that is harmless).
 */
const keyPool: Promise<CryptoKeyPair>[] = [];
function pooledKeyPair(slot: number): Promise<CryptoKeyPair> {
  keyPool[slot] ??= generateKeyPair('RS256', { extractable: true });
  return keyPool[slot];
}

async function signDraft(draft: IdTokenDraft): Promise<string> {
  if (draft.header.alg === 'none') {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${part(draft.header)}.${part(draft.claims)}.`;
  }
  return new SignJWT(draft.claims).setProtectedHeader(draft.header).sign(draft.key);
}

/** Changes one character in the middle of a JWT's signature (the last one may only hold padding bits). */
export function corruptSignature(jwt: string): string {
  const [header, payload, signature = ''] = jwt.split('.');
  const i = Math.floor(signature.length / 2);
  const swapped = signature[i] === 'A' ? 'B' : 'A';
  return `${header}.${payload}.${signature.slice(0, i)}${swapped}${signature.slice(i + 1)}`;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

// ---------------------------------------------------------------- a gateway wired to the hostile OP

export interface HostileStack {
  op: HostileOp;
  gateway: Gateway;
  /** The browser-facing origin, e.g. http://localhost:41234 */
  publicUrl: string;
  clientId: string;
  clientSecret: string;
  /** The session cookie's name as the browser sees it. */
  sessionCookieName: string;
  /** Prefix of the login-transaction cookies. */
  transactionCookiePrefix: string;
  logs: Record<string, unknown>[];
  logText(): string;
  audit(event?: string): Record<string, unknown>[];
}

/**
 * Starts a hostile OP and a gateway that trusts it (client_secret_post), both on ephemeral ports and
 * closed at teardown. `idporten` is merged into the tenant's raw idporten config.
 */
export async function startHostileStack(t: Test, opts: { idporten?: Record<string, unknown> } = {}): Promise<HostileStack> {
  const clientId = 'bff-hostile';
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const op = await HostileOp.start({ clientId, clientSecret: CLIENT_SECRET, redirectUris: [`${publicUrl}/auth/callback`] });
  t.teardown(() => op.close());

  const raw = {
    server: { host: '127.0.0.1', port, logLevel: 'debug' },
    session: { store: { type: 'memory', maxSessions: 1000 }, keys: [{ id: 'k1', secret: SESSION_KEY }] },
    tenants: [
      {
        id: 'hostile',
        publicUrl,
        idporten: {
          issuer: op.issuer,
          clientId,
          clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET },
          scopes: ['openid', 'skatteetaten:mvameldingvalidering'],
          acrValues: 'idporten-loa-substantial',
          postLogoutRedirectUri: `${publicUrl}/`,
          httpTimeout: '3s',
          ...opts.idporten,
        },
        routes: [],
      },
    ],
  };
  const config = normaliseConfig(raw, {});
  const captured = captureLogger();
  const gateway = await startGateway(t, config, { logger: captured.logger });
  const tenant = config.tenants[0]!;
  const policy = gateway.core.tenants.byId(tenant.id)!.cookies;
  return {
    op,
    gateway,
    publicUrl,
    clientId,
    clientSecret: CLIENT_SECRET,
    sessionCookieName: policy.sessionName,
    transactionCookiePrefix: policy.transactionPrefix,
    logs: captured.lines,
    logText: captured.text,
    audit: (event) => captured.lines.filter((l) => l.audit === true && (event === undefined || l.event === event)),
  };
}

/**
 * Plants a cookie in `browser` the way a related-host attacker can: a sibling server on the same host
 * (cookies ignore ports) answers with Set-Cookie. The server lives only for this one request.
 */
export async function plantCookie(browser: Browser, host: string, name: string, value: string): Promise<void> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'set-cookie': `${name}=${value}; Path=/`, 'content-type': 'text/plain' }).end('planted');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await browser.navigate(`http://${host}:${port}/`);
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
