/** Routes with `token: none`: public pass-through API routes (no session, no bearer; same hygiene and CSRF). */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';

t.test('a token: none route passes through without a session and never sends a bearer or the cookie', async (t) => {
  const received: IncomingHttpHeaders[] = [];
  const upstream = createServer((req, res) => {
    received.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"public":true}');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const stack = await startStack(t, { routes: [{ path: '/public', upstream: `${origin}/open`, token: 'none', methods: ['GET', 'POST'] }] });

  const anonymous = new Browser();
  const answer = await anonymous.fetch(`${stack.publicUrl}/public/rates?year=2026`, { headers: { 'x-csrf': '1' } });
  t.equal(answer.status, 200, 'no session needed');
  t.equal(answer.body, '{"public":true}');
  t.notOk(received.at(-1)!.authorization, 'no bearer without a session');

  const withoutCsrf = await anonymous.fetch(`${stack.publicUrl}/public/rates`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(withoutCsrf.status, 403, 'the CSRF rule still applies');
  t.equal(JSON.parse(withoutCsrf.body).code, 'csrf_failed');
  t.equal(received.length, 1, 'a refused request never reaches the upstream');

  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${stack.publicUrl}/public/rates`, { headers: { 'x-csrf': '1' } })).status, 200);
  const headers = received.at(-1)!;
  t.notOk(headers.authorization, 'no bearer even with a live session');
  t.notOk(headers.cookie, 'the session cookie stays at the gateway');
  t.equal(stack.op.stats.refreshGrants, 0, 'no token work for a public route');
});
