/**
 * An upstream that verifies what it receives as a DPoP-aware resource server does (RFC 9449 section 7): the
 * token's signature against the provider's JWKS, and for `Authorization: DPoP` the proof (demo/dpop-check.ts:
 * signature, htm, htu, ath, jti replay, iat window, the nonce it demands, cnf.jkt). It reads each request body to its
 * end before answering, and records every request with the verdict it got.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { createBearerVerifier } from '../../demo/bearer.js';
import { DpopChecker, dpopRequestOf } from '../../demo/dpop-check.js';

export interface DpopUpstreamRequest {
  method: string;
  path: string;
  /** The Authorization scheme, as sent. */
  scheme: string | undefined;
  /** The proof's claims (undecoded proofs leave it undefined). */
  proof: Record<string, unknown> | undefined;
  bodyLength: number;
  bodySha256: string;
  status: number;
  /** Why it was refused (401), from the challenge. */
  refusal: string | undefined;
}

export interface DpopUpstream {
  origin: string;
  checker: DpopChecker;
  requests: DpopUpstreamRequest[];
  /** The provider whose tokens it takes (set before the first request; the gateway's routes need the origin first). */
  trust(provider: { issuer: string; jwksUri: string }): void;
  close(): Promise<void>;
}

/** `dpop: false`: an upstream that knows no DPoP and takes any valid token as Bearer. */
export async function startDpopUpstream(opts: { nonce?: boolean; dpop?: boolean } = {}): Promise<DpopUpstream> {
  const checker = new DpopChecker({ nonce: opts.nonce ?? false });
  let verify: ReturnType<typeof createBearerVerifier> | undefined;
  const requests: DpopUpstreamRequest[] = [];
  const server: Server = createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    req.on('end', () => {
      void (async () => {
        const auth = await verify!(req.headers.authorization, dpopRequestOf(req));
        const proofHeader = req.headers.dpop;
        let proof: Record<string, unknown> | undefined;
        try {
          proof = typeof proofHeader === 'string' ? decodeJwt(proofHeader) : undefined;
        } catch {
          proof = undefined;
        }
        const record: DpopUpstreamRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          scheme: req.headers.authorization?.split(' ', 1)[0],
          proof,
          bodyLength: length,
          bodySha256: hash.digest('hex'),
          status: auth.ok ? 200 : auth.status,
          refusal: auth.ok ? undefined : auth.description,
        };
        requests.push(record);
        const nonceHeader: Record<string, string> = checker.demandsNonce ? { 'dpop-nonce': checker.nonce } : {};
        if (!auth.ok) {
          res.writeHead(auth.status, { 'content-type': 'application/json', ...nonceHeader, ...auth.challenge });
          res.end(JSON.stringify({ error: auth.error, error_description: auth.description }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', ...nonceHeader });
        res.end(JSON.stringify({ scheme: auth.scheme, bodyLength: length, sub: auth.claims.sub }));
      })();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    checker,
    requests,
    trust(provider) {
      verify = createBearerVerifier({ issuer: provider.issuer, jwksUri: provider.jwksUri, ...(opts.dpop === false ? {} : { dpop: checker }) });
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
