import t from 'tap';
import { startStack } from './helpers/stack.js';

// Whatever a client sends, the gateway answers with a clear 4xx (problem JSON or a small HTML page), never a 500,
// a crash, a stack trace or an internal address.
t.test('malformed requests to every endpoint get a clear 4xx, never a 500', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const host = new URL(stack.publicUrl).host;
  const csrf = { 'x-csrf': '1' };
  const cases: { name: string; method: string; url: string; headers?: Record<string, string>; payload?: string }[] = [
    { name: 'returnTo twice', method: 'GET', url: '/auth/login?returnTo=/a&returnTo=/b' },
    { name: 'acr as array', method: 'GET', url: '/auth/login?acr=x&acr=y' },
    { name: 'overlong returnTo', method: 'GET', url: `/auth/login?returnTo=/${'a'.repeat(5000)}` },
    { name: 'callback without anything', method: 'GET', url: '/auth/callback' },
    { name: 'callback with garbage state', method: 'GET', url: '/auth/callback?state=%00%01&code=x' },
    { name: 'callback with two states', method: 'GET', url: '/auth/callback?state=a&state=b&code=c' },
    { name: 'callback error with markup', method: 'GET', url: '/auth/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&state=x' },
    { name: 'refresh with broken JSON', method: 'POST', url: '/auth/session/refresh', headers: { ...csrf, 'content-type': 'application/json' }, payload: '{"a":' },
    { name: 'refresh with XML', method: 'POST', url: '/auth/session/refresh', headers: { ...csrf, 'content-type': 'application/xml' }, payload: '<a/>' },
    { name: 'logout with a huge form', method: 'POST', url: '/auth/logout', headers: { ...csrf, 'content-type': 'application/x-www-form-urlencoded' }, payload: `a=${'x'.repeat(200_000)}` },
    { name: 'logout with an unknown content type', method: 'POST', url: '/auth/logout', headers: { ...csrf, 'content-type': 'text/x-nonsense' }, payload: 'x' },
    { name: 'back-channel with JSON', method: 'POST', url: '/auth/logout/backchannel', headers: { 'content-type': 'application/json' }, payload: '{"logout_token":1}' },
    { name: 'back-channel with a non-JWT', method: 'POST', url: '/auth/logout/backchannel', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'logout_token=a.b.c' },
    { name: 'back-channel with two tokens', method: 'POST', url: '/auth/logout/backchannel', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'logout_token=a&logout_token=b' },
    { name: 'front-channel with two sids', method: 'GET', url: `/auth/logout/frontchannel?iss=${encodeURIComponent(stack.op.issuer)}&sid=a&sid=b` },
    { name: 'front-channel without iss', method: 'GET', url: '/auth/logout/frontchannel?sid=a' },
    { name: 'unknown path', method: 'GET', url: '/nope' },
    { name: 'auth path with traversal', method: 'GET', url: '/auth/../auth/session' },
    { name: 'session with a cookie header of garbage', method: 'GET', url: '/auth/session', headers: { cookie: 'bff=%%%; bff=x; =; ;;' } },
    { name: 'proxy with a NUL in the path', method: 'GET', url: '/mva/echo/a%00b', headers: csrf },
    { name: 'proxy with an absolute-form URL', method: 'GET', url: 'http://evil.example/mva/echo/x', headers: csrf },
    { name: 'proxy with TRACE', method: 'TRACE', url: '/mva/echo/x', headers: csrf },
    { name: 'proxy with a bogus content-length', method: 'POST', url: '/mva/echo/x', headers: { ...csrf, 'content-length': 'abc' } },
  ];
  for (const c of cases) {
    const res = await stack.gateway.app.inject({ method: c.method as 'GET', url: c.url, headers: { host, ...(c.headers ?? {}) }, ...(c.payload !== undefined ? { payload: c.payload } : {}) });
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${c.name}: ${res.statusCode} is a 4xx`);
    t.notMatch(res.body, /\bat .*\.(ts|js):\d+|ECONNREFUSED|127\.0\.0\.1:\d+|<script>alert/, `${c.name}: no stack trace, internal address or reflected markup`);
    const type = String(res.headers['content-type'] ?? '');
    t.ok(/problem\+json|text\/html|application\/json/.test(type) || res.statusCode === 405, `${c.name}: a readable error body (${type})`);
  }
  // A returnTo that does not decode is no reason to refuse the login: it falls back to the tenant root.
  const lenient = await stack.gateway.app.inject({ method: 'GET', url: '/auth/login?returnTo=%E0%A4%A', headers: { host } });
  t.equal(lenient.statusCode, 302);
  t.equal(new URL(lenient.headers.location as string).origin, stack.op.issuer, 'the login goes on to the provider');
  const health = await stack.gateway.app.inject({ method: 'GET', url: '/healthz', headers: { host } });
  t.equal(health.statusCode, 200, 'still healthy afterwards');
});
