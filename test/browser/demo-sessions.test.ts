/**
 * The demo SPA's session controls in Chromium: the live countdown, the "expiring soon" banner (the page's clock
 * is fast-forwarded; the gateway's session stays live) with "stay logged in", and the "Your sessions" panel
 * across two browsers of the same user, where one ends the other and then logs out everywhere.
 */
import type { BrowserContext, Page } from 'playwright-core';
import t from 'tap';
import { startDemoStack, type DemoStack } from '../../demo/stack.js';
import { TEST_USERS } from '../../demo/test-users.js';
import { freePort } from '../../demo/free-port.js';
import { browserTestOptions, launchChromium } from '../helpers/chromium.js';

const USER = TEST_USERS[1]!;

/** Logs in from the SPA's button; the provider's form is filled when it is shown (not with its single sign-on). */
async function logIn(page: Page, stack: DemoStack): Promise<void> {
  await page.goto(`${stack.publicUrl}/`);
  await page.locator('#status[data-state="logged-out"]').waitFor();
  await page.click('#login');
  await page.waitForURL((url) => url.origin === new URL(stack.op.issuer).origin || url.href === `${stack.publicUrl}/`);
  if (new URL(page.url()).origin !== new URL(stack.publicUrl).origin) {
    await page.locator('#login-form').waitFor();
    await page.selectOption('#pid', USER.pid);
    await Promise.all([page.waitForURL(`${stack.publicUrl}/`), page.click('#login-submit')]);
  }
  await page.locator('#status[data-state="logged-in"]').waitFor();
}

async function sessionRows(page: Page) {
  await page.locator('#sessions-status[data-count]').waitFor();
  return page.locator('#sessions li.session').evaluateAll((items) => items.map((li) => ({
    current: (li as HTMLElement).dataset.current === 'true',
    text: li.textContent ?? '',
    canEnd: li.querySelector('button.end-session') !== null,
  })));
}

async function reloadSessions(page: Page, count: number) {
  await page.click('#reload-sessions');
  await page.locator(`#sessions-status[data-count="${count}"]`).waitFor();
}

t.test('the demo SPA: countdown, expiring-soon banner, and ending another browser\'s session', browserTestOptions(), async (t) => {
  const stack = await startDemoStack({
    ports: { gateway: await freePort(), op: await freePort(), skatteetaten: await freePort(), altinn: await freePort() },
  });
  t.teardown(() => stack.close());
  const a: BrowserContext = await launchChromium(t);
  const b: BrowserContext = await launchChromium(t);
  const pageA = a.pages()[0] ?? (await a.newPage());
  const pageB = b.pages()[0] ?? (await b.newPage());
  // Browser A's timers and clocks can be moved forward; time still flows on its own.
  await pageA.clock.install();

  await t.test('a logged-in page counts down to the idle deadline (30 minutes in config/demo.yaml)', async (t) => {
    await logIn(pageA, stack);
    const countdown = pageA.locator('#session-countdown');
    t.match(await countdown.textContent(), /^(29:[0-5]\d|30:00)$/, `m:ss: ${await countdown.textContent()}`);
    t.equal(await countdown.getAttribute('data-reason'), 'idle', 'the idle deadline comes before the absolute one');
    t.ok(await pageA.locator('#expiry-banner').isHidden(), 'no banner yet');
    const first = Number(await countdown.getAttribute('data-seconds'));
    await pageA.clock.runFor(3000);
    t.ok(Number(await countdown.getAttribute('data-seconds')) < first, 'it ticks');
  });

  await t.test('five minutes before the end the banner appears; "stay logged in" refreshes and hides it', async (t) => {
    await pageA.clock.fastForward('25:30');
    const banner = pageA.locator('#expiry-banner:not([hidden])');
    await banner.waitFor();
    t.match(await pageA.textContent('#expiry-message'), /logged out in about [1-5] min/);
    t.match(await pageA.textContent('#session-countdown'), /^[0-4]:[0-5]\d$/, `under five minutes left: ${await pageA.textContent('#session-countdown')}`);
    const refreshed = pageA.waitForResponse((r) => r.url() === `${stack.publicUrl}/auth/session/refresh`);
    await pageA.click('#stay-logged-in');
    t.equal((await refreshed).status(), 200, 'bff.refresh() refreshed the session');
    await pageA.locator('#expiry-banner').waitFor({ state: 'hidden' });
    t.match(await pageA.textContent('#session-countdown'), /^(29:[0-5]\d|30:00)$/, 'the countdown starts over');
    t.equal(await pageA.getAttribute('#status', 'data-state'), 'logged-in');
  });

  await t.test('two browsers of the same user see each other in "Your sessions"; one ends the other', async (t) => {
    await logIn(pageB, stack);
    await reloadSessions(pageA, 2);
    const rowsA = await sessionRows(pageA);
    t.equal(rowsA.length, 2, 'A lists two sessions');
    t.equal(rowsA.filter((r) => r.current).length, 1, 'one of them is this browser');
    t.match(rowsA.find((r) => r.current)?.text, /this browser/);
    t.notOk(rowsA.find((r) => r.current)?.canEnd, 'this browser has no end button');
    t.ok(rowsA.find((r) => !r.current)?.canEnd, 'the other one has');
    for (const r of rowsA) t.match(r.text, /Chrom.*logged in .*last seen /, `user agent and times: ${r.text}`);
    const rowsB = await sessionRows(pageB);
    t.equal(rowsB.length, 2, 'B lists the same two');
    t.equal(rowsB.filter((r) => r.current).length, 1);

    const ended = pageA.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().startsWith(`${stack.publicUrl}/auth/sessions/`));
    await pageA.click('#sessions li.session[data-current="false"] button.end-session');
    t.equal((await ended).status(), 204, 'DELETE /auth/sessions/{handle}');
    await pageA.locator('#sessions-status[data-count="1"]').waitFor();
    t.equal((await sessionRows(pageA)).length, 1, 'A lists only itself');

    await pageB.reload();
    await pageB.locator('#status[data-state="logged-out"]').waitFor();
    t.equal(await pageB.textContent('#status'), 'Not logged in', 'B was logged out');
    t.equal(await pageA.getAttribute('#status', 'data-state'), 'logged-in', 'A is still logged in');
  });

  await t.test('"log out everywhere" ends both', async (t) => {
    await logIn(pageB, stack);
    await reloadSessions(pageA, 2);
    const all = pageA.waitForResponse((r) => r.url() === `${stack.publicUrl}/auth/logout/all`);
    await pageA.click('#end-all');
    const res = await all;
    t.equal(res.status(), 200);
    t.same(await res.json(), { ended: 2 });
    await pageA.locator('#status[data-state="logged-out"]').waitFor();
    t.match(await pageA.textContent('#status'), /Logged out everywhere \(2 sessions ended\)/);
    await pageB.reload();
    await pageB.locator('#status[data-state="logged-out"]').waitFor();
    t.pass('B is logged out too');
  });
});
