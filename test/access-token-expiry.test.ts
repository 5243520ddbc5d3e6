/**
 * When the gateway takes an access token to expire. `expires_in` (RFC 6749 section 5.1) counts from the token's
 * issue, a JWT access token's `exp` (RFC 9068 section 2.2) from its issue time in whole seconds; the gateway
 * cannot see that moment, only that it came after the request went out. It plans by the request's departure less
 * a second, so that it never forwards a token its upstream already refuses, however late the answer came, and
 * without trusting the provider's clock to agree with its own.
 */
import t from 'tap';
import { accessTokenExpiry } from '../src/idporten/client.js';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';

t.test('the expiry counts from the request, less the second a JWT exp rounds away', async (t) => {
  t.equal(accessTokenExpiry(1_700_000_000_500, 120), 1_700_000_119_500);
});

t.test('a refresh answered late: the session expects the token to expire no later than its upstream will refuse it', async (t) => {
  const stack = await startStack(t, { op: { accessTokenTtlSeconds: 5, refreshAnswerDelayMs: 1_200 } });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } });
  t.equal(refreshed.status, 200);
  const loaded = await stack.gateway.core.lifecycle.sessions.load(browser.cookie('localhost', 'bff')?.value);
  if (loaded.state !== 'live') throw new Error('no live session');
  const { accessToken, accessTokenExpiresAt } = loaded.session.data.tokens;
  const exp = (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
  t.ok(accessTokenExpiresAt <= exp, `not after the token's own exp (${accessTokenExpiresAt - exp} ms)`);
  t.ok(accessTokenExpiresAt > exp - 2_500, 'and not much before it (the request\'s round trip and the rounding)');
});
