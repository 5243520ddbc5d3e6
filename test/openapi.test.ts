/**
 * openapi.yaml is what integrators read; these tests keep it honest against the code: the routes the
 * app registers, the problem codes in src/errors.ts, and the bodies real requests get back.
 * No OpenID Provider is needed: the app is built without warmUp, so nothing talks to ID-porten.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { LightMyRequestResponse, RouteOptions } from 'fastify';
import pino from 'pino';
import { parse } from 'yaml';
import { buildApp } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import type { ErrorCode as ProblemCode } from '../src/errors.js';
import { PROBLEMS } from '../src/http/problem.js';
import { sessionView } from '../src/http/session-view.js';
import type { Session } from '../src/tokens/session-data.js';

type Json = Record<string, unknown>;

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const PUBLIC_URL = 'http://localhost:3999';
const HOST = new URL(PUBLIC_URL).host;
const ISSUER = 'https://test.idporten.no';

const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Json;
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Follows a local JSON pointer ("#/components/…") through the document. */
function resolvePointer(ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local references are used: ${ref}`);
  let node: unknown = spec;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !(key in node)) throw new Error(`unresolved reference ${ref}`);
    node = (node as Json)[key];
  }
  return node;
}

function deref<T = Json>(node: unknown): T {
  let current = node as Json;
  while (typeof current.$ref === 'string') current = resolvePointer(current.$ref) as Json;
  return current as T;
}

const paths = spec.paths as Record<string, Json>;
const isProxied = (pathItem: Json) => deref(pathItem)['x-proxied-route'] === true;
/** The app's catch-all (tenants[].app): registered per tenant with an app, as `/` and `/*` under its host. */
const isAppRoute = (pathItem: Json) => deref(pathItem)['x-app-route'] === true;
const APP_DIR = new URL('./fixtures/spa', import.meta.url).pathname;
/** Served by the internal listener (server.metricsPort), not by the app: see test/session-control.test.ts. */
const isInternal = (pathItem: Json) => deref(pathItem)['x-internal-listener'] === true;

function operationsOf(pathItem: Json): [string, Json][] {
  const item = deref(pathItem);
  return HTTP_METHODS.filter((m) => item[m] !== undefined).map((m) => [m.toUpperCase(), item[m] as Json]);
}

/** "/mva/innsending/{path}" → "/mva/innsending/*" (a proxied route's rest); other templates → Fastify's ":name". */
function fastifyUrl(path: string): string {
  return path.replace(/\/\{(path|appPath)\}$/, '/*').replace(/\{([^}]+)\}/g, ':$1');
}

/** A tenant on the test-environment preset: its routes are the two /mva routes the document uses as examples. */
function gatewayConfig() {
  return normaliseConfig(
    {
      server: { host: '127.0.0.1', port: 0 },
      session: { store: { type: 'memory', maxSessions: 100 }, keys: [{ id: 'k1', secret: Buffer.alloc(32, 7).toString('base64url') }] },
      tenants: [
        {
          id: 'docs',
          publicUrl: PUBLIC_URL,
          idporten: {
            environment: 'test',
            clientId: 'docs-client',
            clientAuth: { method: 'client_secret_post', secret: 'a-client-secret-that-is-long-enough-for-hs256-0123456789' },
          },
          app: { static: APP_DIR },
        },
      ],
    },
    {},
  );
}

async function startGateway(t: Test) {
  const config = gatewayConfig();
  const registered: RouteOptions[] = [];
  const gateway = await buildApp(config, { logger: pino({ level: 'silent' }), onRoute: (route) => registered.push(route) });
  t.teardown(() => gateway.close());
  await gateway.app.ready();
  return { gateway, config, registered, tenant: config.tenants[0]! };
}

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ $id: 'openapi', components: spec.components }, 'openapi');

/** The media schema, with its component references pointed into the document. */
function compile(schema: Json) {
  const text = JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/');
  return ajv.compile(JSON.parse(text) as Json);
}

/** What assertDocumented reads of an answer: an injected one, or one that came over a real connection. */
type Answer = Pick<LightMyRequestResponse, 'statusCode' | 'headers' | 'body'>;

/**
 * The answer's status, content type and body are the ones the document gives for this operation, and every
 * response header the document fixes to one value (`const`) has that value.
 */
function assertDocumented(t: Test, method: string, path: string, res: Answer): void {
  const item = paths[path];
  const operation = item === undefined ? undefined : (deref(item)[method.toLowerCase()] as Json | undefined);
  if (!t.ok(operation, `${method} ${path} is documented`) || !operation) return;
  const response = (operation.responses as Json)[String(res.statusCode)];
  if (!t.ok(response, `${method} ${path} documents status ${res.statusCode}`)) return;
  for (const [name, header] of Object.entries((deref(response).headers ?? {}) as Record<string, Json>)) {
    const fixed = (deref(header).schema as Json | undefined)?.const;
    if (fixed !== undefined) t.equal(res.headers[name.toLowerCase()], fixed, `${method} ${path} ${res.statusCode} has ${name}: ${String(fixed)}`);
  }
  const content = deref(response).content as Record<string, Json> | undefined;
  const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (content === undefined) {
    t.equal(res.body, '', `${method} ${path} ${res.statusCode} has no body, as documented`);
    return;
  }
  if (res.statusCode === 503) {
    // RFC 9110 §10.2.3: every 503 of the gateway says when to try again, in delta-seconds, and the document says so.
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/, `${method} ${path} 503 carries Retry-After in seconds`);
    t.ok(declaresRetryAfter(response), `${method} ${path} 503 declares Retry-After`);
  }
  const media = content[mediaType];
  if (!t.ok(media, `${method} ${path} ${res.statusCode} documents ${mediaType}`) || !media) return;
  if (mediaType.includes('json')) {
    const validate = compile(media.schema as Json);
    t.ok(validate(JSON.parse(res.body)), `${method} ${path} ${res.statusCode} body matches its schema`, { errors: validate.errors, body: res.body });
  }
}

/** The response declares the Retry-After header, as components/headers/RetryAfter. */
function declaresRetryAfter(response: unknown): boolean {
  const header = (deref(response).headers as Json | undefined)?.['Retry-After'];
  return header !== undefined && deref(header) === (spec.components as Json & { headers: Json }).headers.RetryAfter;
}

t.test('openapi.yaml is an OpenAPI 3.1 document with info and paths', async (t) => {
  t.match(spec.openapi, /^3\.1\.\d+$/);
  const info = spec.info as Json;
  t.type(info.title, 'string');
  t.equal(info.version, pkg.version, 'info.version follows package.json');
  t.ok(Object.keys(paths).length > 0);
});

t.test('every $ref in openapi.yaml resolves', async (t) => {
  const refs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref' && typeof value === 'string') refs.push(value);
        else walk(value);
      }
    }
  };
  walk(spec);
  t.ok(refs.length > 0);
  for (const ref of refs) t.doesNotThrow(() => resolvePointer(ref), ref);
});

t.test('documents exactly the gateway-owned routes the app registers', async (t) => {
  const { registered, tenant } = await startGateway(t);
  const underConfiguredRoute = (url: string) => tenant.routes.some((r) => url === r.path || url.startsWith(`${r.path}/`));
  const methodsOf = (route: RouteOptions) => (Array.isArray(route.method) ? route.method : [route.method]);
  const getUrls = new Set(registered.filter((r) => methodsOf(r).includes('GET')).map((r) => r.url));

  const owned = new Set<string>();
  const appMethods = new Set<string>();
  let proxiedSeen = 0;
  for (const route of registered) {
    if (underConfiguredRoute(route.url)) {
      proxiedSeen++;
      continue;
    }
    // The app's catch-all is constrained (by host for an upstream app; static apps share one, constrained to the
    // hosts that have one); its `/` is the same entry as `/*` (`/{appPath}`).
    if ((route.url === '/' || route.url === '/*') && Object.keys(route.constraints ?? {}).length > 0) {
      for (const method of methodsOf(route)) appMethods.add(method);
      continue;
    }
    for (const method of methodsOf(route)) {
      // Fastify adds HEAD to every GET route by itself.
      if (method === 'HEAD' && getUrls.has(route.url)) continue;
      owned.add(`${method} ${route.url}`);
    }
  }
  t.ok(proxiedSeen > 0, 'the exclusion rule applies to the configured routes only');

  const documented = new Set<string>();
  const appItems = Object.entries(paths).filter(([, item]) => isAppRoute(item));
  for (const [path, item] of Object.entries(paths)) {
    if (isProxied(item) || isAppRoute(item) || isInternal(item)) continue;
    for (const [method] of operationsOf(item)) documented.add(`${method} ${fastifyUrl(path)}`);
  }
  t.same([...documented].sort(), [...owned].sort());

  t.equal(appItems.length, 1, 'one entry describes the app');
  t.ok(appMethods.size > 0, 'the app is registered for the tenant with an app');
  for (const [method] of operationsOf(appItems[0]![1])) t.ok(appMethods.has(method), `the app answers ${method}`);
  t.equal(fastifyUrl(appItems[0]![0]), '/*', 'the app entry is the catch-all');
  const internal = Object.entries(paths).filter(([, item]) => isInternal(item));
  t.ok(internal.length > 0, 'the internal listener\'s endpoints are documented too');
  for (const [path] of internal) t.notOk([...owned].some((route) => route.endsWith(` ${fastifyUrl(path)}`)), `${path} is not a route of the public app`);
});

t.test('documents proxied routes as configured routes that need X-CSRF and answer with problem responses', async (t) => {
  const { gateway, tenant } = await startGateway(t);
  const proxied = Object.entries(paths).filter(([, item]) => isProxied(item));
  t.ok(proxied.length > 0, 'at least one proxied route is described');
  for (const [path, item] of proxied) {
    const routePath = path.replace(/\/\{[^}]+\}$/, '');
    const route = tenant.routes.find((r) => r.path === routePath);
    if (!t.ok(route, `${path} is one of the preset routes`) || !route) continue;
    const operations = operationsOf(item);
    t.same(operations.map(([m]) => m).sort(), [...route.methods].sort(), `${path} documents the route's methods`);
    for (const [method, operation] of operations) {
      // Routed for the tenant's host (routes are data looked up per request, not host-constrained router entries):
      // without X-CSRF the proxy's first check answers, where an unrouted path would be the 404 problem.
      const answer = await gateway.app.inject({ method, url: path.replace(/\{[^}]+\}/g, 'x'), headers: { host: HOST } });
      t.equal(answer.json().code, 'csrf_failed', `${method} ${path} is registered`);
      const params = ((operation.parameters ?? []) as Json[]).map((p) => deref(p));
      t.ok(params.some((p) => p.name === 'X-CSRF' && p.in === 'header' && p.required === true), `${method} ${path} requires X-CSRF`);
      t.same(operation.security, [{ sessionCookie: [] }], `${method} ${path} needs the session cookie`);
      for (const status of ['401', '403', '404', '405', '413', '502', '503', '504']) {
        if (status === '413' && method === 'GET') continue;
        t.ok((operation.responses as Json)[status], `${method} ${path} documents ${status}`);
      }
    }
  }
});

t.test('every documented 503 declares Retry-After (RFC 9110 §10.2.3), as components/headers/RetryAfter', async (t) => {
  let seen = 0;
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of operationsOf(item)) {
      const response = (operation.responses as Json)['503'];
      if (response === undefined) continue;
      seen++;
      t.ok(declaresRetryAfter(response), `${method} ${path} 503 declares Retry-After`);
    }
  }
  t.ok(seen > 10, `503s found (${seen})`);
});

t.test("the Problem schema's code enum is exactly the codes in src/errors.ts", async (t) => {
  const problem = (spec.components as Json).schemas as Record<string, Json>;
  const code = (problem.Problem!.properties as Record<string, Json>).code!;
  t.same([...(code.enum as string[])].sort(), Object.keys(PROBLEMS).sort());
});

t.test('every documented problem example carries the status, title and type its code has in src/errors.ts', async (t) => {
  const codesSeen = new Set<string>();
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of operationsOf(item)) {
      for (const [status, response] of Object.entries(operation.responses as Json)) {
        const examples = (deref(response).content as Record<string, Json> | undefined)?.['application/problem+json']?.examples as Json | undefined;
        for (const example of Object.values(examples ?? {})) {
          const value = deref(example).value as { code: ProblemCode; status: number; title: string; type: string };
          const expected = PROBLEMS[value.code];
          if (!t.ok(expected, `${method} ${path} ${status}: ${value.code} is a known code`)) continue;
          t.same(
            { listedUnder: Number(status), status: value.status, title: value.title, type: value.type },
            { listedUnder: expected.status, status: expected.status, title: expected.title, type: `urn:idporten-bff:problem:${value.code}` },
            `${method} ${path} ${status}: ${value.code}`,
          );
          codesSeen.add(value.code);
        }
      }
    }
  }
  t.same([...codesSeen].sort(), Object.keys(PROBLEMS).sort(), 'every code appears under some operation');
});

t.test('state-changing /auth endpoints document X-CSRF; back-channel logout (server to server) does not', async (t) => {
  for (const [path, item] of Object.entries(paths)) {
    // The app's answers are pages and files; it changes no state of the gateway's. The internal listener is not public.
    if (isProxied(item) || isAppRoute(item) || isInternal(item)) continue;
    for (const [method, operation] of operationsOf(item)) {
      if (method === 'GET') continue;
      const hasCsrf = ((operation.parameters ?? []) as Json[]).some((p) => deref(p).name === 'X-CSRF');
      t.equal(hasCsrf, path !== '/auth/logout/backchannel', `${method} ${path}`);
    }
  }
});

t.test('the SessionView schema describes what sessionView() returns, field for field', async (t) => {
  const validate = compile({ $ref: '#/components/schemas/SessionView' });
  const now = Date.parse('2026-03-02T08:15:00Z');
  const lifetimes = { absoluteLifetimeMs: 8 * 3_600_000, idleTimeoutMs: 30 * 60_000 };
  const session = (user: Json) =>
    ({
      id: 'id',
      hash: 'hash',
      lastSeenAt: now,
      data: {
        tenant: 'docs',
        user,
        createdAt: now - 15 * 60_000,
        tokens: { accessToken: 'at', accessTokenIssuedAt: now, accessTokenExpiresAt: now + 120_000, refreshToken: 'rt', idToken: 'it', scope: 'openid' },
      },
    }) as unknown as Session;
  const full = JSON.parse(JSON.stringify(sessionView(session({ sub: 's', pid: '01817010055', acr: 'idporten-loa-high', amr: ['TestID'], locale: 'nn', sid: 'x' }), lifetimes, now, { exposePid: true })));
  t.equal(full.user.pid, '01817010055', 'pid with exposePid');
  t.equal(full.session.idleExpiresIn, 30 * 60, 'idleExpiresIn in whole seconds');
  t.equal(full.accessToken.expiresIn, 120);
  t.ok(validate(full), 'with every claim', { errors: validate.errors });
  t.notOk(JSON.stringify(full).includes('"at"') || JSON.stringify(full).includes('"rt"'), 'no token in the view');
  const minimal = JSON.parse(JSON.stringify(sessionView(session({ sub: 's', acr: 'idporten-loa-substantial', amr: [] }), lifetimes, now)));
  t.ok(validate(minimal), 'without pid and locale', { errors: validate.errors });
  const unexposed = JSON.parse(JSON.stringify(sessionView(session({ sub: 's', pid: '01817010055', acr: 'idporten-loa-high', amr: [] }), lifetimes, now)));
  t.notOk('pid' in unexposed.user, 'no pid unless the tenant opts in');
  t.notOk(validate({ ...full, extra: 1 }), 'the schema rejects fields sessionView() does not send');
});

t.test('real answers from the app, over HTTP, match the documented statuses and bodies', async (t) => {
  const { gateway } = await startGateway(t);
  await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (gateway.app.server.address() as AddressInfo).port;
  const send = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string> = {}) => overHttp(port, method, url, headers);

  assertDocumented(t, 'GET', '/healthz', await send('GET', '/healthz'));
  // Provider metadata is never loaded here, so the gateway is not ready.
  const ready = await send('GET', '/readyz');
  t.equal(ready.statusCode, 503);
  assertDocumented(t, 'GET', '/readyz', ready);
  assertDocumented(t, 'GET', '/metrics', await send('GET', '/metrics'));

  assertDocumented(t, 'GET', '/auth/session', await send('GET', '/auth/session'));
  assertDocumented(t, 'GET', '/auth/session', await send('GET', '/auth/session', { host: 'elsewhere.example' }));
  assertDocumented(t, 'POST', '/auth/session/refresh', await send('POST', '/auth/session/refresh'));
  assertDocumented(t, 'POST', '/auth/session/refresh', await send('POST', '/auth/session/refresh', { 'x-csrf': '1' }));

  const logout = await send('POST', '/auth/logout', { 'x-csrf': '1', accept: 'application/json' });
  t.equal(logout.statusCode, 200);
  assertDocumented(t, 'POST', '/auth/logout', logout);
  assertDocumented(t, 'POST', '/auth/logout', await send('POST', '/auth/logout', { origin: 'https://attacker.example' }));
  assertDocumented(t, 'GET', '/auth/logout/callback', await send('GET', '/auth/logout/callback'));
  assertDocumented(t, 'GET', '/auth/sessions', await send('GET', '/auth/sessions'));
  assertDocumented(t, 'DELETE', '/auth/sessions/{handle}', await send('DELETE', '/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA'));
  assertDocumented(t, 'DELETE', '/auth/sessions/{handle}', await send('DELETE', '/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA', { 'x-csrf': '1' }));
  assertDocumented(t, 'POST', '/auth/logout/all', await send('POST', '/auth/logout/all'));
  assertDocumented(t, 'POST', '/auth/logout/all', await send('POST', '/auth/logout/all', { 'x-csrf': '1' }));

  assertDocumented(t, 'GET', '/auth/logout/frontchannel', await send('GET', `/auth/logout/frontchannel?iss=${encodeURIComponent(ISSUER)}&sid=abc`));
  assertDocumented(t, 'GET', '/auth/logout/frontchannel', await send('GET', '/auth/logout/frontchannel?iss=https%3A%2F%2Fother.example&sid=abc'));
  assertDocumented(t, 'POST', '/auth/logout/backchannel', await send('POST', '/auth/logout/backchannel', { 'content-type': 'application/x-www-form-urlencoded' }));
  assertDocumented(t, 'GET', '/auth/login/cancelled', await send('GET', '/auth/login/cancelled'));

  assertDocumented(t, 'POST', '/mva/validering', await send('POST', '/mva/validering'));
  assertDocumented(t, 'POST', '/mva/validering', await send('POST', '/mva/validering', { 'x-csrf': '1' }));
  assertDocumented(t, 'GET', '/mva/innsending/{path}', await send('GET', '/mva/innsending/instances', { 'x-csrf': '1' }));

  const html = { accept: 'text/html', 'sec-fetch-mode': 'navigate' };
  assertDocumented(t, 'GET', '/{appPath}', await send('GET', '/app/settings/42', html));
  assertDocumented(t, 'GET', '/{appPath}', await send('GET', '/assets/missing.js', html));
  assertDocumented(t, 'GET', '/{appPath}', await send('POST', '/', html));
});

/** One request over a real connection (no keep-alive), as a browser or an SPA's fetch sends it. */
function overHttp(port: number, method: string, url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path: url, agent: false, headers: { host: HOST, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

// Answers Fastify's inject never meets: Node's own limits (the request head's size) act before a route runs; and the
// media types the static server gives the app's files.
t.test('real answers over HTTP at the edges: a request head over the limit, the app\'s files', async (t) => {
  const { gateway } = await startGateway(t);
  await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (gateway.app.server.address() as AddressInfo).port;
  const get = (url: string, headers?: Record<string, string>) => overHttp(port, 'GET', url, headers);
  const navigation = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

  assertDocumented(t, 'GET', '/healthz', await get('/healthz'));
  assertDocumented(t, 'GET', '/readyz', await get('/readyz'));
  assertDocumented(t, 'GET', '/auth/session', await get('/auth/session'));

  // /auth/logout/continue: a handle that does not open, one longer than the route takes, and one so long that the
  // request line passes Node's 16 KiB limit for the request head, which answers before the route.
  const refused = await get('/auth/logout/continue?t=not-a-handle', navigation);
  t.equal(refused.statusCode, 400);
  assertDocumented(t, 'GET', '/auth/logout/continue', refused);
  const overlong = await get(`/auth/logout/continue?t=${'a'.repeat(8_193)}`, navigation);
  t.equal(overlong.statusCode, 400, 'a t longer than 8192 characters: 400');
  t.equal(JSON.parse(overlong.body).code, 'invalid_request');
  assertDocumented(t, 'GET', '/auth/logout/continue', overlong);
  const overHead = await get(`/auth/logout/continue?t=${'a'.repeat(16_385)}`, navigation);
  t.equal(overHead.statusCode, 431, 'a request head over 16 KiB: 431 from the server, before any route');
  t.equal(JSON.parse(overHead.body).code, 'headers_too_large');
  assertDocumented(t, 'GET', '/auth/logout/continue', overHead);

  // The app's files with the media types the static server gives them.
  const index = await get('/', navigation);
  t.match(index.headers['content-type'], /^text\/html/);
  assertDocumented(t, 'GET', '/{appPath}', index);
  const script = await get('/assets/app-7c1e4b9a.js', { accept: '*/*', 'sec-fetch-dest': 'script' });
  t.match(script.headers['content-type'], /^application\/javascript/, 'a content-hashed script');
  t.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
  assertDocumented(t, 'GET', '/{appPath}', script);
  const style = await get('/assets/style.css', { accept: 'text/css', 'sec-fetch-dest': 'style' });
  t.match(style.headers['content-type'], /^text\/css/);
  assertDocumented(t, 'GET', '/{appPath}', style);
  assertDocumented(t, 'GET', '/{appPath}', await get('/assets/missing.js', { accept: '*/*' }));
});
