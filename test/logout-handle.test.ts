// Finding: POST /auth/logout with Accept: application/json answered { logoutUrl } = ID-porten's end-session URL
// with the ID token (pid, sid) as id_token_hint in its query string: readable by page scripts, kept in browser
// history and written to ID-porten's access logs. The answer is now a gateway URL carrying a one-time sealed
// handle; following it by navigation gives the self-posting end-session form (the token goes by POST only).
// Rules: OIDC RP-Initiated Logout 1.0 section 2 (the RP SHOULD use POST so the hint stays out of URLs);
// RFC 10017 (OAuth 2.0 for Browser-Based Applications), the BFF pattern (section 6.1): tokens stay out of reach
// of JavaScript; OWASP ASVS 5.0 V10.1.1 (tokens are only sent to components that strictly need them) and
// V7.4.1 (a terminated session allows no further use: the handle opens once, for 2 minutes).
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway, startStack, type Stack } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';

const user = TEST_USERS[0]!;
const json = { 'x-csrf': '1', accept: 'application/json' };

async function loggedIn(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const cookie = browser.cookie('localhost', 'bff');
  if (!cookie) throw new Error('no session cookie after login');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { browser, session: loaded.session };
}

function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&');
  return fields;
}

t.test('finding: JSON logout put the ID token in a URL a page can read — now a one-time gateway URL serving the end-session form', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await loggedIn(stack);
  const idToken = session.data.tokens.idToken!;
  t.ok(idToken, 'the session holds an ID token');

  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json });
  t.equal(res.status, 200);
  t.notOk(res.body.includes(idToken), 'no ID token in the JSON body');
  t.notOk(res.body.includes(idToken.split('.')[1]!), 'not even the ID token payload');
  const { logoutUrl } = JSON.parse(res.body) as { logoutUrl: string };
  const url = new URL(logoutUrl);
  t.equal(url.origin, stack.publicUrl, 'a gateway URL');
  t.equal(url.pathname, '/auth/logout/continue');
  t.notOk(url.searchParams.has('id_token_hint'));
  t.notOk(logoutUrl.includes(idToken), 'no ID token in the URL');
  const binding = res.headers.getSetCookie().find((c) => c.startsWith('bff-logout='));
  t.ok(binding, 'the handle is bound to this browser by a cookie');
  t.match(binding!, /; HttpOnly/);
  t.match(binding!, /; SameSite=Strict/);
  t.match(binding!, /; Max-Age=120/);

  // A page script cannot read the form: only a top-level navigation gets it.
  const scripted = await browser.fetch(logoutUrl);
  t.equal(scripted.status, 400, 'fetch() from a page is refused');
  t.notOk(scripted.body.includes(idToken));

  const page = await browser.navigate(logoutUrl, { initiator: stack.publicUrl });
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.equal(page.headers.get('cache-control'), 'no-store');
  t.equal(page.headers.get('referrer-policy'), 'no-referrer');
  t.match(page.body, new RegExp(`<form id="logout" method="post" action="${stack.op.issuer}/endsession"`));
  const fields = hiddenFields(page.body);
  t.equal(fields.id_token_hint, idToken, 'the form posts id_token_hint');
  t.equal(fields.post_logout_redirect_uri, `${stack.publicUrl}/`);
  t.equal(fields.state, undefined, 'no state: the provider would append it to the post-logout URI the user lands on');
  const csp = page.headers.get('content-security-policy')!;
  t.match(csp, /script-src 'nonce-/);
  t.match(csp, new RegExp(`form-action [^;]*${stack.op.issuer}`));
  t.match(page.headers.getSetCookie().join('\n'), /bff-logout=;/, 'the binding cookie is cleared on use');

  // Second use of the same URL: refused, no token.
  const again = await browser.navigate(logoutUrl, { initiator: stack.publicUrl });
  t.equal(again.status, 400);
  t.notOk(again.body.includes(idToken));

  // Following the form reaches ID-porten and lands back on the tenant.
  const final = await browser.followAutoSubmit(page);
  t.equal(new URL(final.url).origin, stack.publicUrl);
});

t.test('a replayed handle is refused even with its binding cookie (one-time per instance)', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await loggedIn(stack);
  const idToken = session.data.tokens.idToken!;
  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json });
  const { logoutUrl } = JSON.parse(res.body) as { logoutUrl: string };
  const binding = browser.cookie('localhost', 'bff-logout')!.value;
  const host = new URL(stack.publicUrl).host;
  const nav = { host, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', cookie: `bff-logout=${binding}` };
  const first = await stack.gateway.app.inject({ method: 'GET', url: new URL(logoutUrl).pathname + new URL(logoutUrl).search, headers: nav });
  t.equal(first.statusCode, 200);
  t.ok(first.body.includes(idToken));
  const replay = await stack.gateway.app.inject({ method: 'GET', url: new URL(logoutUrl).pathname + new URL(logoutUrl).search, headers: nav });
  t.equal(replay.statusCode, 400, 'the same handle with the same cookie is refused the second time');
  t.notOk(replay.body.includes(idToken));
});

t.test('a tampered, foreign-browser or expired handle is refused', async (t) => {
  let skew = 0;
  const stack = await startStack(t, { appDeps: { now: () => Date.now() + skew } });
  const host = new URL(stack.publicUrl).host;
  const nav = (cookie: string) => ({ host, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', cookie });

  const { browser, session } = await loggedIn(stack);
  const idToken = session.data.tokens.idToken!;
  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json });
  const { logoutUrl } = JSON.parse(res.body) as { logoutUrl: string };
  const handle = new URL(logoutUrl).searchParams.get('t')!;
  const binding = `bff-logout=${browser.cookie('localhost', 'bff-logout')!.value}`;
  const path = (h: string) => `/auth/logout/continue?t=${encodeURIComponent(h)}`;

  const flipped = handle.slice(0, -2) + (handle.at(-2) === 'A' ? 'B' : 'A') + handle.at(-1);
  for (const [label, url, cookie] of [
    ['tampered handle', path(flipped), binding],
    ['no binding cookie (handle exfiltrated to another browser)', path(handle), ''],
    ['another browser\'s binding cookie', path(handle), 'bff-logout=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['no handle', '/auth/logout/continue', binding],
    ['garbage handle', path('v1.k1.x.y'), binding],
  ] as const) {
    const r = await stack.gateway.app.inject({ method: 'GET', url, headers: nav(cookie) });
    t.equal(r.statusCode, 400, `refused: ${label}`);
    t.notOk(r.body.includes(idToken), `no token: ${label}`);
  }

  skew = 121_000;
  const late = await stack.gateway.app.inject({ method: 'GET', url: path(handle), headers: nav(binding) });
  t.equal(late.statusCode, 400, 'refused after its 2 minute lifetime');
  t.notOk(late.body.includes(idToken));
});

t.test('logoutHint client_id: the continued form posts client_id, never an ID token', async (t) => {
  const stack = await startStack(t, { idporten: { logoutHint: 'client_id' } });
  const { browser, session } = await loggedIn(stack);
  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json });
  const { logoutUrl } = JSON.parse(res.body) as { logoutUrl: string };
  const page = await browser.navigate(logoutUrl, { initiator: stack.publicUrl });
  t.equal(page.status, 200);
  const fields = hiddenFields(page.body);
  t.equal(fields.client_id, stack.clientId);
  t.notOk('id_token_hint' in fields);
  t.notOk(page.body.includes(session.data.tokens.idToken!));
});

t.test('a handle issued by tenant A is refused on tenant B', async (t) => {
  const port = await freePort();
  const origins = { acme: `http://localhost:${port}`, beta: `http://127.0.0.1:${port}` };
  const op = await startIdportenLookalike({ clients: [lookalikeClient('acme-client', origins.acme), lookalikeClient('beta-client', origins.beta)] });
  t.teardown(() => op.close());
  const tenant = (id: 'acme' | 'beta') => ({
    id,
    publicUrl: origins[id],
    idporten: { issuer: op.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, acrValues: 'idporten-loa-substantial' },
    routes: [],
  });
  const config = normaliseConfig({ server: { port }, session: { keys: [{ id: 'k1', secret: SESSION_KEY }] }, tenants: [tenant('acme'), tenant('beta')] }, {});
  const gateway = await startGateway(t, config);

  const browser = new Browser();
  await loginAtLookalike(browser, `${origins.acme}/auth/login`, { pid: user.pid });
  const res = await browser.fetch(`${origins.acme}/auth/logout`, { method: 'POST', headers: json });
  const { logoutUrl } = JSON.parse(res.body) as { logoutUrl: string };
  const binding = browser.cookie('localhost', 'bff-logout')!.value;
  const pathAndQuery = new URL(logoutUrl).pathname + new URL(logoutUrl).search;
  const nav = (host: string) => ({ host, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', cookie: `bff-logout=${binding}` });
  const onBeta = await gateway.app.inject({ method: 'GET', url: pathAndQuery, headers: nav(new URL(origins.beta).host) });
  t.equal(onBeta.statusCode, 400, 'tenant B does not open tenant A\'s handle, even with the binding cookie');
  t.notOk(onBeta.body.includes('id_token_hint'));
  const onAcme = await gateway.app.inject({ method: 'GET', url: pathAndQuery, headers: nav(new URL(origins.acme).host) });
  t.equal(onAcme.statusCode, 200, 'tenant A still opens it');
  t.match(onAcme.body, /name="id_token_hint"/);
});
