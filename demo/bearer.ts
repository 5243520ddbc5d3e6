/**
 * Bearer-token checks shared by the upstream look-alikes (RFC 6750): the JWT signature via
 * the issuer's JWKS, expiry, issuer, optionally audience, and the scope the endpoint needs.
 * With a DpopChecker, `Authorization: DPoP` is taken too, with its proof checked (RFC 9449 section 7),
 * and a DPoP-bound token (cnf.jkt) sent as Bearer is refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { dpopChallenge, type DpopChecker, type DpopRequest } from './dpop-check.js';
import { sendJson } from './http-server.js';

export interface BearerVerifierOptions {
  issuer: string;
  /** Where the issuer publishes its keys; fetched and cached, re-fetched on an unknown `kid`. */
  jwksUri?: string;
  /** Keys known up front (a key set or a jose key resolver) instead of `jwksUri`. */
  jwks?: JSONWebKeySet | JWTVerifyGetKey;
  /** A scope that must appear in the space-separated `scope` claim. */
  requiredScope?: string;
  audience?: string;
  /** Take DPoP-bound tokens with proofs (the request must then be passed to the verifier). */
  dpop?: DpopChecker;
}

export type BearerResult =
  | { ok: true; claims: JWTPayload; scheme: 'Bearer' | 'DPoP' }
  | { ok: false; status: 401 | 403; error: BearerError; description: string; challenge?: Record<string, string> };

/** `missing_token` stands for RFC 6750 §3.1's "no error code": the request had no credentials. */
export type BearerError = 'missing_token' | 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export type BearerVerifier = (authorizationHeader: string | undefined, request?: DpopRequest) => Promise<BearerResult>;

export function createBearerVerifier(opts: BearerVerifierOptions): BearerVerifier {
  const keys = resolveKeys(opts);
  return async (header, request) => {
    if (!header) return fail(401, 'missing_token', 'no bearer token');
    const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim());
    const scheme = match?.[1]?.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    if (!match?.[2] || (scheme === 'DPoP' && !opts.dpop)) return fail(401, 'invalid_request', 'Authorization is not a Bearer token');
    const token = match[2];

    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        issuer: opts.issuer,
        algorithms: ['RS256'],
        requiredClaims: ['exp'],
        ...(opts.audience ? { audience: opts.audience } : {}),
      }));
    } catch (err) {
      return fail(401, 'invalid_token', describe(err));
    }

    if (opts.dpop) {
      const bound = (claims.cnf as { jkt?: unknown } | undefined)?.jkt !== undefined;
      if (scheme === 'Bearer' && bound) return fail(401, 'invalid_token', 'a DPoP-bound token must come with Authorization: DPoP and a proof');
      if (scheme === 'DPoP') {
        if (!request) throw new TypeError('a DPoP verifier needs the request');
        const check = await opts.dpop.check(request, token, claims);
        if (!check.ok) return { ...fail(401, 'invalid_token', check.description), challenge: dpopChallenge(check, opts.dpop) };
      }
    }

    if (opts.requiredScope) {
      const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
      if (!scopes.includes(opts.requiredScope)) {
        return fail(403, 'insufficient_scope', `scope ${opts.requiredScope} required`);
      }
    }
    return { ok: true, claims, scheme };
  };
}

/** The RFC 6750 §3 challenge for a failed check. */
export function wwwAuthenticate(result: Extract<BearerResult, { ok: false }>, realm: string, scope?: string): string {
  const parts = [`realm="${realm}"`];
  if (result.error !== 'missing_token') {
    parts.push(`error="${result.error}"`, `error_description="${result.description.replaceAll('"', "'")}"`);
  }
  if (result.error === 'insufficient_scope' && scope) parts.push(`scope="${scope}"`);
  return `Bearer ${parts.join(', ')}`;
}

/** Answers a failed check: drains the request body, RFC 6750 error JSON and challenge. */
export function refuseBearer(req: IncomingMessage, res: ServerResponse, result: Extract<BearerResult, { ok: false }>, realm: string, scope?: string): void {
  req.resume();
  sendJson(
    res,
    result.status,
    { error: result.error === 'missing_token' ? 'unauthorized' : result.error, error_description: result.description },
    result.challenge ?? { 'www-authenticate': wwwAuthenticate(result, realm, scope) },
  );
}

function resolveKeys(opts: BearerVerifierOptions): JWTVerifyGetKey {
  if (typeof opts.jwks === 'function') return opts.jwks;
  if (opts.jwks) return createLocalJWKSet(opts.jwks);
  if (opts.jwksUri) return createRemoteJWKSet(new URL(opts.jwksUri));
  throw new TypeError('createBearerVerifier needs jwksUri or jwks');
}

function fail(status: 401 | 403, error: BearerError, description: string): BearerResult {
  return { ok: false, status, error, description };
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'signature invalid';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim check failed: ${(err as { claim?: string }).claim ?? 'unknown'}`;
    default:
      return 'token invalid';
  }
}
