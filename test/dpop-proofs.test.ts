/**
 * The session's DPoP key and proofs (src/net/dpop.ts) and the upstream nonces (src/net/dpop-nonces.ts), checked
 * directly: proofs are verified with jose as a resource server would (RFC 9449 section 4.3), thumbprints computed
 * per RFC 7638, nonces shared through the real memory store. The flows through a real provider and upstreams are
 * in dpop.test.ts.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { base64url, calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { accessTokenHash, DPOP_ALGORITHM, dpopProof, isDpopKey, jwkThumbprint, newDpopKey, signerFor } from '../src/net/dpop.js';
import { asksForNonce, LOCAL_READ_MS, NONCE_TTL_MS, UpstreamNonces, validNonce } from '../src/net/dpop-nonces.js';
import { MemorySessionStore } from '../src/session/memory-store.js';

t.test('a new key is a private P-256 JWK, different each time (RFC 9449 section 4.1: ES256)', async (t) => {
  const a = newDpopKey();
  const b = newDpopKey();
  t.same(Object.keys(a).sort(), ['crv', 'd', 'kty', 'x', 'y']);
  t.equal(a.kty, 'EC');
  t.equal(a.crv, 'P-256');
  for (const part of [a.x, a.y, a.d]) t.equal(base64url.decode(part).length, 32, 'each coordinate and d is 32 bytes');
  t.not(a.d, b.d);
  t.not(a.x, b.x);
  t.equal(DPOP_ALGORITHM, 'ES256');
});

t.test('the signer: public JWK without d, RFC 7638 thumbprint, the JOSE header of every proof', async (t) => {
  const key = newDpopKey();
  const signer = signerFor(key);
  t.same(signer.publicJwk, { kty: 'EC', crv: 'P-256', x: key.x, y: key.y }, 'the private part never leaves');
  t.equal(signer.jkt, await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: key.x, y: key.y }, 'sha256'), 'RFC 7638 section 3');
  t.equal(signer.privateKey.type, 'private');
  t.same(signer.privateKey.export({ format: 'jwk' }), { ...key });
  t.same(JSON.parse(Buffer.from(signer.encodedHeader, 'base64url').toString()), { typ: 'dpop+jwt', alg: 'ES256', jwk: signer.publicJwk }, 'RFC 9449 section 4.2');
  t.equal(signerFor(key), signer, 'a key record is imported once');
  t.not(signerFor(newDpopKey()).jkt, signer.jkt);
});

t.test('jwkThumbprint hashes the required EC members in lexicographic order with no whitespace (RFC 7638 section 3.2)', async (t) => {
  const jwk = { kty: 'EC', crv: 'P-256', x: 'X1', y: 'Y1' };
  const expected = createHash('sha256').update('{"crv":"P-256","kty":"EC","x":"X1","y":"Y1"}').digest('base64url');
  t.equal(jwkThumbprint(jwk), expected);
  t.equal(jwkThumbprint({ ...jwk, x: 'X2' }) === expected, false);
});

t.test('ath is base64url(SHA-256(access token)) (RFC 9449 section 4.2; the example of section 7.1)', async (t) => {
  t.equal(accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'), 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
});

t.test('a proof verifies with the key in its header and carries htm, htu, iat, a fresh jti (RFC 9449 sections 4.2, 4.3)', async (t) => {
  const key = newDpopKey();
  const signer = signerFor(key);
  const publicKey = await importJWK(signer.publicJwk, 'ES256');
  const nowMs = 1_700_000_000_999;
  const proof = dpopProof(signer, { htm: 'GET', htu: 'https://api.example/v1/things' }, nowMs);
  const header = decodeProtectedHeader(proof);
  t.same(header, { typ: 'dpop+jwt', alg: 'ES256', jwk: signer.publicJwk });
  const { payload } = await jwtVerify(proof, publicKey, { typ: 'dpop+jwt', algorithms: ['ES256'], currentDate: new Date(nowMs) });
  t.same(Object.keys(payload).sort(), ['htm', 'htu', 'iat', 'jti'], 'no ath and no nonce when none is given');
  t.equal(payload.htm, 'GET');
  t.equal(payload.htu, 'https://api.example/v1/things');
  t.equal(payload.iat, 1_700_000_000, 'iat in whole seconds, rounded down');
  t.equal(base64url.decode(payload.jti as string).length, 16, 'jti: 128 random bits');
  const again = decodeProtectedHeader(proof) && (await jwtVerify(dpopProof(signer, { htm: 'GET', htu: 'https://api.example/v1/things' }, nowMs), publicKey, { currentDate: new Date(nowMs) })).payload;
  t.not(again.jti, payload.jti, 'a fresh jti per proof (RFC 9449 section 11.1)');
  // RFC 7518 section 3.4: the ES256 signature is r || s, 64 bytes, not a DER sequence.
  t.equal(base64url.decode(proof.split('.')[2]!).length, 64);
  // Another key does not verify it.
  await t.rejects(jwtVerify(proof, await importJWK(signerFor(newDpopKey()).publicJwk, 'ES256'), { currentDate: new Date(nowMs) }));
});

t.test('ath and nonce are in the proof exactly when given (RFC 9449 sections 4.2, 8)', async (t) => {
  const signer = signerFor(newDpopKey());
  const publicKey = await importJWK(signer.publicJwk, 'ES256');
  const proof = dpopProof(signer, { htm: 'POST', htu: 'https://api.example/x', accessToken: 'at-1', nonce: 'n-1' });
  const { payload } = await jwtVerify(proof, publicKey);
  t.equal(payload.ath, createHash('sha256').update('at-1').digest('base64url'));
  t.equal(payload.nonce, 'n-1');
  t.equal(payload.htm, 'POST');
  const before = Math.floor(Date.now() / 1000);
  const iat = payload.iat!;
  t.ok(iat >= before - 60 && iat <= before + 60, 'iat defaults to the current time');
});

t.test('isDpopKey accepts a sealed key record and nothing else', async (t) => {
  const key = newDpopKey();
  t.equal(isDpopKey(key), true);
  for (const [name, value] of Object.entries({
    null: null,
    undefined: undefined,
    string: 'EC',
    'other kty': { ...key, kty: 'RSA' },
    'other curve': { ...key, crv: 'P-384' },
    'no x': { ...key, x: undefined },
    'no y': { ...key, y: undefined },
    'no d (a public key)': { ...key, d: undefined },
    'numeric d': { ...key, d: 1 },
  })) {
    t.equal(isDpopKey(value), false, name);
  }
});

/** The real memory store, with its calls counted. */
function countedStore() {
  const store = new MemorySessionStore(100);
  const calls = { get: 0, put: [] as Array<[string, string, number]> };
  let failGet = false;
  let failPut = false;
  const shared = {
    store,
    calls,
    failGet: (v: boolean) => (failGet = v),
    failPut: (v: boolean) => (failPut = v),
    async getShared(key: string) {
      calls.get++;
      if (failGet) throw new Error('store down');
      return store.getShared(key);
    },
    async putShared(key: string, value: string, ttlMs: number) {
      calls.put.push([key, value, ttlMs]);
      if (failPut) throw new Error('store refused');
      return store.putShared(key, value, ttlMs);
    },
  };
  return shared;
}

t.test('a learnt nonce is used at once and shared with the other instances through the store (RFC 9449 section 9)', async (t) => {
  const shared = countedStore();
  let clock = 10_000;
  const a = new UpstreamNonces(shared, { now: () => clock });
  const b = new UpstreamNonces(shared, { now: () => clock });
  t.equal(a.now('https://api.example'), undefined, 'nothing known yet');
  a.learn('https://api.example', 'n1');
  t.same(a.now('https://api.example'), { nonce: 'n1', readAt: 10_000 });
  await new Promise((r) => setImmediate(r));
  t.same(shared.calls.put, [['dpop-nonce:https://api.example', 'n1', 300_000]], 'stored under its origin for NONCE_TTL_MS');
  t.equal(NONCE_TTL_MS, 5 * 60_000);
  t.equal(await shared.store.getShared('dpop-nonce:https://api.example'), 'n1');
  t.equal(await b.get('https://api.example'), 'n1', 'the other instance reads it');
  t.equal(await b.get('https://other.example'), undefined, 'by origin');
  a.learn('https://api.example', 'n1');
  t.equal(shared.calls.put.length, 1, 'the same nonce again is not written again');
  a.learn('https://api.example', 'n2');
  t.equal(shared.calls.put.length, 2);
  t.equal(a.now('https://api.example')?.nonce, 'n2');
  t.equal(await a.get('https://api.example'), 'n2', 'its own fresh copy, without a read');
});

t.test('an instance trusts its copy for LOCAL_READ_MS, then reads the store again; one read serves concurrent callers', async (t) => {
  const shared = countedStore();
  let clock = 0;
  const nonces = new UpstreamNonces(shared, { now: () => clock });
  t.equal(LOCAL_READ_MS, 1_000);
  const [x, y] = await Promise.all([nonces.get('https://a.example'), nonces.get('https://a.example')]);
  t.equal(x, undefined);
  t.equal(y, undefined);
  t.equal(shared.calls.get, 1, 'one store read for both');
  t.same(nonces.now('https://a.example'), { nonce: undefined, readAt: 0 }, 'an answer of "none known" is kept as well');
  await shared.store.putShared('dpop-nonce:https://a.example', 'from-peer', 60_000);
  clock = 999;
  t.equal(await nonces.get('https://a.example'), undefined, 'still fresh');
  t.equal(shared.calls.get, 1);
  clock = 1_000;
  t.equal(nonces.now('https://a.example'), undefined, 'stale after LOCAL_READ_MS');
  t.equal(await nonces.get('https://a.example'), 'from-peer');
  t.equal(shared.calls.get, 2);
  t.same(nonces.now('https://a.example'), { nonce: 'from-peer', readAt: 1_000 });
  clock = 2_500;
  t.equal(await nonces.get('https://a.example'), 'from-peer');
  t.equal(shared.calls.get, 3, 'a settled read is not reused');
});

t.test('a store that fails leaves the old copy and is reported, never thrown', async (t) => {
  const shared = countedStore();
  let clock = 0;
  const warnings: string[] = [];
  const nonces = new UpstreamNonces(shared, { now: () => clock, warn: (reason) => warnings.push(reason) });
  nonces.learn('https://a.example', 'old');
  clock = 5_000;
  shared.failGet(true);
  t.equal(await nonces.get('https://a.example'), 'old');
  t.equal(await nonces.get('https://never.example'), undefined);
  t.same(warnings, ['store down', 'store down']);
  shared.failPut(true);
  nonces.learn('https://a.example', 'newer');
  await new Promise((r) => setImmediate(r));
  t.same(warnings, ['store down', 'store down', 'store refused']);
  t.equal(nonces.now('https://a.example')?.nonce, 'newer', 'used here all the same');
  // Without a warn function, a failing store is still no error.
  const quiet = new UpstreamNonces(shared);
  t.equal(await quiet.get('https://a.example'), undefined);
  quiet.learn('https://b.example', 'n');
  t.equal(quiet.now('https://b.example')?.nonce, 'n', 'the default clock is the real one');
  await new Promise((r) => setImmediate(r));
});

t.test('the origins remembered are bounded: the 1001st new origin starts afresh, a known one does not', async (t) => {
  const shared = countedStore();
  const nonces = new UpstreamNonces({ getShared: shared.getShared, putShared: async () => undefined }, { now: () => 0 });
  for (let i = 0; i < 1000; i++) nonces.learn(`https://o${i}.example`, 'n');
  nonces.learn('https://o5.example', 'changed');
  t.equal(nonces.now('https://o0.example')?.nonce, 'n', 'a known origin changing its nonce keeps the others');
  nonces.learn('https://o1000.example', 'n');
  t.equal(nonces.now('https://o0.example'), undefined);
  t.equal(nonces.now('https://o1000.example')?.nonce, 'n');
});

t.test('validNonce: DPoP-Nonce is 1*NQCHAR (RFC 9449 section 8.1), bounded in length', async (t) => {
  for (const ok of ['abc', '!', '#', '[', ']', '~', 'a-b_c.d~e+f/g=', 'x'.repeat(1024)]) t.equal(validNonce(ok), ok, JSON.stringify(ok).slice(0, 20));
  for (const bad of ['', '"', '\\', ' ', 'a b', ' a', 'a ', '\x7f', 'é', 'a\nb', 'x'.repeat(1025)]) t.equal(validNonce(bad), undefined, JSON.stringify(bad).slice(0, 20));
  t.equal(validNonce(undefined), undefined);
  t.equal(validNonce(['first', 'second']), 'first', 'the first of repeated headers');
  t.equal(validNonce([]), undefined);
});

t.test('asksForNonce: a 401 with a DPoP challenge whose error is use_dpop_nonce (RFC 9449 section 9)', async (t) => {
  t.equal(asksForNonce(401, 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"'), true);
  t.equal(asksForNonce(401, 'DPoP algs="ES256", error="use_dpop_nonce"'), true);
  t.equal(asksForNonce(401, 'dpop error=use_dpop_nonce'), true, 'scheme and token form, case-insensitively');
  t.equal(asksForNonce(401, 'Bearer realm="api", DPoP error="use_dpop_nonce"'), true, 'after another challenge');
  t.equal(asksForNonce(401, 'Bearer realm="api",DPoP error = "use_dpop_nonce"'), true);
  t.equal(asksForNonce(401, ['Bearer realm="api"', 'DPoP error="use_dpop_nonce"']), true, 'repeated header fields');
  t.equal(asksForNonce(401, ['Bearer realm="api"', 'DPoP algs="ES256"']), false);
  t.equal(asksForNonce(400, 'DPoP error="use_dpop_nonce"'), false, 'only on 401 (a token endpoint says it in a 400 body)');
  t.equal(asksForNonce(403, 'DPoP error="use_dpop_nonce"'), false);
  t.equal(asksForNonce(401, undefined), false);
  t.equal(asksForNonce(401, 'DPoP error="invalid_token"'), false);
  t.equal(asksForNonce(401, 'Bearer error="use_dpop_nonce"'), false, 'not a DPoP challenge');
  t.equal(asksForNonce(401, 'NotDPoP error="use_dpop_nonce"'), false, 'a scheme that merely ends in DPoP');
  t.equal(asksForNonce(401, 'DPoPx error="use_dpop_nonce"'), false, 'a scheme that merely starts with DPoP');
});
