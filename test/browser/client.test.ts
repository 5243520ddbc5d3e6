/**
 * The browser helper (/auth/client.js) in Chromium on the gateway's origin: bff.fetch sends X-CSRF so a
 * proxied call passes, and onExpiring warns on time by the gateway's clock although the browser's clock is
 * ten minutes wrong.
 */
import type { Page } from 'playwright-core';
import t from 'tap';
import { TEST_USERS } from '../../demo/test-users.js';
import { browserTestOptions, launchChromium } from '../helpers/chromium.js';
import { startStack } from '../helpers/stack.js';

const USER = TEST_USERS[0]!;
const CLOCK_SKEW_MS = 10 * 60_000;
const IDLE_TIMEOUT_S = 8;
const WARN_S = 5;

/**
 * The page's Date runs ten minutes ahead: Date.now(), new Date() and Date() alike; performance.now() is
 * untouched. A string, not a function: the test's transpiler would add helpers the page does not have.
 */
const SKEW_CLOCK = `(() => {
  const RealDate = Date;
  const skew = ${CLOCK_SKEW_MS};
  const now = () => RealDate.now() + skew;
  function SkewedDate(...args) {
    if (!new.target) return new RealDate(now()).toString();
    return args.length === 0 ? new RealDate(now()) : new RealDate(...args);
  }
  SkewedDate.prototype = RealDate.prototype;
  SkewedDate.now = now;
  SkewedDate.parse = RealDate.parse;
  SkewedDate.UTC = RealDate.UTC;
  globalThis.Date = SkewedDate;
})();`;

t.test('bff.fetch and onExpiring in a browser whose clock is ten minutes ahead', browserTestOptions(), async (t) => {
  const stack = await startStack(t, { upstreams: true, session: { idleTimeout: `${IDLE_TIMEOUT_S}s`, absoluteLifetime: '1h' } });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  await context.addInitScript({ content: SKEW_CLOCK });
  const page: Page = await context.newPage();

  await page.goto(`${publicUrl}/auth/login?returnTo=${encodeURIComponent('/healthz')}`);
  await page.locator('#login-form').waitFor();
  await page.selectOption('#pid', USER.pid);
  await Promise.all([page.waitForURL(`${publicUrl}/healthz`), page.click('#login-submit')]);

  const skew = await page.evaluate(() => Date.now() - performance.timeOrigin - performance.now());
  t.ok(Math.abs(skew - CLOCK_SKEW_MS) < 1000, "the page's clock is ten minutes ahead");

  const calls = await page.evaluate(async () => {
    const { bff } = await import('/auth/client.js' as string);
    const plain = await fetch('/mva/echo/plain', { credentials: 'same-origin' });
    const viaBff = await bff.fetch('/mva/echo/helper?x=1');
    let crossOrigin = 'allowed';
    try {
      await bff.fetch('http://127.0.0.1:9/elsewhere');
    } catch (err) {
      crossOrigin = (err as Error).name;
    }
    return { plain: plain.status, bff: viaBff.status, echoed: await viaBff.json(), crossOrigin };
  });
  t.equal(calls.plain, 403, 'without X-CSRF the proxied call is refused');
  t.equal(calls.bff, 200, 'bff.fetch passes the CSRF check');
  t.match(JSON.stringify(calls.echoed).toLowerCase(), /authorization/, 'the upstream got the bearer');
  t.equal(calls.crossOrigin, 'TypeError', 'bff.fetch refuses another origin');

  // Let the idle deadline move past the proxied calls above, so the subscription's own read sets it.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  let firedAt: number | undefined;
  let info: { secondsLeft: number; reason: string } | undefined;
  await page.exposeFunction('expiring', (i: { secondsLeft: number; reason: string }) => {
    firedAt = Date.now();
    info = i;
  });
  const viewResponse = page.waitForResponse((r) => r.url() === `${publicUrl}/auth/session`);
  const subscribedAt = Date.now();
  await page.evaluate(async (warn) => {
    const { bff } = await import('/auth/client.js' as string);
    bff.onExpiring(warn, (i: unknown) => (window as unknown as { expiring: (i: unknown) => void }).expiring(i));
  }, WARN_S);
  const view = (await (await viewResponse).json()) as { session: { idleExpiresAt: string; idleExpiresIn: number } };
  const serverDeadline = Date.parse(view.session.idleExpiresAt);
  t.ok(Math.abs(view.session.idleExpiresIn - IDLE_TIMEOUT_S) <= 1, 'the subscription read the session just now');
  const expected = serverDeadline - WARN_S * 1000;

  const waitUntil = expected + 3000;
  while (firedAt === undefined && Date.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(firedAt !== undefined, 'onExpiring fired');
  t.ok(Math.abs(firedAt! - expected) <= 2000, `fired ${firedAt! - expected} ms from ${WARN_S} s before the server-side deadline`, {
    subscribedAfterMs: firedAt! - subscribedAt,
  });
  t.equal(info?.reason, 'idle');
  t.ok(info && info.secondsLeft >= WARN_S - 2 && info.secondsLeft <= WARN_S, `secondsLeft ${info?.secondsLeft}`);

  // Once the session has ended server side, the helper reports it and session() answers null.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, serverDeadline + 500 - Date.now())));
  const after = (await page.evaluate(`(async () => {
    const { bff } = await import('/auth/client.js');
    const handled = [];
    const res = await bff.fetch('/mva/echo/late', { onLoginRequired: (p) => { handled.push(p.code); } });
    return { session: await bff.session(), status: res.status, handled, url: location.pathname };
  })()`)) as { session: unknown; status: number; handled: string[]; url: string };
  t.equal(after.session, null, "session() is null after the idle timeout");
  t.equal(after.status, 401);
  t.same(after.handled, ['session_expired'], 'the 401 went to onLoginRequired, with its code');
  t.equal(after.url, '/healthz', 'and the page did not navigate to the login');
});

t.test('bff.fetch follows a step_up_required answer like login_required: back on the page at the higher level, the call works', browserTestOptions(), async (t) => {
  const HIGH = 'idporten-loa-high';
  const stack = await startStack(t, {
    upstreams: true,
    upstreamRoutes: ({ skatteetaten }) => [{ path: '/mva/high', upstream: `${skatteetaten.url}/echo/high`, token: 'idporten', acr: HIGH }],
  });
  const { publicUrl } = stack;
  const context = await launchChromium(t);
  const page: Page = await context.newPage();
  const pagePath = '/healthz?step=1';

  await page.goto(`${publicUrl}/auth/login?returnTo=${encodeURIComponent(pagePath)}`);
  await page.locator('#login-form').waitFor();
  await page.selectOption('#pid', USER.pid);
  await Promise.all([page.waitForURL(`${publicUrl}${pagePath}`), page.click('#login-submit')]);
  const cookieBefore = (await context.cookies(publicUrl)).find((c) => c.name === 'bff')?.value;
  t.ok(cookieBefore, 'logged in at the default level');

  // The call is started and not awaited: the helper navigates away from the page.
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(stack.op.issuer)),
    page.evaluate(`void import('/auth/client.js').then(({ bff }) => bff.fetch('/mva/high/x')); 0`),
  ]);
  await page.locator('#login-form').waitFor();
  t.pass('the helper went to the login, and ID-porten asks again (prompt=login)');
  t.equal(await page.locator(`input[name="acr"][value="${HIGH}"]`).isChecked(), true, 'at the level of the route');
  await page.selectOption('#pid', USER.pid);
  await Promise.all([page.waitForURL(`${publicUrl}${pagePath}`), page.click('#login-submit')]);
  t.pass('back on the page the call was made from');

  const cookieAfter = (await context.cookies(publicUrl)).find((c) => c.name === 'bff')?.value;
  t.not(cookieAfter, cookieBefore, 'a new session cookie');
  const status = await page.evaluate(`import('/auth/client.js').then(({ bff }) => bff.fetch('/mva/high/x')).then((res) => res.status)`);
  t.equal(status, 200, 'the call works now');
});
