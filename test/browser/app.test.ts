/**
 * The app on the gateway's origin (`tenants[].app`) in Chromium: a static build with client-side routing
 * (deep links, bff.fetch to the API, the login round trip from a 401 back to the same deep link),
 * `requireLogin` for navigations only, and a dev server behind `app.upstream` with a WebSocket (HMR) that
 * never sees the session cookie.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { TEST_USERS } from '../../demo/test-users.js';
import { startAppServer } from '../helpers/app.js';
import { browserTestOptions, launchChromium } from '../helpers/chromium.js';
import { startStack, type Stack } from '../helpers/stack.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/spa', import.meta.url));
const HASHED_ASSET = '/assets/app-7c1e4b9a.js';
const USER = TEST_USERS[0]!;

/** Fills the ID-porten look-alike's login page the browser is on and waits until it is back at `back`. */
async function loginAtProvider(page: Page, stack: Stack, back: string): Promise<void> {
  await page.waitForURL((url) => url.origin === new URL(stack.op.issuer).origin);
  await page.locator('#login-form').waitFor();
  await page.selectOption('#pid', USER.pid);
  await Promise.all([page.waitForURL(back), page.click('#login-submit')]);
}

async function sessionCookie(context: BrowserContext, stack: Stack) {
  const host = new URL(stack.publicUrl).hostname;
  return (await context.cookies()).find((c) => c.domain === host && c.name === 'bff');
}

t.test('app.static in Chromium: deep links, bff.fetch with CSRF and bearer, and the login round trip from a 401', browserTestOptions(), async (t) => {
  const stack = await startStack(t, { upstreams: true, tenant: { app: { static: FIXTURE } } });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  const page = await context.newPage();
  const deepLink = `${publicUrl}/app/settings/42`;

  await t.test('a deep link loads index.html and the client-side router shows the route', async (t) => {
    const response = await page.goto(deepLink);
    t.equal(response?.status(), 200);
    t.equal(await page.title(), 'Fixture SPA', 'index.html');
    await page.waitForFunction(() => (window as unknown as { appReady?: boolean }).appReady === true);
    t.equal(await page.textContent('#view'), 'settings 42', 'the router rendered /app/settings/:id');
    t.equal(page.url(), deepLink, 'the address stays the deep link');
  });

  await t.test('without a session, bff.fetch gets 401 and takes the user through the login back to the deep link', async (t) => {
    t.equal(await sessionCookie(context, stack), undefined, 'no session yet');
    const answered = page.waitForResponse((r) => r.url() === `${publicUrl}/mva/echo/from-page`);
    const toLogin = page.waitForRequest((r) => r.isNavigationRequest() && new URL(r.url()).pathname === '/auth/login');
    await page.click('#call-api');
    const unauthorised = await answered;
    t.equal(unauthorised.status(), 401, 'the API call is refused without a session');
    t.match(unauthorised.headers()['content-type'], /^application\/problem\+json/);
    const login = new URL((await toLogin).url());
    t.equal(login.searchParams.get('returnTo'), '/app/settings/42', 'bff.fetch sent the browser to the login, returning to this page');
    await loginAtProvider(page, stack, deepLink);
    t.equal(page.url(), deepLink, 'back on the same deep link');
    await page.waitForFunction(() => (window as unknown as { appReady?: boolean }).appReady === true);
    t.equal(await page.textContent('#view'), 'settings 42');
    t.ok(await sessionCookie(context, stack), 'the browser holds the session cookie');
  });

  await t.test('the page\'s bff.fetch reaches the API with X-CSRF; the upstream got the bearer', async (t) => {
    const before = stack.skatteetaten!.requests.length;
    const request = page.waitForRequest((r) => r.url() === `${publicUrl}/mva/echo/from-page`);
    await page.click('#call-api');
    t.equal((await request).headers()['x-csrf'], '1', 'bff.fetch sent X-CSRF: 1');
    await page.locator('#api-result[data-status]').waitFor();
    t.equal(await page.getAttribute('#api-result', 'data-status'), '200', `the call succeeded: ${(await page.textContent('#api-result'))?.slice(0, 200)}`);
    const echoed = JSON.parse((await page.textContent('#api-result'))!.replace(/^200 /, '')) as { path: string; headers: Record<string, string> };
    t.equal(echoed.path, '/echo/from-page');
    t.match(echoed.headers.authorization, /^Bearer fingerprint:/, 'the upstream verified a bearer');
    const received = stack.skatteetaten!.requests.slice(before);
    t.equal(received.length, 1, 'one call reached the upstream');
    t.match(received[0]?.headers.authorization, /^Bearer ey/, 'with the access token');
    t.equal(received[0]?.headers.cookie, undefined, 'and without the session cookie');
    t.equal(received[0]?.headers['x-csrf'], undefined, 'nor X-CSRF');
  });
});

t.test('requireLogin in Chromium: a navigation goes to the login and back; an asset and a fetch do not', browserTestOptions(), async (t) => {
  const stack = await startStack(t, { tenant: { app: { static: FIXTURE, requireLogin: true } } });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  const page = await context.newPage();

  // A page of the gateway's origin that is not the app, to send a script load and a fetch from.
  await page.goto(`${publicUrl}/healthz`);
  const asset = page.waitForResponse((r) => r.url() === `${publicUrl}${HASHED_ASSET}`);
  const loaded = await page.evaluate((src) => new Promise<string>((resolve) => {
    const script = document.createElement('script');
    script.type = 'module';
    script.src = src;
    script.onload = () => resolve('load');
    script.onerror = () => resolve('error');
    document.head.append(script);
  }), HASHED_ASSET);
  t.equal(loaded, 'load', 'the asset loads as a script');
  t.equal((await asset).status(), 200, 'the asset is served, not redirected');
  const fetched = await page.evaluate(async () => {
    const res = await fetch('/app/x', { credentials: 'same-origin' });
    return { status: res.status, redirected: res.redirected, url: res.url };
  });
  t.equal(fetched.redirected, false, 'a fetch is not redirected to the login');
  t.equal(fetched.url, `${publicUrl}/app/x`);
  t.not(fetched.status, 302);
  t.equal(await sessionCookie(context, stack), undefined, 'still no session');

  const seen: string[] = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) seen.push(frame.url());
  });
  await page.goto(`${publicUrl}/app/x`);
  await loginAtProvider(page, stack, `${publicUrl}/app/x`);
  t.ok(seen.some((u) => new URL(u).origin === new URL(stack.op.issuer).origin), 'the navigation went through the provider\'s login page');
  await page.waitForFunction(() => (window as unknown as { appReady?: boolean }).appReady === true);
  t.equal(await page.textContent('#view'), 'route /app/x', 'back on /app/x, with the app');
  t.ok(await sessionCookie(context, stack), 'logged in');
});

interface Recorded {
  url: string;
  headers: IncomingHttpHeaders;
  kind: 'http' | 'websocket';
}

/** A dev-server stand-in: a page whose script opens the HMR WebSocket, and an echo on that socket. */
async function startDevServer(t: Test) {
  const recorded: Recorded[] = [];
  const files: Record<string, [string, string]> = {
    '/main.js': ['text/javascript', `
      const out = document.getElementById('hmr');
      const ws = new WebSocket('ws://' + location.host + '/hmr');
      ws.onopen = () => ws.send('ping');
      ws.onmessage = (event) => { out.textContent = event.data; out.dataset.state = 'received'; ws.close(); };
      ws.onerror = () => { out.dataset.state = 'error'; };
    `],
  };
  const { url, wss } = await startAppServer(t, (req, res) => {
    recorded.push({ url: req.url ?? '', headers: req.headers, kind: 'http' });
    const file = files[req.url ?? ''];
    res.setHeader('set-cookie', 'devserver=1; Path=/');
    if (file) {
      res.setHeader('content-type', file[0]);
      res.end(file[1]);
      return;
    }
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><title>dev server</title><script type="module" src="/main.js"></script><p id="hmr">connecting</p>');
  });
  wss.on('connection', (socket, req) => {
    recorded.push({ url: req.url ?? '', headers: req.headers, kind: 'websocket' });
    socket.on('message', (data) => socket.send(`echo:${data.toString()}`));
  });
  return { url, recorded };
}

t.test('app.upstream in Chromium: the dev server\'s page and its WebSocket work through the gateway, without the session cookie', browserTestOptions(), async (t) => {
  const dev = await startDevServer(t);
  const stack = await startStack(t, { tenant: { app: { upstream: dev.url } } });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  const page = await context.newPage();

  // Log in first, so the browser has a session cookie to (not) pass on.
  await page.goto(`${publicUrl}/auth/login?returnTo=${encodeURIComponent('/app/page')}`);
  await loginAtProvider(page, stack, `${publicUrl}/app/page`);
  const cookie = await sessionCookie(context, stack);
  if (!t.ok(cookie, 'logged in') || !cookie) return;

  await page.goto(`${publicUrl}/app/page`);
  t.equal(await page.title(), 'dev server', 'the dev server\'s page, through the gateway');
  await page.locator('#hmr[data-state]').waitFor();
  t.equal(await page.getAttribute('#hmr', 'data-state'), 'received', 'the page\'s WebSocket opened');
  t.equal(await page.textContent('#hmr'), 'echo:ping', 'and its messages passed both ways');
  t.equal((await context.cookies()).find((c) => c.name === 'devserver'), undefined, 'the dev server\'s Set-Cookie was dropped');

  const upgrade = dev.recorded.find((r) => r.kind === 'websocket');
  if (!t.ok(upgrade, 'the dev server got the upgrade') || !upgrade) return;
  t.equal(upgrade.url, '/hmr');
  t.equal(upgrade.headers.cookie, undefined, 'the upgrade carried no cookie');
  t.equal(upgrade.headers.authorization, undefined, 'nor an Authorization header');
  for (const r of dev.recorded) t.equal(r.headers.cookie, undefined, `${r.kind} ${r.url}: no cookie`);
  t.notOk(JSON.stringify(dev.recorded).includes(cookie.value), 'the dev server never saw the session cookie\'s value');
});

t.test('logout in Chromium lands on the post-logout URI with a clean address; app.publicPaths shows the landing page without a login', browserTestOptions(), async (t) => {
  // requireLogin guards the app; the landing page at / (the default post-logout URI) is public.
  const stack = await startStack(t, { tenant: { app: { static: FIXTURE, requireLogin: true, publicPaths: ['/'] } } });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  const page = await context.newPage();

  await page.goto(`${publicUrl}/app/x`);
  await loginAtProvider(page, stack, `${publicUrl}/app/x`);
  await page.waitForFunction(() => (window as unknown as { appReady?: boolean }).appReady === true);
  t.ok(await sessionCookie(context, stack), 'logged in');

  const seen: string[] = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) seen.push(frame.url());
  });
  // The page's logout button: a form that posts to /auth/logout.
  await page.evaluate(() => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = '/auth/logout';
    document.body.append(form);
    form.submit();
  });
  await page.waitForURL((url) => url.origin === publicUrl && url.pathname === '/' && seen.some((u) => u.startsWith(`${stack.op.issuer}/`)));
  await page.waitForFunction(() => (window as unknown as { appReady?: boolean }).appReady === true);
  t.ok(seen.some((u) => u.startsWith(`${stack.op.issuer}/endsession`)), 'the browser went through the end-session endpoint');
  const landed = new URL(page.url());
  t.equal(landed.href, `${publicUrl}/`, 'the address is the post-logout URI as registered, with no state or other OpenID parameter');
  t.equal(landed.search, '', 'no query');
  t.equal(await page.textContent('#view'), 'route /', 'the app shows its landing page');
  t.notOk(seen.slice(seen.findIndex((u) => u.startsWith(`${stack.op.issuer}/endsession`)) + 1).some((u) => u.startsWith(`${stack.op.issuer}/`) && !u.includes('endsession')),
    'not sent back to the provider\'s login after the logout');
  t.equal(await sessionCookie(context, stack), undefined, 'logged out');
  const after = seen.filter((u) => u.startsWith(publicUrl));
  t.notOk(after.some((u) => /[?&](state|iss|sid|code)=/.test(u)), `no OpenID parameter in any address of the origin: ${after.join(', ')}`);
});
