/**
 * The gateway's own ID token checks (src/idporten/id-token.ts, acr.ts, claims.ts), called directly with tokens
 * signed by keys a real JWKS endpoint serves over HTTP. At login openid-client checks some of the same claims
 * (nonce, iss, aud) before the gateway does, so the login tests alone cannot tell which layer holds a rule;
 * here nothing stands in front of verifyIdToken, and each test below fails if the gateway's own check goes.
 * OIDC Core 1.0 3.1.3.7 (ID token validation), 2 (claims), 12.2 (refreshed ID tokens); RFC 8725 3.1-3.2
 * (algorithm allow-list).
 */
import { generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import t, { type Test } from 'tap';
import { acrSatisfies, isAcrLevel } from '../src/idporten/acr.js';
import { acrFromClaims, userFromClaims } from '../src/idporten/claims.js';
import { OidcError } from '../src/idporten/errors.js';
import { ProviderKeys, verifyIdToken, type IdTokenExpectations } from '../src/idporten/id-token.js';

const ISSUER = 'https://idporten.test';
const CLIENT_ID = 'mva-client';

type Key = { kid: string; alg: string; privateKey: CryptoKey | KeyObject; jwk: JWK };

async function newKey(kid: string, alg = 'RS256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A JWKS endpoint whose key list and status the test sets, counting the fetches it answers. */
async function startJwks(keys: Key[]): Promise<{ url: string; keys: Key[]; status: number; fetches: number; accept: string | undefined; server: Server }> {
  const state = { url: '', keys, status: 200, fetches: 0, accept: undefined as string | undefined, server: undefined as unknown as Server };
  state.server = createServer((req, res) => {
    state.fetches++;
    state.accept = req.headers.accept;
    res.writeHead(state.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/jwks`;
  return state;
}

const now = () => Math.floor(Date.now() / 1000);

function sign(key: Key, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

const baseClaims = (): JWTPayload => ({
  iss: ISSUER,
  aud: CLIENT_ID,
  sub: 'pairwise-sub-1',
  iat: now(),
  exp: now() + 120,
  nonce: 'nonce-sent-at-login',
  acr: 'idporten-loa-substantial',
  amr: ['BankID'],
  pid: '01817010055',
  sid: 'idporten-session-1',
  locale: 'nb',
});

const expect = (over: Partial<IdTokenExpectations> = {}): IdTokenExpectations => ({
  issuer: ISSUER,
  clientId: CLIENT_ID,
  algorithms: ['RS256', 'ES256'],
  nonce: 'nonce-sent-at-login',
  minimumAcr: 'idporten-loa-substantial',
  ...over,
});

async function rejection(t: Test, promise: Promise<unknown>, reason: RegExp | string, kind = 'rejected'): Promise<OidcError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof OidcError, 'an OidcError');
  t.equal((err as OidcError).kind, kind, `kind ${kind}`);
  if (typeof reason === 'string') t.equal((err as OidcError).reason, reason);
  else t.match((err as OidcError).reason, reason);
  return err as OidcError;
}

const rsa = await newKey('rsa-1');
const ec = await newKey('ec-1', 'ES256');
const jwks = await startJwks([rsa, ec]);
t.teardown(() => new Promise<void>((resolve) => jwks.server.close(() => resolve())));
const keys = await ProviderKeys.fetch(jwks.url, (url, init) => fetch(url, init));

t.test('a token that meets every rule verifies and its claims come back', async (t) => {
  const claims = await verifyIdToken(keys, await sign(rsa, baseClaims()), expect());
  t.equal(claims.sub, 'pairwise-sub-1');
  t.equal(claims.nonce, 'nonce-sent-at-login');
  const es = await verifyIdToken(keys, await sign(ec, baseClaims()), expect());
  t.equal(es.sub, 'pairwise-sub-1', 'ES256 from the metadata is accepted too');
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), aud: [CLIENT_ID] }), expect()), 'aud as a one-element array (OIDC Core 2)');
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), azp: CLIENT_ID }), expect()), 'azp naming this client');
});

t.test("nonce (OIDC Core 3.1.3.7 step 11): the gateway's own comparison, with no openid-client in front", async (t) => {
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), nonce: 'another-login' }), expect()), /nonce mismatch/);
  const { nonce: _dropped, ...withoutNonce } = baseClaims();
  await rejection(t, verifyIdToken(keys, await sign(rsa, withoutNonce), expect()), /nonce mismatch/, 'rejected');
  // A refreshed ID token carries no new nonce (OIDC Core 12.2): with none expected, none is compared.
  t.ok(await verifyIdToken(keys, await sign(rsa, withoutNonce), expect({ nonce: undefined })), 'no nonce expected: not compared');
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), nonce: 'whatever' }), expect({ nonce: undefined })));
});

t.test('aud (OIDC Core 3.1.3.7 steps 3-4): this client and no one else; azp, when present, is this client', async (t) => {
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), aud: [CLIENT_ID, 'other-client'] }), expect()), /untrusted audience/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), aud: ['other-client', CLIENT_ID] }), expect()), /untrusted audience/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), aud: 'other-client' }), expect()), /ERR_JWT_CLAIM_VALIDATION_FAILED \(aud\)/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), azp: 'other-client' }), expect()), /azp is not this client/);
});

t.test('sub (OIDC Core 2): a non-empty string', async (t) => {
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), sub: '' }), expect()), /no sub/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), sub: 42 } as unknown as JWTPayload), expect()), /sub/);
  const { sub: _dropped, ...withoutSub } = baseClaims();
  await rejection(t, verifyIdToken(keys, await sign(rsa, withoutSub), expect()), /\(sub\)/);
});

t.test('acr: at least the level the login asked for (ID-porten: high satisfies substantial, not the other way)', async (t) => {
  const high = { ...baseClaims(), acr: 'idporten-loa-high' };
  t.ok(await verifyIdToken(keys, await sign(rsa, high), expect({ minimumAcr: 'idporten-loa-high' })), 'high for high');
  t.ok(await verifyIdToken(keys, await sign(rsa, high), expect()), 'high for substantial');
  await rejection(t, verifyIdToken(keys, await sign(rsa, baseClaims()), expect({ minimumAcr: 'idporten-loa-high' })), /acr is below/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), acr: 'Level4' }), expect()), /acr is below/, 'rejected');
  const { acr: _dropped, ...withoutAcr } = baseClaims();
  await rejection(t, verifyIdToken(keys, await sign(rsa, withoutAcr), expect()), /acr is below/);
  t.ok(await verifyIdToken(keys, await sign(rsa, withoutAcr), expect({ minimumAcr: undefined })), 'no minimum: acr not compared');
});

t.test('iss, exp, iat and the algorithm are held by the verification the gateway configures', async (t) => {
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), iss: 'https://evil.test' }), expect()), /\(iss\)/);
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), exp: now() - 60 }), expect()), /ERR_JWT_EXPIRED/);
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), exp: now() - 10 }), expect()), 'a clock 10 s behind is tolerated (30 s)');
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), iat: now() - 400, exp: now() + 60 }), expect()), /\(iat\)/);
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), iat: now() - 300, exp: now() + 60 }), expect()), 'issued 300 s ago is still fresh');
  t.ok(await verifyIdToken(keys, await sign(rsa, { ...baseClaims(), iat: now() - 320, exp: now() + 60 }), expect()), 'and 320 s ago, within the 30 s allowed for clock skew');
  await rejection(t, verifyIdToken(keys, await sign(rsa, { ...baseClaims(), iat: now() + 120 }), expect()), /\(iat\)/, 'rejected');
  const { iat: _dropped, ...withoutIat } = baseClaims();
  await rejection(t, verifyIdToken(keys, await sign(rsa, withoutIat), expect()), /\(iat\)/);
  const { exp: _exp, ...withoutExp } = baseClaims();
  await rejection(t, verifyIdToken(keys, await sign(rsa, withoutExp), expect()), /\(exp\)/);

  // RFC 8725 3.1: only asymmetric algorithms, whatever the metadata lists; none listed means RS256 only.
  const hmacKey = new TextEncoder().encode('a-shared-secret-of-at-least-32-bytes!');
  const hs = await new SignJWT(baseClaims()).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(hmacKey);
  await rejection(t, verifyIdToken(keys, hs, expect({ algorithms: ['HS256', 'RS256'] })), /ERR_JOSE_ALG_NOT_ALLOWED/);
  await rejection(t, verifyIdToken(keys, await sign(ec, baseClaims()), expect({ algorithms: [] })), /ERR_JOSE_ALG_NOT_ALLOWED/);
  await rejection(t, verifyIdToken(keys, await sign(ec, baseClaims()), expect({ algorithms: ['HS256'] })), /ERR_JOSE_ALG_NOT_ALLOWED/);
  t.ok(await verifyIdToken(keys, await sign(rsa, baseClaims()), expect({ algorithms: ['HS256'] })), 'RS256 then');
  // A name that only contains an asymmetric algorithm's name is not one: the fallback to RS256 still applies.
  for (const name of ['XRS256', 'RS256X', 'XEdDSA', 'EdDSAX', 'XEd25519', 'Ed25519X']) {
    t.ok(await verifyIdToken(keys, await sign(rsa, baseClaims()), expect({ algorithms: [name] })), `metadata listing only ${name}: RS256`);
  }
  await rejection(t, verifyIdToken(keys, await sign(ec, baseClaims()), expect({ algorithms: ['RS256'] })), /ERR_JOSE_ALG_NOT_ALLOWED/);
  const unsecured = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(baseClaims())).toString('base64url')}.`;
  await rejection(t, verifyIdToken(keys, unsecured, expect({ algorithms: ['none', 'RS256'] })), /token rejected/);
  const forged = (await sign(rsa, baseClaims())).replace(/\.[^.]+$/, `.${Buffer.alloc(256, 1).toString('base64url')}`);
  const badSignature = await rejection(t, verifyIdToken(keys, forged, expect()), 'token rejected: ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  t.ok(badSignature.cause, "jose's error is kept as the cause, for the log");
  await rejection(t, verifyIdToken(keys, 'not a jwt', expect()), /token rejected/);
});

t.test('the claims the verification requires can be chosen (logout tokens need jti and events, not sub)', async (t) => {
  const { sub: _sub, nonce: _nonce, ...claims } = baseClaims();
  const logout = await sign(rsa, { ...claims, jti: 'j1', events: {} });
  const payload = await keys.verify(logout, expect(), ['iss', 'aud', 'iat', 'exp', 'jti', 'events']);
  t.equal(payload.jti, 'j1');
  await rejection(t, keys.verify(logout, expect()), /\(sub\)/, 'rejected');
  await rejection(t, keys.verify(await sign(rsa, claims), expect(), ['jti']), /\(jti\)/);
});

t.test('key rotation: a token naming a new key forces one JWKS re-fetch, at most once a minute', async (t) => {
  const provider = await startJwks([rsa]);
  t.teardown(() => new Promise<void>((resolve) => provider.server.close(() => resolve())));
  const rotating = await ProviderKeys.fetch(provider.url, (url, init) => fetch(url, init));
  t.ok(await verifyIdToken(rotating, await sign(rsa, baseClaims()), expect()));
  t.equal(provider.fetches, 1, 'the key set is fetched once, when the provider is loaded');
  t.equal(provider.accept, 'application/json, application/jwk-set+json', 'asking for a JWK Set (RFC 7517 section 8.5)');
  const badSignature = (await sign(rsa, baseClaims())).replace(/\.[^.]+$/, `.${Buffer.alloc(256, 1).toString('base64url')}`);
  await rejection(t, verifyIdToken(rotating, badSignature, expect()), /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
  t.equal(provider.fetches, 1, 'a bad signature under a known key is no reason to fetch the key set again');

  const next = await newKey('rsa-2');
  provider.keys = [rsa, next];
  t.ok(await verifyIdToken(rotating, await sign(next, baseClaims()), expect()), "ID-porten's new key is accepted at once");
  t.equal(provider.fetches, 2, 'by one re-fetch');

  const forged = await newKey('forged-kid');
  await rejection(t, verifyIdToken(rotating, await sign(forged, baseClaims()), expect()), /ERR_JWKS_NO_MATCHING_KEY/);
  await rejection(t, verifyIdToken(rotating, await sign(forged, baseClaims()), expect()), /ERR_JWKS_NO_MATCHING_KEY/);
  t.equal(provider.fetches, 2, 'unknown kids within the minute cause no more fetches');
});

t.test('key rotation: a token without a kid whose signature fails against the keys kept forces the re-fetch too', async (t) => {
  const provider = await startJwks([rsa]);
  t.teardown(() => new Promise<void>((resolve) => provider.server.close(() => resolve())));
  const rotating = await ProviderKeys.fetch(provider.url, (url, init) => fetch(url, init));
  const next = await newKey('rsa-3');
  provider.keys = [next];
  t.ok(await verifyIdToken(rotating, await sign(next, baseClaims(), { kid: undefined }), expect()), 'the new key, named by no kid, is accepted');
  t.equal(provider.fetches, 2, 'after one re-fetch');
});

t.test('key rotation: the next re-fetch for an unknown kid is allowed from a full minute after the last one', async (t) => {
  const realNow = Date.now;
  t.teardown(() => {
    Date.now = realNow;
  });
  // ProviderKeys reads the clock through Date.now; jose reads new Date(), so the tokens' own times stay real.
  let clock = realNow();
  Date.now = () => clock;
  const claims = (): JWTPayload => ({ ...baseClaims(), iat: Math.floor(realNow() / 1000), exp: Math.floor(realNow() / 1000) + 120 });
  const provider = await startJwks([rsa]);
  t.teardown(() => new Promise<void>((resolve) => provider.server.close(() => resolve())));
  const rotating = await ProviderKeys.fetch(provider.url, (url, init) => fetch(url, init));
  const second = await newKey('rsa-4');
  provider.keys = [rsa, second];
  t.ok(await verifyIdToken(rotating, await sign(second, claims()), expect()));
  t.equal(provider.fetches, 2, 'the first forced re-fetch');
  const third = await newKey('rsa-5');
  provider.keys = [second, third];
  clock += 59_999;
  await rejection(t, verifyIdToken(rotating, await sign(third, claims()), expect()), /ERR_JWKS_NO_MATCHING_KEY/);
  t.equal(provider.fetches, 2, '59.999 s later: none');
  clock += 1;
  t.ok(await verifyIdToken(rotating, await sign(third, claims()), expect()), 'a full minute later the next rotation is taken up');
  t.equal(provider.fetches, 3);
});

t.test('a JWKS endpoint that is down, failing or answering no key set is `unavailable` (the provider), not a bad token', async (t) => {
  const failing = await startJwks([rsa]);
  failing.status = 500;
  const viaHttp = (url: string, init?: RequestInit) => fetch(url, init);
  await rejection(t, ProviderKeys.fetch(failing.url, viaHttp), /could not fetch the provider JWKS \(status 500\)/, 'unavailable');
  await new Promise<void>((resolve) => failing.server.close(() => resolve()));
  const refused = await rejection(t, ProviderKeys.fetch(failing.url, viaHttp), 'could not fetch the provider JWKS', 'unavailable');
  t.ok(refused.cause, 'the cause is kept, for the log');
  const throwing = await rejection(t, ProviderKeys.fetch(failing.url, () => Promise.reject(new Error('socket hang up'))), 'could not fetch the provider JWKS', 'unavailable');
  t.ok(throwing.cause, 'the cause is kept');
  const answering = (body: string) => async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
  const notJson = await rejection(t, ProviderKeys.fetch(failing.url, answering('<html>')), 'the provider JWKS is not JSON', 'unavailable');
  t.ok(notJson.cause, 'the cause is kept');
  const jwk = JSON.stringify(rsa.jwk);
  for (const body of ['{}', '{"keys":{}}', '{"keys":[1]}', '{"keys":[[]]}', '{"keys":[null]}', `{"keys":[${jwk},1]}`, `{"keys":[${jwk},null]}`, 'null']) {
    await rejection(t, ProviderKeys.fetch(failing.url, answering(body)), 'the provider JWKS has no list of keys', 'unavailable');
  }

  // Once loaded, a re-fetch for an unknown kid that fails is the provider's trouble too, and keeps the keys it had.
  const flaky = await startJwks([rsa]);
  t.teardown(() => new Promise<void>((resolve) => flaky.server.close(() => resolve())));
  const loaded = await ProviderKeys.fetch(flaky.url, viaHttp);
  flaky.status = 500;
  await rejection(t, verifyIdToken(loaded, await sign(await newKey('rsa-next'), baseClaims()), expect()), /could not fetch the provider JWKS/, 'unavailable');
  t.ok(await verifyIdToken(loaded, await sign(rsa, baseClaims()), expect()), 'the known key still verifies');
});

t.test("a provider key that cannot be used (RSA under 2048 bits, no modulus) is `unavailable` (the provider), not a bad token", async (t) => {
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const weak: Key = { kid: 'rsa-1024', alg: 'RS256', privateKey: small.privateKey, jwk: { ...(small.publicKey.export({ format: 'jwk' }) as JWK), kid: 'rsa-1024', alg: 'RS256', use: 'sig' } };
  const noModulus = await newKey('rsa-no-n');
  delete noModulus.jwk.n;
  const served = await startJwks([weak, noModulus]);
  t.teardown(() => new Promise<void>((resolve) => served.server.close(() => resolve())));
  const loaded = await ProviderKeys.fetch(served.url, (url, init) => fetch(url, init));
  // jose will not sign with a key under 2048 bits; node:crypto will, as a provider might.
  const signedByNode = (key: Key, claims: JWTPayload) => {
    const data = [{ alg: 'RS256', kid: key.kid, typ: 'JWT' }, claims].map((part) => Buffer.from(JSON.stringify(part)).toString('base64url')).join('.');
    return `${data}.${cryptoSign('sha256', Buffer.from(data), key.privateKey as KeyObject).toString('base64url')}`;
  };
  for (const key of [weak, noModulus]) {
    const token = key === weak ? signedByNode(key, baseClaims()) : await sign(key, baseClaims());
    const failure = await rejection(t, verifyIdToken(loaded, token, expect()), "the provider's signing key cannot be used", 'unavailable');
    t.ok(failure.cause, `${key.kid}: the cause is kept, for the log`);
  }
});

t.test('acr levels: ranked substantial < high; an unknown level satisfies nothing and is satisfied by nothing', async (t) => {
  t.equal(isAcrLevel('idporten-loa-substantial'), true);
  t.equal(isAcrLevel('idporten-loa-high'), true);
  for (const v of ['idporten-loa-low', 'Level4', '', undefined, 2, 'toString', '__proto__', 'hasOwnProperty']) t.equal(isAcrLevel(v), false, String(v));
  t.equal(acrSatisfies('idporten-loa-high', 'idporten-loa-substantial'), true);
  t.equal(acrSatisfies('idporten-loa-high', 'idporten-loa-high'), true);
  t.equal(acrSatisfies('idporten-loa-substantial', 'idporten-loa-substantial'), true);
  t.equal(acrSatisfies('idporten-loa-substantial', 'idporten-loa-high'), false);
  t.equal(acrSatisfies('idporten-loa-high', 'Level4'), false, 'an unknown required level');
  t.equal(acrSatisfies('Level4', 'idporten-loa-substantial'), false, 'an unknown actual level');
  t.equal(acrSatisfies(undefined, 'idporten-loa-substantial'), false);
});

t.test("the user the gateway keeps: only string claims, the login's acr when the token's is unknown, the binding for refresh (OIDC Core 12.2)", async (t) => {
  const { user, binding } = userFromClaims({ ...baseClaims(), acr: 'idporten-loa-high' }, 'idporten-loa-substantial', CLIENT_ID);
  t.same(user, { sub: 'pairwise-sub-1', pid: '01817010055', acr: 'idporten-loa-high', amr: ['BankID'], locale: 'nb', sid: 'idporten-session-1' });
  t.same(binding, { iss: ISSUER, aud: CLIENT_ID, sub: 'pairwise-sub-1', acr: 'idporten-loa-high' });

  const odd = userFromClaims({ iss: ISSUER, sub: 's', acr: 'Level4', pid: 1, amr: ['BankID', 7, null, 'Minid'], locale: ['nb'], sid: {} }, 'idporten-loa-high', CLIENT_ID);
  t.same(odd.user, { sub: 's', pid: undefined, acr: 'idporten-loa-high', amr: ['BankID', 'Minid'], locale: undefined, sid: undefined }, 'non-strings dropped, unknown acr replaced');
  t.same(odd.binding, { iss: ISSUER, aud: CLIENT_ID, sub: 's', acr: 'idporten-loa-high' });
  t.same(userFromClaims({ iss: ISSUER, sub: 's', amr: 'BankID' }, 'idporten-loa-substantial', CLIENT_ID).user.amr, [], 'amr that is no array');

  t.equal(acrFromClaims({ acr: 'idporten-loa-substantial' }, 'idporten-loa-high'), 'idporten-loa-substantial', 'a known acr is kept, even when lower');
  t.equal(acrFromClaims({}, 'idporten-loa-high'), 'idporten-loa-high');
});

t.test('max_age (OIDC Core 3.1.2.1, 3.1.3.7 rule 13): asked for, auth_time is required and no older than max_age, 30 s of clock skew allowed', async (t) => {
  const at = now();
  const withAuthTime = (authTime: unknown) => sign(rsa, { ...baseClaims(), auth_time: authTime } as JWTPayload);
  const asked = expect({ maxAge: 300, now: at * 1000 });
  t.ok(await verifyIdToken(keys, await withAuthTime(at - 10), asked), 'a fresh login');
  t.ok(await verifyIdToken(keys, await withAuthTime(at - 329), asked), '329 s ago: within max_age and the skew');
  t.ok(await verifyIdToken(keys, await withAuthTime(at - 330), asked), 'exactly 300 + 30 s ago');
  await rejection(t, verifyIdToken(keys, await withAuthTime(at - 331), asked), 'id token auth_time is older than max_age');
  await rejection(t, verifyIdToken(keys, await withAuthTime(at - 3600), asked), 'id token auth_time is older than max_age');
  const missing = 'id token has no auth_time although max_age was requested';
  await rejection(t, verifyIdToken(keys, await sign(rsa, baseClaims()), asked), missing);
  await rejection(t, verifyIdToken(keys, await withAuthTime(String(at)), asked), missing);
  t.ok(await verifyIdToken(keys, await sign(rsa, baseClaims()), expect()), 'no max_age asked for: auth_time not required');
  t.ok(await verifyIdToken(keys, await withAuthTime(at - 3600), expect({ maxAge: 3600 })), 'without `now`, the clock');
});
