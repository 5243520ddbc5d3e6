/**
 * Login controls, black box against the ID-porten look-alike (a real oidc-provider):
 * - `/auth/login?prompt=login|select_account&max_age=N` reach the provider, with PAR and without (OIDC Core
 *   3.1.2.1), and anything else is refused before any provider traffic;
 * - `routes[].acr` asks a session below that level for a step-up login (401 step_up_required), after which the
 *   session has a new id and the call works, while routes without acr keep working throughout.
 * The ID token checks that go with max_age (auth_time, OIDC Core 3.1.3.7 step 13) are in oidc-hostile.test.ts,
 * where a provider can lie about auth_time.
 */
import t from 'tap';
import { Browser, loginAtLookalike, type BrowserResponse } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[0]!;
const HIGH = 'idporten-loa-high';
const SUBSTANTIAL = 'idporten-loa-substantial';


async function sessionOf(stack: Stack, browser: Browser) {
  const cookie = browser.cookie('localhost', 'bff');
  if (!cookie) throw new Error('no session cookie');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { cookie: cookie.value, session: loaded.session };
}

/** The login start's redirect, not followed. */
async function loginStart(stack: Stack, browser: Browser, query: string): Promise<BrowserResponse> {
  return browser.fetch(`${stack.publicUrl}/auth/login${query}`, { headers: { accept: 'text/html' } });
}

for (const usePar of [true, false]) {
  t.test(`prompt and max_age reach the provider ${usePar ? 'through PAR' : 'in the authorization URL'}, and it acts on them (OIDC Core 3.1.2.1)`, async (t) => {
    const stack = await startStack(t, { idporten: { usePar } });
    const browser = new Browser();
    await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
    const first = stack.op.observed.authorizations.at(-1)!;
    t.equal(first.par, usePar, usePar ? 'the request went through PAR' : 'the request carried its parameters');
    t.notOk(first.prompt, 'a plain login sends no prompt');
    t.notOk(first.maxAge, 'and no max_age');

    // The provider now has a session: without prompt it would not ask again.
    const forced = await browser.navigate(`${stack.publicUrl}/auth/login?prompt=login&returnTo=/again`);
    t.match(forced.body, /id="login-form"/, 'prompt=login: the provider shows its login form despite its session');
    const asked = stack.op.observed.authorizations.at(-1)!;
    t.equal(asked.prompt, 'login', 'the provider received prompt=login');
    t.equal(asked.par, usePar);
    t.same(asked.interaction?.reasons.includes('login_prompt'), true, 'and asked for a login because of it');
    const done = await browser.followAutoSubmit(await browser.submitForm(forced.body, forced.url, 'login-form', { pid: user.pid }));
    t.equal(done.url, `${stack.publicUrl}/again`, 'the forced login finishes where it was asked to');

    // The provider's login is now over a second old, counted in its whole seconds: max_age=1 makes it ask again.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?max_age=1`, { pid: user.pid });
    const aged = stack.op.observed.authorizations.at(-1)!;
    t.equal(aged.maxAge, '1', 'the provider received max_age');
    t.same(aged.interaction?.reasons.includes('max_age'), true, 'and asked for a login because its own was older');
    t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the login with max_age made a session (auth_time checked)');

    const sso = await browser.navigate(`${stack.publicUrl}/auth/login?max_age=3600`);
    t.notMatch(sso.body, /id="login-form"/, 'a max_age the provider session meets: no new login form');
    t.equal(sso.url, `${stack.publicUrl}/`, 'and the login finished');
    t.equal(stack.op.observed.authorizations.at(-1)!.maxAge, '3600');

    const choose = await browser.navigate(`${stack.publicUrl}/auth/login?prompt=select_account`);
    t.match(choose.body, /id="login-form"/, 'prompt=select_account: the provider lets the user choose again');
    const chosen = stack.op.observed.authorizations.at(-1)!;
    t.equal(chosen.prompt, 'select_account', 'the provider received prompt=select_account');
    t.same(chosen.interaction?.reasons, ['select_account_prompt'], 'and asked because of it');
    const back = await browser.followAutoSubmit(await browser.submitForm(choose.body, choose.url, 'login-form', { pid: user.pid }));
    t.equal(back.url, `${stack.publicUrl}/`, 'the login finished');
    t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'with a session');
    const starts = stack.audit('login.start');
    t.same(starts.map((l) => [l.prompt, l.maxAge]), [[undefined, undefined], ['login', undefined], [undefined, 1], [undefined, 3600], ['select_account', undefined]], 'the audit line names the controls');
  });
}

t.test('/auth/login refuses any other prompt or max_age with 400 invalid_request, before the provider hears of it', async (t) => {
  const stack = await startStack(t);
  const refused = [
    'prompt=none', // a browser login cannot be silent here; no caller may turn it into an SSO probe
    'prompt=consent',
    'prompt=',
    'prompt=login%20consent',
    'prompt=LOGIN',
    'prompt=login&prompt=select_account',
    'max_age=5&max_age=6',
    'max_age=-1',
    'max_age=1.5',
    'max_age=1e3',
    'max_age=%205',
    'max_age=',
    'max_age=ten',
    'max_age=31536001', // a year and a second
    'max_age=99999999999999999999',
  ];
  const browser = new Browser();
  for (const query of refused) {
    const res = await loginStart(stack, browser, `?${query}`);
    t.equal(res.status, 400, `${query}: 400`);
    t.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${query}: problem JSON`);
    t.equal(JSON.parse(res.body).code, 'invalid_request', `${query}: code invalid_request`);
    t.notOk(res.headers.getSetCookie().some((c) => c.startsWith('bff-tx')), `${query}: no login transaction is started`);
  }
  t.equal(stack.op.observed.authorizations.length, 0, 'the provider received no authorization request');
  t.equal(stack.audit('login.start').length, 0, 'no login started');
  for (const query of ['max_age=31536000', 'max_age=0', 'prompt=login&max_age=5']) {
    t.equal((await loginStart(stack, browser, `?${query}`)).status, 302, `${query}: the login starts`);
  }
});

t.test('step-up: a session below the acr of a route gets 401 step_up_required; the login it names replaces the session, and the call then works', async (t) => {
  const stack = await startStack(t, {
    upstreams: true,
    upstreamRoutes: ({ skatteetaten }) => [{ path: '/mva/high', upstream: `${skatteetaten.url}/echo/high`, token: 'idporten', acr: HIGH }],
  });
  const browser = new Browser();
  const page = `${stack.publicUrl}/returns/here?tab=2`;
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const before = await sessionOf(stack, browser);
  t.equal(before.session.data.user.acr, SUBSTANTIAL, 'logged in at substantial');
  const call = (path: string, referer = page) => browser.fetch(`${stack.publicUrl}${path}`, { headers: { 'x-csrf': '1', referer } });

  t.equal((await call('/mva/echo/x')).status, 200, 'a route without acr works at substantial');
  const refused = await call('/mva/high/x');
  t.equal(refused.status, 401, 'the high route refuses the substantial session');
  t.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = JSON.parse(refused.body);
  t.equal(problem.code, 'step_up_required');
  t.equal(problem.type, 'urn:idporten-bff:problem:step_up_required');
  const loginUrl = new URL(problem.loginUrl);
  t.equal(`${loginUrl.origin}${loginUrl.pathname}`, `${stack.publicUrl}/auth/login`, 'loginUrl is the gateway\'s login');
  t.equal(loginUrl.searchParams.get('acr'), HIGH, 'asking for the route\'s level');
  t.equal(loginUrl.searchParams.get('prompt'), 'login', 'and a fresh login: the provider\'s session at substantial must not do');
  t.equal(loginUrl.searchParams.get('returnTo'), '/returns/here?tab=2', 'back to the same-origin page the call came from');
  const skatteetatenCalls = stack.skatteetaten!.requests.length;
  for (const [referer, why] of [['https://evil.example/page', 'another origin'], ['', 'none'], ['not a url', 'not a URL'], [`${stack.publicUrl}//evil.example/x`, 'a protocol-relative path']] as const) {
    const other = JSON.parse((await call('/mva/high/y', referer)).body);
    t.equal(new URL(other.loginUrl).searchParams.get('returnTo'), '/', `Referer ${why}: returnTo is the tenant root`);
  }
  t.equal(stack.skatteetaten!.requests.length, skatteetatenCalls, 'nothing reached the upstream of the high route');
  t.equal((await call('/mva/echo/x')).status, 200, 'routes without acr kept working');

  // The user follows loginUrl: the provider asks again although it has a session, at the higher level.
  const final = await loginAtLookalike(browser, problem.loginUrl, { pid: user.pid, acr: HIGH });
  const asked = stack.op.observed.authorizations.at(-1)!;
  t.equal(asked.acrValues, HIGH, 'the provider was asked for the route\'s level');
  t.equal(asked.prompt, 'login', 'with prompt=login');
  t.ok(asked.interaction, 'and showed its login form');
  t.equal(final.url, page, 'the user is back on the page');
  const after = await sessionOf(stack, browser);
  t.not(after.cookie, before.cookie, 'the session cookie changed (no fixation)');
  t.not(after.session.id, before.session.id, 'a new session id');
  t.equal(after.session.data.user.acr, HIGH, 'the new session is at the route\'s level');
  t.equal((await stack.gateway.core.lifecycle.sessions.loadById(before.session.id)).state, 'none', 'the old session is gone');
  t.equal(stack.audit('logout').filter((l) => l.channel === 'replaced').length, 1, 'replaced as any login over a session is');

  const allowed = await call('/mva/high/x');
  t.equal(allowed.status, 200, 'the high route now works');
  t.equal(JSON.parse(allowed.body).path, '/echo/high/x', 'and reached its upstream');
  t.equal((await call('/mva/echo/x')).status, 200, 'routes without acr still work');
  const old = await new Browser().fetch(`${stack.publicUrl}/mva/echo/x`, { headers: { 'x-csrf': '1', cookie: `bff=${before.cookie}` } });
  t.equal(old.status, 401, 'the old cookie is worth nothing');
});

t.test('step-up: a session logged in at the level of the route passes; no session is a plain login_required', async (t) => {
  const stack = await startStack(t, {
    upstreams: true,
    upstreamRoutes: ({ skatteetaten }) => [{ path: '/mva/high', upstream: `${skatteetaten.url}/echo/high`, token: 'idporten', acr: HIGH }],
  });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?acr=${HIGH}`, { pid: user.pid, acr: HIGH });
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/high/x`, { headers: { 'x-csrf': '1' } })).status, 200, 'a session logged in at high needs no step-up');
  const anonymous = await new Browser().fetch(`${stack.publicUrl}/mva/high/x`, { headers: { 'x-csrf': '1' } });
  t.equal(JSON.parse(anonymous.body).code, 'login_required', 'without a session it is a plain login_required');
});
