/**
 * The app on the gateway's origin (`tenants[].app`, gateway contract "The app: the SPA on the gateway's
 * origin"), at the HTTP level: a static build with history fallback, caching and containment; an upstream
 * (a dev server) over HTTP and WebSocket; `requireLogin`; the app's headers; and the rule that the app
 * side never sees the session cookie, a token or the client secret.
 */
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import pino from 'pino';
import { WebSocket } from 'ws';
import { buildApp } from '../src/app.js';
import { TEST_USERS } from '../demo/test-users.js';
import { HASHED_ASSET, NAV, raw, spaCopy, startAppServer, staticGateway } from './helpers/app.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, SESSION_KEY, startStack } from './helpers/stack.js';

const USER = TEST_USERS[0]!;

t.test('app.static serves the build: index.html at /, real files with ETag and Cache-Control by name', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir } });

  const index = await raw(port, 'a.localhost', '/', NAV);
  t.equal(index.status, 200);
  t.match(index.headers['content-type'], /^text\/html/);
  t.match(index.body, /<title>fixture<\/title>/);
  t.equal(index.headers['cache-control'], 'no-cache', 'index.html is revalidated every time');
  t.ok(index.headers.etag, 'an ETag');

  const asset = await raw(port, 'a.localhost', HASHED_ASSET);
  t.equal(asset.status, 200);
  t.match(asset.headers['content-type'], /javascript/);
  t.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', 'a content-hashed name is cached for good');
  const revalidated = await raw(port, 'a.localhost', HASHED_ASSET, { 'if-none-match': String(asset.headers.etag) });
  t.equal(revalidated.status, 304, 'If-None-Match with the ETag gets 304');

  const plain = await raw(port, 'a.localhost', '/assets/style.css');
  t.equal(plain.status, 200);
  t.equal(plain.headers['cache-control'], 'no-cache', 'a name without a hash is revalidated');
});

t.test('app.static: a navigation to a client-side route gets index.html; a missing asset is a plain 404 (app-navigation.test.ts has the rule in full)', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir } });

  const deep = await raw(port, 'a.localhost', '/app/settings/42?tab=2', NAV);
  t.equal(deep.status, 200, 'deep link answered with 200');
  t.match(deep.body, /<title>fixture<\/title>/, 'with index.html');
  t.equal(deep.headers['cache-control'], 'no-cache');

  const acceptOnly = await raw(port, 'a.localhost', '/app/settings', { accept: 'text/html' });
  t.equal(acceptOnly.status, 200, 'Accept: text/html alone counts as a navigation');
  const head = await raw(port, 'a.localhost', '/app/settings', NAV, 'HEAD');
  t.equal(head.status, 200, 'HEAD too');

  const asAsset = { accept: '*/*', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script' };
  for (const path of ['/assets/missing.js', '/favicon.ico', '/app/settings/report.pdf']) {
    const missing = await raw(port, 'a.localhost', path, asAsset);
    t.equal(missing.status, 404, `${path}: 404`);
    t.notMatch(missing.body, /fixture/, `${path}: never index.html`);
    t.match(missing.headers['content-type'], /application\/problem\+json/);
  }
  const fetchToRoute = await raw(port, 'a.localhost', '/app/settings', { accept: 'application/json', 'sec-fetch-mode': 'cors' });
  t.equal(fetchToRoute.status, 404, 'a fetch (not a navigation) to a path with no file is a 404');

  const post = await raw(port, 'a.localhost', '/', { 'content-length': '0' }, 'POST');
  t.equal(post.status, 405, 'a static app answers GET and HEAD only');
  t.equal(post.headers.allow, 'GET, HEAD');
});

t.test('app.static never serves a file outside its folder, whatever the spelling', async (t) => {
  const { dir, outsideText } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir } });
  const attempts = [
    '/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt', '/assets%2f..%2f..%2fsecret.txt',
    '/..%5csecret.txt', '/assets\\..\\..\\secret.txt', '/.%2e/secret.txt', '/index.html%00.js', '/assets/%00', '/%c0%ae%c0%ae/secret.txt',
    '/assets/leak.txt', '/up/secret.txt', '//etc/passwd', '/%2fetc%2fpasswd', '/./index.html', '/%', '/assets/.hidden',
  ];
  for (const path of attempts) {
    for (const headers of [{}, NAV]) {
      const res = await raw(port, 'a.localhost', path, headers);
      // A navigation to a path that names no file of the app (a symlink out of it names none) gets index.html.
      const allowed = 'accept' in headers ? /^(fixture|)$/ : /^$/;
      const served = res.status === 200 ? (/<title>(.*)<\/title>/.exec(res.body)?.[1] ?? res.body) : '';
      t.ok((res.status === 404 || res.status === 400 || res.status === 200) && allowed.test(served), `${path}${'accept' in headers ? ' (navigation)' : ''}: ${res.status}${served ? ` ${served}` : ''}`);
      t.notMatch(res.body, outsideText, `${path}: not the file outside`);
      t.notMatch(res.body, /root:x:0/, `${path}: not /etc/passwd`);
    }
  }
});

t.test('each tenant serves its own folder; a host without an app keeps the 404 problem; /auth/* is never the app', async (t) => {
  const a = spaCopy(t, 'tenant-a');
  const b = spaCopy(t, 'tenant-b');
  const { port } = await staticGateway(t, { 'a.localhost': { static: a.dir }, 'b.localhost': { static: b.dir }, 'c.localhost': undefined });
  t.match((await raw(port, 'a.localhost', '/x', NAV)).body, /tenant-a/);
  t.match((await raw(port, 'b.localhost', '/x', NAV)).body, /tenant-b/);
  const none = await raw(port, 'c.localhost', '/x', NAV);
  t.equal(none.status, 404);
  t.match(JSON.parse(none.body), { code: 'route_not_found' });
  t.notMatch((await raw(port, 'a.localhost', '/metrics', NAV)).body, /tenant-a/, '/metrics is never the app');
  for (const path of ['/auth/nothing-here', '/auth']) {
    const reserved = await raw(port, 'a.localhost', path, NAV);
    t.equal(reserved.status, 404, `${path}: 404`);
    t.notMatch(reserved.body, /tenant-a/, `${path}: not the app`);
  }
  t.equal((await raw(port, 'a.localhost', '/healthz')).status, 200, 'health stays the gateway\'s');
});

t.test('app answers carry the default security headers, or exactly the operator\'s', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, {
    'a.localhost': { static: dir },
    'b.localhost': { static: dir, headers: { 'Content-Security-Policy': "default-src 'self' https://cdn.example", 'Permissions-Policy': 'camera=()' } },
  });
  const plain = await raw(port, 'a.localhost', '/', NAV);
  t.equal(plain.headers['content-security-policy'], "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  t.equal(plain.headers['x-content-type-options'], 'nosniff');
  t.equal(plain.headers['referrer-policy'], 'same-origin');
  const custom = await raw(port, 'b.localhost', '/', NAV);
  t.equal(custom.headers['content-security-policy'], "default-src 'self' https://cdn.example");
  t.equal(custom.headers['permissions-policy'], 'camera=()');
  t.equal(custom.headers['x-content-type-options'], 'nosniff', 'nosniff stays on every gateway answer');
  const missing = await raw(port, 'a.localhost', '/nope.js');
  t.equal(missing.headers['content-security-policy'], plain.headers['content-security-policy'], 'also on a 404 of the app');
});

t.test('requireLogin sends a navigation without a session to the login, with its path and query; not an asset or a fetch', async (t) => {
  const { dir } = spaCopy(t);
  const stack = await startStack(t, { tenant: { app: { static: dir, requireLogin: true } } });
  const host = new URL(stack.publicUrl).host;
  const port = Number(new URL(stack.publicUrl).port);

  const nav = await raw(port, host, '/app/settings/42?tab=2', NAV);
  t.equal(nav.status, 302);
  const location = new URL(String(nav.headers.location), stack.publicUrl);
  t.equal(location.pathname, '/auth/login');
  t.equal(location.searchParams.get('returnTo'), '/app/settings/42?tab=2');
  t.equal((await raw(port, host, '/', { accept: 'text/html' })).status, 302, 'Accept: text/html GET without Sec-Fetch-Mode is a navigation');

  t.equal((await raw(port, host, HASHED_ASSET, { 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script', accept: '*/*' })).status, 200, 'an asset is served');
  t.equal((await raw(port, host, '/app/x', { 'sec-fetch-mode': 'cors', accept: 'text/html' })).status, 404, 'a fetch is not redirected (even one asking for HTML)');
  t.equal((await raw(port, host, '/', { ...NAV, 'content-length': '0' }, 'POST')).status, 405, 'only a GET is redirected');

  // Through the login and back to the deep link. The redirect back from the provider is a cross-site
  // navigation, so the SameSite=Strict session cookie is not sent on it: the page reloads itself from the
  // origin (which sends the cookie) rather than starting another login, which would loop.
  const browser = new Browser();
  const deepLink = `${stack.publicUrl}/app/settings/42?tab=2`;
  const back = await loginAtLookalike(browser, deepLink, USER);
  t.equal(back.url, deepLink, 'back on the deep link');
  t.match(back.body, /http-equiv="refresh" content="0;url=\/app\/settings\/42\?tab=2"/, 'a same-origin reload of the deep link');
  t.equal(back.headers.get('location'), null, 'not another redirect to the login');
  const landed = await browser.navigate(deepLink, { initiator: stack.publicUrl });
  t.equal(landed.status, 200);
  t.match(landed.body, /<title>fixture<\/title>/, 'with the session cookie the navigation gets the app');
});

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  kind: 'http' | 'websocket';
}

/** A dev-server stand-in: answers every path (with a Set-Cookie it hopes will stick) and echoes over WebSocket. */
async function startDevServer(t: Test) {
  const recorded: Recorded[] = [];
  const { url, wss } = await startAppServer(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      recorded.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, kind: 'http' });
      res.setHeader('set-cookie', ['devserver=1; Path=/', 'bff=overwritten; Path=/']);
      res.setHeader('content-type', req.url?.endsWith('.js') ? 'text/javascript' : 'text/html');
      res.end(req.url?.endsWith('.js') ? 'export const hmr = true;' : `<!doctype html><title>dev server</title><p>${req.method} ${req.url} ${Buffer.concat(chunks).toString()}</p>`);
    });
  });
  wss.on('connection', (socket, req) => {
    recorded.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, kind: 'websocket' });
    socket.on('message', (data) => socket.send(`echo:${data.toString()}`));
  });
  return { url, recorded };
}

t.test('app.upstream: pages, assets and WebSocket upgrades reach the dev server, which never sees a cookie, a token or the secret', async (t) => {
  const dev = await startDevServer(t);
  const stack = await startStack(t, { tenant: { app: { upstream: dev.url } } });
  const host = new URL(stack.publicUrl).host;
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=%2F`, USER);
  const cookies = browser.cookies(new URL(stack.publicUrl).hostname);
  t.ok(cookies.length > 0, 'logged in: the browser holds the session cookie');
  const cookieHeader = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const token = [...stack.op.issuedTokens][0]!;

  const page = await browser.navigate(`${stack.publicUrl}/app/settings/42?tab=2`);
  t.equal(page.status, 200);
  t.match(page.body, /GET \/app\/settings\/42\?tab=2/, 'path and query reach the dev server as they are');
  t.equal(page.headers.get('set-cookie'), null, 'the dev server\'s Set-Cookie is dropped');
  t.equal(page.headers.get('content-security-policy'), "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  t.equal(browser.cookies(new URL(stack.publicUrl).hostname).find((c) => c.name === 'devserver'), undefined);

  const posted = await browser.fetch(`${stack.publicUrl}/src/api`, {
    method: 'POST',
    body: 'hello',
    headers: { 'content-type': 'text/plain', authorization: `Bearer ${token}`, 'x-csrf': '1', 'proxy-authorization': 'Basic eA==' },
  });
  t.match(posted.body, /POST \/src\/api hello/, 'a body streams to the dev server');
  t.equal((await browser.fetch(`${stack.publicUrl}/src/main.js`)).status, 200);

  // A WebSocket (HMR) through the gateway, sent with the browser's cookies and a bearer.
  const ws = new WebSocket(`ws://127.0.0.1:${new URL(stack.publicUrl).port}/__hmr?token=abc`, ['vite-hmr'], {
    headers: { host, cookie: cookieHeader, authorization: `Bearer ${token}`, origin: stack.publicUrl },
  });
  await once(ws, 'open');
  t.equal(ws.protocol, 'vite-hmr', 'the subprotocol is negotiated with the dev server');
  ws.send('ping');
  const [message] = (await once(ws, 'message')) as [Buffer];
  t.equal(message.toString(), 'echo:ping', 'messages pass both ways');
  ws.close();
  await once(ws, 'close');

  const upgrade = dev.recorded.find((r) => r.kind === 'websocket');
  if (!t.ok(upgrade, 'the dev server got the upgrade') || !upgrade) return;
  t.equal(upgrade.url, '/__hmr?token=abc');
  t.equal(upgrade.headers.cookie, undefined, 'the upgrade carries no cookie');
  t.equal(upgrade.headers.authorization, undefined, 'nor an Authorization header');

  t.ok(dev.recorded.filter((r) => r.kind === 'http').length >= 3);
  const seen = JSON.stringify(dev.recorded);
  for (const c of cookies) t.notOk(seen.includes(c.value), `the dev server never saw the ${c.name} cookie's value`);
  for (const [i, value] of [...stack.op.issuedTokens].entries()) t.notOk(seen.includes(value), `nor token #${i + 1}`);
  t.notOk(seen.includes(CLIENT_SECRET), 'nor the client secret');
  t.notOk(seen.includes(SESSION_KEY), 'nor the session key');
  for (const r of dev.recorded) {
    t.equal(r.headers.cookie, undefined, `${r.kind} ${r.url}: no cookie`);
    t.equal(r.headers.authorization, undefined, `${r.kind} ${r.url}: no authorization`);
    t.equal(r.headers['x-csrf'], undefined, `${r.kind} ${r.url}: no x-csrf`);
    t.equal(r.headers['proxy-authorization'], undefined);
  }
  t.equal(dev.recorded.find((r) => r.kind === 'http')?.headers['x-forwarded-host'], host, 'the dev server learns the public host');
});

/** Opens a WebSocket to the gateway; resolves with the open socket, or with the HTTP answer that refused it. */
function openWebSocket(port: number, host: string, path: string, headers: Record<string, string>) {
  return new Promise<{ socket: WebSocket } | { refused: { status: number; headers: IncomingHttpHeaders; body: string } }>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, ['vite-hmr'], { headers: { host, ...headers } });
    ws.on('open', () => resolve({ socket: ws }));
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ refused: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() } }));
    });
    ws.on('error', reject);
  });
}

t.test('app.upstream: a WebSocket upgrade passes only with the tenant\'s own Origin (no cross-site WebSocket hijacking)', async (t) => {
  const dev = await startDevServer(t);
  const { port } = await staticGateway(t, { 'a.localhost:8080': { upstream: dev.url } });
  const refusedOrigins: Array<[string, Record<string, string>]> = [
    ['another site', { origin: 'https://evil.example' }],
    ['a sibling subdomain', { origin: 'http://b.localhost:8080' }],
    ['the right host on another port', { origin: 'http://a.localhost:8081' }],
    ['the right host over another scheme', { origin: 'https://a.localhost:8080' }],
    ['an opaque origin', { origin: 'null' }],
    ['no Origin at all', {}],
    ['an Origin with a path', { origin: 'http://a.localhost:8080/x' }],
  ];
  for (const [what, headers] of refusedOrigins) {
    const answer = await openWebSocket(port, 'a.localhost:8080', '/__hmr?token=abc', headers);
    if ('socket' in answer) {
      answer.socket.terminate();
      t.fail(`${what}: the upgrade was accepted`);
      continue;
    }
    t.equal(answer.refused.status, 403, `${what}: 403`);
    t.match(answer.refused.headers['content-type'], /^application\/problem\+json/, `${what}: problem JSON`);
    t.match(JSON.parse(answer.refused.body), { code: 'csrf_failed' }, `${what}: code csrf_failed`);
  }
  t.equal(dev.recorded.filter((r) => r.kind === 'websocket').length, 0, 'the dev server saw none of them');

  const accepted = await openWebSocket(port, 'a.localhost:8080', '/__hmr?token=abc', { origin: 'http://a.localhost:8080' });
  if (!('socket' in accepted)) {
    t.fail(`the tenant's own origin was refused: ${accepted.refused.status} ${accepted.refused.body}`);
    return;
  }
  accepted.socket.send('ping');
  const [message] = (await once(accepted.socket, 'message')) as [Buffer];
  t.equal(message.toString(), 'echo:ping', 'the tenant\'s own origin opens the socket, messages pass');
  accepted.socket.close();
  await once(accepted.socket, 'close');
});

t.test('app.upstream that cannot be reached answers 502 problem JSON without its address', async (t) => {
  const { port } = await staticGateway(t, { 'a.localhost': { upstream: 'http://127.0.0.1:9' } });
  const res = await raw(port, 'a.localhost', '/', NAV);
  t.equal(res.status, 502);
  t.match(JSON.parse(res.body), { code: 'upstream_unavailable' });
  t.notMatch(res.body, /127\.0\.0\.1|:9\b/);
});

t.test('the README setups: config/app-static.yaml, app-vite.yaml and app-upstream.yaml load, and the static and upstream ones serve', async (t) => {
  const { loadConfigFile } = await import('../src/config/load.js');
  const configFile = (name: string) => fileURLToPath(new URL(`../config/${name}`, import.meta.url));
  const { dir } = spaCopy(t, 'readme-static');
  const dev = await startDevServer(t);
  const env = {
    PUBLIC_URL: 'http://web.localhost:3000',
    BFF_SESSION_KEY: SESSION_KEY,
    IDPORTEN_CLIENT_ID: 'web-client',
    IDPORTEN_CLIENT_SECRET: CLIENT_SECRET,
    APP_DIST: dir,
    FRONTEND_URL: dev.url,
  };
  const vite = loadConfigFile(configFile('app-vite.yaml'), env).tenants[0]!.app;
  t.match(vite, { kind: 'upstream', url: 'http://localhost:5173' }, 'the Vite setup proxies to the dev server');

  for (const [name, expect] of [['app-static.yaml', /readme-static/], ['app-upstream.yaml', /dev server/]] as const) {
    const config = loadConfigFile(configFile(name), env);
    const gateway = await buildApp(config, { logger: pino({ level: 'silent' }) });
    t.teardown(() => gateway.close());
    await gateway.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (gateway.app.server.address() as AddressInfo).port;
    // app-upstream.yaml sets requireLogin: a fetch is served, a navigation goes to the login.
    const page = await raw(port, 'web.localhost:3000', '/settings', name === 'app-upstream.yaml' ? { accept: '*/*', 'sec-fetch-mode': 'cors' } : NAV);
    t.equal(page.status, 200, `${name}: the app answers`);
    t.match(page.body, expect, `${name}: from the configured source`);
    if (name === 'app-upstream.yaml') t.equal((await raw(port, 'web.localhost:3000', '/settings', NAV)).status, 302, `${name}: requireLogin`);
  }
});
