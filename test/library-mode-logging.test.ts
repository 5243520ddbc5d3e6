/**
 * Library mode and the host's request log (gateway-contract "Adoption": in library mode no authorization code or
 * state reaches the host's request log). A host Fastify server logs every request's URL at `info` ("incoming
 * request"), and /auth/callback's URL carries ID-porten's `code`, `state` and `iss`; /auth/logout/continue's
 * carries a logout handle, /auth/logout/callback's the logout `state`. The plugin keeps those query strings out of
 * whatever the host logs through a request's logger, however the host set its logger up: Fastify's defaults,
 * serializers of its own that read the URL, a child-logger factory that ignores per-route options, a log level of
 * `trace`, or a hook of its own that logs the URL.
 */
import type { Writable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import t, { type Test } from 'tap';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { idportenBff } from '../src/plugin.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { captureLines, CLIENT_SECRET, lookalikeClient, SESSION_KEY } from './helpers/stack.js';

const user = TEST_USERS[0]!;

interface HostLog {
  lines: Record<string, unknown>[];
  text(): string;
}

/**
 * A host server built with `options(stream)` and the plugin, a full login through the ID-porten look-alike, a
 * JSON logout through /auth/logout/continue to ID-porten and back; returns what the host logged and the secrets
 * the browser carried in /auth/* URLs.
 */
async function loginAndLogout(t: Test, options: (stream: Writable) => FastifyServerOptions, host?: (app: FastifyInstance) => void) {
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const op = await startIdportenLookalike({ clients: [lookalikeClient('library-log', publicUrl)] });
  t.teardown(() => op.close());
  const { stream, ...log } = captureLines();
  const app = Fastify(options(stream)) as unknown as FastifyInstance;
  host?.(app);
  await app.register(idportenBff, {
    config: {
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [
        {
          id: 'host',
          publicUrl,
          idporten: { issuer: op.issuer, clientId: 'library-log', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, scopes: ['openid'] },
          routes: [],
        },
      ],
    },
  });
  await app.listen({ host: '127.0.0.1', port });
  t.teardown(() => app.close());
  await app.bffWarmUp();

  const browser = new Browser();
  const done = await loginAtLookalike(browser, `${publicUrl}/auth/login?returnTo=/after-login`, { pid: user.pid });
  t.equal(new URL(done.url).pathname, '/after-login', 'the login came back to returnTo');
  t.equal((await browser.fetch(`${publicUrl}/auth/session`)).status, 200, 'and made a session');

  // A second session of the same user, ended from the first one by its handle (DELETE /auth/sessions/{handle}).
  const other = new Browser();
  await loginAtLookalike(other, `${publicUrl}/auth/login`, { pid: user.pid });
  const listed = JSON.parse((await browser.fetch(`${publicUrl}/auth/sessions`)).body) as { handle: string; current: boolean }[];
  const handle = listed.find((s) => !s.current)?.handle;
  t.ok(handle, 'the first browser sees the second session');
  t.equal((await browser.fetch(`${publicUrl}/auth/sessions/${handle}`, { method: 'DELETE', headers: { 'x-csrf': '1' } })).status, 204, 'and ends it by its handle');

  const logout = await browser.fetch(`${publicUrl}/auth/logout`, { method: 'POST', headers: { 'x-csrf': '1', accept: 'application/json' } });
  const { logoutUrl } = JSON.parse(logout.body) as { logoutUrl: string };
  await browser.followAutoSubmit(await browser.navigate(new URL(logoutUrl, publicUrl).href));

  // Every query the browser sent to /auth/*, and each value in them of a useful length (code, state, the logout
  // handle, …) but the issuer and the returnTo path, which are no secret.
  const secrets = new Set<string>();
  const authUrls = browser.history.map((r) => new URL(r.url)).filter((u) => u.origin === publicUrl && u.pathname.startsWith('/auth/') && u.search !== '');
  for (const url of authUrls) {
    secrets.add(url.search.slice(1));
    for (const [name, value] of url.searchParams) if (name !== 'iss' && name !== 'returnTo' && value.length >= 8) secrets.add(value);
  }
  secrets.add(handle!);
  for (const url of other.history.map((r) => new URL(r.url)).filter((u) => u.origin === publicUrl && u.pathname === '/auth/callback')) secrets.add(url.search.slice(1));
  const paths = new Set(authUrls.map((u) => u.pathname));
  t.ok(paths.has('/auth/callback'), 'the browser went through /auth/callback with a query');
  t.ok(paths.has('/auth/logout/continue'), 'and through /auth/logout/continue with one');
  t.ok([...secrets].some((s) => /^[A-Za-z0-9_-]{20,}$/.test(s)), 'the authorization code is among the values looked for');
  return { log, secrets, publicUrl };
}

function assertNoSecrets(t: Test, log: HostLog, secrets: Set<string>): void {
  const text = log.text();
  t.ok(log.lines.length > 0, 'the host logged lines');
  const leaked = [...secrets].filter((secret) => text.includes(secret) || text.includes(encodeURIComponent(secret)));
  t.same(leaked, [], 'no code, state or handle of an /auth/* URL in the host log');
}

t.test('a host with Fastify({ logger }) at info: its request log has /auth/callback without the code or state', async (t) => {
  const { log, secrets } = await loginAndLogout(t, (stream) => ({ logger: { level: 'info', stream } }));
  assertNoSecrets(t, log, secrets);
  const incoming = log.lines.filter((l) => l.msg === 'incoming request').map((l) => (l.req as { url: string }).url);
  t.ok(incoming.includes('/auth/callback?[redacted]'), 'the callback is still in the request log, by its path');
  t.ok(incoming.includes('/auth/login?[redacted]'), 'so is the login start');
  t.ok(log.lines.some((l) => l.msg === 'request completed'), 'and the completions');
});

t.test('a host at trace, with serializers of its own that read url, originalUrl, query and the raw URL', async (t) => {
  const { log, secrets } = await loginAndLogout(t, (stream) => ({
    logger: {
      level: 'trace',
      stream,
      serializers: {
        req: (req: FastifyRequest) => ({
          method: req.method,
          url: req.url,
          originalUrl: req.originalUrl,
          query: req.query,
          rawUrl: req.raw.url,
        }),
        res: (reply: { statusCode: number; request?: FastifyRequest }) => ({ statusCode: reply.statusCode, url: reply.request?.url }),
      },
    },
  }));
  assertNoSecrets(t, log, secrets);
  t.ok(log.lines.some((l) => (l.req as { url?: string } | undefined)?.url === '/auth/callback?[redacted]'), 'the host serializer ran, on the path');
});

t.test('a host whose child-logger factory ignores per-route options (level, serializers)', async (t) => {
  const { log, secrets } = await loginAndLogout(t, (stream) => ({
    logger: { level: 'info', stream },
    childLoggerFactory: (logger, bindings) => logger.child(bindings),
  }));
  assertNoSecrets(t, log, secrets);
  t.ok(log.lines.some((l) => l.msg === 'incoming request'), 'the host still logs its requests');
});

t.test('a host hook that logs the request URL itself, through request.log', async (t) => {
  const { log, secrets } = await loginAndLogout(
    t,
    (stream) => ({ logger: { level: 'info', stream } }),
    (app) =>
      app.addHook('onRequest', async (request) => {
        request.log.info({ url: request.url, path: request.raw.url, code: (request.query as Record<string, unknown>).code }, `host saw ${request.url}`);
        request.log.info({ parsed: new URL(request.url, 'http://host.example') }, 'a URL object');
        request.log.warn(new Error(`host error at ${request.url}`));
        request.log.child({ query: request.query }).info('a child line');
      }),
  );
  assertNoSecrets(t, log, secrets);
  t.ok(log.lines.some((l) => l.msg === 'host saw /auth/callback?[redacted]'), 'the hook logged the callback, by its path');
  t.ok(log.lines.some((l) => l.parsed === 'http://host.example/auth/callback?[redacted]'), 'a URL object by its JSON form');
  t.ok(log.lines.some((l) => (l.err as { message?: string } | undefined)?.message === 'host error at /auth/callback?[redacted]'), 'an error by its message');
  t.ok(log.lines.some((l) => l.msg === 'a child line' && (l.query as { code?: string }).code === '[redacted]'), 'a child logger made from request.log');
});
