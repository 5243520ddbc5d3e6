/**
 * DPoP with ID-porten (src/idporten/dpop.ts) and the sorting of provider failures (src/idporten/errors.ts), checked
 * directly: the proofs openid-client signs with the session key are verified with jose, the binding check is given
 * bound and unbound token responses, and classifyProviderError the shapes openid-client and fetch fail with. The
 * flows through a real provider are in dpop.test.ts and idporten-client.test.ts.
 */
import t from 'tap';
import * as client from 'openid-client';
import { decodeProtectedHeader, importJWK, jwtVerify, SignJWT } from 'jose';
import { checkDpopBinding, dpopHandle, ProviderNonces } from '../src/idporten/dpop.js';
import { classifyProviderError, OidcError } from '../src/idporten/errors.js';
import { newDpopKey, signerFor, type DpopKey } from '../src/net/dpop.js';

const ISSUER = 'https://idporten.example';
const config = new client.Configuration({ issuer: ISSUER, token_endpoint: `${ISSUER}/token` }, 'client-1');

/** A fetch that answers every call with the given DPoP-Nonce header (or none). */
function answering(nonce?: string) {
  const calls: string[] = [];
  const fetch = async (url: string) => {
    calls.push(url);
    return new Response('{}', { headers: nonce === undefined ? {} : { 'dpop-nonce': nonce } });
  };
  return { fetch, calls };
}

t.test('ProviderNonces keeps the last DPoP-Nonce of every answer, by origin (RFC 9449 section 8)', async (t) => {
  const nonces = new ProviderNonces();
  t.equal(nonces.get(`${ISSUER}/token`), undefined);
  const first = answering('n1');
  const watched = nonces.watch(first.fetch);
  const response = await watched(`${ISSUER}/par`);
  t.same(first.calls, [`${ISSUER}/par`], 'the call goes through');
  t.equal(await response.text(), '{}', 'the answer comes back as it was');
  t.equal(nonces.get(`${ISSUER}/token`), 'n1', 'any path of the same origin');
  t.equal(nonces.get('https://other.example/token'), undefined, 'not another origin');
  await nonces.watch(answering().fetch)(`${ISSUER}/token`);
  t.equal(nonces.get(`${ISSUER}/token`), 'n1', 'an answer without a nonce keeps the last one');
  await nonces.watch(answering('n2').fetch)(`${ISSUER}/token`);
  t.equal(nonces.get(`${ISSUER}/x`), 'n2', 'a new nonce replaces it');
});

async function proofFrom(handle: client.DPoPHandle, url: string, accessToken?: string): Promise<string> {
  const headers = new Headers();
  await (handle as unknown as { addProof(u: URL, h: Headers, htm: string, at?: string): Promise<void> }).addProof(new URL(url), headers, 'POST', accessToken);
  return headers.get('dpop')!;
}

async function verifyWith(key: DpopKey, proof: string) {
  return (await jwtVerify(proof, await importJWK(signerFor(key).publicJwk, 'ES256'), { typ: 'dpop+jwt', algorithms: ['ES256'] })).payload;
}

t.test('dpopHandle signs openid-client proofs with the session key (RFC 9449 sections 4.2, 4.3)', async (t) => {
  const key = newDpopKey();
  const handle = await dpopHandle(config, key);
  const proof = await proofFrom(handle, `${ISSUER}/token`);
  t.same(decodeProtectedHeader(proof).jwk, signerFor(key).publicJwk, 'the header carries the session key');
  const payload = await verifyWith(key, proof);
  t.equal(payload.htu, `${ISSUER}/token`);
  t.equal(payload.htm, 'POST');
  t.equal(payload.nonce, undefined, 'no nonce known, none sent');
  await t.rejects(verifyWith(newDpopKey(), proof), 'not another key');
});

t.test('the first proof of a grant carries the provider nonce learnt before; a nonce the handle got itself wins (RFC 9449 section 8)', async (t) => {
  const key = newDpopKey();
  const nonces = new ProviderNonces();
  await nonces.watch(answering('known').fetch)(`${ISSUER}/par`);
  const handle = await dpopHandle(config, key, nonces);
  t.equal((await verifyWith(key, await proofFrom(handle, `${ISSUER}/token`))).nonce, 'known');
  t.equal((await verifyWith(key, await proofFrom(handle, 'https://other.example/token'))).nonce, undefined, 'only for its origin');
  (handle as unknown as { cacheNonce(r: Response, u: URL): void }).cacheNonce(new Response('', { headers: { 'dpop-nonce': 'fresh' } }), new URL(`${ISSUER}/token`));
  t.equal((await verifyWith(key, await proofFrom(handle, `${ISSUER}/token`))).nonce, 'fresh');
});

async function accessToken(claims: Record<string, unknown>): Promise<string> {
  const signing = newDpopKey();
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(await importJWK(signing, 'ES256'));
}

function refusal(fn: () => void): OidcError | undefined {
  try {
    fn();
  } catch (err) {
    return err as OidcError;
  }
  return undefined;
}

t.test('checkDpopBinding: token_type DPoP and cnf.jkt equal to the session key thumbprint (RFC 9449 sections 5, 6)', async (t) => {
  const key = newDpopKey();
  const jkt = signerFor(key).jkt;
  const bound = await accessToken({ sub: 'x', cnf: { jkt } });
  t.equal(refusal(() => checkDpopBinding({ token_type: 'DPoP', access_token: bound }, key)), undefined);
  t.equal(refusal(() => checkDpopBinding({ token_type: 'dpop', access_token: bound }, key)), undefined, 'token_type is case-insensitive (RFC 6749 section 5.1)');
  t.equal(refusal(() => checkDpopBinding({ token_type: 'DPoP', access_token: 'opaque-token' }, key)), undefined, 'an opaque token: token_type is all there is');
  const notDpop = 'token response is not DPoP-bound (token_type is not DPoP)';
  for (const token_type of ['Bearer', undefined, '']) {
    const err = refusal(() => checkDpopBinding({ token_type, access_token: bound }, key));
    t.ok(err instanceof OidcError, String(token_type));
    t.equal(err?.kind, 'rejected');
    t.equal(err?.reason, notDpop);
  }
  const notBound = 'access token is not bound to the session key (cnf.jkt differs)';
  for (const [name, claims] of Object.entries({
    'no cnf': { sub: 'x' },
    'cnf without jkt': { sub: 'x', cnf: {} },
    'another key': { sub: 'x', cnf: { jkt: signerFor(newDpopKey()).jkt } },
  })) {
    const token = await accessToken(claims);
    const err = refusal(() => checkDpopBinding({ token_type: 'DPoP', access_token: token }, key));
    t.ok(err instanceof OidcError, name);
    t.equal(err?.kind, 'rejected', name);
    t.equal(err?.reason, notBound, name);
  }
});

const tokens: Record<string, string> = {};
t.before(async () => {
  tokens['no cnf'] = await accessToken({ sub: 'x' });
  tokens['cnf without jkt'] = await accessToken({ sub: 'x', cnf: {} });
  tokens['another key'] = await accessToken({ sub: 'x', cnf: { jkt: signerFor(newDpopKey()).jkt } });
});

t.test('OidcError carries its kind, a log-safe reason and the cause', async (t) => {
  const cause = new Error('inner');
  const err = new OidcError('unavailable', 'why', { cause });
  t.equal(err.name, 'OidcError');
  t.equal(err.kind, 'unavailable');
  t.equal(err.reason, 'why');
  t.equal(err.message, 'why');
  t.equal(err.cause, cause);
  t.ok(err instanceof Error);
});

function classified(err: unknown) {
  const e = classifyProviderError(err, 'token');
  return { kind: e.kind, reason: e.reason, causeKept: e.cause === err };
}

t.test('classifyProviderError: OAuth error answers (RFC 6749 section 5.2)', async (t) => {
  const already = new OidcError('invalid_target', 'kept');
  t.equal(classifyProviderError(already, 'x'), already, 'an OidcError is passed on as it is');
  t.same(classified({ name: 'ResponseBodyError', error: 'invalid_grant', status: 400 }), { kind: 'invalid_grant', reason: 'token: invalid_grant', causeKept: true }, 'a dead refresh chain');
  t.same(classified({ name: 'ResponseBodyError', error: 'invalid_target', status: 400 }), { kind: 'invalid_target', reason: 'token: invalid_target', causeKept: true }, 'RFC 8707 section 2');
  t.same(classified({ name: 'ResponseBodyError', error: 'server_error', status: 500 }), { kind: 'unavailable', reason: 'token: provider answered 500', causeKept: true });
  t.same(classified({ name: 'ResponseBodyError', error: 'temporarily_unavailable', status: 503 }), { kind: 'unavailable', reason: 'token: provider answered 503', causeKept: true });
  t.same(classified({ name: 'ResponseBodyError', error: 'access_denied', status: 499 }), { kind: 'rejected', reason: 'token: provider refused (access_denied)', causeKept: true });
  t.same(classified({ error: 'invalid_client', status: 401 }), { kind: 'rejected', reason: 'token: provider refused (invalid_client)', causeKept: true }, 'any object with an error string');
  t.same(classified({ name: 'ResponseBodyError', status: 400 }), { kind: 'rejected', reason: 'token: provider refused (unknown)', causeKept: true }, 'no error member');
  t.same(classified({ name: 'ResponseBodyError', error: 'server_error' }), { kind: 'rejected', reason: 'token: provider refused (server_error)', causeKept: true }, 'no status');
});

t.test('classifyProviderError: answers that are not OAuth JSON, by status; unreachable providers', async (t) => {
  for (const code of ['OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_RESPONSE_IS_NOT_JSON']) {
    t.same(classified({ code, message: 'bad', cause: { status: 502 } }), { kind: 'unavailable', reason: 'token: provider answered 502', causeKept: true }, code);
    t.same(classified({ code, message: 'bad', cause: { status: 500 } }), { kind: 'unavailable', reason: 'token: provider answered 500', causeKept: true }, code);
    t.same(classified({ code, message: 'bad answer', cause: { status: 499 } }), { kind: 'rejected', reason: `token: ${code} bad answer`, causeKept: true }, `${code} below 500`);
    t.same(classified({ code, message: 'bad answer' }), { kind: 'rejected', reason: `token: ${code} bad answer`, causeKept: true }, `${code} without a response`);
  }
  for (const name of ['TypeError', 'AbortError', 'TimeoutError']) {
    t.same(classified({ name, message: 'fetch failed' }), { kind: 'unavailable', reason: 'token: provider unreachable', causeKept: true }, name);
  }
  t.same(classified(new TypeError('fetch failed')), { kind: 'unavailable', reason: 'token: provider unreachable', causeKept: true });
  t.same(classified({ code: 'OAUTH_TIMEOUT', message: 'x' }), { kind: 'unavailable', reason: 'token: provider unreachable', causeKept: true });
});

t.test('classifyProviderError: failed checks of openid-client are rejected, naming the check; anything else is unavailable', async (t) => {
  t.same(
    classified({ code: 'OAUTH_JWT_CLAIM_COMPARISON_FAILED', message: 'unexpected JWT claim value encountered', cause: new Error('unexpected "iss" claim value') }),
    { kind: 'rejected', reason: 'token: OAUTH_JWT_CLAIM_COMPARISON_FAILED unexpected "iss" claim value', causeKept: true },
  );
  t.same(classified({ code: 'OAUTH_INVALID_RESPONSE', message: 'invalid response encountered', cause: { status: 400 } }), {
    kind: 'rejected',
    reason: 'token: OAUTH_INVALID_RESPONSE invalid response encountered',
    causeKept: true,
  });
  t.same(classified({ code: 'ERR_OTHER', message: 'no OAUTH_ prefix' }), { kind: 'unavailable', reason: 'token: no OAUTH_ prefix', causeKept: true });
  t.same(classified({ code: 'X_OAUTH_Y', message: 'm' }), { kind: 'unavailable', reason: 'token: m', causeKept: true }, 'OAUTH_ only as a prefix');
  t.same(classified(new Error('socket hang up')), { kind: 'unavailable', reason: 'token: socket hang up', causeKept: true });
  t.same(classified(null), { kind: 'unavailable', reason: 'token: unknown', causeKept: true });
  t.same(classified(undefined), { kind: 'unavailable', reason: 'token: unknown', causeKept: true });
  t.same(classified('a string'), { kind: 'unavailable', reason: 'token: unknown', causeKept: true });
});

t.test('reasons are short and free of anything that looks like a token', async (t) => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  t.equal(classifyProviderError(new Error(`bad token ${jwt} seen`), 'c').reason, 'c: bad token [redacted] seen');
  t.equal(classifyProviderError(new Error('code abcdefghij0123456789_- used'), 'c').reason, 'c: code [redacted] used', '20 token characters');
  t.equal(classifyProviderError(new Error('code abcdefghij012345678 used'), 'c').reason, 'c: code abcdefghij012345678 used', '19 are left');
  t.equal(classifyProviderError({ error: `x ${jwt}` }, 'c').reason, 'c: provider refused (x [redacted])');
  const long = 'ab '.repeat(100);
  t.equal(classifyProviderError(new Error(long), 'c').reason, `c: ${long.slice(0, 200)}`, 'at most 200 characters');
});

t.test('every kind of token character counts towards the run that is redacted, and after each dot', async (t) => {
  for (const run of ['ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz', '01234567890123456789', 'abcdefghij__________', 'abcdefghij----------']) {
    t.equal(classifyProviderError(new Error(`t ${run} u`), 'c').reason, 'c: t [redacted] u', run);
  }
  t.equal(classifyProviderError(new Error(`t ${'x'.repeat(20)}.Q.q.5._.- u`), 'c').reason, 'c: t [redacted] u', 'a dotted token is redacted whole');
});
