/**
 * A small OpenID provider on 127.0.0.1 for tests that drive src/tokens/ directly: discovery, a JWKS with one RSA key,
 * a token endpoint that answers refresh grants (RFC 6749 section 6) and a revocation endpoint (RFC 7009). Every
 * grant and revocation is recorded; a test queues the next answers. The tenant it hands out has a real
 * IdportenClient on a real Provider, so each call goes through openid-client as in the gateway.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import type { Test } from 'tap';
import type { TenantConfig } from '../../src/config/types.js';
import { IdportenClient } from '../../src/idporten/client.js';
import { Provider } from '../../src/idporten/provider.js';
import type { Tenant } from '../../src/tenant/tenant.js';

export interface GrantCall {
  grantType: string | null;
  refreshToken: string | null;
  resource: string | null;
  clientId: string | null;
}

export interface RevocationCall {
  token: string | null;
  hint: string | null;
}

export interface Answer {
  status: number;
  body?: unknown;
}

/** What the token endpoint does with one grant: an answer, possibly after doing something else first. */
export type GrantHandler = (call: GrantCall, n: number) => Answer | Promise<Answer>;
export type RevocationHandler = (call: RevocationCall) => Answer | Promise<Answer>;

export const CLIENT_ID = 'client-1';

/** The default answer: rotated tokens numbered after the grant (at-g1 / rt-g1 for the first). */
export const rotate = (n: number, over: Record<string, unknown> = {}): Answer => ({
  status: 200,
  body: { access_token: `at-g${n}`, token_type: 'Bearer', expires_in: 120, refresh_token: `rt-g${n}`, scope: 'openid', ...over },
});

export const errorAnswer = (status: number, error: string): Answer => ({ status, body: { error } });

export interface TokenEndpoint {
  issuer: string;
  grants: GrantCall[];
  revocations: RevocationCall[];
  /** Answers for the next grants, in order; when empty, `rotate`. */
  nextGrants: GrantHandler[];
  /** How revocations are answered (default 200). */
  onRevoke: RevocationHandler;
  idToken(claims: JWTPayload): Promise<string>;
  /** A tenant with a real IdportenClient for this provider; `clientAuth` replaces its client_secret_post. */
  tenant(id?: string, clientAuth?: unknown): Tenant;
}

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res: ServerResponse, answer: Answer): void {
  const body = answer.body === undefined ? '' : JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

/** One signing key for every endpoint a test file starts: made once. */
let signingKey: ReturnType<typeof generateKeyPair> | undefined;

export async function startTokenEndpoint(t: Test): Promise<TokenEndpoint> {
  const { publicKey, privateKey } = await (signingKey ??= generateKeyPair('RS256'));
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let grantCount = 0;
  const endpoint: TokenEndpoint = {
    issuer: '',
    grants: [],
    revocations: [],
    nextGrants: [],
    onRevoke: () => ({ status: 200 }),
    idToken: (claims) =>
      new SignJWT({ aud: CLIENT_ID, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(endpoint.issuer)
        .setIssuedAt()
        .setExpirationTime('2m')
        .sign(privateKey),
    tenant: (id = 'mva', clientAuth = { method: 'client_secret_post', secret: 'client-secret' }) => {
      const config = {
        id,
        idporten: {
          issuer: endpoint.issuer,
          clientId: CLIENT_ID,
          clientAuth,
          scopes: ['openid'],
          httpTimeoutMs: 5_000,
        },
      } as unknown as TenantConfig;
      const idporten = new IdportenClient(config, new Provider({ issuer: endpoint.issuer, httpTimeoutMs: 5_000 }));
      return { id, config, idporten } as unknown as Tenant;
    },
  };
  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
        return send(res, {
          status: 200,
          body: {
            issuer: endpoint.issuer,
            token_endpoint: `${endpoint.issuer}/token`,
            revocation_endpoint: `${endpoint.issuer}/revoke`,
            jwks_uri: `${endpoint.issuer}/jwks`,
            id_token_signing_alg_values_supported: ['RS256'],
          },
        });
      }
      if (req.method === 'GET' && path === '/jwks') return send(res, { status: 200, body: { keys: [jwk] } });
      if (req.method === 'POST' && path === '/token') {
        const params = await form(req);
        const call: GrantCall = { grantType: params.get('grant_type'), refreshToken: params.get('refresh_token'), resource: params.get('resource'), clientId: params.get('client_id') };
        endpoint.grants.push(call);
        grantCount += 1;
        const handler = endpoint.nextGrants.shift();
        return send(res, handler ? await handler(call, grantCount) : rotate(grantCount));
      }
      if (req.method === 'POST' && path === '/revoke') {
        const params = await form(req);
        const call: RevocationCall = { token: params.get('token'), hint: params.get('token_type_hint') };
        endpoint.revocations.push(call);
        return send(res, await endpoint.onRevoke(call));
      }
      send(res, { status: 404 });
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  endpoint.issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
  });
  return endpoint;
}
