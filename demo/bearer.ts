/**
 * Bearer-token checks shared by the upstream look-alikes (RFC 6750): the JWT signature via
 * the issuer's JWKS, expiry, issuer, optionally audience, and the scope the endpoint needs.
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
}

export type BearerResult =
  | { ok: true; claims: JWTPayload }
  | { ok: false; status: 401 | 403; error: BearerError; description: string };

/** `missing_token` stands for RFC 6750 §3.1's "no error code": the request had no credentials. */
export type BearerError = 'missing_token' | 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export type BearerVerifier = (authorizationHeader: string | undefined) => Promise<BearerResult>;

export function createBearerVerifier(opts: BearerVerifierOptions): BearerVerifier {
  const keys = resolveKeys(opts);
  return async (header) => {
    if (!header) return fail(401, 'missing_token', 'no bearer token');
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim());
    if (!match?.[1]) return fail(401, 'invalid_request', 'Authorization is not a Bearer token');

    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(match[1], keys, {
        issuer: opts.issuer,
        algorithms: ['RS256'],
        requiredClaims: ['exp'],
        ...(opts.audience ? { audience: opts.audience } : {}),
      }));
    } catch (err) {
      return fail(401, 'invalid_token', describe(err));
    }

    if (opts.requiredScope) {
      const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
      if (!scopes.includes(opts.requiredScope)) {
        return fail(403, 'insufficient_scope', `scope ${opts.requiredScope} required`);
      }
    }
    return { ok: true, claims };
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
    { 'www-authenticate': wwwAuthenticate(result, realm, scope) },
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
