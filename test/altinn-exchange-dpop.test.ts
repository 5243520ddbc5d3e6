/**
 * The Altinn token exchange with a DPoP-bound token (`altinn.dpop`), called directly against a real HTTP exchange
 * that checks nonces as RFC 9449 section 9 lets a resource server do: the proof, the one retry for a nonce, and
 * the nonce shared by the instances through the store.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { UpstreamNonces } from '../src/net/dpop-nonces.js';
import { newDpopKey, signerFor, accessTokenHash } from '../src/net/dpop.js';
import { boundedFetch } from '../src/net/fetch.js';
import { MemorySessionStore } from '../src/session/memory-store.js';
import { exchangeForAltinnToken } from '../src/tokens/altinn-exchange.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const exp = Math.floor(Date.now() / 1000) + 3600;
const altinnToken = `${b64({ alg: 'RS256' })}.${b64({ exp })}.c2ln`;
const payloadOf = (proof: string) => JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/**
 * An exchange that wants `current.nonce` in every proof (undefined: none), and names it on every answer. `refuseAll`:
 * it refuses every proof, naming a new nonce each time (`renew`), the same one, or none (`unnamed`).
 */
async function startExchange(t: Test, opts: { challenge?: string; status?: number; refuseAll?: 'renew' | 'same' | 'unnamed' } = {}) {
  const current: { nonce: string | undefined } = { nonce: 'n-1' };
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    const proof = typeof req.headers.dpop === 'string' ? payloadOf(req.headers.dpop) : undefined;
    if (opts.refuseAll === 'renew') current.nonce = `n-${seen.length}`;
    const headers: Record<string, string> = current.nonce === undefined || opts.refuseAll === 'unnamed' ? {} : { 'dpop-nonce': current.nonce };
    if (opts.refuseAll !== undefined || (current.nonce !== undefined && proof?.nonce !== current.nonce)) {
      res.writeHead(opts.status ?? 401, { ...headers, 'www-authenticate': opts.challenge ?? 'DPoP error="use_dpop_nonce", error_description="a nonce is required"' });
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': 'text/plain' }).end(altinnToken);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/authentication/api/v1/exchange/id-porten?test=1`;
  return { url, origin: new URL(url).origin, current, seen };
}

const fetchImpl = boundedFetch({ timeoutMs: 5_000 });
const signer = signerFor(newDpopKey());
const exchange = (url: string, nonces?: UpstreamNonces) =>
  exchangeForAltinnToken(fetchImpl, url, 'idporten-at', Date.now() + 3_600_000, Date.now(), { signer, nonces });

t.test('the bound token goes as DPoP with a proof of the URL called (RFC 9449 sections 4.2 and 7.1)', async (t) => {
  const ex = await startExchange(t);
  ex.current.nonce = undefined;
  t.same(await exchange(ex.url), { token: altinnToken, expiresAt: exp * 1000 });
  t.equal(ex.seen.length, 1);
  t.equal(ex.seen[0]!.authorization, 'DPoP idporten-at');
  const proof = payloadOf(String(ex.seen[0]!.dpop));
  t.equal(proof.htm, 'GET');
  t.equal(proof.htu, ex.url.split('?')[0], 'htu without the query');
  t.equal(proof.ath, accessTokenHash('idporten-at'), 'ath: the hash of the token sent');
  t.notOk('nonce' in proof, 'no nonce when none was named');
});

t.test('a refusal for want of a nonce (401, DPoP error="use_dpop_nonce", DPoP-Nonce) is sent once more with it (RFC 9449 section 9)', async (t) => {
  const ex = await startExchange(t);
  t.same(await exchange(ex.url), { token: altinnToken, expiresAt: exp * 1000 });
  t.equal(ex.seen.length, 2, 'one retry');
  t.notOk('nonce' in payloadOf(String(ex.seen[0]!.dpop)));
  const retried = payloadOf(String(ex.seen[1]!.dpop));
  t.equal(retried.nonce, 'n-1', 'the retry carries the nonce named');
  t.not(retried.jti, payloadOf(String(ex.seen[0]!.dpop)).jti, 'a fresh proof, not the refused one again');
});

t.test('a nonce learnt on one instance serves the next exchange on another, through the store', async (t) => {
  const ex = await startExchange(t);
  const store = new MemorySessionStore(100);
  const instanceA = new UpstreamNonces(store);
  const instanceB = new UpstreamNonces(store);
  await exchange(ex.url, instanceA);
  t.equal(ex.seen.length, 2, 'the first exchange anywhere learns the nonce by one refusal');
  t.equal(await store.getShared(`dpop-nonce:${ex.origin}`), 'n-1', 'kept in the store, by the exchange\'s origin');
  await exchange(ex.url, instanceB);
  t.equal(ex.seen.length, 3, 'the other instance is served at once');
  t.equal(payloadOf(String(ex.seen[2]!.dpop)).nonce, 'n-1');

  // A nonce the exchange rotates on a successful answer is taken up for the next exchange.
  ex.current.nonce = 'n-2';
  await exchange(ex.url, instanceB);
  t.equal(ex.seen.length, 5, 'a rotated nonce costs one refusal');
  t.equal(await store.getShared(`dpop-nonce:${ex.origin}`), 'n-2');
});

t.test('no second retry, and none for an answer that is not a nonce challenge: the refusal is the exchange failing', async (t) => {
  await t.test('a retry refused for its nonce again', async (t) => {
    const ex = await startExchange(t, { refuseAll: 'renew' });
    await t.rejects(exchange(ex.url), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 2, 'the first try and one retry, then the refusal stands');
  });
  await t.test('a refusal naming the very nonce the proof carried', async (t) => {
    const ex = await startExchange(t, { refuseAll: 'same' });
    const nonces = new UpstreamNonces(new MemorySessionStore(100));
    nonces.learn(ex.origin, 'n-1');
    await t.rejects(exchange(ex.url, nonces), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 1, 'retrying with the same nonce could not help');
    t.equal(payloadOf(String(ex.seen[0]!.dpop)).nonce, 'n-1');
  });
  await t.test('a use_dpop_nonce refusal that names no nonce, while one is known', async (t) => {
    const ex = await startExchange(t, { refuseAll: 'unnamed' });
    const nonces = new UpstreamNonces(new MemorySessionStore(100));
    nonces.learn(ex.origin, 'n-known');
    await t.rejects(exchange(ex.url, nonces), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 1, 'no nonce to retry with');
  });
  await t.test('a DPoP-Nonce on a 401 whose challenge is another error', async (t) => {
    const ex = await startExchange(t, { challenge: 'DPoP error="invalid_token"' });
    await t.rejects(exchange(ex.url), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 1);
  });
  await t.test('a use_dpop_nonce challenge on a status other than 401', async (t) => {
    const ex = await startExchange(t, { status: 400 });
    await t.rejects(exchange(ex.url), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 1);
  });
  await t.test('a Bearer challenge', async (t) => {
    const ex = await startExchange(t, { challenge: 'Bearer error="use_dpop_nonce"' });
    await t.rejects(exchange(ex.url), { name: 'AltinnExchangeError', kind: 'rejected' });
    t.equal(ex.seen.length, 1);
  });
});

t.test('a nonce that RFC 9449 section 8.1 does not allow is neither sent nor kept', async (t) => {
  const ex = await startExchange(t);
  ex.current.nonce = 'has space';
  const store = new MemorySessionStore(100);
  await t.rejects(exchange(ex.url, new UpstreamNonces(store)), { name: 'AltinnExchangeError', kind: 'rejected' });
  t.equal(ex.seen.length, 1, 'no retry with it');
  t.equal(await store.getShared(`dpop-nonce:${ex.origin}`), undefined, 'not kept');
});

t.test('without DPoP the token goes as Bearer and a nonce challenge is not answered', async (t) => {
  const ex = await startExchange(t);
  await t.rejects(exchangeForAltinnToken(fetchImpl, ex.url, 'idporten-at', Date.now() + 3_600_000), { name: 'AltinnExchangeError', kind: 'rejected' });
  t.equal(ex.seen.length, 1);
  t.equal(ex.seen[0]!.authorization, 'Bearer idporten-at');
  t.equal(ex.seen[0]!.dpop, undefined);
});
