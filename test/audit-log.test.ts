import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { VALID_MVA_MELDING } from '../demo/samples.js';
import { fingerprint } from '../src/audit/fingerprint.js';

const user = TEST_USERS[0]!;
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a full login → refresh → exchange → logout leaves an audit trail without a single secret in any log line', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 4 } });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=/`, { pid: user.pid });
  const cookieValue = browser.cookie('localhost', 'bff')!.value;
  // The authorization code and state travelled through the browser; collect them from its history.
  const callback = browser.history.find((r) => r.url.startsWith(`${stack.publicUrl}/auth/callback`));
  t.ok(callback, 'the callback was visited');
  const callbackParams = new URL(callback!.url).searchParams;
  const code = callbackParams.get('code')!;
  t.ok(code);

  await browser.fetch(`${stack.publicUrl}/mva/validering`, { method: 'POST', headers: { ...api, 'content-type': 'application/xml' }, body: VALID_MVA_MELDING });
  await sleep(4100);
  await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' });
  await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { method: 'GET', headers: { ...api, authorization: 'Bearer browser-sent-secret-value', cookie: 'other=1' } });
  await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { method: 'POST', headers: { origin: 'http://evil.example' } });
  await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { ...api, accept: 'application/json' } });

  const secrets = new Map<string, string>([
    ['client secret', CLIENT_SECRET],
    ['session cookie', cookieValue],
    ['authorization code', code],
    ['pid', user.pid],
    ['browser Authorization', 'browser-sent-secret-value'],
  ]);
  for (const token of stack.op.issuedTokens) secrets.set(`provider token ${fingerprint(token)}`, token);
  for (const token of stack.altinn!.issuedTokens) secrets.set(`altinn token ${fingerprint(token)}`, token);
  t.ok(stack.op.issuedTokens.size >= 6, 'login and refresh tokens were issued');
  const logText = stack.logText();
  t.ok(stack.logs.length > 10, 'the gateway logged');
  for (const [name, value] of secrets) t.notOk(logText.includes(value), `no ${name} in the logs`);

  const events = new Set(stack.audit().map((l) => l.event));
  for (const event of ['login.start', 'login.success', 'token.refresh', 'token.exchange', 'csrf.reject', 'proxy', 'logout']) t.ok(events.has(event), `audit has ${event}`);
  for (const line of stack.audit()) {
    t.equal(line.tenant, 'test', `${String(line.event)} names the tenant`);
  }
  const success = stack.audit('login.success')[0]!;
  t.match(success.session, /^[A-Za-z0-9_-]{12}$/, 'session id hash, not the cookie');
  t.type(success.sub, 'string');
  t.equal(success.accessToken, fingerprint([...stack.op.issuedTokens].find((tok) => fingerprint(tok) === success.accessToken)), 'token fingerprint a reviewer can follow');
  const refresh = stack.audit('token.refresh')[0]!;
  t.equal(refresh.oldAccessToken, success.accessToken, 'refresh names the token it replaced');
  t.equal(refresh.session, success.session, 'same session hash throughout');
  const exchange = stack.audit('token.exchange')[0]!;
  t.equal(exchange.accessToken, refresh.accessToken, 'the exchange used the refreshed token');
  const logout = stack.audit('logout')[0]!;
  t.equal(logout.channel, 'rp');
  t.equal(logout.session, success.session);
  const proxy = stack.audit('proxy');
  t.ok(proxy.every((p) => typeof p.route === 'string' && typeof p.status === 'number' && typeof p.method === 'string'), 'proxy events carry route, method, status');
  t.ok(proxy.some((p) => typeof p.durationMs === 'number'), 'and a duration');
  const authenticated = proxy.filter((p) => p.status === 200);
  t.ok(authenticated.length >= 2, 'the authenticated proxy calls were audited');
  t.ok(authenticated.every((p) => p.session === success.session && p.sub === success.sub), 'each names the session hash and sub');
});
