/**
 * The header rules of src/proxy/headers.ts checked against the functions themselves, with no proxy in front
 * (proxy-headers.test.ts sends the same rules through a real gateway and upstream): which request headers an
 * upstream gets, which response headers the browser gets, and the Cache-Control and Vary that keep an answer for
 * one signed-in user out of shared caches (RFC 9111 section 5.2.2, RFC 9110 sections 7.6.1 and 12.5.5).
 */
import t from 'tap';
import type { TraceContext } from '../src/audit/trace-context.js';
import { browserResponseHeaders, FORWARDED_REQUEST_HEADERS, isForwardableHeaderName, listValues, privateCacheControl, upstreamRequestHeaders, varyWithCookie, type UpstreamRequestContext } from '../src/proxy/headers.js';

const TRACE: TraceContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', parentSpanId: undefined, flags: '01', tracestate: undefined };
const ctx = (over: Partial<UpstreamRequestContext> = {}): UpstreamRequestContext => ({ bearer: 'tok', upstreamHost: 'up.internal:8443', keepForwardingHeaders: false, trace: TRACE, ...over });

t.test('forwardHeaders may name a token (RFC 9110 section 5.1) that is not a credential, hop-by-hop, proxy or addressing header', async (t) => {
  for (const name of ['X-Altinn-Party', ' x-altinn-party ', 'a', "x!#$%&'*+.^_`|~0-9"]) t.ok(isForwardableHeaderName(name), JSON.stringify(name));
  const never = [
    'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings',
    'authorization', 'dpop', 'cookie', 'x-csrf', 'host', 'expect', 'forwarded', 'x-real-ip',
    'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'X-Forwarded-Prefix', 'x-forwarded-', 'Proxy-Authorization', 'proxy-anything',
    'COOKIE', ' Authorization',
  ];
  for (const name of never) t.notOk(isForwardableHeaderName(name), `${JSON.stringify(name)} never`);
  for (const name of ['', ' ', 'bad name', 'x:y', 'x/y', 'x"y', 'x(y)', 'æ', 'x\ny']) t.notOk(isForwardableHeaderName(name), `${JSON.stringify(name)} is not a token`);
});

t.test('an upstream gets the allow-listed headers the browser sent and the ones the gateway sets, nothing else', async (t) => {
  const inbound = { accept: 'application/json', 'user-agent': 'ua', cookie: 'session=1', authorization: 'Bearer browser', 'x-csrf': '1', 'x-other': 'x', 'content-length': undefined };
  const out = upstreamRequestHeaders(inbound, ctx());
  t.same(out, { accept: 'application/json', 'user-agent': 'ua', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', host: 'up.internal:8443', authorization: 'Bearer tok' });
  t.notOk('content-length' in out, 'a header without a value is not copied');
  t.same(Object.keys(upstreamRequestHeaders({}, ctx({ bearer: undefined }))).sort(), ['host', 'traceparent'], 'a public route sends no authorization');
  // The list documented in headers.ts and the README, written out: the exported list could lose a name unnoticed.
  const documented = [
    'accept', 'accept-language', 'accept-encoding',
    'content-type', 'content-length', 'content-disposition', 'content-encoding',
    'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'range',
    'user-agent', 'x-request-id',
  ];
  t.same([...FORWARDED_REQUEST_HEADERS].sort(), [...documented].sort());
  t.same(documented.filter((name) => upstreamRequestHeaders({ [name]: 'v' }, ctx())[name] !== 'v'), [], 'every allow-listed name passes');
});

t.test('a route\'s forwardHeaders add names for that route only; a forbidden one among them is ignored', async (t) => {
  const inbound = { 'x-altinn-party': '5', 'x-other': 'o', cookie: 'c', accept: 'a' };
  const route = { path: '/party', forwardHeaders: ['X-Altinn-Party', 'cookie', ' x-other '] };
  const out = upstreamRequestHeaders(inbound, ctx({ route }));
  t.same([out['x-altinn-party'], out['x-other'], out.cookie, out.accept], ['5', 'o', undefined, 'a']);
  t.equal(upstreamRequestHeaders(inbound, ctx({ route: { path: '/party', forwardHeaders: ['x-altinn-party'] } }))['x-other'], undefined, 'a changed list is not served from the cache of another');
  t.equal(upstreamRequestHeaders(inbound, ctx({ route: { path: '/api' } }))['x-altinn-party'], undefined, 'a route without the list');
  t.equal(upstreamRequestHeaders(inbound, ctx({ route: { path: '/api', forwardHeaders: [] } }))['x-altinn-party'], undefined, 'an empty list');
  t.equal(upstreamRequestHeaders(inbound, ctx({ route }))['x-altinn-party'], '5', 'the same list again (cached)');
  // Two lists that read the same when their names are run together are two lists.
  const joined = { 'x-ab': 'ab', c: 'c', 'x-a': 'a', bc: 'bc' };
  const first = upstreamRequestHeaders(joined, ctx({ route: { path: '/1', forwardHeaders: ['x-ab', 'c'] } }));
  const second = upstreamRequestHeaders(joined, ctx({ route: { path: '/2', forwardHeaders: ['x-a', 'bc'] } }));
  t.same([first['x-ab'], first.c, first['x-a'], first.bc], ['ab', 'c', undefined, undefined]);
  t.same([second['x-ab'], second.c, second['x-a'], second.bc], [undefined, undefined, 'a', 'bc']);
});

t.test('a name the browser lists in Connection is not forwarded (RFC 9110 section 7.6.1), and cannot remove the gateway\'s own headers', async (t) => {
  const inbound = { connection: 'Accept, x-altinn-party, authorization, host', accept: 'a', 'accept-language': 'nb', 'x-altinn-party': '5' };
  const out = upstreamRequestHeaders(inbound, ctx({ route: { path: '/p', forwardHeaders: ['x-altinn-party'] } }));
  t.notOk('accept' in out, 'listed in any case');
  t.notOk('x-altinn-party' in out);
  t.equal(out['accept-language'], 'nb', 'an unlisted name passes');
  t.equal(out.authorization, 'Bearer tok');
  t.equal(out.host, 'up.internal:8443');
  t.notOk('connection' in out);
  t.equal(upstreamRequestHeaders({ accept: 'a' }, ctx()).accept, 'a', 'the next request without Connection forwards it again: the shared list was not changed');
  t.equal(upstreamRequestHeaders({ accept: 'a', connection: 'keep-alive' }, ctx()).accept, 'a');
});

t.test('trace context: the request\'s trace with the gateway\'s span as the parent, never the browser\'s headers as sent (W3C Trace Context)', async (t) => {
  const browser = { traceparent: '00-11111111111111111111111111111111-2222222222222222-01', tracestate: 'vendor=browser' };
  const route = { path: '/p', forwardHeaders: ['traceparent', 'tracestate'] };
  const out = upstreamRequestHeaders(browser, ctx({ route }));
  t.equal(out.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'the request\'s trace context');
  t.notOk('tracestate' in out, 'no tracestate in the request\'s context: the browser\'s is not copied, also not by forwardHeaders');
  t.equal(upstreamRequestHeaders(browser, ctx({ trace: { ...TRACE, tracestate: 'k=v' } })).tracestate, 'k=v');
  const derived = upstreamRequestHeaders(browser, ctx({ trace: undefined }));
  t.match(derived.traceparent, /^00-11111111111111111111111111111111-[0-9a-f]{16}-01$/, 'without a context: continued from the browser\'s valid traceparent');
  t.not(derived.traceparent, browser.traceparent);
  t.equal(derived.tracestate, 'vendor=browser');
  const fresh = upstreamRequestHeaders({ traceparent: 'garbage', tracestate: 'vendor=browser' }, ctx({ trace: undefined, route }));
  t.notMatch(fresh.traceparent, /1111/);
  t.notOk('tracestate' in fresh, 'an invalid traceparent: a trace of the gateway\'s own, without the browser\'s tracestate');
});

t.test('X-Forwarded-For: the client address, after the chain only when the peer is a trusted proxy; X-Forwarded-Proto and -Host from the public URL', async (t) => {
  const chain = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' };
  t.equal(upstreamRequestHeaders(chain, ctx({ peerAddress: '10.0.0.1' }))['x-forwarded-for'], '10.0.0.1', 'untrusted: replaced');
  t.equal(upstreamRequestHeaders(chain, ctx({ peerAddress: '10.0.0.1', keepForwardingHeaders: true }))['x-forwarded-for'], '198.51.100.1, 203.0.113.7, 10.0.0.1');
  t.equal(upstreamRequestHeaders({ 'x-forwarded-for': ['a', 'b, c'] }, ctx({ peerAddress: 'd', keepForwardingHeaders: true }))['x-forwarded-for'], 'a, b, c, d', 'a chain over several lines');
  t.equal(upstreamRequestHeaders(chain, ctx({ keepForwardingHeaders: true }))['x-forwarded-for'], '198.51.100.1, 203.0.113.7', 'no peer address: the chain alone');
  t.notOk('x-forwarded-for' in upstreamRequestHeaders(chain, ctx()), 'no peer address, untrusted: none');
  t.notOk('x-forwarded-for' in upstreamRequestHeaders({}, ctx({ keepForwardingHeaders: true })));
  const out = upstreamRequestHeaders(chain, ctx({ publicUrl: 'https://MVA.example.no:8443/base' }));
  t.same([out['x-forwarded-proto'], out['x-forwarded-host']], ['https', 'mva.example.no:8443']);
  const again = upstreamRequestHeaders(chain, ctx({ publicUrl: 'http://localhost:3000' }));
  t.same([again['x-forwarded-proto'], again['x-forwarded-host']], ['http', 'localhost:3000'], 'per public URL');
  const none = upstreamRequestHeaders(chain, ctx());
  t.notOk('x-forwarded-proto' in none || 'x-forwarded-host' in none, 'no public URL: neither, and never the client\'s');
});

t.test('the browser gets no upstream cookies, CORS grants, proxy challenges, hop-by-hop or CDN cache fields, in any case', async (t) => {
  const upstream = {
    'Set-Cookie': ['a=1'], 'set-cookie2': 'b=2', 'proxy-authenticate': 'Basic', 'Access-Control-Allow-Origin': '*', 'access-control-allow-credentials': 'true',
    'transfer-encoding': 'chunked', upgrade: 'h2c', 'proxy-connection': 'keep-alive', 'keep-alive': 'timeout=5', te: 'trailers', trailer: 'x', 'http2-settings': 'x', 'CDN-Cache-Control': 'max-age=60', 'surrogate-control': 'max-age=60', 'cloudflare-cdn-cache-control': 'max-age=60', 'edge-control': 'cache-maxage=60',
    'content-type': 'application/json', 'X-Request-Id': 'r', 'x-empty': undefined,
  };
  t.same(browserResponseHeaders(upstream), { 'content-type': 'application/json', 'x-request-id': 'r', 'cache-control': 'no-store', vary: 'Cookie' });
});

t.test('a response header value loses every character invalid in a field value (RFC 9110 section 5.5), and keeps the rest', async (t) => {
  const out = browserResponseHeaders({ 'x-a': 'a\u0000b\u001fc\u007fd\u0100e\ttab ~', 'x-b': ['x\ny', 'plain'], 'x-c': 'æøå' });
  t.equal(out['x-a'], 'abcde\ttab ~');
  t.same(out['x-b'], ['xy', 'plain']);
  t.equal(out['x-c'], 'æøå', 'obs-text (0x80-0xFF) is allowed');
  t.equal(browserResponseHeaders({ etag: '"v1"' }).etag, '"v1"');
  t.equal(browserResponseHeaders({ 'x-d': '\u0001\u0002' })['x-d'], '', 'nothing valid: nothing left');
});

t.test('Cache-Control for one user\'s answer: no-store kept, otherwise private, and nothing a shared cache may use (RFC 9111 section 5.2.2)', async (t) => {
  const cases: [string | string[] | undefined, string][] = [
    [undefined, 'no-store'],
    ['', 'no-store'],
    [' , ,', 'no-store'],
    [[], 'no-store'],
    ['no-store', 'no-store'],
    ['NO-STORE, max-age=5', 'NO-STORE, max-age=5'],
    ['Private', 'Private'],
    ['max-age=5', 'private, max-age=5'],
    ['PUBLIC, S-MAXAGE=60, Proxy-Revalidate, max-age=5', 'private, max-age=5'],
    ['public', 'private'],
    ['private="set-cookie"', 'private'],
    ['Private = "set-cookie", no-store', 'no-store'],
    ['no-store="x"', 'private, no-store="x"'],
    ['no-cache="a, b", must-revalidate', 'private, no-cache="a, b", must-revalidate'],
    ['no-cache="a\\", public", max-age=1', 'private, no-cache="a\\", public", max-age=1'],
    [['public', 'max-age=5'], 'private, max-age=5'],
    // A quoted string is one item, commas and escaped quotes (RFC 9110 section 5.6.4) included: nothing in it is removed.
    ['no-cache="x, public, y"', 'private, no-cache="x, public, y"'],
    ['no-cache="a\\", b", public', 'private, no-cache="a\\", b"'],
    [['max-age=5, public', ' private'], 'max-age=5, private'],
  ];
  for (const [value, expected] of cases) t.equal(privateCacheControl(value), expected, JSON.stringify(value));
});

t.test('Vary gets Cookie once (RFC 9110 section 12.5.5); "*" varies on everything already', async (t) => {
  const cases: [string | string[] | undefined, string][] = [
    [undefined, 'Cookie'],
    ['', 'Cookie'],
    ['Accept', 'Accept, Cookie'],
    ['accept, COOKIE', 'accept, COOKIE'],
    [['Accept', 'Accept-Language'], 'Accept, Accept-Language, Cookie'],
    ['Accept, *', '*'],
    [['*'], '*'],
  ];
  for (const [value, expected] of cases) t.equal(varyWithCookie(value), expected, JSON.stringify(value));
});

t.test('listValues: the trimmed items of a list field on one line or several, empty items dropped (RFC 9110 section 5.6.1)', async (t) => {
  const cases: [string | string[] | undefined, string[]][] = [
    [undefined, []],
    ['', []],
    ['  ', []],
    [' a ', ['a']],
    ['a, ,b ,', ['a', 'b']],
    [',', []],
    [['a, b', ' c ', ''], ['a', 'b', 'c']],
    [['x'], ['x']],
  ];
  for (const [value, expected] of cases) t.same(listValues(value), expected, JSON.stringify(value));
  const fresh = listValues('a');
  fresh.push('b');
  t.same(listValues('a'), ['a'], 'a fresh array each time');
});

t.test('a Connection header the upstream sends removes the names it lists from the answer, whatever their case', async (t) => {
  const out = browserResponseHeaders({ connection: 'X-Hint, close', 'X-Hint': 'internal', close: 'x', etag: '"1"' });
  t.same(Object.keys(out).sort(), ['cache-control', 'etag', 'vary']);
  t.equal(browserResponseHeaders({ 'x-hint': 'kept' })['x-hint'], 'kept', 'not listed: kept');
});

t.test('X-Forwarded-For names an IPv4-mapped client by its plain IPv4 address, each part of one to three digits', async (t) => {
  const forwardedFor = (peerAddress: string) => upstreamRequestHeaders({}, ctx({ peerAddress }))['x-forwarded-for'];
  t.equal(forwardedFor('::ffff:10.100.200.3'), '10.100.200.3');
  t.equal(forwardedFor('::ffff:192.0.2.255'), '192.0.2.255');
  t.equal(forwardedFor('2001:db8::1'), '2001:db8::1');
});
