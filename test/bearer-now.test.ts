import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { fingerprint } from '../src/audit/fingerprint.js';

const api = { 'x-csrf': '1' };

/** The bearer the Skatteetaten look-alike's echo received on its last request. */
function lastBearer(requests: { headers: Record<string, unknown> }[]): string | undefined {
  const auth = requests.at(-1)?.headers.authorization;
  return typeof auth === 'string' ? auth.replace(/^Bearer /, '') : undefined;
}

// A proxied request takes its bearer without waiting only when nothing is due: the session's record is at hand
// and live, its touch is within the one-second grain, and the token needs no refresh or exchange. Whatever is due
// goes the waiting way, so the idle timeout, refresh and exchange behave exactly as before.
t.test('the bearer at hand: given only when nothing is due, the waiting way otherwise', async (t) => {
  let skewMs = 0;
  const stack = await startStack(t, { upstreams: true, appDeps: { now: () => Date.now() + skewMs } });
  const { lifecycle, tenants } = stack.gateway.core;
  const tenant = tenants.all[0]!;
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=/`, { pid: TEST_USERS[0]!.pid });
  const cookieValue = browser.cookie(new URL(stack.publicUrl).hostname, tenant.cookies.sessionName)!.value;
  const echo = async () => (await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api })).status;

  const live = lifecycle.liveNow(tenant, cookieValue);
  t.ok(live, 'just logged in: the session is at hand');
  t.same(lifecycle.bearerNow('idporten', tenant, live), { value: live!.data.tokens.accessToken }, 'its own access token');
  t.same(lifecycle.bearerNow('none', tenant, undefined), { value: undefined }, 'a public route sends none');
  t.equal(lifecycle.bearerNow('altinn', tenant, live), undefined, 'no Altinn token obtained yet: the exchange is waited for');
  t.equal(lifecycle.liveNow(tenant, 'not-a-session-cookie'), undefined, 'a malformed cookie: not answered here');
  t.equal(lifecycle.liveNow(tenant, `${cookieValue.slice(0, -2)}AA`), undefined, 'an unknown cookie: not answered here');

  t.equal(await echo(), 200);
  t.equal(lastBearer(stack.skatteetaten!.requests), live!.data.tokens.accessToken, 'the upstream got the session\'s token');
  t.ok((await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' })).status < 500, 'innsending answered');
  const exchanged = stack.audit('token.exchange');
  t.equal(exchanged.length, 1, 'one exchange');
  const altinn = lifecycle.bearerNow('altinn', tenant, lifecycle.liveNow(tenant, cookieValue));
  t.equal(fingerprint(altinn?.value), exchanged[0]!.altinnToken, 'after the exchange the Altinn token it obtained is at hand');

  // Past the touch grain (1 s): the touch is due, so the request goes the waiting way and records activity.
  skewMs = 1500;
  t.equal(lifecycle.liveNow(tenant, cookieValue), undefined, 'a touch is due: not answered here');
  t.equal(await echo(), 200);
  const touched = lifecycle.liveNow(tenant, cookieValue);
  t.ok(touched, 'touched by that request: at hand again');
  t.ok(Math.abs(touched!.lastSeenAt - (Date.now() + skewMs)) < 1000, 'its last activity is now, by the gateway\'s clock');

  // Inside the refresh leeway (the look-alike's tokens live 120 s, refreshed in their last 30 s).
  skewMs = 95_000;
  t.equal(lifecycle.liveNow(tenant, cookieValue), undefined, 'touch due again');
  t.equal(await echo(), 200);
  const afterTouch = lifecycle.liveNow(tenant, cookieValue);
  t.ok(afterTouch, 'live and touched');
  t.not(afterTouch!.data.tokens.accessToken, live!.data.tokens.accessToken, 'and refreshed by that request');
  t.equal(stack.audit('token.refresh').length, 1, 'one refresh');
  t.equal(lastBearer(stack.skatteetaten!.requests), afterTouch!.data.tokens.accessToken, 'the upstream got the new token');
  t.equal(lifecycle.bearerNow('altinn', tenant, afterTouch), undefined, 'the Altinn token came from the old access token: a new exchange is waited for');

  // The refresh leeway alone also goes the waiting way (a live session whose 120-second token expires in 5 s).
  const gatewayNow = Date.now() + skewMs;
  const expiring = { ...afterTouch!, data: { ...afterTouch!.data, tokens: { ...afterTouch!.data.tokens, accessTokenIssuedAt: gatewayNow - 115_000, accessTokenExpiresAt: gatewayNow + 5000 } } };
  t.equal(lifecycle.bearerNow('idporten', tenant, expiring), undefined, 'inside the leeway: the refresh is waited for');

  // Past the idle timeout: not answered here; the request finds the session ended (401 session_expired).
  skewMs += 31 * 60_000;
  t.equal(lifecycle.liveNow(tenant, cookieValue), undefined, 'idle: not answered here');
  const idle = await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api });
  t.equal(idle.status, 401);
  t.match(JSON.parse(idle.body), { code: 'session_expired' });
  t.equal(stack.audit('logout').filter((l) => l.channel === 'idle').length, 1, 'ended as idle, audited once');
});
