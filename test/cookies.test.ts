/**
 * The cookie rules (src/session/cookies.ts) on their own; auth-session.test.ts and session-store.test.ts show the
 * cookies a real login sets. RFC 6265bis 4.1.3.2: a `__Host-` cookie must be Secure, have Path=/ and no Domain, so
 * it cannot be set or shadowed by a sibling host; OWASP ASVS 5.0 V7.2 / V3.3: session tokens from a CSPRNG with at
 * least 128 bits, HttpOnly, Secure, SameSite.
 */
import t from 'tap';
import { clearedCookieAttributes, cookiePolicy, isWellFormedSessionValue, newSessionCookieValue, sessionCookieAttributes, transactionCookieAttributes } from '../src/session/cookies.js';

t.test('a session cookie value is 256 random bits in base64url (43 characters), never the same twice', async (t) => {
  const values = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const value = newSessionCookieValue();
    t.match(value, /^[A-Za-z0-9_-]{43}$/);
    t.equal(Buffer.from(value, 'base64url').length, 32, '32 bytes');
    values.add(value);
  }
  t.equal(values.size, 200, 'no repeats');
});

t.test('anything but a well-formed value is no session, before any store or crypto work', async (t) => {
  t.equal(isWellFormedSessionValue(newSessionCookieValue()), true);
  t.equal(isWellFormedSessionValue('A'.repeat(43)), true);
  t.equal(isWellFormedSessionValue('-_'.repeat(21) + 'a'), true, 'the base64url alphabet');
  for (const value of ['A'.repeat(42), 'A'.repeat(44), `${'A'.repeat(42)}=`, `${'A'.repeat(42)}+`, `${'A'.repeat(42)}/`, `${'A'.repeat(42)}.`, ` ${'A'.repeat(42)}`, `${'A'.repeat(43)}\n`, `x${'A'.repeat(43)}`, '']) {
    t.equal(isWellFormedSessionValue(value), false, JSON.stringify(value));
  }
  for (const value of [undefined, null, 43, ['A'.repeat(43)], { toString: () => 'A'.repeat(43) }]) {
    t.equal(isWellFormedSessionValue(value), false, String(value));
  }
});

t.test('on https the cookies are __Host- prefixed and Secure (RFC 6265bis 4.1.3.2); on plain http (local development) neither', async (t) => {
  t.same(cookiePolicy('https://mva.example.no/app', 'bff', 'strict'), {
    sessionName: '__Host-bff',
    transactionPrefix: '__Host-bff-login-',
    secure: true,
    sameSite: 'strict',
  });
  t.same(cookiePolicy('http://localhost:3000', 'bff', 'lax'), {
    sessionName: 'bff',
    transactionPrefix: 'bff-login-',
    secure: false,
    sameSite: 'lax',
  });
  t.equal(cookiePolicy('HTTPS://MVA.EXAMPLE.NO', 'bff', 'strict').secure, true, 'the scheme in any case');
});

t.test('cookie attributes: HttpOnly, Path=/ and no Domain always; the session cookie has no Max-Age; the login transaction is Lax and short-lived', async (t) => {
  const https = cookiePolicy('https://mva.example.no', 'bff', 'strict');
  const http = cookiePolicy('http://localhost:3000', 'bff', 'lax');

  t.same(sessionCookieAttributes(https), { httpOnly: true, secure: true, sameSite: 'strict', path: '/' }, 'session cookie on https');
  t.same(sessionCookieAttributes(http), { httpOnly: true, secure: false, sameSite: 'lax', path: '/' }, 'session cookie on http');

  // The callback is a cross-site navigation from ID-porten: a Strict transaction cookie would not come back.
  t.same(transactionCookieAttributes(https, 600), { httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge: 600 }, 'transaction cookie');
  t.same(transactionCookieAttributes(http, 60), { httpOnly: true, secure: false, sameSite: 'lax', path: '/', maxAge: 60 });

  t.same(clearedCookieAttributes(https), { httpOnly: true, secure: true, sameSite: 'strict', path: '/', maxAge: 0, expires: new Date(0) }, 'clearing: expired now and in the past');
  t.same(clearedCookieAttributes(https, 'lax'), { httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge: 0, expires: new Date(0) }, 'clearing a Lax transaction cookie');
  t.same(clearedCookieAttributes(http), { httpOnly: true, secure: false, sameSite: 'lax', path: '/', maxAge: 0, expires: new Date(0) });
});
