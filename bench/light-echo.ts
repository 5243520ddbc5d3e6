/**
 * The peers benchmark's upstream: `/echo/*` answers what arrived (method, path, headers) once its bearer checks
 * out. Each distinct bearer is verified once in full (RS256 against the OP's keys, issuer, expiry, via
 * demo/bearer.ts) and then recognised by exact match until it expires, as a resource server caching its
 * verdicts would. The full check costs about as much per request as the server under measurement; with it the
 * core shared by the load generator and the upstream saturated first, and the peers table measured that core,
 * not the server's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBearerVerifier, refuseBearer } from '../demo/bearer.js';
import { sendJson, serve, type RunningServer } from '../demo/http-server.js';

const ECHO_PREFIX = '/echo/';
const REALM = 'bench-light-echo';
/** Distinct bearers remembered; a benchmark uses a handful. */
const MAX_VERIFIED = 1_000;

export async function startLightEcho(opts: { issuer: string; jwksUri: string }): Promise<RunningServer> {
  const verify = createBearerVerifier({ issuer: opts.issuer, jwksUri: opts.jwksUri });
  /** Authorization header → expiry (ms since the epoch) of a bearer that passed the full check. */
  const verified = new Map<string, number>();

  const authorised = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const header = req.headers.authorization ?? '';
    const expiresAt = verified.get(header);
    if (expiresAt !== undefined && Date.now() < expiresAt) return true;
    const result = await verify(header);
    if (!result.ok) {
      refuseBearer(req, res, result, REALM);
      return false;
    }
    if (verified.size >= MAX_VERIFIED) verified.clear();
    verified.set(header, (result.claims.exp ?? 0) * 1000);
    return true;
  };

  return serve('127.0.0.1', 0, async (req, res, url) => {
    if (!url.pathname.startsWith(ECHO_PREFIX)) {
      req.resume();
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    if (!(await authorised(req, res))) return;
    if (!req.readableEnded) await new Promise((resolve) => req.once('end', resolve).resume());
    sendJson(res, 200, { method: req.method, path: url.pathname, headers: { ...req.headers, authorization: 'Bearer (verified)' } });
  });
}
