/**
 * The relying party against a provider that lies. Every answer the hostile OP bends must end in a clean
 * failure: an HTML error page with a 4xx/5xx status, no session cookie, no session, and a `login.failure`
 * audit line that says why. The few bends that are legal (no kid with one key, aud as a one-element
 * array, a signing key rotated between logins) must still log the user in.
 */
import t, { type Test } from 'tap';
import { Browser, type BrowserResponse } from './helpers/browser.js';
import { corruptSignature, plantCookie, startHostileStack, type HostileStack, type IdTokenTamper } from './helpers/hostile-op.js';

// Many real logins (and RSA key generation) on a shared, busy machine: more room than tap's default 30 s.
t.setTimeout(90_000);

const HOUR = 3600;
const WEEK = 7 * 24 * HOUR;
const now = () => Math.floor(Date.now() / 1000);

interface LoginRun {
  /** The gateway's answer on /auth/callback (the last one, if the chain passed it more than once). */
  callback: BrowserResponse;
  final: BrowserResponse;
}

/** Opens /auth/login like a user and follows the chain through the OP back to the gateway. */
async function login(stack: HostileStack, browser: Browser, query = ''): Promise<LoginRun> {
  const from = browser.history.length;
  const final = await browser.navigate(`${stack.publicUrl}/auth/login${query}`);
  const callback = browser.history.slice(from).findLast((r) => r.url.startsWith(`${stack.publicUrl}/auth/callback`));
  if (!callback) throw new Error(`the login never reached /auth/callback (ended at ${final.url} with ${final.status})`);
  return { callback, final };
}

/** Starts a login without following it: returns the OP's authorization URL (the gateway keeps a transaction cookie in `browser`). */
async function startLogin(stack: HostileStack, browser: Browser, query = ''): Promise<string> {
  const res = await browser.fetch(`${stack.publicUrl}/auth/login${query}`, { headers: { accept: 'text/html' } });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location?.startsWith(stack.op.issuer)) throw new Error(`/auth/login answered ${res.status} ${location ?? ''}`);
  return location;
}

function sessionCookieSet(stack: HostileStack, res: BrowserResponse): boolean {
  return res.headers.getSetCookie().some((line) => line.split('=')[0]?.trim() === stack.sessionCookieName);
}

async function sessionStatus(stack: HostileStack, browser: Browser): Promise<number> {
  return (await browser.fetch(`${stack.publicUrl}/auth/session`)).status;
}

/** Asks /auth/session with exactly this session cookie value (as an attacker holding it would). */
async function sessionStatusFor(stack: HostileStack, cookieValue: string): Promise<number> {
  const res = await fetch(`${stack.publicUrl}/auth/session`, { headers: { cookie: `${stack.sessionCookieName}=${cookieValue}` } });
  return res.status;
}

async function expectCleanFailure(t: Test, stack: HostileStack, browser: Browser, res: BrowserResponse, reason: RegExp, opts: { earlierLogins?: number } = {}): Promise<void> {
  t.ok(res.status >= 400 && res.status < 600, `error status (got ${res.status})`);
  t.match(res.headers.get('content-type') ?? '', /^text\/html/, 'an HTML error page');
  t.match(res.body, /Login failed/, 'the page says the login failed');
  t.notOk(sessionCookieSet(stack, res), 'no session cookie is set');
  t.notOk(browser.cookie(stack.publicUrl, stack.sessionCookieName), 'the browser holds no session cookie');
  t.equal(await sessionStatus(stack, browser), 401, 'GET /auth/session is 401 afterwards');
  const failures = stack.audit('login.failure');
  t.equal(failures.length, 1, 'one login.failure audit line');
  t.match(String(failures[0]?.reason ?? ''), reason, `the audit line says why (${String(failures[0]?.reason)})`);
  t.equal(stack.audit('login.success').length, opts.earlierLogins ?? 0, 'no new login.success');
  const seen = browser.allRecordedText();
  const logged = stack.logText();
  for (const token of stack.op.issuedTokens) {
    t.notOk(seen.includes(token), 'no issued token reaches the browser');
    t.notOk(logged.includes(token), 'no issued token reaches the log');
  }
  for (const code of stack.op.issuedCodes) t.notOk(logged.includes(code), 'no authorization code reaches the log');
}

async function expectLoggedIn(t: Test, stack: HostileStack, browser: Browser, run: LoginRun): Promise<void> {
  t.equal(run.callback.status, 302, 'the callback redirects');
  t.ok(sessionCookieSet(stack, run.callback), 'the callback sets the session cookie');
  const res = await browser.fetch(`${stack.publicUrl}/auth/session`);
  t.equal(res.status, 200, 'GET /auth/session is 200');
  t.equal(JSON.parse(res.body).user.sub, stack.op.sub);
  t.equal(stack.audit('login.failure').length, 0, 'no login.failure');
}

// ---------------------------------------------------------------- ID tokens that must be refused

const signWithClientSecret: IdTokenTamper = (draft, { op }) => {
  // The classic algorithm confusion: a MAC keyed with a secret the client also knows proves nothing about the OP.
  draft.header.alg = 'HS256';
  draft.key = new TextEncoder().encode(op.clientSecret);
};

const rejectedIdTokens: { name: string; tamper: IdTokenTamper; reason: RegExp; query?: string }[] = [
  // OIDC Core 3.1.3.7 step 6: the client MUST validate the signature per JWS using the alg in the header.
  { name: 'rejects an ID token whose signature is corrupted', tamper: (d) => void (d.finish = corruptSignature), reason: /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/ },
  {
    name: 'rejects an ID token signed by an RSA key the OP does not publish (same kid)',
    tamper: async (d, { op }) => void (d.key = (await op.generateKey('unpublished')).privateKey),
    reason: /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
  },
  {
    name: 'rejects an ID token signed by an RSA key the OP does not publish (unknown kid)',
    tamper: async (d, { op }) => {
      d.key = (await op.generateKey('unpublished')).privateKey;
      d.header.kid = 'never-published';
    },
    reason: /ERR_JWKS_NO_MATCHING_KEY/,
  },
  // OIDC Core 3.1.3.7 step 7 (alg must be the registered RS256) and RFC 8725 3.1: never accept "none".
  {
    name: 'rejects an unsigned ID token (alg none)',
    tamper: (d) => {
      d.header = { alg: 'none', typ: 'JWT' };
    },
    reason: /"alg" header/,
  },
  { name: 'rejects an ID token MACed with HS256 and the client secret', tamper: signWithClientSecret, reason: /"alg" header/ },
  // OIDC Core 3.1.3.7 step 2: iss MUST exactly match the issuer.
  { name: 'rejects an ID token from another issuer', tamper: (d) => void (d.claims.iss = 'https://evil.example'), reason: /"iss" \(issuer\) claim value/ },
  { name: 'rejects an ID token without iss', tamper: (d) => void delete d.claims.iss, reason: /"iss" \(issuer\) claim missing/ },
  // OIDC Core 3.1.3.7 step 3: aud MUST contain our client_id and MUST be rejected with untrusted audiences.
  { name: 'rejects an ID token for another audience', tamper: (d) => void (d.claims.aud = 'someone-else'), reason: /"aud" \(audience\) claim value/ },
  { name: 'rejects an ID token without aud', tamper: (d) => void delete d.claims.aud, reason: /"aud" \(audience\) claim missing/ },
  {
    name: 'rejects an ID token with an extra untrusted audience next to ours',
    tamper: (d, { op }) => {
      d.claims.aud = [op.clientId, 'untrusted-client'];
      d.claims.azp = op.clientId;
    },
    reason: /untrusted audience/,
  },
  // OIDC Core 2: sub is REQUIRED.
  { name: 'rejects an ID token without sub', tamper: (d) => void delete d.claims.sub, reason: /"sub" \(subject\) claim missing/ },
  // OIDC Core 3.1.3.7 step 9: the current time MUST be before exp.
  { name: 'rejects an ID token without exp', tamper: (d) => void delete d.claims.exp, reason: /"exp" \(expiration time\) claim missing/ },
  {
    name: 'rejects an expired ID token',
    tamper: (d) => {
      d.claims.iat = now() - 2 * HOUR;
      d.claims.exp = now() - HOUR;
    },
    reason: /"exp" \(expiration time\) claim value/,
  },
  // OIDC Core 3.1.3.7 step 10: iat bounds how old a token the client accepts.
  { name: 'rejects an ID token without iat', tamper: (d) => void delete d.claims.iat, reason: /"iat" \(issued at\) claim missing/ },
  {
    name: 'rejects an ID token issued a week ago (even if exp is in the future)',
    tamper: (d) => {
      d.claims.iat = now() - WEEK;
      d.claims.auth_time = now() - WEEK;
    },
    reason: /ERR_JWT_EXPIRED \(iat\)/,
  },
  // OIDC Core 3.1.3.7 step 11: the nonce MUST equal the one sent in the authentication request.
  { name: 'rejects an ID token whose nonce differs', tamper: (d) => void (d.claims.nonce = 'not-the-nonce-we-sent'), reason: /unexpected ID Token "nonce" claim value/ },
  { name: 'rejects an ID token without nonce', tamper: (d) => void delete d.claims.nonce, reason: /"nonce" \(nonce\) claim missing/ },
  // OIDC Core 3.1.3.7 step 12 and ID-porten: the acr returned must be at least the level requested.
  {
    name: 'rejects an acr below the requested level (asked high, got substantial)',
    query: '?acr=idporten-loa-high',
    tamper: (d) => void (d.claims.acr = 'idporten-loa-substantial'),
    reason: /acr is below the requested level/,
  },
  { name: 'rejects an ID token without acr', tamper: (d) => void delete d.claims.acr, reason: /acr is below the requested level/ },
  // OIDC Core 3.1.2.1: with max_age in the request, the ID token's auth_time is REQUIRED.
  { name: 'rejects an ID token without auth_time when the login asked for max_age', query: '?max_age=600', tamper: (d) => void delete d.claims.auth_time, reason: /no auth_time although max_age was requested/ },
  // OIDC Core 3.1.3.7 step 13: an auth_time too long ago for the max_age asked for is refused (a provider that reused its session).
  { name: 'rejects an auth_time older than the max_age the login asked for', query: '?max_age=60', tamper: (d) => void (d.claims.auth_time = now() - HOUR), reason: /auth_time is older than max_age/ },
];

for (const c of rejectedIdTokens) {
  t.test(c.name, async (t) => {
    const stack = await startHostileStack(t);
    stack.op.tamperIdToken = c.tamper;
    const browser = new Browser();
    const { callback } = await login(stack, browser, c.query ?? '');
    t.equal(stack.op.tokenRequests.length, 1, 'the code was exchanged (the ID token itself was judged)');
    if (c.query?.includes('acr=')) t.equal(stack.op.lastAuthorizationRequest?.acrValues, 'idporten-loa-high', 'the gateway asked for the level in ?acr=');
    await expectCleanFailure(t, stack, browser, callback, c.reason);
  });
}

// ---------------------------------------------------------------- authorization responses that must be refused

t.test('rejects an authorization response whose iss names another issuer (RFC 9207 2.4)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => q.set('iss', 'https://evil.example');
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /unexpected "iss" \(issuer\) response parameter value/);
  t.equal(stack.op.tokenRequests.length, 0, 'the code is never sent to the token endpoint (mix-up defence)');
});

t.test('rejects an authorization response without iss when the OP advertises it (RFC 9207 2.4)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => q.delete('iss');
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /response parameter "iss" \(issuer\) missing/);
  t.equal(stack.op.tokenRequests.length, 0, 'the code is never sent to the token endpoint');
});

t.test('rejects an authorization response whose state differs (RFC 6749 10.12)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => q.set('state', 'a-state-this-browser-never-sent');
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /unknown or expired login transaction/);
  t.equal(stack.op.tokenRequests.length, 0);
});

t.test('rejects an authorization response without state', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => q.delete('state');
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /missing state/);
  t.equal(stack.op.tokenRequests.length, 0);
});

t.test('rejects a callback whose state belongs to a login started in another browser', async (t) => {
  const stack = await startHostileStack(t);
  const victim = new Browser();
  const authorizeUrl = await startLogin(stack, victim);
  // The attacker's browser has no transaction cookie for this state (login CSRF / session swapping).
  const attacker = new Browser();
  const res = await attacker.navigate(authorizeUrl);
  t.ok(res.url.startsWith(`${stack.publicUrl}/auth/callback`));
  await expectCleanFailure(t, stack, attacker, res, /unknown or expired login transaction/);
  t.equal(stack.op.tokenRequests.length, 0, 'the code is not redeemed');

  // The stranger's failed attempt leaves the real user's login intact.
  const own = await victim.navigate(authorizeUrl);
  t.equal(own.url, `${stack.publicUrl}/`, 'the user who started the login lands on the tenant root');
  t.equal(await sessionStatus(stack, victim), 200);
});

t.test('rejects a replayed callback URL in another browser and keeps the first session alive', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const first = await login(stack, browser);
  await expectLoggedIn(t, stack, browser, first);

  // The callback URL leaked (history, logs, Referer): replaying it elsewhere must buy nothing.
  const attacker = new Browser();
  const replay = await attacker.navigate(first.callback.url);
  await expectCleanFailure(t, stack, attacker, replay, /unknown or expired login transaction/, { earlierLogins: 1 });
  t.equal(stack.op.tokenRequests.length, 1, 'the code was redeemed exactly once');
  t.equal(await sessionStatus(stack, browser), 200, 'the legitimate session is untouched');
});

t.test('rejects a replayed callback URL in the same browser (the transaction is spent)', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const first = await login(stack, browser);
  const cookieBefore = browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value;
  const replay = await browser.navigate(first.callback.url);
  t.equal(replay.status, 400);
  t.match(replay.body, /Login failed/);
  t.notOk(sessionCookieSet(stack, replay), 'no new session cookie');
  t.equal(browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value, cookieBefore);
  t.match(String(stack.audit('login.failure')[0]?.reason), /unknown or expired login transaction/);
  t.equal(stack.op.tokenRequests.length, 1, 'the code was redeemed exactly once');
});

t.test('rejects a replayed code even when the transaction cookie is replayed with it (RFC 6749 4.1.2)', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const authorizeUrl = await startLogin(stack, browser);
  const txCookie = browser.cookies(stack.publicUrl).find((c) => c.name.startsWith(stack.transactionCookiePrefix));
  t.ok(txCookie, 'a transaction cookie was set');
  const done = await browser.navigate(authorizeUrl);
  t.equal(done.url, `${stack.publicUrl}/`);
  const callbackUrl = browser.history.find((r) => r.url.startsWith(`${stack.publicUrl}/auth/callback`))!.url;

  // Someone who copied both the callback URL and the (sealed) transaction cookie replays them together.
  const replay = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `${txCookie!.name}=${txCookie!.value}`, accept: 'text/html' } });
  t.equal(replay.status, 400, 'the gateway refuses');
  t.match(await replay.text(), /Login failed/);
  t.notOk(replay.headers.getSetCookie().some((l) => l.startsWith(`${stack.sessionCookieName}=`)), 'no session cookie');
  t.same(stack.op.tokenErrors, ['invalid_grant'], 'the OP refused the second use of the code');
  t.match(String(stack.audit('login.failure')[0]?.reason), /invalid_grant/);
  t.equal(stack.audit('login.success').length, 1, 'only the first use logged in');
});

t.test('rejects a code issued to another login attempt: the PKCE verifier does not match (RFC 7636 1, 4.6)', async (t) => {
  const stack = await startHostileStack(t);
  // The attacker runs a login of their own and stops at the OP's redirect, keeping the code.
  const attacker = new Browser();
  const attackerAuthorize = await startLogin(stack, attacker);
  const opAnswer = await fetch(attackerAuthorize, { redirect: 'manual' });
  const stolen = new URL(opAnswer.headers.get('location')!);
  const code = stolen.searchParams.get('code')!;
  t.ok(code, 'the attacker holds a code');

  // The victim starts a login; the attacker injects their code into the victim's callback.
  const victim = new Browser();
  const victimAuthorize = new URL(await startLogin(stack, victim));
  const injected = new URL(`${stack.publicUrl}/auth/callback`);
  injected.searchParams.set('code', code);
  injected.searchParams.set('state', victimAuthorize.searchParams.get('state')!);
  injected.searchParams.set('iss', stack.op.issuer);
  const res = await victim.navigate(injected.toString(), { initiator: 'https://evil.example' });
  await expectCleanFailure(t, stack, victim, res, /code exchange: invalid_grant/);
  t.same(stack.op.tokenErrors, ['invalid_grant'], 'the OP refused the code for the wrong verifier');
});

t.test('sends PKCE S256 with an unpadded challenge, a fresh state and nonce per attempt (RFC 7636 4.2)', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const a = new URL(await startLogin(stack, browser)).searchParams;
  const b = new URL(await startLogin(stack, browser)).searchParams;
  t.equal(a.get('code_challenge_method'), 'S256');
  t.match(a.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/, 'base64url without = padding');
  t.notOk(a.has('code_verifier'), 'the verifier never leaves the gateway');
  t.not(a.get('code_challenge'), b.get('code_challenge'));
  t.not(a.get('state'), b.get('state'));
  t.not(a.get('nonce'), b.get('nonce'));
  t.ok((a.get('state') ?? '').length >= 22 && (a.get('nonce') ?? '').length >= 22, 'state and nonce carry at least 128 bits');
  t.equal(a.get('redirect_uri'), `${stack.publicUrl}/auth/callback`);
});

// ---------------------------------------------------------------- error responses and cancellation

t.test('the error page reflects no attacker input unescaped', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const url = new URL(`${stack.publicUrl}/auth/callback`);
  url.searchParams.set('error', '<script>alert(1)</script>');
  url.searchParams.set('error_description', '<img src=x onerror=alert(2)>"\'&');
  url.searchParams.set('state', '"><svg onload=alert(3)>');
  url.searchParams.set('iss', stack.op.issuer);
  const res = await browser.navigate(url.toString(), { initiator: 'https://evil.example' });
  t.equal(res.status, 400);
  t.match(res.headers.get('content-type') ?? '', /^text\/html/);
  for (const needle of ['<script', '<img', '<svg', 'onerror', 'onload', 'alert(']) t.notOk(res.body.includes(needle), `no ${needle} in the page`);
  t.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/, 'a CSP that forbids scripts anyway');
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.notOk(sessionCookieSet(stack, res));
  const failure = stack.audit('login.failure')[0];
  t.ok(failure, 'a login.failure audit line');
  t.notOk(JSON.stringify(failure).includes('<'), 'the audit line carries no markup either');
});

t.test('an OP error other than access_denied is a failure page, with the transaction cleared', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => {
    q.delete('code');
    q.set('error', 'server_error');
    q.set('error_description', '<b>boom</b>');
  };
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /server_error/);
  t.notOk(callback.body.includes('<b>'), 'the description is not reflected');
  t.same(browser.cookies(stack.publicUrl).filter((c) => c.name.startsWith(stack.transactionCookiePrefix)), [], 'no transaction cookie left');
});

t.test('an error response from another issuer is refused (RFC 9207 2.4 applies to error responses too)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => {
    q.delete('code');
    q.set('error', 'access_denied');
    q.set('iss', 'https://evil.example');
  };
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  await expectCleanFailure(t, stack, browser, callback, /issuer/i);
  t.equal(stack.audit('login.cancelled').length, 0);
});

t.test('a callback with error=access_denied redirects to the tenant root with ?login_error=cancelled', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperAuthorizationResponse = (q) => {
    q.delete('code');
    q.set('error', 'access_denied');
    q.set('error_description', 'User cancelled the login');
  };
  const browser = new Browser();
  const { callback } = await login(stack, browser);
  t.equal(callback.status, 302);
  t.equal(callback.headers.get('location'), `${stack.publicUrl}/?login_error=cancelled`);
  t.notOk(sessionCookieSet(stack, callback));
  t.same(browser.cookies(stack.publicUrl).filter((c) => c.name.startsWith(stack.transactionCookiePrefix)), [], 'the transaction cookie is cleared');
  t.equal(await sessionStatus(stack, browser), 401);
  t.equal(stack.audit('login.cancelled').length, 1);
  t.equal(stack.audit('login.failure').length, 0, 'a cancel is not a failure');
  t.equal(stack.op.tokenRequests.length, 0);
});

t.test('/auth/login/cancelled clears every pending transaction and redirects with ?login_error=cancelled', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const first = await startLogin(stack, browser);
  await startLogin(stack, browser);
  const pending = () => browser.cookies(stack.publicUrl).filter((c) => c.name.startsWith(stack.transactionCookiePrefix));
  t.equal(pending().length, 2, 'two logins pending');

  const res = await browser.fetch(`${stack.publicUrl}/auth/login/cancelled`);
  t.equal(res.status, 302);
  t.equal(res.headers.get('location'), `${stack.publicUrl}/?login_error=cancelled`);
  t.same(pending(), [], 'no transaction cookie left');
  t.equal(stack.audit('login.cancelled').length, 1);

  // A late answer from the OP for a cancelled login finds nothing to finish.
  const late = await browser.navigate(first);
  t.equal(late.status, 400);
  t.notOk(sessionCookieSet(stack, late));
  t.equal(await sessionStatus(stack, browser), 401);
});

// ---------------------------------------------------------------- parallel logins and session fixation

t.test('two logins started in two tabs can both finish, each with its own returnTo', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  const tabOne = await startLogin(stack, browser, '?returnTo=/tab-one');
  const tabTwo = await startLogin(stack, browser, '?returnTo=/tab-two');

  const second = await browser.navigate(tabTwo);
  t.equal(second.url, `${stack.publicUrl}/tab-two`, 'the tab started last finishes first');
  const cookieAfterSecond = browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value;
  const first = await browser.navigate(tabOne);
  t.equal(first.url, `${stack.publicUrl}/tab-one`, 'the other tab finishes too');
  t.equal(stack.audit('login.success').length, 2);
  t.equal(stack.audit('login.failure').length, 0);
  t.equal(await sessionStatus(stack, browser), 200, 'the browser holds a live session');
  t.not(browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value, cookieAfterSecond, 'the later finish got a session id of its own');
});

for (const [label, planted] of [
  ['an arbitrary value', 'attacker-chosen-session-value'],
  ['a well-formed value', 'A'.repeat(43)],
] as const) {
  t.test(`a session cookie planted before login (${label}) is not the cookie after login`, async (t) => {
    const stack = await startHostileStack(t);
    const browser = new Browser();
    await plantCookie(browser, 'localhost', stack.sessionCookieName, planted);
    t.equal(browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value, planted, 'the cookie is planted');
    const run = await login(stack, browser);
    await expectLoggedIn(t, stack, browser, run);
    const after = browser.cookie(stack.publicUrl, stack.sessionCookieName)?.value;
    t.not(after, planted, 'the gateway chose a new value');
    t.equal(await sessionStatusFor(stack, planted), 401, 'the planted value names no session');
  });
}

// The callback is a cross-site navigation, so a SameSite=Strict session cookie does not reach it: the earlier
// session must still be found (the login remembers it when it starts) and destroyed.
t.test('logging in again issues a new session id and destroys the earlier session', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  await expectLoggedIn(t, stack, browser, await login(stack, browser));
  const earlier = browser.cookie(stack.publicUrl, stack.sessionCookieName)!.value;
  t.equal(await sessionStatusFor(stack, earlier), 200);
  const again = await login(stack, browser);
  t.equal(again.callback.status, 302);
  const later = browser.cookie(stack.publicUrl, stack.sessionCookieName)!.value;
  t.not(later, earlier, 'a new session cookie');
  t.equal(await sessionStatusFor(stack, earlier), 401, 'the earlier session is dead');
  t.equal(await sessionStatusFor(stack, later), 200);
  t.ok(stack.audit('login.success')[1]?.replacedSession, 'the audit line names the replaced session');
});

t.test("an attacker's real session planted in the victim's browser is replaced and destroyed by the victim's login", async (t) => {
  const stack = await startHostileStack(t);
  const attacker = new Browser();
  await login(stack, attacker);
  const attackerSession = attacker.cookie(stack.publicUrl, stack.sessionCookieName)!.value;

  const victim = new Browser();
  await plantCookie(victim, 'localhost', stack.sessionCookieName, attackerSession);
  stack.op.sub = 'pairwise-sub-victim';
  const run = await login(stack, victim);
  await expectLoggedIn(t, stack, victim, run);
  t.not(victim.cookie(stack.publicUrl, stack.sessionCookieName)?.value, attackerSession, 'the victim has a session of their own');
  t.equal(await sessionStatusFor(stack, attackerSession), 401, 'the planted session is dead: the attacker cannot watch the victim');
});

// ---------------------------------------------------------------- legal variations that must still log in

t.test('accepts an ID token without kid when the JWKS holds a single key', async (t) => {
  const stack = await startHostileStack(t);
  const keyWithoutKid = await stack.op.generateKey(undefined);
  stack.op.published = [keyWithoutKid];
  stack.op.activeKey = keyWithoutKid;
  const browser = new Browser();
  const run = await login(stack, browser);
  await expectLoggedIn(t, stack, browser, run);
});

t.test('accepts an ID token without kid when the single published key has one', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperIdToken = (d) => void delete d.header.kid;
  const browser = new Browser();
  await expectLoggedIn(t, stack, browser, await login(stack, browser));
});

t.test('accepts an auth_time within the max_age the login asked for (OIDC Core 3.1.3.7 step 13)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperIdToken = (d) => void (d.claims.auth_time = now() - 50);
  const browser = new Browser();
  await expectLoggedIn(t, stack, browser, await login(stack, browser, '?max_age=60'));
});

t.test('accepts aud as a one-element array (OIDC Core 2)', async (t) => {
  const stack = await startHostileStack(t);
  stack.op.tamperIdToken = (d, { op }) => void (d.claims.aud = [op.clientId]);
  const browser = new Browser();
  await expectLoggedIn(t, stack, browser, await login(stack, browser));
});

for (const retireOld of [false, true]) {
  t.test(`a signing key rotated between two logins is picked up at once (old key ${retireOld ? 'retired' : 'still published'})`, async (t) => {
    const stack = await startHostileStack(t);
    const first = new Browser();
    await expectLoggedIn(t, stack, first, await login(stack, first));
    t.equal(stack.op.jwksRequests, 1, 'the JWKS was fetched once');

    // ID-porten rotates keys; the gateway must not wait out its cache (or a minute) to accept the new kid.
    await stack.op.rotateKey({ retireOld });
    const second = new Browser();
    const run = await login(stack, second);
    t.equal(run.callback.status, 302, 'the second login succeeds right away');
    t.equal(await sessionStatus(stack, second), 200);
    t.equal(stack.op.jwksRequests, 2, 'the JWKS was fetched again, once');
    t.equal(stack.audit('login.failure').length, 0);
  });
}

t.test('forged tokens with ever new kids cannot make the gateway hammer the JWKS', async (t) => {
  const stack = await startHostileStack(t);
  const forger = await stack.op.generateKey(undefined);
  let n = 0;
  stack.op.tamperIdToken = (d) => {
    d.header.kid = `forged-${(n += 1)}`;
    d.key = forger.privateKey;
  };
  for (let i = 0; i < 5; i++) {
    const { callback } = await login(stack, new Browser());
    t.equal(callback.status, 400);
  }
  t.ok(stack.op.jwksRequests <= 2, `the JWKS was fetched at most twice for five unknown kids (got ${stack.op.jwksRequests})`);
});

// ---------------------------------------------------------------- refreshed ID tokens (OIDC Core 12.2)

async function refresh(stack: HostileStack, browser: Browser): Promise<BrowserResponse> {
  return browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } });
}

t.test('a refresh against the hostile OP rotates the refresh token and keeps the session', async (t) => {
  const stack = await startHostileStack(t);
  const browser = new Browser();
  await expectLoggedIn(t, stack, browser, await login(stack, browser));
  const res = await refresh(stack, browser);
  t.equal(res.status, 200);
  t.equal(JSON.parse(res.body).user.sub, stack.op.sub);
  t.same(stack.op.tokenRequests.map((f) => f.get('grant_type')), ['authorization_code', 'refresh_token']);
  t.equal(stack.audit('token.refresh').length, 1);
  t.equal(await sessionStatus(stack, browser), 200);
});

const brokenRefreshes: { name: string; tamper: IdTokenTamper; query?: string }[] = [
  // OIDC Core 12.2: iss, sub and aud MUST be the same as in the original ID token; the signature is checked as at login.
  { name: 'another sub', tamper: (d) => void (d.claims.sub = 'someone-else') },
  { name: 'another issuer', tamper: (d) => void (d.claims.iss = 'https://evil.example') },
  { name: 'another audience', tamper: (d) => void (d.claims.aud = 'someone-else') },
  { name: 'a corrupted signature', tamper: (d) => void (d.finish = corruptSignature) },
  { name: 'alg none', tamper: (d) => void (d.header = { alg: 'none', typ: 'JWT' }) },
  // The level the user logged in with may not silently drop.
  { name: 'an acr below the login', query: '?acr=idporten-loa-high', tamper: (d) => void (d.claims.acr = 'idporten-loa-substantial') },
];

for (const c of brokenRefreshes) {
  t.test(`a refreshed ID token with ${c.name} ends the session`, async (t) => {
    const stack = await startHostileStack(t);
    const browser = new Browser();
    await expectLoggedIn(t, stack, browser, await login(stack, browser, c.query ?? ''));
    stack.op.tamperIdToken = (draft, context) => (context.grant === 'refresh_token' ? c.tamper(draft, context) : undefined);
    const res = await refresh(stack, browser);
    t.equal(res.status, 401);
    t.equal(JSON.parse(res.body).code, 'session_expired');
    t.equal(await sessionStatus(stack, browser), 401, 'the session is gone');
    t.equal(stack.audit('token.refresh.failure').length, 1);
    t.equal(stack.audit('token.refresh').length, 0);
  });
}
