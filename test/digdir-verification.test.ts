/**
 * Digdir's verification tests for an ID-porten integration ("Testsett - Verifikasjonstestar for integrasjon med
 * ID-porten"), each as a test of ours against the ID-porten look-alike (a real oidc-provider), named after Digdir's
 * test. Digdir's own test service and "Dine kontaktopplysninger" are played by another service on the same provider:
 * a second tenant with its own client (`otherService` in helpers/stack.ts). A browser session is one Browser.
 *
 * Not here: test 10 (`onbehalfof`), which the gateway does not send.
 */
import t, { type Test } from 'tap';
import { Browser, type BrowserResponse } from './helpers/browser.js';
import { startStack, type Stack, type StackOptions } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[0]!;
const SUBSTANTIAL = 'idporten-loa-substantial';
const HIGH = 'idporten-loa-high';
/** Digdir's levels: 3 is substantial, 4 is high. */
const LEVELS = [
  { acr: SUBSTANTIAL, level: 3 },
  { acr: HIGH, level: 4 },
] as const;

async function digdirStack(t: Test, opts: StackOptions = {}): Promise<Stack & { otherUrl: string }> {
  const stack = await startStack(t, { otherService: true, ...opts });
  return stack as Stack & { otherUrl: string };
}

const newBrowser = () => new Browser({ localhostNames: true });
const showsLoginForm = (res: BrowserResponse) => /id="login-form"/.test(res.body);

/** Starts a login at `origin` as a user following a login link; returns where the browser is shown first. */
function startLoginAt(browser: Browser, origin: string, query = ''): Promise<BrowserResponse> {
  return browser.navigate(`${origin}/auth/login${query}`);
}

/** Fills in the provider's login form and follows the answer back to the service. */
async function logInAtProvider(browser: Browser, page: BrowserResponse, acr?: string): Promise<BrowserResponse> {
  if (!showsLoginForm(page)) throw new Error(`no login form at ${page.url}`);
  return browser.followAutoSubmit(await browser.submitForm(page.body, page.url, 'login-form', { pid: user.pid, ...(acr ? { acr } : {}) }));
}

async function sessionAt(browser: Browser, origin: string): Promise<{ status: number; acr?: string; code?: string }> {
  const res = await browser.fetch(`${origin}/auth/session`);
  const body = JSON.parse(res.body);
  return res.status === 200 ? { status: 200, acr: body.user.acr } : { status: res.status, code: body.code };
}

/** Logs out at `origin` as the service's logout button does (a same-origin form post), through the provider and back. */
async function logOutAt(browser: Browser, origin: string): Promise<BrowserResponse> {
  const page = await browser.navigate(`${origin}/auth/logout`, { method: 'POST', body: '', initiator: origin });
  return browser.followAutoSubmit(page);
}

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

for (const { acr, level } of LEVELS) {
  const number = level === 3 ? 1 : 2;
  t.test(`Digdir test ${number}: single sign-on (SSO) from own service at level ${level} (SSO frå eiga teneste, ${acr})`, async (t) => {
    const stack = await digdirStack(t);
    const browser = newBrowser();
    const asked = await startLoginAt(browser, stack.publicUrl, `?acr=${acr}`);
    t.ok(asked.url.startsWith(stack.op.issuer) && showsLoginForm(asked), `${number}.2: sent to ID-porten to log in`);
    const back = await logInAtProvider(browser, asked, acr);
    t.equal(back.url, `${stack.publicUrl}/`, `${number}.4: back at own service`);
    t.same(await sessionAt(browser, stack.publicUrl), { status: 200, acr }, 'logged in here');

    const other = await startLoginAt(browser, stack.otherUrl);
    t.notOk(showsLoginForm(other), `${number}.6: the other service is reached without a new login`);
    t.equal(other.url, `${stack.otherUrl}/`);
    t.same(await sessionAt(browser, stack.otherUrl), { status: 200, acr }, `${number}.7: the other service sees level ${level}`);
  });
}

for (const { acr, level } of LEVELS) {
  const number = level === 3 ? 3 : 4;
  t.test(`Digdir test ${number}: single sign-on (SSO) to own service at level ${level} (SSO til eiga teneste, ${acr})`, async (t) => {
    const stack = await digdirStack(t);
    const browser = newBrowser();
    const asked = await startLoginAt(browser, stack.otherUrl, `?acr=${acr}`);
    t.ok(showsLoginForm(asked), `${number}.2: the other service sends the user to ID-porten`);
    await logInAtProvider(browser, asked, acr);
    t.equal((await sessionAt(browser, stack.otherUrl)).status, 200, `${number}.4: logged in at the other service`);

    const own = await startLoginAt(browser, stack.publicUrl, '?returnTo=/start');
    t.notOk(showsLoginForm(own), `${number}.6: own service is reached without a new login`);
    t.equal(own.url, `${stack.publicUrl}/start`);
    t.same(await sessionAt(browser, stack.publicUrl), { status: 200, acr }, `${number}.7: logged in here at level ${level}`);
    t.equal(stack.op.observed.authorizations.at(-1)!.interaction, undefined, 'the provider asked the user nothing');
  });
}

t.test('Digdir test 5: upgrade of the security level (oppgradering av sikkerheitsnivå): a route at level 4 after a login at level 3', async (t) => {
  const stack = await digdirStack(t, {
    upstreams: true,
    upstreamRoutes: ({ skatteetaten }) => [{ path: '/mva/high', upstream: `${skatteetaten.url}/echo/high`, token: 'idporten', acr: HIGH }],
  });
  const browser = newBrowser();
  await logInAtProvider(browser, await startLoginAt(browser, stack.publicUrl));
  t.equal((await sessionAt(browser, stack.publicUrl)).acr, SUBSTANTIAL, '5.3: logged in at level 3');
  const call = () => browser.fetch(`${stack.publicUrl}/mva/high/x`, { headers: { 'x-csrf': '1', referer: `${stack.publicUrl}/submit` } });
  const refused = await call();
  t.equal(refused.status, 401);
  const { code, loginUrl } = JSON.parse(refused.body);
  t.equal(code, 'step_up_required', 'the level 4 route asks for a step-up');
  const asked = await browser.navigate(loginUrl);
  t.ok(asked.url.startsWith(stack.op.issuer) && showsLoginForm(asked), '5.6: sent to ID-porten, which asks again');
  const back = await logInAtProvider(browser, asked, HIGH);
  t.equal(back.url, `${stack.publicUrl}/submit`, '5.8: the login succeeded, back on the page');
  t.equal((await sessionAt(browser, stack.publicUrl)).acr, HIGH, 'at level 4');
  t.equal((await call()).status, 200, 'the level 4 route answers');
});

t.test('Digdir test 6: single logout (SLO) from own service (single log-out frå eiga teneste)', async (t) => {
  const stack = await digdirStack(t);
  const browser = newBrowser();
  await logInAtProvider(browser, await startLoginAt(browser, stack.otherUrl));
  t.equal((await sessionAt(browser, stack.otherUrl)).status, 200, '6.4: logged in at the other service');
  const own = await startLoginAt(browser, stack.publicUrl);
  t.notOk(showsLoginForm(own), '6.6: own service without a new login');
  t.equal((await sessionAt(browser, stack.publicUrl)).status, 200);

  const landed = await logOutAt(browser, stack.publicUrl);
  t.equal(landed.url, `${stack.publicUrl}/`, '6.7: logged out through ID-porten and back');
  t.same(await sessionAt(browser, stack.publicUrl), { status: 401, code: 'login_required' }, '6.8: logged out of own service');
  t.ok(await waitFor(async () => (await sessionAt(browser, stack.otherUrl)).status === 401), '6.9: logged out of the other service too');
  t.ok(stack.audit('logout').some((l) => l.tenant === 'other'), 'the other service was told by ID-porten');
  t.ok(showsLoginForm(await startLoginAt(browser, stack.otherUrl)), "and ID-porten's own session is over: it asks for a login again");
});

for (const channel of ['frontchannel', 'backchannel'] as const) {
  // Each channel on its own: own service is registered with only that logout URI.
  const registration = channel === 'frontchannel' ? { backchannel_logout_uri: null, backchannel_logout_session_required: null } : { frontchannel_logout_uri: null };
  t.test(`Digdir test 7: single logout (SLO) from another service (SLO frå anna teneste), ${channel === 'frontchannel' ? 'front-channel' : 'back-channel'}`, async (t) => {
    const stack = await digdirStack(t, { registration });
    const browser = newBrowser();
    await logInAtProvider(browser, await startLoginAt(browser, stack.publicUrl));
    t.equal((await sessionAt(browser, stack.publicUrl)).status, 200, '7.4: logged in here');
    t.notOk(showsLoginForm(await startLoginAt(browser, stack.otherUrl)), '7.6: the other service without a new login');

    await logOutAt(browser, stack.otherUrl);
    t.equal((await sessionAt(browser, stack.otherUrl)).status, 401, '7.8: logged out of the other service');
    t.ok(await waitFor(async () => (await sessionAt(browser, stack.publicUrl)).status === 401), '7.9: logged out of own service too');
    const ours = stack.audit('logout').filter((l) => l.tenant === 'test');
    t.same(ours.map((l) => l.channel), [channel], `ended by the ${channel} logout`);
  });
}

t.test('Digdir test 8: timeout in the application (test av timeout i applikasjonen): 30 minutes without activity end the session', async (t) => {
  // The gateway's clock is moved on instead of waiting; the idle timeout is the default, 30 minutes.
  let offsetMs = 0;
  const stack = await digdirStack(t, { appDeps: { now: () => Date.now() + offsetMs } });
  t.equal(stack.gateway.core.config.session.idleTimeoutMs, 30 * 60_000, 'the default idle timeout is 30 minutes');
  const active = newBrowser();
  const idle = newBrowser();
  for (const browser of [active, idle]) await logInAtProvider(browser, await startLoginAt(browser, stack.publicUrl));

  offsetMs = 29 * 60_000;
  t.equal((await sessionAt(active, stack.publicUrl)).status, 200, 'one user is active after 29 minutes');
  offsetMs = 30 * 60_000 + 5_000;
  t.same(await sessionAt(idle, stack.publicUrl), { status: 401, code: 'session_expired' }, '8.6: the other, idle for over 30 minutes, is logged out');
  t.equal((await sessionAt(active, stack.publicUrl)).status, 200, 'the active one, idle for a minute, is not');
  t.equal(stack.audit('logout').filter((l) => l.channel === 'idle').length, 1, 'one idle logout');
});

t.test('Digdir test 9: forced re-authentication (tvinga reautentisering): prompt=login makes ID-porten ask again', async (t) => {
  const stack = await digdirStack(t);
  const browser = newBrowser();
  await logInAtProvider(browser, await startLoginAt(browser, stack.otherUrl));
  t.equal((await sessionAt(browser, stack.otherUrl)).status, 200, '9.4: logged in at the other service');

  const asked = await startLoginAt(browser, stack.publicUrl, '?prompt=login');
  t.ok(showsLoginForm(asked), '9.6: ID-porten asks for a new login despite its session');
  const request = stack.op.observed.authorizations.at(-1)!;
  t.equal(request.prompt, 'login', '9.5 b: the request carried prompt=login');
  t.ok(request.interaction?.reasons.includes('login_prompt'), 'and it is why ID-porten asked');
  await logInAtProvider(browser, asked);
  t.equal((await sessionAt(browser, stack.publicUrl)).status, 200, 'logged in here after the new login');
});

t.test('Digdir test 11: the language of the login (autentiseringsforespørsel – språk): ui_locales', async (t) => {
  const stack = await digdirStack(t);
  const browser = newBrowser();
  const asked = await startLoginAt(browser, stack.publicUrl, '?locale=en');
  t.equal(stack.op.observed.authorizations.at(-1)!.uiLocales, 'en', '11.1 b: the request carried ui_locales=en');
  await logInAtProvider(browser, asked);
  t.equal((await sessionAt(browser, stack.publicUrl)).status, 200, '11.5: logged in');
});
