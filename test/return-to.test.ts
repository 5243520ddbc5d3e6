/**
 * Open redirects through `returnTo` (RFC 6749 10.15, OWASP "unvalidated redirects") through a real login against
 * the ID-porten look-alike, where the callback's Location header is what a browser would follow: a representative
 * subset of the payloads `return-to-unit.test.ts` checks against the functions themselves.
 */
import t from 'tap';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';

// Many real logins (and RSA key generation) on a shared, busy machine: more room than tap's default 30 s.
t.setTimeout(90_000);

// ---------------------------------------------------------------- through a real login

/** A representative subset, sent percent-encoded so the gateway sees exactly these values. */
const THROUGH_LOGIN = [
  '//evil.com',
  '/\\evil.com',
  '\\/evil.com',
  'https:evil.com',
  'http://evil.com',
  'javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  '/%2F/evil.com',
  '/%5Cevil.com',
  '%252F%252Fevil',
  '/\t/evil.com',
  '/%09/evil.com',
  '/.//evil.com',
  '／／evil.com',
  '///evil.com',
  '@evil.com',
  '/@evil.com',
];

/** Raw query strings, decoded once by the gateway's query parser before safeReturnTo sees them. */
const RAW_QUERIES = ['returnTo=//evil.com', 'returnTo=%2F%2Fevil.com', 'returnTo=/%2F/evil.com', 'returnTo=/%252F/evil.com', 'returnTo=/%5C/evil.com', 'returnTo=/%09/evil.com'];

t.test('through a real login against the ID-porten look-alike', async (t) => {
  // Dozens of logins from one address in a minute: above the default login rate limit, which this test is not about.
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 1000, window: '1m' } } } });
  const origin = new URL(stack.publicUrl).origin;
  const user = TEST_USERS[0]!;

  /**
   * Logs in with this query on /auth/login and returns the callback's answer. A browser of its own each time: one
   * browser logging in dozens of times a minute is what the login-loop breaker is there to stop.
   */
  async function loginWith(query: string) {
    const browser = new Browser();
    const from = browser.history.length;
    const final = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?${query}`, { pid: user.pid });
    const callback = browser.history.slice(from).find((r) => r.url.startsWith(`${stack.publicUrl}/auth/callback`));
    return { final, callback };
  }

  t.test('the login never redirects off the tenant origin, whatever returnTo says', async (t) => {
    const successesBefore = stack.audit('login.success').length;
    const queries = [...THROUGH_LOGIN.map((p) => `returnTo=${encodeURIComponent(p)}`), ...RAW_QUERIES];
    for (const query of queries) {
      const { final, callback } = await loginWith(query);
      t.equal(callback?.status, 302, `${query}: the login finished`);
      const location = callback?.headers.get('location') ?? '';
      t.equal(new URL(location, stack.publicUrl).origin, origin, `${query}: Location ${location} stays on ${origin}`);
      t.equal(new URL(final.url).origin, origin, `${query}: the browser ends on ${origin}`);
    }
    t.equal(stack.audit('login.success').length - successesBefore, queries.length, 'every login succeeded');
  });

  t.test('legitimate returnTo values are kept', async (t) => {
    for (const value of ['/app', '/app?x=1#frag', '/a/b/c', '/@evil.com']) {
      const { callback } = await loginWith(`returnTo=${encodeURIComponent(value)}`);
      t.equal(callback?.headers.get('location'), `${stack.publicUrl}${value}`, `${value} is kept`);
    }
  });

  t.test('a repeated returnTo is refused before any login starts', async (t) => {
    const startsBefore = stack.audit('login.start').length;
    const url = `${stack.publicUrl}/auth/login?returnTo=https://evil.com&returnTo=/app`;
    const res = await new Browser().navigate(url);
    t.equal(res.status, 400, 'invalid_request');
    t.equal(res.url, url, 'no redirect at all');
    t.equal(stack.audit('login.start').length, startsBefore);
  });
});
