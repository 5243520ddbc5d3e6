/**
 * Browser security headers at the gateway's edge, on live answers: HTTP Strict Transport Security for
 * tenants on https (`tenants[].hsts`, OWASP ASVS 5.0 V3.4.1) and a Content-Security-Policy with
 * `object-src 'none'` (ASVS 5.0 V3.4.3) on the gateway's own pages and the app's default policy.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { autoPostPage, ERROR_PAGE_CSP, logoutCsp } from '../src/http/html.js';
import { DEFAULT_APP_HEADERS } from '../src/http/app/index.js';
import { NAV, raw, spaCopy, staticGateway } from './helpers/app.js';

/** An API upstream that sets its own HSTS, as public APIs often do. */
async function upstreamWithHsts(t: Test): Promise<string> {
  const server = createServer((_req, res) => {
    res.setHeader('strict-transport-security', 'max-age=63072000; includeSubDomains; preload');
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('HSTS on every answer of a tenant on https: on by default for a year, configurable, off with hsts: false, never over http (ASVS 5.0 V3.4.1)', async (t) => {
  const { dir } = spaCopy(t);
  const upstream = await upstreamWithHsts(t);
  const app = { static: dir };
  // Each tenant's own hsts setting, and an API route to an upstream that sets HSTS itself.
  const hsts: Record<string, unknown> = { 'https://a.example': undefined, 'https://b.example': { maxAge: '30d', includeSubDomains: true }, 'https://c.example': false, 'd.localhost': true };
  const { port } = await staticGateway(t, Object.fromEntries(Object.keys(hsts).map((host) => [host, app])), (host) => ({
    ...(hsts[host] === undefined ? {} : { hsts: hsts[host] }),
    routes: [{ path: '/open', upstream, token: 'none' }],
  }));

  const expected: Record<string, string | undefined> = {
    'a.example': 'max-age=31536000',
    'b.example': 'max-age=2592000; includeSubDomains',
    'c.example': undefined,
    'd.localhost': undefined,
  };
  for (const [host, value] of Object.entries(expected)) {
    const answers = {
      'an app page': await raw(port, host, '/kunde/1', NAV),
      'a missing asset of the app': await raw(port, host, '/assets/nope-3f9a1c2b.js', { 'sec-fetch-dest': 'script', accept: '*/*' }),
      '/auth/session without a session': await raw(port, host, '/auth/session'),
      'the login': await raw(port, host, '/auth/login', NAV),
      'an API answer whose upstream sets its own HSTS': await raw(port, host, '/open/x'),
      '/healthz': await raw(port, host, '/healthz'),
    };
    for (const [what, res] of Object.entries(answers)) {
      t.equal(res.headers['strict-transport-security'], value, `${host}, ${what} (${res.status}): ${value ?? 'no HSTS'}`);
    }
  }
});

t.test('object-src \'none\' in the CSP of the gateway\'s own pages and of the app by default (ASVS 5.0 V3.4.3)', async (t) => {
  t.match(DEFAULT_APP_HEADERS['content-security-policy'], /(^|; )object-src 'none'(;|$)/, 'the app\'s default policy');
  t.match(ERROR_PAGE_CSP, /(^|; )object-src 'none'(;|$)/, 'the error page');
  const logout = autoPostPage('https://idporten.example/logout', { client_id: 'x' });
  t.match(logoutCsp(logout.csp, 'https://idporten.example/logout', 'https://a.example/'), /(^|; )object-src 'none'(;|$)/, 'the self-posting logout page');

  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir, requireLogin: true } });
  const page = await raw(port, 'a.localhost', '/', NAV);
  t.match(page.headers['content-security-policy'], /(^|; )object-src 'none'(;|$)/, 'on a live app answer');
  const error = await raw(port, 'a.localhost', '//evil.example/', NAV);
  t.equal(error.status, 400);
  t.match(error.headers['content-security-policy'], /(^|; )object-src 'none'(;|$)/, 'on a live error page');
  const frontchannel = await raw(port, 'a.localhost', `/auth/logout/frontchannel?iss=${encodeURIComponent('https://test.idporten.no')}&sid=nobody`);
  t.equal(frontchannel.status, 200);
  t.match(frontchannel.headers['content-security-policy'], /(^|; )object-src 'none'(;|$)/, 'on the front-channel logout page');
  t.notMatch(frontchannel.headers['content-security-policy'], /frame-ancestors/, 'which ID-porten still frames');
});
