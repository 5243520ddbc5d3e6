/**
 * One provider per issuer and trust settings (src/idporten/provider.ts), checked directly against a small discovery
 * and JWKS endpoint on 127.0.0.1: one load shared by concurrent callers, the last good state kept through a failed
 * load, the issuer of the metadata compared (OpenID Connect Discovery 1.0 section 4.3), and the request options each
 * tenant's openid-client Configuration gets. The sharing by hundreds of tenants is in provider-sharing.test.ts.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import * as client from 'openid-client';
import { OidcError } from '../src/idporten/errors.js';
import { Provider, Providers } from '../src/idporten/provider.js';

interface Endpoint {
  issuer: string;
  counts: { discovery: number; jwks: number; revocation: number };
  /** What discovery answers: the metadata to change, or a status to fail with. */
  answer: { status: number; issuer?: string; jwks?: boolean };
}

async function startEndpoint(t: Test): Promise<Endpoint> {
  const endpoint = { issuer: '', counts: { discovery: 0, jwks: 0, revocation: 0 }, answer: { status: 200 } } as Endpoint;
  const server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'dpop-nonce': 'op-nonce' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      endpoint.counts.discovery += 1;
      const { status, issuer, jwks } = endpoint.answer;
      if (status !== 200) return json(status, { error: 'server_error' });
      return json(200, {
        issuer: issuer ?? endpoint.issuer,
        ...(jwks === false ? {} : { jwks_uri: `${endpoint.issuer}/jwks` }),
        token_endpoint: `${endpoint.issuer}/token`,
        revocation_endpoint: `${endpoint.issuer}/revoke`,
      });
    }
    if (req.url === '/jwks') {
      endpoint.counts.jwks += 1;
      return json(200, { keys: [] });
    }
    if (req.url === '/revoke') {
      endpoint.counts.revocation += 1;
      req.resume();
      res.writeHead(200, { 'dpop-nonce': 'op-nonce' }).end();
      return;
    }
    json(404, {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  endpoint.issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return endpoint;
}

t.test('a provider loads its metadata and keys once for concurrent callers, and keeps them frozen', async (t) => {
  const op = await startEndpoint(t);
  const provider = new Provider({ issuer: op.issuer, httpTimeoutMs: 2_000, caPem: undefined });
  t.equal(provider.issuer, op.issuer);
  t.equal(provider.ready, false);
  t.equal(provider.state, undefined);
  const [a, b] = await Promise.all([provider.loaded(), provider.loaded()]);
  t.equal(a, b, 'one state for both');
  t.same(op.counts, { discovery: 1, jwks: 1, revocation: 0 }, 'one discovery and one JWKS request');
  t.equal(provider.ready, true);
  t.equal(provider.state, a);
  t.equal(a.metadata.issuer, op.issuer);
  t.ok(Object.isFrozen(a.metadata));
  t.equal(await provider.loaded(), a, 'a loaded provider answers from its state');
  t.equal(op.counts.discovery, 1);
  const next = await provider.load();
  t.not(next, a, 'load fetches again');
  t.same(op.counts, { discovery: 2, jwks: 2, revocation: 0 });
  t.equal(provider.state, next);
});

t.test('a failed load is classified and keeps the last good state; the next load tries again', async (t) => {
  const op = await startEndpoint(t);
  const provider = new Provider({ issuer: op.issuer, httpTimeoutMs: 2_000, caPem: undefined });
  const good = await provider.loaded();
  op.answer = { status: 503 };
  const down = await provider.load().catch((err: unknown) => err);
  t.ok(down instanceof OidcError);
  t.equal((down as OidcError).kind, 'unavailable', 'a provider answering 503 is unavailable');
  t.match((down as OidcError).reason, /^discovery: /, 'named as discovery');
  t.equal(provider.state, good, 'the last good state stays in use');
  t.equal(provider.ready, true);
  op.answer = { status: 200 };
  const again = await provider.load();
  t.not(again, good, 'the failure was not kept as the pending load');
});

t.test('metadata of another issuer, or without jwks_uri, is refused (OpenID Connect Discovery 1.0 section 4.3)', async (t) => {
  const op = await startEndpoint(t);
  op.answer = { status: 200, issuer: 'https://elsewhere.example' };
  const provider = new Provider({ issuer: op.issuer, httpTimeoutMs: 2_000, caPem: undefined });
  const mismatch = (await provider.loaded().catch((err: unknown) => err)) as OidcError;
  t.ok(mismatch instanceof OidcError, 'openid-client or the provider refuses it');
  t.equal(mismatch.kind, 'rejected');
  t.equal(provider.ready, false);
  op.answer = { status: 200, jwks: false };
  const noJwks = (await provider.load().catch((err: unknown) => err)) as OidcError;
  t.ok(noJwks instanceof OidcError);
  t.equal(noJwks.kind, 'rejected');
  t.equal(noJwks.reason, 'provider metadata has no jwks_uri');
  t.equal(op.counts.jwks, 0);
  t.equal(provider.ready, false);
});

t.test("configure gives a tenant's Configuration the provider's fetch (keeping DPoP nonces), timeout, and plain http on loopback only", async (t) => {
  const op = await startEndpoint(t);
  const provider = new Provider({ issuer: op.issuer, httpTimeoutMs: 1_500, caPem: undefined });
  const { metadata } = await provider.loaded();
  const config = new client.Configuration(metadata, 'client-1', undefined, client.None());
  t.equal(provider.configure(config), config);
  t.equal(config.timeout, 2, 'whole seconds, rounded up');
  await client.tokenRevocation(config, 'some-token');
  t.equal(op.counts.revocation, 1, 'the request went out over http to 127.0.0.1');
  t.equal(provider.dpopNonces.get(`${op.issuer}/token`), 'op-nonce', 'through the fetch that keeps DPoP-Nonce (RFC 9449 section 8)');

  const remote = new Provider({ issuer: 'http://idporten.example', httpTimeoutMs: 1_000, caPem: undefined });
  const remoteConfig = remote.configure(new client.Configuration({ ...metadata, issuer: 'http://idporten.example' }, 'client-1', undefined, client.None()));
  t.equal(remoteConfig.timeout, 1);
  await t.rejects(client.tokenRevocation(remoteConfig, 'some-token'), 'plain http to a host that is not loopback is refused');
  t.equal(op.counts.revocation, 1);
});

t.test('Providers: one provider per issuer, timeout and CA; keep drops the ones not in use', async (t) => {
  const providers = new Providers();
  const trust = { issuer: 'https://idporten.example', httpTimeoutMs: 5_000, caPem: undefined };
  const a = providers.for(trust);
  t.equal(providers.for({ ...trust }), a, 'the same settings share one');
  t.equal(a.issuer, trust.issuer);
  const others = [
    providers.for({ ...trust, issuer: 'https://other.example' }),
    providers.for({ ...trust, httpTimeoutMs: 6_000 }),
    providers.for({ ...trust, caPem: 'PEM A' }),
    providers.for({ ...trust, caPem: 'PEM B' }),
  ];
  t.equal(new Set([a, ...others]).size, 5, 'each setting that differs makes its own');
  t.equal(providers.for({ ...trust, caPem: 'PEM B' }), others[3], 'the same CA again shares');
  t.equal(providers.size, 5);
  providers.keep(new Set([a, others[2]!]));
  t.equal(providers.size, 2);
  t.equal(providers.for(trust), a, 'a kept provider is still the one');
  t.not(providers.for({ ...trust, issuer: 'https://other.example' }), others[0], 'a dropped one is made anew');
});
