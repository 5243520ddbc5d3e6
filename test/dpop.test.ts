/**
 * DPoP (RFC 9449) end to end, against the real OpenID Provider (oidc-provider with DPoP and token-endpoint nonces
 * on) and upstreams that verify proofs as a resource server does (test/helpers/dpop-upstream.ts), on two gateway
 * instances sharing a real Redis.
 */
import t from 'tap';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { TEST_USERS } from '../demo/test-users.js';
import { jwkThumbprint, signerFor, type DpopKey } from '../src/net/dpop.js';
import { Browser, loginAtLookalike, type BrowserResponse } from './helpers/browser.js';
import { startDpopUpstream } from './helpers/dpop-upstream.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { keptCookieSender, startPeerGateway, startStack, type Stack } from './helpers/stack.js';

const user = TEST_USERS[1]!;
const api = { 'x-csrf': '1' };
const skip = redisMissingReason() ?? false;
const MiB = 1024 * 1024;

async function login(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const cookie = browser.cookie('localhost', 'bff')!;
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('no live session after login');
  return { browser, cookie: cookie.value, session: loaded.session };
}

const jktOf = (accessToken: string): unknown => (decodeJwt(accessToken).cnf as { jkt?: unknown } | undefined)?.jkt;

t.test('DPoP across two instances on Redis: bound tokens, proofs upstream, shared nonces, the 1 MiB retry rule', { skip }, async (t) => {
  const redis = await startRedis(t);
  const upstream = await startDpopUpstream({ nonce: true });
  const bearerOnly = await startDpopUpstream({ dpop: false });
  t.teardown(() => upstream.close());
  t.teardown(() => bearerOnly.close());
  const stack = await startStack(t, {
    idporten: { dpop: true },
    op: { dpopNonce: true, accessTokenTtlSeconds: 30 },
    session: { store: { type: 'redis', url: redis.url, keyPrefix: 'bff-dpop:' } },
    routes: [
      { path: '/api', upstream: `${upstream.origin}/api`, token: 'idporten', methods: ['GET', 'POST'] },
      { path: '/plain', upstream: `${bearerOnly.origin}/plain`, token: 'idporten', dpop: false },
    ],
  });
  upstream.trust(stack.op);
  bearerOnly.trust(stack.op);

  // --- login: the session's key, dpop_jkt, and tokens bound to it (RFC 9449 sections 5, 6 and 10)
  const { browser, cookie, session } = await login(stack);
  const key = session.data.dpop as DpopKey;
  t.ok(key, 'the session holds a DPoP key');
  const jkt = jwkThumbprint(key);
  t.equal(signerFor(key).jkt, jkt);
  t.equal(jktOf(session.data.tokens.accessToken), jkt, 'the access token is bound to the session key (cnf.jkt)');
  t.ok(stack.op.observed.grants.some((g) => g.grantType === 'authorization_code' && g.ok), 'the code grant succeeded with the provider demanding nonces');
  const nonceRefusals = () => stack.op.observed.grants.filter((g) => !g.ok && /nonce/.test(g.error ?? '')).length;
  t.equal(nonceRefusals(), 1, 'the first grant was refused once for its nonce (RFC 9449 section 8) and retried');
  const refreshedOnA = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api });
  t.equal(refreshedOnA.status, 200, refreshedOnA.body);
  t.equal(nonceRefusals(), 1, "the refresh grant on the same instance carried the provider's nonce at once");
  const rebound = await stack.gateway.core.lifecycle.sessions.load(cookie);
  if (rebound.state !== 'live') throw new Error('session gone after refresh');
  const session1 = rebound.session;

  // --- A proxied call: DPoP scheme, a proof for the URL called; the upstream's nonce demand is met with one retry.
  const first = await browser.fetch(`${stack.publicUrl}/api/items/1?q=2`, { headers: api });
  t.equal(first.status, 200, first.body);
  t.same(upstream.requests.map((r) => r.status), [401, 200], 'refused for want of a nonce, then served (RFC 9449 section 9)');
  const served = upstream.requests[1]!;
  t.equal(served.scheme, 'DPoP');
  t.equal(served.proof?.htu, `${upstream.origin}/api/items/1`, 'htu: the upstream URL called, without the query');
  t.equal(served.proof?.htm, 'GET');
  t.equal(served.proof?.nonce, upstream.checker.nonce);
  t.not(upstream.requests[0]!.proof?.jti, served.proof?.jti, 'every proof has its own jti');

  // --- Instance B: the nonce A learnt is in the store, so B's first request needs no retry.
  const peer = await startPeerGateway(t, stack);
  const send = keptCookieSender(stack, cookie);
  const before = upstream.requests.length;
  const viaB = await send(peer.port, '/api/items/2', { headers: api });
  t.equal(viaB.status, 200, viaB.body);
  t.same(upstream.requests.slice(before).map((r) => r.status), [200], 'B carried the nonce learnt through A: no refusal');

  // --- The upstream rotates its nonce; a body up to 1 MiB is kept and sent again with the new one.
  upstream.checker.rotateNonce();
  const small = Buffer.alloc(MiB, 7);
  const mark = upstream.requests.length;
  const posted = await send(peer.port, '/api/upload', { method: 'POST', headers: { ...api, 'content-type': 'application/octet-stream' }, body: small });
  t.equal(posted.status, 200, posted.body);
  t.same(upstream.requests.slice(mark).map((r) => [r.status, r.bodyLength]), [[401, MiB], [200, MiB]], 'the 1 MiB body went twice, whole');

  // --- A body over 1 MiB streams; refused for its nonce it gets 503 Retry-After: 0, and the repeat carries the nonce.
  upstream.checker.rotateNonce();
  const large = Buffer.alloc(MiB + 1, 8);
  const refused = await send(undefined, '/api/upload', { method: 'POST', headers: { ...api, 'content-type': 'application/octet-stream' }, body: large });
  t.equal(refused.status, 503);
  t.equal(refused.headers.get('retry-after'), '0');
  t.equal((JSON.parse(refused.body) as { code: string }).code, 'upstream_nonce_required');
  const again = upstream.requests.length;
  const repeated = await send(undefined, '/api/upload', { method: 'POST', headers: { ...api, 'content-type': 'application/octet-stream' }, body: large });
  t.equal(repeated.status, 200, repeated.body);
  t.same(upstream.requests.slice(again).map((r) => [r.status, r.bodyLength]), [[200, MiB + 1]], 'the repeat carried the learnt nonce');

  // --- routes[].dpop: false sends the same token as Bearer, without a proof.
  const viaPlain = await browser.fetch(`${stack.publicUrl}/plain/x`, { headers: api });
  t.equal(viaPlain.status, 200, viaPlain.body);
  t.same(bearerOnly.requests.map((r) => [r.scheme, r.proof]), [['Bearer', undefined]]);

  // --- A refresh grant carries a proof; the new token is bound to the same key.
  const refreshed = await send(peer.port, '/auth/session/refresh', { method: 'POST', headers: api });
  t.equal(refreshed.status, 200, refreshed.body);
  const after = await stack.gateway.core.lifecycle.sessions.load(cookie);
  if (after.state !== 'live') throw new Error('session gone after refresh');
  t.not(after.session.data.tokens.accessToken, session1.data.tokens.accessToken, 'a new access token');
  t.equal(jktOf(after.session.data.tokens.accessToken), jkt, 'bound to the same key');
  t.ok(stack.op.observed.grants.some((g) => g.grantType === 'refresh_token' && g.ok), 'the refresh grant succeeded');
  const afterRefresh = await send(peer.port, '/api/after-refresh', { headers: api });
  t.equal(afterRefresh.status, 200, afterRefresh.body);

  // --- The private key never leaves the sealed record: not in any log line of either instance, nor in an answer.
  const everything = [stack.logText(), JSON.stringify(peer.logs), ...[first, viaB, posted, refused, repeated, viaPlain, refreshed].map(text)].join('\n');
  t.notOk(everything.includes(key.d), 'the private key appears in no log and no response');
  t.notOk(browser.cookies('localhost').some((c) => c.value.includes(key.d)), 'nor in a cookie');
  t.notOk(browser.allRecordedText().includes(key.d), 'nor anywhere the browser saw');
});

function text(response: BrowserResponse): string {
  const lines: string[] = [];
  response.headers.forEach((value, name) => lines.push(`${name}: ${value}`));
  return `${lines.join('\n')}\n${response.body}`;
}

t.test('a token response not bound to the session key is refused: no session is stored (RFC 9449 section 6)', async (t) => {
  const { startHostileStack } = await import('./helpers/hostile-op.js');
  for (const [name, lie] of [
    ['cnf.jkt of another key', (tokens: Record<string, unknown>) => {
      tokens.token_type = 'DPoP';
      tokens.access_token = unsignedJwt({ sub: 'x', cnf: { jkt: jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'B'.repeat(43) }) } });
    }],
    ['a plain Bearer token', (tokens: Record<string, unknown>) => {
      tokens.token_type = 'Bearer';
    }],
  ] as const) {
    await t.test(name, async (t) => {
      const stack = await startHostileStack(t, { idporten: { dpop: true, usePar: false } });
      let proofs = 0;
      stack.op.tamperTokenResponse = (tokens, { dpopProof }) => {
        if (dpopProof) proofs += 1;
        lie(tokens);
      };
      const browser = new Browser();
      const answer = await browser.navigate(`${stack.publicUrl}/auth/login`);
      t.equal(stack.op.authorizationRequests.length, 1, 'login went through the provider');
      t.equal(proofs, 1, 'the code grant carried a DPoP proof');
      t.equal(answer.status, 400, 'the callback answers with its error page');
      t.equal(browser.cookie('localhost', stack.sessionCookieName), undefined, 'no session cookie');
      t.equal(stack.audit('login.success').length, 0);
      t.match(stack.audit('login.failure')[0]?.reason, /DPoP|cnf\.jkt/);
    });
  }
});

t.test('a refreshed token not bound to the session key ends the session: 401 session_expired (RFC 9449 section 5)', async (t) => {
  const { startHostileStack } = await import('./helpers/hostile-op.js');
  const stack = await startHostileStack(t, { idporten: { dpop: true, usePar: false } });
  stack.op.tamperTokenResponse = (tokens, { grant, dpopProof }) => {
    const jwk = decodeProtectedHeader(dpopProof!).jwk as { kty: string; crv: string; x: string; y: string };
    const other = { ...jwk, x: 'A'.repeat(43) };
    tokens.token_type = 'DPoP';
    tokens.access_token = unsignedJwt({ sub: 'x', cnf: { jkt: jwkThumbprint(grant === 'authorization_code' ? jwk : other) } });
  };
  const browser = new Browser();
  await browser.navigate(`${stack.publicUrl}/auth/login`);
  t.equal(stack.audit('login.success').length, 1, 'the login got a bound token');
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api });
  t.equal(refreshed.status, 401);
  t.equal((JSON.parse(refreshed.body) as { code: string }).code, 'session_expired');
  t.equal(stack.op.tokenRequestProofs.filter(Boolean).length, 2, 'both grants carried a proof');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'the session is gone');
  t.match(stack.audit('token.refresh.failure')[0]?.reason, /cnf\.jkt/);
});

t.test('the Altinn exchange gets the bound token as Bearer by default, and as DPoP with a proof with altinn.dpop, its nonce honoured', async (t) => {
  for (const altinnDpop of [false, true, 'nonce'] as const) {
    await t.test(`altinn.dpop: ${altinnDpop}`, async (t) => {
      // With altinn.dpop the look-alike's exchange refuses a bound token sent as Bearer (RFC 9449 section 7.1).
      const stack = await startStack(t, { idporten: { dpop: true }, upstreams: true, altinnDpop });
      const { browser } = await login(stack);
      const created = await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' });
      t.equal(created.status, 201, created.body);
      t.equal(stack.altinn!.stats.exchanges, 1, 'one exchange');
      if (altinnDpop === 'nonce') {
        // RFC 9449 section 9: the first proof carries no nonce and is refused with use_dpop_nonce; the retry names it.
        const tries = stack.altinn!.exchangeTries;
        t.same(tries.map((tried) => tried.status), [401, 200], 'refused for its nonce once, then served');
        t.equal(tries[0]!.nonce, undefined);
        t.equal(tries[1]!.nonce, tries[0]!.offeredNonce, 'the retry carries the nonce the exchange named');
      }
      const validated = await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api });
      t.equal(validated.status, 200, 'the Skatteetaten route still works');
      t.equal(stack.skatteetaten!.requests.at(-1)?.headers.authorization?.split(' ')[0], 'DPoP', 'and sends DPoP');
    });
  }
});

t.test('dpop_jkt in the authorization request is the thumbprint of the key whose proofs redeem the code (RFC 9449 section 10)', async (t) => {
  const { startHostileStack } = await import('./helpers/hostile-op.js');
  const stack = await startHostileStack(t, { idporten: { dpop: true, usePar: false } });
  let proofJkt: string | undefined;
  stack.op.tamperTokenResponse = (tokens, { dpopProof }) => {
    const jwk = decodeProtectedHeader(dpopProof!).jwk as { kty: string; crv: string; x: string; y: string };
    proofJkt = jwkThumbprint(jwk);
    tokens.token_type = 'DPoP';
    tokens.access_token = unsignedJwt({ sub: 'x', cnf: { jkt: proofJkt } });
  };
  const browser = new Browser();
  const start = await browser.fetch(`${stack.publicUrl}/auth/login`);
  const location = new URL(start.headers.get('location')!);
  const sent = location.searchParams.get('dpop_jkt');
  t.match(sent, /^[A-Za-z0-9_-]{43}$/, 'dpop_jkt goes with the authorization request');
  await browser.navigate(location.toString());
  t.equal(proofJkt, sent, 'the token request was proved with that key');
  t.equal(stack.audit('login.success').length, 1, 'and a token bound to it makes a session');
});

/** A JWT-shaped access token (the gateway reads its cnf; it does not verify an access token's signature). */
function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'at+jwt' })}.${part(claims)}.${Buffer.alloc(32, 1).toString('base64url')}`;
}
