/**
 * A Maskinporten look-alike: the token endpoint's JWT-bearer grant (RFC 7523 section 2.1) as Maskinporten does
 * it, for the admin client of Digdir's self-service API. The assertion is verified as Maskinporten documents:
 * RS256/RS384/RS512, exactly one of `kid` (a key registered on the client) or `x5c` (the enterprise
 * certificate), `iss` = a known client, `aud` = the issuer verbatim, `iat` within 10 s, `exp − iat` ≤ 120 s, not
 * expired, `jti` never reused, and every requested scope granted to the client. Refusals carry Maskinporten's
 * error codes (MP-100 …) in `error_description`. The access token is a JWT that the self-service look-alike
 * verifies with this look-alike's key.
 */
import { X509Certificate, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, importX509, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { readBody, sendJson, serve } from './http-server.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export interface MaskinportenClient {
  clientId: string;
  /** The organisation behind the client (its enterprise certificate's orgno). */
  orgno: string;
  /** The scopes the client has been granted. */
  scopes: string[];
  /** Public JWKs registered on the client (each with a kid); a client with keys must sign with one of them. */
  keys?: JWK[];
  /** The enterprise certificate (PEM) a client without keys signs with (`x5c`). */
  certificate?: string;
}

export interface MaskinportenLookalike {
  issuer: string;
  tokenEndpoint: string;
  /** Verifies an access token this look-alike issued; undefined when it is not one (or has expired). */
  verifyAccessToken(token: string): Promise<JWTPayload | undefined>;
  /** Grants answered and refused, for tests. */
  readonly stats: { issued: number; refused: number };
  close(): Promise<void>;
}

const ALGORITHMS = ['RS256', 'RS384', 'RS512'];
const MAX_ASSERTION_LIFETIME_S = 120;
const CLOCK_SKEW_S = 10;
const ACCESS_TOKEN_TTL_S = 120;

class GrantRefused extends Error {
  /** `code`: Maskinporten's documented error code, where it has one for the case. */
  constructor(readonly error: 'invalid_grant' | 'invalid_scope' | 'invalid_request' | 'unsupported_grant_type', readonly code: string | undefined, description: string) {
    super(code === undefined ? description : `${description} (${code})`);
  }
}

export async function startMaskinportenLookalike(opts: { clients: MaskinportenClient[]; host?: string; port?: number }): Promise<MaskinportenLookalike> {
  const signing = await generateKeyPair('RS256');
  const signingKid = randomUUID();
  const usedJti = new Map<string, number>();
  const stats = { issued: 0, refused: 0 };
  let issuer = '';

  const running = await serve(opts.host ?? '127.0.0.1', opts.port ?? 0, async (req, res, url) => {
    if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server') {
      sendJson(res, 200, { issuer, token_endpoint: `${issuer}token`, jwks_uri: `${issuer}jwk`, grant_types_supported: [JWT_BEARER], token_endpoint_auth_methods_supported: ['private_key_jwt'] });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/jwk') {
      sendJson(res, 200, { keys: [{ ...(await exportJWK(signing.publicKey)), kid: signingKid, alg: 'RS256', use: 'sig' }] });
      return;
    }
    if (req.method !== 'POST' || url.pathname !== '/token') {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    const form = new URLSearchParams((await readBody(req, 64 * 1024)).toString('utf8'));
    try {
      const { client, scope } = await verifyGrant(form);
      const now = Math.floor(Date.now() / 1000);
      const accessToken = await new SignJWT({ client_id: client.clientId, client_amr: 'private_key_jwt', scope, consumer: { authority: 'iso6523-actorid-upis', ID: `0192:${client.orgno}` } })
        .setProtectedHeader({ alg: 'RS256', kid: signingKid })
        .setIssuer(issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + ACCESS_TOKEN_TTL_S)
        .setJti(randomUUID())
        .sign(signing.privateKey);
      stats.issued += 1;
      sendJson(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TOKEN_TTL_S, scope }, { 'cache-control': 'no-store' });
    } catch (err) {
      if (!(err instanceof GrantRefused)) throw err;
      stats.refused += 1;
      sendJson(res, 400, { error: err.error, error_description: err.message }, { 'cache-control': 'no-store' });
    }
  });
  issuer = `${running.url}/`;

  async function verifyGrant(form: URLSearchParams): Promise<{ client: MaskinportenClient; scope: string }> {
    if (form.get('grant_type') !== JWT_BEARER) throw new GrantRefused('unsupported_grant_type', undefined, `grant_type must be ${JWT_BEARER}`);
    const assertion = form.get('assertion');
    if (!assertion) throw new GrantRefused('invalid_request', undefined, 'the assertion is missing');
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(assertion);
      claims = decodeJwt(assertion);
    } catch {
      throw new GrantRefused('invalid_grant', undefined, 'the assertion is not a JWT');
    }
    const client = opts.clients.find((c) => c.clientId === claims.iss);
    if (!client) throw new GrantRefused('invalid_grant', 'MP-100', `invalid iss: unknown client ${JSON.stringify(claims.iss ?? null)}`);
    if (!ALGORITHMS.includes(header.alg ?? '')) throw new GrantRefused('invalid_grant', undefined, `alg must be one of ${ALGORITHMS.join(', ')}`);
    if ((header.kid === undefined) === (header.x5c === undefined)) throw new GrantRefused('invalid_grant', 'MP-123', 'the assertion needs exactly one of kid and x5c');
    const key = await verificationKey(client, header);
    try {
      await jwtVerify(assertion, key, { algorithms: ALGORITHMS, clockTolerance: CLOCK_SKEW_S, requiredClaims: ['iss', 'aud', 'iat', 'exp'] });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED') throw new GrantRefused('invalid_grant', 'MP-130', 'the assertion has expired');
      if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw new GrantRefused('invalid_grant', undefined, 'the assertion signature does not verify');
      throw new GrantRefused('invalid_grant', undefined, `the assertion is not valid: ${(err as Error).message}`);
    }
    // The audience is the issuer verbatim, trailing slash included.
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (aud.length !== 1 || aud[0] !== issuer) throw new GrantRefused('invalid_grant', 'MP-110', `invalid aud: must be ${issuer}`);
    const now = Math.floor(Date.now() / 1000);
    const iat = claims.iat ?? 0;
    if (Math.abs(iat - now) > CLOCK_SKEW_S) throw new GrantRefused('invalid_grant', undefined, 'iat is more than 10 s from the time at Maskinporten');
    if ((claims.exp ?? 0) - iat > MAX_ASSERTION_LIFETIME_S) throw new GrantRefused('invalid_grant', undefined, `exp may be at most ${MAX_ASSERTION_LIFETIME_S} s after iat`);
    if (typeof claims.jti === 'string') {
      for (const [jti, until] of usedJti) if (until < now) usedJti.delete(jti);
      if (usedJti.has(claims.jti)) throw new GrantRefused('invalid_grant', 'MP-012', 'the assertion (its jti) has been used already');
      usedJti.set(claims.jti, (claims.exp ?? now) + CLOCK_SKEW_S);
    }
    const scope = typeof claims.scope === 'string' ? claims.scope.trim() : '';
    if (scope === '') throw new GrantRefused('invalid_scope', 'MP-200', 'the assertion asks for no scope');
    const missing = scope.split(/\s+/).filter((s) => !client.scopes.includes(s));
    if (missing.length > 0) throw new GrantRefused('invalid_scope', 'MP-200', `the client has no access to ${missing.join(' ')}`);
    return { client, scope };
  }

  return {
    issuer,
    tokenEndpoint: `${issuer}token`,
    stats,
    async verifyAccessToken(token) {
      try {
        return (await jwtVerify(token, signing.publicKey, { issuer, algorithms: ['RS256'] })).payload;
      } catch {
        return undefined;
      }
    },
    close: () => running.close(),
  };
}

async function verificationKey(client: MaskinportenClient, header: ReturnType<typeof decodeProtectedHeader>): Promise<CryptoKey | Uint8Array> {
  const registered = client.keys ?? [];
  if (header.kid !== undefined) {
    const jwk = registered.find((k) => k.kid === header.kid);
    if (!jwk) throw new GrantRefused('invalid_grant', 'MP-121', `kid ${JSON.stringify(header.kid)} is not registered on the client`);
    return importJWK(jwk, header.alg);
  }
  // A client with registered keys must name one of them (kid).
  if (registered.length > 0) throw new GrantRefused('invalid_grant', 'MP-123', 'the client has registered keys: sign with one of them (kid), not x5c');
  if (!Array.isArray(header.x5c) || header.x5c.length === 0) throw new GrantRefused('invalid_grant', 'MP-123', 'x5c must be an array of base64 DER certificates');
  const leaf = new X509Certificate(Buffer.from(header.x5c[0]!, 'base64'));
  if (!client.certificate || !leaf.publicKey.equals(new X509Certificate(client.certificate).publicKey)) {
    throw new GrantRefused('invalid_grant', undefined, "x5c is not the client's enterprise certificate");
  }
  return importX509(leaf.toString(), header.alg ?? 'RS256');
}
