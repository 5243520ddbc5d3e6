/**
 * Browser security headers at the gateway's edge, on live answers: HTTP Strict Transport Security for
 * tenants on https (`tenants[].hsts`, OWASP ASVS 5.0 V3.4.1).
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
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
