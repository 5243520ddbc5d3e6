/**
 * Findings of the security review, each pinned by a test that failed before its fix.
 */
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[0]!;

// Finding "cookie bomb": a link with a huge returnTo made the login set a transaction cookie of several KB, and
// a page starting many logins pushed the origin's Cookie header past what servers accept (commonly 8 KB), locking
// the user out until the cookies expire. Contract "Limits and hygiene"; OWASP ASVS 5.0 V3.3 (cookie setup) and
// RFC 6265 section 6.1 (user agents need only keep 4096 bytes per cookie).
t.test('cookie bomb: an overlong returnTo is refused and many logins keep the Cookie header small', async (t) => {
  const stack = await startStack(t);
  const host = new URL(stack.publicUrl).host;

  const overlong = `/${'a'.repeat(2048)}`; // 2,049 bytes
  const refused = await stack.gateway.app.inject({ method: 'GET', url: `/auth/login?returnTo=${encodeURIComponent(overlong)}`, headers: { host } });
  t.equal(refused.statusCode, 400, 'returnTo over 2,048 bytes: 400');
  t.equal(refused.json().code, 'invalid_request');
  t.notOk(refused.headers['set-cookie'], 'no transaction cookie for a refused login');
  // Bytes, not characters: 1,025 two-byte characters are 2,051 bytes.
  const multibyte = await stack.gateway.app.inject({ method: 'GET', url: `/auth/login?returnTo=${encodeURIComponent(`/${'é'.repeat(1025)}`)}`, headers: { host } });
  t.equal(multibyte.statusCode, 400, 'returnTo over 2,048 UTF-8 bytes: 400');

  // Values at the limit, some of them characters that grow threefold when percent-encoded.
  const longValues = [`/${'a'.repeat(2047)}`, `/${'"'.repeat(2047)}`, `/a${'é'.repeat(1023)}`, `/p?${'q'.repeat(2045)}`];
  t.ok(longValues.every((v) => Buffer.byteLength(v) === 2048), 'every value is exactly at the limit');
  const browser = new Browser();
  for (let i = 0; i < 50; i++) {
    const value = longValues[i % longValues.length]!;
    const started = await browser.navigate(`${stack.publicUrl}/auth/login?returnTo=${encodeURIComponent(value)}`);
    if (started.status !== 200) t.fail(`login ${i} did not reach the provider: ${started.status}`);
  }
  const header = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  t.ok(Buffer.byteLength(header) < 6 * 1024, `Cookie header after 50 logins: ${Buffer.byteLength(header)} bytes, well under 8 KB`);
  for (const c of browser.cookies(stack.publicUrl)) t.ok(c.name.length + c.value.length <= 4096, `${c.name}: within 4096 bytes`);

  const final = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=${encodeURIComponent(longValues[0]!)}`, { pid: user.pid });
  t.equal(new URL(final.url).origin, stack.publicUrl, 'the login lands back on the tenant');
  const session = await browser.fetch(`${stack.publicUrl}/auth/session`);
  t.equal(session.status, 200);
  t.equal(JSON.parse(session.body).authenticated, true, 'the user can still log in');
  const afterLogin = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  t.ok(Buffer.byteLength(afterLogin) < 8 * 1024, `Cookie header after the login: ${Buffer.byteLength(afterLogin)} bytes`);
});
