/**
 * When the gateway takes an access token to expire. `expires_in` (RFC 6749 section 5.1) counts from the token
 * response, a JWT access token's `exp` (RFC 9068 section 2.2) from its issue, in whole seconds: a token answered
 * late, or issued late in its second, is refused by its upstream before `expires_in` says. The gateway plans its
 * refresh by the earlier of the two, so that it never forwards a token its upstream already refuses.
 */
import t from 'tap';
import { accessTokenExpiry } from '../src/idporten/client.js';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';

const jwt = (payload: object) => ['{"alg":"RS256"}', JSON.stringify(payload), 'signature'].map((part, i) => (i < 2 ? Buffer.from(part).toString('base64url') : part)).join('.');

t.test('the earlier of expires_in and the JWT exp', async (t) => {
  const byExpiresIn = 1_700_000_004_600;
  t.equal(accessTokenExpiry(jwt({ exp: 1_700_000_004 }), byExpiresIn), 1_700_000_004_000, 'a JWT whose exp comes first');
  t.equal(accessTokenExpiry(jwt({ exp: 1_700_000_010 }), byExpiresIn), byExpiresIn, 'a JWT whose exp comes later');
  t.equal(accessTokenExpiry('an-opaque-token', byExpiresIn), byExpiresIn, 'an opaque token');
  t.equal(accessTokenExpiry('a.b.c', byExpiresIn), byExpiresIn, 'three parts that are no JWT');
  t.equal(accessTokenExpiry(jwt({ exp: 'soon' }), byExpiresIn), byExpiresIn, 'an exp that is not a number');
  t.equal(accessTokenExpiry(jwt({}), byExpiresIn), byExpiresIn, 'no exp');
});

t.test('a refresh answered late: the session expects the token to expire when its upstream will refuse it', async (t) => {
  const stack = await startStack(t, { op: { accessTokenTtlSeconds: 5, refreshAnswerDelayMs: 1_200 } });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } });
  t.equal(refreshed.status, 200);
  const loaded = await stack.gateway.core.lifecycle.sessions.load(browser.cookie('localhost', 'bff')?.value);
  if (loaded.state !== 'live') throw new Error('no live session');
  const { accessToken, accessTokenExpiresAt } = loaded.session.data.tokens;
  const exp = (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
  t.equal(accessTokenExpiresAt, exp * 1000, 'the token\'s own exp, not the time of the answer plus expires_in');
});
