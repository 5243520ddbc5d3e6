import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Fastify, { type FastifyRequest } from 'fastify';
import { generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createAuditLog } from '../src/audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import { GatewayError } from '../src/errors.js';
import { checkCsrf } from '../src/http/csrf.js';
import { sendError } from '../src/http/problem.js';
import { registerProxyRoutes, type ProxyDeps } from '../src/proxy/register.js';
import { startEchoUpstream, type EchoUpstream } from './helpers/echo-upstream.js';
import { createTestPki } from './helpers/tls.js';

const MiB = 1024 * 1024;
const VALIDERING_BASE = '/api/mva/grensesnittstoette/mva-melding/valider';
const INNSENDING_BASE = '/skd/mva-melding-innsending-test';

// --- parts: a signing key, upstreams that verify it, and a gateway ----------------------------------

const signingKey = await generateKeyPair('ES256');
const otherKey = await generateKeyPair('ES256');
const pki = await createTestPki();

const validering = await startEchoUpstream({ verificationKey: signingKey.publicKey });
const innsending = await startEchoUpstream({ verificationKey: signingKey.publicKey });
const tenantBUpstream = await startEchoUpstream({ verificationKey: signingKey.publicKey });
const tlsUpstream = await startEchoUpstream({ verificationKey: signingKey.publicKey, tls: pki });
const upstreams = [validering, innsending, tenantBUpstream, tlsUpstream];
t.teardown(() => Promise.all(upstreams.map((u) => u.close())));

const closedPort = await freePort();

function route(path: string, upstream: string, extra: Partial<RouteConfig> = {}): RouteConfig {
  return { path, upstream, token: 'idporten', methods: ['POST'], timeoutMs: 10_000, bodyLimitBytes: 30 * MiB, ...extra };
}

function tenant(id: string, publicUrl: string, routes: RouteConfig[], upstreamCaPem?: string): TenantConfig {
  return {
    id,
    publicUrl,
    idporten: {
      issuer: 'https://op.invalid', clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: 'unused' },
      scopes: ['openid'], acrValues: 'idporten-loa-substantial', allowedAcrValues: ['idporten-loa-substantial'],
      uiLocales: 'nb', allowedLocales: ['nb'], postLogoutRedirectUri: `${publicUrl}/`, logoutHint: 'id_token', usePar: false, httpTimeoutMs: 5000,
    },
    routes,
    ...(upstreamCaPem === undefined ? {} : { upstreamCaPem }),
  };
}

const tenantA = tenant('a', 'http://a.test', [
  route('/mva/validering', `${validering.origin}${VALIDERING_BASE}`),
  route('/mva/innsending', `${innsending.origin}${INNSENDING_BASE}`, { token: 'altinn', methods: ['GET', 'POST', 'PUT', 'DELETE'] }),
  route('/small', `${innsending.origin}/small`, { methods: ['POST', 'PUT'], bodyLimitBytes: 1024 }),
  route('/slow', `${validering.origin}/slow`, { methods: ['GET'], timeoutMs: 300 }),
  route('/down', `http://127.0.0.1:${closedPort}/gone`, { methods: ['GET'] }),
  route('/secure', `${tlsUpstream.origin}/secure`, { methods: ['GET'] }),
], pki.caPem);

// Same paths as tenant A, other upstreams, and no private CA.
const tenantB = tenant('b', 'https://b.test:8443', [
  route('/mva/validering', `${tenantBUpstream.origin}/b-valider`),
  route('/secure', `${tlsUpstream.origin}/secure`, { methods: ['GET'] }),
]);

/** The session side as the gateway sees it: cookie "session=<name>" stands for a live session. */
const issuedTokens: string[] = [];
let bearerCalls = 0;
let hasSessionCalls = 0;
async function bearerFor(request: FastifyRequest, forTenant: TenantConfig, forRoute: RouteConfig): Promise<string> {
  bearerCalls += 1;
  const session = sessionOf(request);
  if (session === 'idp-down') throw new GatewayError('idp_unavailable', 'ID-porten did not answer.');
  if (session === 'broken') throw new Error('store at 10.0.0.5:6379 refused password hunter2');
  if (session === 'forged') return sign(otherKey.privateKey, forTenant, forRoute);
  if (session === undefined) {
    throw new GatewayError('login_required', 'No session.');
  }
  return sign(signingKey.privateKey, forTenant, forRoute);
}

async function sign(key: CryptoKey, forTenant: TenantConfig, forRoute: RouteConfig): Promise<string> {
  const token = await new SignJWT({ kind: forRoute.token, tenant: forTenant.id })
    .setProtectedHeader({ alg: 'ES256' }).setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(key);
  issuedTokens.push(token);
  return token;
}

function sessionOf(request: FastifyRequest): string | undefined {
  return /(?:^|;\s*)session=([^;]+)/.exec(request.headers.cookie ?? '')?.[1];
}

const auditLines: Array<Record<string, unknown>> = [];
const rawLogLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      rawLogLines.push(line);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed.audit === true) auditLines.push(parsed);
    }
    callback();
  },
});
const logger = pino({ level: 'info' }, logSink);

async function startGateway(trustProxy: ProxyDeps['trustProxy']): Promise<number> {
  const app = Fastify({ loggerInstance: logger, disableRequestLogging: true });
  app.setNotFoundHandler((_request, reply) => sendError(reply, new GatewayError('route_not_found', 'No route for this path.')));
  await registerProxyRoutes(app, {
    tenants: [tenantA, tenantB],
    bearerFor,
    hasSession: async (request) => {
      hasSessionCalls += 1;
      return sessionOf(request) !== undefined;
    },
    loginUrl: (request) => `/auth/login?returnTo=${encodeURIComponent(request.url)}`,
    auditContext: (request) => {
      const session = sessionOf(request);
      return session === undefined ? {} : { session: `hash-of-${session}`, sub: 'alice' };
    },
    audit: createAuditLog(logger),
    trustProxy,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  return (app.server.address() as AddressInfo).port;
}

const gatewayPort = await startGateway(false);
const trustingGatewayPort = await startGateway(['10.0.0.0/8', '127.0.0.1']);

// --- clients -------------------------------------------------------------------------------------------

/** What the SPA's fetch(…, { credentials: 'include' }) sends. */
const spa = { host: 'a.test', 'x-csrf': '1', cookie: 'session=alice', origin: 'http://a.test' };

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => Record<string, unknown>;
}

function send(path: string, options: { method?: string; headers?: Record<string, string | undefined>; body?: Buffer | string; port?: number } = {}): Promise<Answer> {
  const headers = Object.fromEntries(Object.entries({ ...spa, ...options.headers }).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const req = httpRequest({ host: '127.0.0.1', port: options.port ?? gatewayPort, method: options.method ?? 'GET', path, headers, agent: false });
  req.end(options.body);
  return answerOf(req);
}

async function answerOf(req: ReturnType<typeof httpRequest>): Promise<Answer> {
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return { status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

/** Sends exactly these bytes as the request target; returns the status code the gateway answered. */
async function sendRawTarget(target: string): Promise<number> {
  const socket = connect(gatewayPort, '127.0.0.1');
  await once(socket, 'connect');
  // Written, not ended: a half-closed client would make the server drop the request it is proxying.
  socket.write(`GET ${target} HTTP/1.1\r\nHost: a.test\r\nX-CSRF: 1\r\nCookie: session=alice\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const statusLine = Buffer.concat(chunks).toString('latin1').split('\r\n', 1)[0] ?? '';
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; waited < 5000; waited += 10) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting until ${what}`);
}

/** Audit lines are written when the server side of the response closes, which may trail the client by a tick. */
async function auditLinesAfter(start: number, count: number): Promise<Array<Record<string, unknown>>> {
  const proxyLines = () => auditLines.slice(start).filter((line) => line.event === 'proxy');
  await waitUntil(() => proxyLines().length >= count, `${count} proxy audit lines are written`);
  return proxyLines();
}

function forgetRequests(): void {
  for (const upstream of upstreams) upstream.requests.length = 0;
  for (const upstream of upstreams) upstream.behave({});
}

function lastRequest(upstream: EchoUpstream) {
  const last = upstream.requests.at(-1);
  if (last === undefined) throw new Error('the upstream received nothing');
  return last;
}

function assertProblem(t: Test, answer: Answer, status: number, code: string): void {
  t.equal(answer.status, status, `status ${status}`);
  t.match(answer.headers['content-type'], /^application\/problem\+json/);
  t.match(answer.json(), { status, code });
}

t.beforeEach(() => {
  forgetRequests();
  bearerCalls = 0;
  hasSessionCalls = 0;
});

// --- routing and tokens -----------------------------------------------------------------------------

t.test('forwards a POST to the route upstream base path with the ID-porten access token as bearer', async (t) => {
  const xml = '<mvaMeldingDto>…</mvaMeldingDto>';
  const answer = await send('/mva/validering', { method: 'POST', body: xml, headers: { 'content-type': 'application/xml' } });
  t.equal(answer.status, 200);
  const seen = lastRequest(validering);
  t.equal(seen.rawUrl, VALIDERING_BASE);
  t.equal(seen.headers['content-type'], 'application/xml');
  t.match(seen.claims, { kind: 'idporten', tenant: 'a' });
  t.same(seen.body, { sha256: createHash('sha256').update(xml).digest('hex'), length: Buffer.byteLength(xml) });
});

t.test('sends the Altinn token on an altinn route and appends the rest of the path to the upstream path', async (t) => {
  const answer = await send('/mva/innsending/instances/51234/abc-def/data/file%20name.xml');
  t.equal(answer.status, 200);
  const seen = lastRequest(innsending);
  t.equal(seen.path, `${INNSENDING_BASE}/instances/51234/abc-def/data/file%20name.xml`);
  t.match(seen.claims, { kind: 'altinn' });
});

t.test('passes the query string through byte for byte', async (t) => {
  const query = '?a=1&a=2&flag&enc=%2F%20+x&empty=&%C3%A6=%E2%9C%93';
  await send(`/mva/innsending/instances${query}`);
  t.equal(lastRequest(innsending).rawUrl, `${INNSENDING_BASE}/instances${query}`);
});

t.test('answers a path under no route with 404 route_not_found and does not let a route swallow look-alike paths', async (t) => {
  for (const path of ['/mva/valideringX', '/mva/validering-old/x', '/mva', '/nothing/here']) {
    assertProblem(t, await send(path, { method: 'POST' }), 404, 'route_not_found');
  }
  t.equal(validering.requests.length + innsending.requests.length, 0, 'nothing reached an upstream');
});

t.test('tells tenants apart by Host: one path, two upstreams', async (t) => {
  const a = await send('/mva/validering', { method: 'POST', body: 'x' });
  const b = await send('/mva/validering', { method: 'POST', body: 'x', headers: { host: 'b.test:8443', origin: 'https://b.test:8443' } });
  t.equal(a.status, 200);
  t.equal(b.status, 200);
  t.equal(validering.requests.length, 1);
  t.equal(lastRequest(tenantBUpstream).rawUrl, '/b-valider');
  t.match(lastRequest(tenantBUpstream).claims, { tenant: 'b' });
  assertProblem(t, await send('/mva/validering', { method: 'POST', headers: { host: 'c.test' } }), 404, 'route_not_found');
});

t.test('answers a method outside the route with 405 method_not_allowed and an Allow header', async (t) => {
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'HEAD']) {
    const answer = await send('/mva/validering/x', { method });
    t.equal(answer.status, 405, method);
    t.equal(answer.headers.allow, 'POST', `${method} gets Allow`);
    if (method !== 'HEAD') t.match(answer.json(), { code: 'method_not_allowed' });
  }
  t.equal((await send('/mva/innsending/x', { method: 'PATCH' })).headers.allow, 'GET, POST, PUT, DELETE');
  t.equal(validering.requests.length + innsending.requests.length, 0, 'nothing reached an upstream');
  t.equal(bearerCalls, 0, 'no token was looked up');
});

// --- header hygiene ------------------------------------------------------------------------------------

t.test('forwards none of the browser credentials, CSRF marker, browser context or hop-by-hop headers', async (t) => {
  const answer = await send('/mva/innsending/instances', {
    method: 'POST',
    body: '{}',
    headers: {
      'content-type': 'application/json',
      authorization: 'Bearer browser-supplied',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      referer: 'http://a.test/spa/secret-page?draft=1',
      'sec-fetch-site': 'same-origin',
      'sec-fetch-mode': 'cors',
      'sec-fetch-dest': 'empty',
      te: 'trailers',
      'keep-alive': 'timeout=5',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      forwarded: 'for=6.6.6.6;host=evil.example',
      'x-real-ip': '6.6.6.6',
      'accept-language': 'nb',
      'x-request-id': 'keep-me',
    },
  });
  t.equal(answer.status, 200);
  const { headers } = lastRequest(innsending);
  for (const name of ['cookie', 'x-csrf', 'origin', 'referer', 'proxy-authorization', 'sec-fetch-site', 'sec-fetch-mode', 'sec-fetch-dest',
    'te', 'keep-alive', 'forwarded', 'x-real-ip']) {
    t.notOk(name in headers, `${name} not forwarded`);
  }
  t.same([headers['x-forwarded-for'], headers['x-forwarded-host'], headers['x-forwarded-proto']], ['127.0.0.1', 'a.test', 'http'], 'X-Forwarded-* are the gateway\'s own');
  t.equal(headers.authorization, `Bearer ${issuedTokens.at(-1)}`, 'the browser Authorization is replaced by the gateway bearer');
  t.equal(headers.host, new URL(innsending.origin).host, 'Host is the upstream host');
  t.equal(headers['accept-language'], 'nb', 'ordinary headers pass');
  t.equal(headers['x-request-id'], 'keep-me');
});

t.test('a Connection header naming Authorization cannot strip the bearer', async (t) => {
  for (const connection of ['authorization', 'x-request-id', ' X-Request-Id ', 'Authorization, x-request-id', 'close, AUTHORIZATION']) {
    const answer = await send('/mva/innsending/instances', { headers: { connection, 'x-request-id': 'foo', 'accept-language': 'bar' } });
    t.equal(answer.status, 200, `Connection: ${connection} → upstream accepted the bearer`);
    const seen = lastRequest(innsending);
    t.match(seen.claims, { kind: 'altinn' });
    t.equal('x-request-id' in seen.headers, !/x-request-id/i.test(connection), 'a header named in Connection is dropped');
    t.equal(seen.headers['accept-language'], 'bar', 'a header not named passes');
    t.not(seen.headers.connection, connection, 'the client Connection header is not forwarded');
  }
});

t.test('replaces X-Forwarded-For from untrusted peers and continues a trusted proxy\'s chain', async (t) => {
  const forwarded = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', forwarded: 'for=203.0.113.7' };
  await send('/mva/innsending/x', { headers: forwarded });
  t.match(lastRequest(innsending).headers, { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http' });
  await send('/mva/innsending/x', { headers: forwarded, port: trustingGatewayPort });
  t.match(lastRequest(innsending).headers, { 'x-forwarded-for': '203.0.113.7, 127.0.0.1', 'x-forwarded-proto': 'http' });
});

t.test('a response keeps no Set-Cookie or CORS grant from the upstream and is not cacheable unless the upstream says so', async (t) => {
  innsending.behave({ headers: { 'set-cookie': ['upstream=1; Path=/', 'other=2'], 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true', 'x-upstream': 'yes' } });
  const answer = await send('/mva/innsending/x');
  t.equal(answer.status, 200);
  t.notOk('set-cookie' in answer.headers);
  t.notOk('access-control-allow-origin' in answer.headers);
  t.notOk('access-control-allow-credentials' in answer.headers);
  t.equal(answer.headers['x-upstream'], 'yes');
  t.equal(answer.headers['cache-control'], 'no-store');

  innsending.behave({ headers: { 'cache-control': 'private, max-age=60' } });
  t.equal((await send('/mva/innsending/x')).headers['cache-control'], 'private, max-age=60');
});

// --- path safety -----------------------------------------------------------------------------------

t.test('no traversal or encoding trick reaches outside the route upstream base path', async (t) => {
  const attacks = [
    '/../../etc/passwd', '/..', '/.', '/a/../../x', '/a/./b', '/...',
    '/%2e%2e/x', '/%2E%2E/x', '/%2E./x', '/.%2e/x', '/a/%2e/b',
    '/..%2fx', '/..%2Fadmin', '/%2f%2fevil.example/x', '/..%5cx', '/..\\x', '/a\\..\\..\\x',
    '/a//b', '//evil.example/x', '/x//',
    '/%252e%252e/x', '/%25252e%25252e/x', '/%25%32%65',
    '/%00', '/a%0d%0aX-Injected:%201', '/a%09b',
    '/..;/x', '/.;a/x',
    '/%c0%ae%c0%ae/x', '/%ef%bc%8e%ef%bc%8e/x', '/%e2%80%a5/x', '/a%ef%bc%8fb',
    '/a#/../x', '/a\u0000b',
  ];
  for (const attack of attacks) {
    const status = await sendRawTarget(`/mva/innsending${attack}`);
    t.ok(status === 400 || status === 404, `${JSON.stringify(attack)} refused (${status})`);
  }
  t.same(innsending.requests, [], 'the upstream saw none of them');

  t.equal(await sendRawTarget('/mva/innsending/instances/a.b/c..d/%C3%A6%20x/'), 200, 'ordinary dots, escapes and a trailing slash pass');
  t.equal(lastRequest(innsending).rawUrl, `${INNSENDING_BASE}/instances/a.b/c..d/%C3%A6%20x/`);
});

t.test('a refused path is answered with invalid_request problem JSON', async (t) => {
  assertProblem(t, await send('/mva/innsending/%2e%2e/admin'), 400, 'invalid_request');
  t.equal(bearerCalls, 0);
});

// --- CSRF and login ---------------------------------------------------------------------------------

t.test('checkCsrf wants X-CSRF exactly "1" and, when present, the tenant origin', async (t) => {
  const url = 'https://b.test:8443';
  t.same(checkCsrf({ 'x-csrf': '1' }, url), { ok: true });
  t.same(checkCsrf({ 'x-csrf': '1', origin: 'https://b.test:8443' }, url), { ok: true });
  t.same(checkCsrf({}, url), { ok: false, reason: 'missing_header' });
  t.same(checkCsrf({ 'x-csrf': 'true' }, url), { ok: false, reason: 'missing_header' });
  t.same(checkCsrf({ 'x-csrf': '1, 1' }, url), { ok: false, reason: 'missing_header' });
  for (const origin of ['null', 'https://b.test', 'http://b.test:8443', 'https://evil.example', 'https://b.test:8443/']) {
    t.same(checkCsrf({ 'x-csrf': '1', origin }, url), { ok: false, reason: 'origin_mismatch' }, origin);
  }
});

t.test('a proxied request without X-CSRF or from another origin gets 403 csrf_failed, an audit line, and no token refresh', async (t) => {
  const cases: Array<[Record<string, string | undefined>, string]> = [
    [{ 'x-csrf': undefined }, 'missing_header'],
    [{ 'x-csrf': 'yes' }, 'missing_header'],
    [{ origin: 'https://evil.example' }, 'origin_mismatch'],
    [{ origin: 'null' }, 'origin_mismatch'],
    [{ 'x-csrf': undefined, 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'cross-site' }, 'missing_header'],
  ];
  for (const [headers, reason] of cases) {
    const before = auditLines.length;
    assertProblem(t, await send('/mva/validering', { method: 'POST', body: '<x/>', headers }), 403, 'csrf_failed');
    t.match(auditLines.slice(before).find((line) => line.event === 'csrf.reject'), { tenant: 'a', route: '/mva/validering', method: 'POST', reason });
  }
  t.equal(bearerCalls, 0, 'bearerFor was never called');
  t.same(validering.requests, [], 'nothing reached the upstream');
});

t.test('without a session a fetch gets 401 problem JSON with loginUrl, never a redirect', async (t) => {
  const answer = await send('/mva/innsending/instances', { headers: { cookie: undefined } });
  assertProblem(t, answer, 401, 'login_required');
  t.equal(answer.json().loginUrl, '/auth/login?returnTo=%2Fmva%2Finnsending%2Finstances');
  t.notOk(answer.headers.location);
});

t.test('without a session a first-party top-level navigation is redirected to the login URL', async (t) => {
  for (const site of ['same-origin', 'none']) {
    const answer = await send('/mva/innsending/instances/1/pdf', {
      headers: { cookie: undefined, 'x-csrf': undefined, origin: undefined, 'sec-fetch-mode': 'navigate', 'sec-fetch-site': site },
    });
    t.equal(answer.status, 302, site);
    t.equal(answer.headers.location, '/auth/login?returnTo=%2Fmva%2Finnsending%2Finstances%2F1%2Fpdf');
  }
});

t.test('a first-party navigation with a live session is still refused without X-CSRF and forwards nothing', async (t) => {
  const answer = await send('/mva/innsending/instances/1/pdf', { headers: { 'x-csrf': undefined, origin: undefined, 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'same-origin' } });
  assertProblem(t, answer, 403, 'csrf_failed');
  t.same(innsending.requests, []);
  // Finding "token work before the CSRF check": only the session is looked up, no bearer (no refresh, no exchange).
  t.equal(hasSessionCalls, 1, 'the session was looked up');
  t.equal(bearerCalls, 0, 'no bearer was asked for');
});

t.test('a cross-site navigation without a session gets 403, not a login redirect', async (t) => {
  const answer = await send('/mva/innsending/instances', {
    headers: { cookie: undefined, 'x-csrf': undefined, origin: undefined, 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'cross-site' },
  });
  assertProblem(t, answer, 403, 'csrf_failed');
  t.equal(bearerCalls, 0);
});

t.test('a token failure from the session layer is answered as its problem JSON', async (t) => {
  assertProblem(t, await send('/mva/innsending/x', { headers: { cookie: 'session=idp-down' } }), 503, 'idp_unavailable');
  t.same(innsending.requests, []);
});

t.test('an unexpected failure below the proxy is 500 internal_error without its message', async (t) => {
  const answer = await send('/mva/innsending/x', { headers: { cookie: 'session=broken' } });
  assertProblem(t, answer, 500, 'internal_error');
  t.notMatch(answer.text, /10\.0\.0\.5|hunter2|store/);
});

t.test('a request Fastify cannot read is 400 invalid_request problem JSON', async (t) => {
  assertProblem(t, await send('/mva/innsending/x', { method: 'POST', body: 'x', headers: { 'content-type': 'not a media type' } }), 400, 'invalid_request');
  t.same(innsending.requests, []);
});

// --- upstream answers and failures -----------------------------------------------------------------------

t.test('upstream 4xx and 5xx answers pass through as they are, without retries', async (t) => {
  innsending.behave({ status: 503, headers: { 'retry-after': '1' } });
  const unavailable = await send('/mva/innsending/x');
  t.equal(unavailable.status, 503);
  t.match(unavailable.json(), { method: 'GET' }, 'the upstream body, not a gateway problem');
  t.equal(innsending.requests.length, 1, 'a GET answered 503 is not retried');

  forgetRequests();
  const rejected = await send('/mva/innsending/x', { headers: { cookie: 'session=forged' } });
  t.equal(rejected.status, 401, 'the upstream refused a bearer it cannot verify');
  t.same(rejected.json(), { error: 'invalid_token' });
  t.equal(rejected.headers['www-authenticate'], 'Bearer error="invalid_token"');
});

t.test('an unreachable upstream is 502 upstream_unavailable without internal addresses', async (t) => {
  const answer = await send('/down/x');
  assertProblem(t, answer, 502, 'upstream_unavailable');
  t.notMatch(answer.text, /127\.0\.0\.1|ECONNREFUSED|stack|:\d{4,5}/);
  // The reason goes to the operator's log instead, with no token in it.
  const line = rawLogLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'upstream request failed' && l.route === '/down');
  t.match(line, { level: 40, tenant: 'a', route: '/down', code: 'ECONNREFUSED' }, 'the cause is logged as a warning');
  t.notOk(issuedTokens.some((token) => JSON.stringify(line).includes(token)), 'no bearer in it');
});

t.test('an upstream that resets the connection is 502 upstream_unavailable', async (t) => {
  innsending.behave({ reset: true });
  const answer = await send('/mva/innsending/x', { method: 'POST', body: 'payload' });
  assertProblem(t, answer, 502, 'upstream_unavailable');
  t.notMatch(answer.text, /127\.0\.0\.1|ECONNRESET|socket/i);
});

t.test('an upstream slower than the route timeout is 504 upstream_timeout', async (t) => {
  validering.behave({ delayMs: 3000 });
  const answer = await send('/slow');
  assertProblem(t, answer, 504, 'upstream_timeout');
  t.notMatch(answer.text, /127\.0\.0\.1/);
});

t.test('upstream TLS certificates are verified: a private CA is trusted only where configured', async (t) => {
  const trusted = await send('/secure/x');
  t.equal(trusted.status, 200, 'tenant a trusts the private CA');
  t.equal(lastRequest(tlsUpstream).rawUrl, '/secure/x');

  forgetRequests();
  const untrusted = await send('/secure/x', { headers: { host: 'b.test:8443', origin: 'https://b.test:8443' } });
  assertProblem(t, untrusted, 502, 'upstream_unavailable');
  t.same(tlsUpstream.requests, [], 'no request was sent over the unverified connection');
});

// --- bodies ------------------------------------------------------------------------------------------------

t.test('a 25 MB upload arrives byte-exact and streams: the upstream receives data before the client has finished', async (t) => {
  const chunks = 25;
  const req = httpRequest({
    host: '127.0.0.1', port: gatewayPort, method: 'PUT', path: '/mva/innsending/instances/1/data', agent: false,
    headers: { ...spa, 'content-type': 'application/pdf', 'content-length': String(chunks * MiB) },
  });
  const answer = answerOf(req);
  const hash = createHash('sha256');
  const chunk = () => {
    const bytes = randomBytes(MiB);
    hash.update(bytes);
    return bytes;
  };

  req.write(chunk());
  await Promise.race([
    innsending.receivedAtLeast(1),
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error('the upstream got nothing while the client was still sending')), 10_000).unref()),
  ]);
  t.pass('the upstream started receiving while the client still held 24 MB');

  for (let i = 1; i < chunks; i++) {
    if (!req.write(chunk())) await once(req, 'drain');
  }
  req.end();
  const result = await answer;
  t.equal(result.status, 200);
  t.same(result.json().body, { sha256: hash.digest('hex'), length: chunks * MiB });
  t.same(lastRequest(innsending).body, result.json().body);
});

t.test('an upload with Expect: 100-continue is forwarded', async (t) => {
  const req = httpRequest({
    host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/mva/innsending/instances', agent: false,
    headers: { ...spa, expect: '100-continue', 'content-type': 'text/plain', 'content-length': '5' },
  });
  req.on('continue', () => req.end('hello'));
  const answer = await answerOf(req);
  t.equal(answer.status, 200);
  t.equal(lastRequest(innsending).body?.length, 5);
  t.notOk('expect' in lastRequest(innsending).headers);
});

t.test('the response streams: the client reads the first chunk before the upstream has finished', async (t) => {
  innsending.behave({ hold: true });
  const req = httpRequest({ host: '127.0.0.1', port: gatewayPort, path: '/mva/innsending/stream', headers: spa, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const [first] = (await once(res, 'data')) as [Buffer];
  t.equal(first.toString(), 'first chunk\n');
  innsending.release();
  let rest = '';
  for await (const chunk of res) rest += (chunk as Buffer).toString();
  t.equal(rest, 'rest\n');
});

t.test('a Content-Length above the route limit is 413 payload_too_large before the upstream is contacted', async (t) => {
  const req = httpRequest({
    host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/small/x', agent: false,
    headers: { ...spa, 'content-type': 'application/octet-stream', 'content-length': '1025' },
  });
  req.flushHeaders(); // the body is never sent: the answer must come from the headers alone
  const answer = await answerOf(req);
  req.destroy();
  assertProblem(t, answer, 413, 'payload_too_large');
  t.equal(answer.headers.connection, 'close', 'the unread body is not drained');
  t.equal(bearerCalls, 0);
  t.same(innsending.requests, []);

  const atLimit = await send('/small/x', { method: 'POST', body: Buffer.alloc(1024, 1) });
  t.equal(atLimit.status, 200, 'exactly the limit passes');
});

t.test('a chunked body that grows past the limit is cut off with 413 and never completes upstream', async (t) => {
  const req = httpRequest({
    host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/small/x', agent: false,
    headers: { ...spa, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
  });
  req.write(Buffer.alloc(600, 1));
  req.write(Buffer.alloc(600, 2)); // the client keeps the request open: the gateway must answer mid-body
  const answer = await answerOf(req);
  req.destroy();
  assertProblem(t, answer, 413, 'payload_too_large');
  t.notOk(innsending.requests.some((seen) => seen.body !== undefined), 'no body reached its end upstream');
});

// --- audit -------------------------------------------------------------------------------------------------

t.test('writes one proxy audit line per proxied request, with session hash and sub, and never a token', async (t) => {
  const before = auditLines.length;
  await send('/mva/validering', { method: 'POST', body: '<x/>' });
  await send('/mva/validering/x', { method: 'GET' });
  const proxyLines = await auditLinesAfter(before, 2);
  t.equal(proxyLines.length, 2);
  t.match(proxyLines[0], { tenant: 'a', route: '/mva/validering', method: 'POST', status: 200, session: 'hash-of-alice', sub: 'alice', durationMs: Number });
  t.match(proxyLines[1], { method: 'GET', status: 405 });

  const leaked = issuedTokens.filter((token) => rawLogLines.some((line) => line.includes(token)));
  t.same(leaked, [], 'no issued token appears in any log line');
});

t.test('a client that hangs up before its answer still leaves one proxy audit line', async (t) => {
  validering.behave({ delayMs: 500 });
  const before = auditLines.length;
  const req = httpRequest({ host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/mva/validering', headers: spa, agent: false });
  req.on('error', () => {});
  req.end('<x/>');
  await waitUntil(() => validering.requests.at(-1)?.body !== undefined, 'the upstream has the request');
  req.destroy();
  const [line] = await auditLinesAfter(before, 1);
  t.match(line, { event: 'proxy', tenant: 'a', route: '/mva/validering', method: 'POST', status: 499, session: 'hash-of-alice' });
  await new Promise((resolve) => setTimeout(resolve, 700));
  t.equal(auditLines.slice(before).filter((l) => l.event === 'proxy').length, 1, 'exactly one line, also after the upstream answered');
});
