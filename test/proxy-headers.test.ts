/**
 * Header hygiene of the reverse proxy, from the security review, against real parts: a gateway on a
 * real port (registerProxyRoutes on Fastify), a real HTTP client and upstreams that record exactly
 * what arrived on the wire.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import t from 'tap';
import { createAuditLog } from '../src/audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import { GatewayError } from '../src/errors.js';
import { browserResponseHeaders, FORWARDED_REQUEST_HEADERS, isForwardableHeaderName, upstreamRequestHeaders } from '../src/proxy/headers.js';
import { registerProxyRoutes, type ProxyDeps } from '../src/proxy/register.js';
import { startEchoUpstream, type EchoUpstream } from './helpers/echo-upstream.js';

const PUBLIC_HOST = 'mva.example.test';
const signingKey = await generateKeyPair('ES256');
const upstream = await startEchoUpstream({ verificationKey: signingKey.publicKey });
const partyUpstream = await startEchoUpstream({ verificationKey: signingKey.publicKey });
t.teardown(() => Promise.all([upstream.close(), partyUpstream.close()]));

/** RouteConfig gets forwardHeaders with the configuration change; until then the route carries it alongside. */
type RouteWithForwardHeaders = RouteConfig & { forwardHeaders?: string[] };

const route = (path: string, to: string, extra: Partial<RouteWithForwardHeaders> = {}): RouteWithForwardHeaders => ({
  path, upstream: to, token: 'idporten', methods: ['GET', 'POST', 'PUT'], timeoutMs: 10_000, bodyLimitBytes: 1024 * 1024, ...extra,
});

const tenant: TenantConfig = {
  id: 'mva',
  publicUrl: `https://${PUBLIC_HOST}`,
  idporten: {
    issuer: 'https://op.invalid', clientId: 'mva-client', clientAuth: { method: 'client_secret_post', secret: 'unused' },
    scopes: ['openid'], acrValues: 'idporten-loa-substantial', allowedAcrValues: ['idporten-loa-substantial'],
    uiLocales: 'nb', allowedLocales: ['nb'], postLogoutRedirectUri: `https://${PUBLIC_HOST}/`, logoutHint: 'id_token', usePar: false, httpTimeoutMs: 5000,
  },
  routes: [
    route('/api', `${upstream.origin}/base`),
    // forbidden names in forwardHeaders are ignored: a route cannot re-open what the gateway closes
    route('/party', `${partyUpstream.origin}/base`, { forwardHeaders: ['X-Altinn-Party', 'cookie', 'Authorization', 'proxy-authorization', 'forwarded', 'x-forwarded-for', 'x-csrf', 'connection'] }),
  ],
};

async function startGateway(trustProxy: ProxyDeps['trustProxy']): Promise<number> {
  const logger = pino({ level: 'silent' });
  const app = Fastify({ loggerInstance: logger });
  await registerProxyRoutes(app, {
    tenants: [tenant],
    loginUrl: () => '/auth/login',
    bearerFor: async (request) => {
      if (!/session=alice/.test(request.headers.cookie ?? '')) throw new GatewayError('login_required', 'No session.');
      return new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('alice').setExpirationTime('5m').sign(signingKey.privateKey);
    },
    hasSession: async (request) => /session=alice/.test(request.headers.cookie ?? ''),
    auditContext: () => ({}),
    audit: createAuditLog(logger),
    trustProxy,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  return (app.server.address() as AddressInfo).port;
}

const untrustedPort = await startGateway(false);
const trustedPort = await startGateway(['127.0.0.1']);

const spa = { host: PUBLIC_HOST, origin: `https://${PUBLIC_HOST}`, 'x-csrf': '1', cookie: 'session=alice' };

interface Answer { status: number; headers: IncomingHttpHeaders; text: string }

async function send(path: string, opts: { port?: number; method?: string; headers?: Record<string, string | string[]>; body?: string } = {}): Promise<Answer> {
  const req = httpRequest({ host: '127.0.0.1', port: opts.port ?? untrustedPort, method: opts.method ?? 'GET', path, headers: { ...spa, ...opts.headers }, agent: false });
  req.end(opts.body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let text = '';
  for await (const chunk of res) text += (chunk as Buffer).toString();
  return { status: res.statusCode ?? 0, headers: res.headers, text };
}

function received(on: EchoUpstream) {
  const last = on.requests.at(-1);
  if (last === undefined) throw new Error('the upstream received nothing');
  return last;
}

t.beforeEach(() => {
  for (const u of [upstream, partyUpstream]) {
    u.requests.length = 0;
    u.behave({});
  }
});

// --- finding: request headers were forwarded by block-list --------------------------------------

const ALLOWED_VALUES: Record<string, string> = {
  accept: 'application/json', 'accept-language': 'nb-NO', 'accept-encoding': 'gzip',
  'content-type': 'application/xml', 'content-disposition': 'attachment; filename="mva.xml"', 'content-encoding': 'identity',
  'if-match': '"v1"', 'if-none-match': '"v2"', 'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT', 'if-unmodified-since': 'Tue, 01 Dec 2026 10:00:00 GMT',
  'if-range': '"v1"', range: 'bytes=0-99',
  'user-agent': 'Mozilla/5.0 (test)',
  'x-request-id': 'req-42',
};

/** W3C trace context: continued to the upstream, with the gateway's own span as the parent. */
const TRACE_VALUES: Record<string, string> = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'congo=t61rcWkgMzE' };

const SPOOFING_HEADERS: Record<string, string> = {
  'true-client-ip': '6.6.6.6', 'x-client-ip': '6.6.6.6', 'cf-connecting-ip': '6.6.6.6', 'x-real-ip': '6.6.6.6',
  'x-original-url': '/admin', 'x-rewrite-url': '/admin', 'x-http-method-override': 'DELETE', 'x-method-override': 'DELETE',
  via: '1.1 evil-proxy', forwarded: 'for=6.6.6.6;host=evil.example;proto=http',
  'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http', 'x-forwarded-port': '1', 'x-forwarded-prefix': '/admin',
  'x-custom-debug': 'on', 'x-altinn-party': '50001337', 'proxy-authorization': 'Basic Zm9vOmJhcg==', authorization: 'Bearer browser-supplied',
  referer: `https://${PUBLIC_HOST}/secret-page`, 'sec-fetch-site': 'same-origin', 'sec-ch-ua': '"Chromium"', dnt: '1', priority: 'u=1',
};

t.test('finding "upstream request headers by block-list": only the documented list reaches the upstream', async (t) => {
  const body = '<mvaMelding/>';
  const answer = await send('/api/x', { method: 'POST', headers: { ...ALLOWED_VALUES, ...TRACE_VALUES, ...SPOOFING_HEADERS }, body });
  t.equal(answer.status, 200);
  const seen = received(upstream);
  const gatewaySet = new Set(['host', 'authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'traceparent', 'tracestate']);
  // What undici adds itself to frame the message on its own connection.
  const framing = new Set(['connection', 'content-length', 'transfer-encoding']);
  const unexpected = Object.keys(seen.headers).filter((name) => !FORWARDED_REQUEST_HEADERS.includes(name) && !gatewaySet.has(name) && !framing.has(name));
  t.same(unexpected, [], 'no header outside the allow-list and the gateway\'s own');
  for (const name of Object.keys(SPOOFING_HEADERS).filter((n) => !gatewaySet.has(n))) t.notOk(name in seen.headers, `${name} not forwarded`);
  for (const [name, value] of Object.entries(ALLOWED_VALUES)) t.equal(seen.headers[name], value, `${name} forwarded`);
  t.match(seen.headers.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, 'the trace continues');
  t.not(seen.headers.traceparent, TRACE_VALUES.traceparent, "with the gateway's span as the parent");
  t.equal(seen.headers.tracestate, TRACE_VALUES.tracestate, 'tracestate passed on');
  t.equal(seen.headers['content-length'], String(body.length));
  t.match(seen.claims, { sub: 'alice' }, 'the gateway bearer, not the browser\'s');
  t.equal(seen.headers.host, new URL(upstream.origin).host);
  t.same(seen.body, { sha256: createHash('sha256').update(body).digest('hex'), length: body.length });
});

t.test('finding "upstream request headers by block-list": a chunked upload still streams byte-exact', async (t) => {
  const req = httpRequest({ host: '127.0.0.1', port: untrustedPort, method: 'PUT', path: '/api/upload', agent: false, headers: { ...spa, 'content-type': 'application/pdf', 'transfer-encoding': 'chunked' } });
  const hash = createHash('sha256');
  for (let i = 0; i < 4; i++) {
    const chunk = Buffer.alloc(50_000, i);
    hash.update(chunk);
    req.write(chunk);
  }
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.resume();
  t.equal(res.statusCode, 200);
  t.same(received(upstream).body, { sha256: hash.digest('hex'), length: 200_000 });
});

t.test('finding "spoofable X-Forwarded-*": the gateway sets them itself', async (t) => {
  const clientSent = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example', forwarded: 'for=203.0.113.7' };

  await send('/api/x', { headers: clientSent });
  const fromClient = received(upstream).headers;
  t.equal(fromClient['x-forwarded-for'], '127.0.0.1', 'untrusted peer: the client address replaces what the client sent');
  t.equal(fromClient['x-forwarded-proto'], 'https', 'the tenant\'s public scheme');
  t.equal(fromClient['x-forwarded-host'], PUBLIC_HOST, 'the tenant\'s public host');
  t.notOk('forwarded' in fromClient);

  await send('/api/x', { port: trustedPort, headers: { ...clientSent, 'x-forwarded-for': '198.51.100.1, 203.0.113.7' } });
  const fromProxy = received(upstream).headers;
  t.equal(fromProxy['x-forwarded-for'], '198.51.100.1, 203.0.113.7, 127.0.0.1', 'trusted peer: its chain continues with the peer address');
  t.equal(fromProxy['x-forwarded-proto'], 'https');
  t.equal(fromProxy['x-forwarded-host'], PUBLIC_HOST);
  t.notOk('forwarded' in fromProxy, 'Forwarded is not continued, so it never passes with a stale chain');
  t.notOk('x-real-ip' in fromProxy);

  await send('/api/x', { port: trustedPort });
  t.equal(received(upstream).headers['x-forwarded-for'], '127.0.0.1', 'trusted peer without a chain');
});

t.test('finding "upstream request headers by block-list": a route adds names with forwardHeaders, never forbidden ones', async (t) => {
  const extra = { 'x-altinn-party': '50001337', 'x-csrf': '1', 'proxy-authorization': 'Basic Zm9v', authorization: 'Bearer browser-supplied', forwarded: 'for=6.6.6.6', 'x-forwarded-for': '6.6.6.6' };
  await send('/party/x', { headers: extra });
  const seen = received(partyUpstream);
  t.equal(seen.headers['x-altinn-party'], '50001337', 'a forwardHeaders name passes, matched case-insensitively');
  for (const name of ['cookie', 'x-csrf', 'proxy-authorization', 'forwarded']) t.notOk(name in seen.headers, `${name} not forwarded by forwardHeaders`);
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.match(seen.claims, { sub: 'alice' });

  await send('/api/x', { headers: extra });
  t.notOk('x-altinn-party' in received(upstream).headers, 'another route does not get it');

  await send('/party/x', { headers: { ...extra, 'accept-language': 'nb', connection: 'x-altinn-party, Accept-Language, authorization' } });
  const listed = received(partyUpstream);
  t.notOk('x-altinn-party' in listed.headers, 'a forwardHeaders name listed in Connection is dropped');
  t.notOk('accept-language' in listed.headers, 'an allow-listed name listed in Connection is dropped');
  t.match(listed.claims, { sub: 'alice' }, 'Connection: authorization cannot strip the bearer');

  t.notOk(isForwardableHeaderName('Proxy-Foo'));
  t.notOk(isForwardableHeaderName('x-forwarded-prefix'));
  t.notOk(isForwardableHeaderName('bad name'));
  t.ok(isForwardableHeaderName('X-Altinn-Party'));
});

// --- finding: proxied responses could be kept by a shared cache ------------------------------------

t.test('finding "cacheable authenticated answers": proxied responses are private and vary on Cookie', async (t) => {
  const cases: Array<[Record<string, string | string[]>, string, string]> = [
    [{}, 'no-store', 'Cookie'],
    [{ 'cache-control': 'no-store' }, 'no-store', 'Cookie'],
    [{ 'cache-control': 'public, no-store' }, 'no-store', 'Cookie'],
    [{ 'cache-control': 'public, max-age=3600', vary: 'Accept-Encoding' }, 'private, max-age=3600', 'Accept-Encoding, Cookie'],
    [{ 'cache-control': 'max-age=60, s-maxage=600, proxy-revalidate' }, 'private, max-age=60', 'Cookie'],
    [{ 'cache-control': 'private="set-cookie", max-age=60' }, 'private, max-age=60', 'Cookie'],
    [{ 'cache-control': 'private, max-age=60', vary: 'cookie' }, 'private, max-age=60', 'cookie'],
    [{ 'cache-control': 'no-cache="set-cookie, x-a", public' }, 'private, no-cache="set-cookie, x-a"', 'Cookie'],
    [{ 'cache-control': ['public', 'max-age=5'], vary: ['Accept', 'Accept-Language'] }, 'private, max-age=5', 'Accept, Accept-Language, Cookie'],
    [{ 'cache-control': 's-maxage=600', vary: '*' }, 'private', '*'],
  ];
  for (const [headers, cacheControl, vary] of cases) {
    upstream.behave({ headers: { ...headers, 'cdn-cache-control': 'max-age=3600', 'surrogate-control': 'max-age=3600', 'set-cookie': 'upstream=1; Path=/' } });
    const answer = await send('/api/x');
    t.equal(answer.status, 200);
    const label = JSON.stringify(headers);
    t.equal(answer.headers['cache-control'], cacheControl, `${label}: Cache-Control`);
    t.equal(answer.headers.vary, vary, `${label}: Vary`);
    t.notOk('cdn-cache-control' in answer.headers, `${label}: no CDN-Cache-Control`);
    t.notOk('surrogate-control' in answer.headers, `${label}: no Surrogate-Control`);
    t.notOk('set-cookie' in answer.headers, `${label}: no upstream Set-Cookie`);
  }
});

// RFC 9110 section 7.6.1: a name listed in Connection describes that connection only, one name or several.
t.test('a response header the upstream names in Connection does not reach the browser, alone or in a list, in any case', async (t) => {
  for (const connection of ['x-upstream-hint', ' X-Upstream-Hint ', 'keep-alive, X-UPSTREAM-HINT']) {
    const out = browserResponseHeaders({ connection, 'x-upstream-hint': 'internal', etag: '"v1"', 'keep-alive': 'timeout=5' });
    t.notOk('x-upstream-hint' in out, `Connection: ${connection}`);
    t.equal(out.etag, '"v1"', 'an unlisted header passes');
    t.notOk('connection' in out || 'keep-alive' in out, 'hop-by-hop headers never pass');
  }
});

t.test("X-Forwarded-For names an IPv4 client by its plain address, also when the socket reports it IPv4-mapped", async (t) => {
  const forwardedFor = (peerAddress: string) => upstreamRequestHeaders({}, { bearer: undefined, upstreamHost: 'up.example', keepForwardingHeaders: false, peerAddress })['x-forwarded-for'];
  t.equal(forwardedFor('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(forwardedFor('::FFFF:10.1.2.3'), '10.1.2.3');
  t.equal(forwardedFor('::Ffff:10.1.2.3'), '10.1.2.3');
  t.equal(forwardedFor('10.1.2.3'), '10.1.2.3');
  t.equal(forwardedFor('::1'), '::1');
  t.equal(forwardedFor('2001:db8::ffff:1'), '2001:db8::ffff:1');
  t.equal(forwardedFor('::ffff:abcd'), '::ffff:abcd', 'an IPv6 address that only begins like one stays as it is');
});
