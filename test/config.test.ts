import t, { type Test } from 'tap';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfigFile, normaliseConfig, resolveConfigPath } from '../src/config/load.js';
import { loadConfigFromProcess, NO_CONFIG_MESSAGE } from '../src/config/cli.js';
import { parseDurationMs } from '../src/config/duration.js';
import { parseSizeBytes } from '../src/config/size.js';
import { deriveSessionKey } from '../src/config/session-keys.js';
import { PRESETS } from '../src/config/presets.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchemaJson } from '../src/config/schema.js';
import { cookiePolicy, sessionCookieAttributes, transactionCookieAttributes } from '../src/session/cookies.js';

const configDir = fileURLToPath(new URL('../config/', import.meta.url));
const fixtureDir = fileURLToPath(new URL('./fixtures/config/', import.meta.url));

const sessionKey = randomBytes(32).toString('base64');
const rsaJwk = JSON.stringify({ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'rsa-1' });
const ecJwk = JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }));
const env: NodeJS.ProcessEnv = {
  BFF_SESSION_KEY: sessionKey,
  BFF_SESSION_KEY_PREVIOUS: randomBytes(48).toString('base64url'),
  DEMO_CLIENT_SECRET: 'demo-secret',
  DEMO_PUBLIC_URL: 'http://localhost:3000',
  DEMO_OP_URL: 'http://127.0.0.1:4100',
  DEMO_SKATTEETATEN_URL: 'http://127.0.0.1:4101',
  DEMO_ALTINN_URL: 'http://127.0.0.1:4102',
  IDPORTEN_CLIENT_ID: 'test-client',
  IDPORTEN_JWK: rsaJwk,
  REDIS_URL: 'redis://127.0.0.1:6379',
  ACME_CLIENT_ID: 'acme-client',
  ACME_JWK: ecJwk,
  BETA_CLIENT_ID: 'beta-client',
  BETA_CLIENT_SECRET: 'beta-secret',
};

/** A small valid configuration; each broken case changes one thing in a fresh copy. */
function validConfig(): any {
  return {
    session: { keys: [{ id: 'k1', secret: sessionKey }] },
    tenants: [
      {
        id: 'demo',
        publicUrl: 'http://localhost:3000',
        idporten: {
          issuer: 'http://127.0.0.1:4100',
          clientId: 'demo-spa',
          clientAuth: { method: 'client_secret_post', secret: 'demo-secret' },
        },
        altinn: { exchangeUrl: 'http://127.0.0.1:4102/authentication/api/v1/exchange/id-porten' },
        routes: [
          { path: '/mva/validering', upstream: 'http://127.0.0.1:4101/valider', token: 'idporten', methods: ['post'] },
          { path: '/mva/innsending', upstream: 'http://127.0.0.1:4102/skd/app/', token: 'altinn' },
        ],
      },
    ],
  };
}

/** Asserts that `load` throws a ConfigError with an issue at `path` whose message contains `message`. */
function assertIssue(t: Test, load: () => unknown, path: string | RegExp, message: string | RegExp): ConfigError | undefined {
  try {
    load();
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      t.fail(`expected a ConfigError, got ${String(err)}`);
      return undefined;
    }
    const found = err.issues.find(
      (issue) =>
        (typeof path === 'string' ? issue.path === path : path.test(issue.path)) &&
        (typeof message === 'string' ? issue.message.includes(message) : message.test(issue.message)),
    );
    t.ok(found, `issue at ${String(path)} matching ${String(message)}`, { issues: err.issues });
    return err;
  }
  t.fail('expected a ConfigError, but the configuration loaded');
  return undefined;
}

t.test('config/schema.json is exactly what the TypeBox schema in src/config/schema.ts produces (npm run schema)', async (t) => {
  const onDisk = readFileSync(new URL('../config/schema.json', import.meta.url), 'utf8');
  t.equal(onDisk, configSchemaJson(), 'config/schema.json is out of date: run npm run schema');
});

t.test('the example configurations load', async (t) => {
  t.test('config/demo.yaml describes the local demo stack', async (t) => {
    const config = loadConfigFile(`${configDir}demo.yaml`, env);
    const tenant = config.tenants[0]!;
    t.equal(tenant.publicUrl, 'http://localhost:3000');
    t.equal(tenant.idporten.issuer, 'http://127.0.0.1:4100');
    t.same(tenant.idporten.clientAuth, { method: 'client_secret_post', secret: 'demo-secret' });
    t.equal(tenant.idporten.postLogoutRedirectUri, 'http://localhost:3000/');
    t.same(
      tenant.routes.map((route) => [route.path, route.upstream, route.token, route.methods]),
      [
        ['/mva/validering', 'http://127.0.0.1:4101/api/mva/grensesnittstoette/mva-melding/valider', 'idporten', ['POST']],
        ['/mva/innsending', 'http://127.0.0.1:4102/skd/mva-melding-innsending-etm2', 'altinn', ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']],
      ],
    );
    t.equal(tenant.routes[1]!.bodyLimitBytes, 30_000_000);
    t.equal(config.session.absoluteLifetimeMs, 8 * 3600_000);
    t.equal(config.session.keys[0]!.secret.length, 32);
  });

  t.test('config/idporten-test.yaml gets issuer, Altinn exchange, routes and scopes from the test preset', async (t) => {
    const config = loadConfigFile(`${configDir}idporten-test.yaml`, env);
    const tenant = config.tenants[0]!;
    t.equal(tenant.idporten.issuer, 'https://test.idporten.no');
    t.equal(tenant.altinn?.exchangeUrl, 'https://platform.tt02.altinn.no/authentication/api/v1/exchange/id-porten');
    t.same(
      tenant.routes.map((route) => [route.path, route.upstream, route.token, route.methods]),
      [
        ['/mva/validering', 'https://idporten-api-sbstest.sits.no/api/mva/grensesnittstoette/mva-melding/valider', 'idporten', ['POST']],
        ['/mva/innsending', 'https://skd.apps.tt02.altinn.no/skd/mva-melding-innsending-etm2', 'altinn', ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']],
      ],
    );
    t.same(tenant.idporten.scopes, [
      'openid',
      'skatteetaten:mvameldingvalidering',
      'skatteetaten:mvameldinginnsending',
      'altinn:instances.read',
      'altinn:instances.write',
    ]);
    t.equal(tenant.idporten.clientAuth.method, 'private_key_jwt');
    t.equal(tenant.idporten.clientAuth.method === 'private_key_jwt' && tenant.idporten.clientAuth.privateKeyJwk.kid, 'rsa-1');
    t.same(config.server.trustProxy, ['10.0.0.0/8']);
    t.equal(config.server.metricsPort, 9464);
  });

  t.test('config/multi-tenant.yaml: two tenants on Redis, explicit routes win over the preset', async (t) => {
    const config = loadConfigFile(`${configDir}multi-tenant.yaml`, env);
    t.same(config.session.store, { type: 'redis', mode: 'single', url: 'redis://127.0.0.1:6379', keyPrefix: 'bff:', allowPlaintext: false });
    t.same(config.session.keys.map((key) => key.id), ['k2', 'k1']);
    const [acme, beta] = config.tenants;
    t.equal(acme!.idporten.issuer, PRESETS.prod.issuer);
    t.same(acme!.idporten.allowedAcrValues, ['idporten-loa-high']);
    t.same(acme!.idporten.allowedLocales, ['nb', 'nn', 'en']);
    t.equal(acme!.routes.length, 2);
    t.same(beta!.routes.map((route) => route.path), ['/mva/validering']);
    t.equal(beta!.routes[0]!.timeoutMs, 60_000);
    // No Altinn route, so no Altinn scopes are asked for.
    t.same(beta!.idporten.scopes, ['openid', 'skatteetaten:mvameldingvalidering', 'skatteetaten:mvameldinginnsending']);
    t.equal(beta!.idporten.logoutHint, 'client_id');
    t.same(config.server.trustProxy, ['10.0.0.0/8'], 'behind the load balancer, its addresses');
  });

  t.test('no shipped configuration trusts every proxy: each lists its proxies or none', async (t) => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { parse } = await import('yaml');
    const files = readdirSync(configDir).filter((name) => /\.ya?ml$/.test(name));
    t.ok(files.includes('multi-tenant.yaml'));
    for (const name of files) {
      const trustProxy = (parse(readFileSync(`${configDir}${name}`, 'utf8')) as { server?: { trustProxy?: unknown } }).server?.trustProxy;
      t.ok(trustProxy === undefined || trustProxy === false || Array.isArray(trustProxy), `${name}: server.trustProxy is ${JSON.stringify(trustProxy)}`);
    }
  });
});

t.test('defaults fill what the file leaves out', async (t) => {
  const config = normaliseConfig(validConfig(), {});
  t.same(config.server, {
    host: '127.0.0.1',
    port: 3000,
    trustProxy: false,
    shutdownTimeoutMs: 10_000,
    logLevel: 'info',
    requestTimeoutMs: 60_000,
    headersTimeoutMs: 10_000,
    rateLimit: { login: { max: 30, windowMs: 60_000 } },
  });
  t.same(config.session.store, { type: 'memory', maxSessions: 100_000 });
  t.equal(config.session.idleTimeoutMs, 30 * 60_000);
  t.equal(config.session.refreshLeewayMs, 30_000);
  t.equal(config.session.cookieName, 'bff');
  t.equal(config.session.sameSite, 'strict');
  const { idporten, routes } = config.tenants[0]!;
  t.equal(idporten.acrValues, 'idporten-loa-substantial');
  t.same(idporten.allowedAcrValues, ['idporten-loa-substantial', 'idporten-loa-high']);
  t.equal(idporten.uiLocales, 'nb');
  t.same(idporten.allowedLocales, ['nb', 'nn', 'en', 'se']);
  t.equal(idporten.logoutHint, 'id_token');
  t.equal(idporten.usePar, true);
  t.equal(idporten.httpTimeoutMs, 10_000);
  t.equal(routes[0]!.timeoutMs, 30_000);
  t.same(routes[0]!.forwardHeaders, []);
  t.equal(config.tenants[0]!.exposePid, false);
  t.equal(config.tenants[0]!.app, undefined, 'no app unless one is configured');
  t.same(routes[0]!.methods, ['POST'], 'methods are upper-cased');
  t.equal(routes[1]!.upstream, 'http://127.0.0.1:4102/skd/app', 'trailing slash removed from the upstream');
});

t.test('the default idle timeout follows a shorter absolute lifetime down', async (t) => {
  const short = validConfig();
  short.session.absoluteLifetime = '5m';
  const config = normaliseConfig(short, {});
  t.equal(config.session.absoluteLifetimeMs, 5 * 60_000);
  t.equal(config.session.idleTimeoutMs, 5 * 60_000, 'min(30m, absoluteLifetime)');

  const long = validConfig();
  long.session.absoluteLifetime = '2h';
  t.equal(normaliseConfig(long, {}).session.idleTimeoutMs, 30 * 60_000, '30m when the lifetime is longer');

  const written = validConfig();
  Object.assign(written.session, { absoluteLifetime: '5m', idleTimeout: '10m' });
  const err = assertIssue(t, () => normaliseConfig(written, {}), 'session.idleTimeout', 'must not be longer than session.absoluteLifetime (5m)');
  t.same(err?.issues.map((issue) => issue.path), ['session.idleTimeout'], 'only the key the operator wrote is named');
});

t.test('publicUrl keeps only the origin and drops a trailing slash', async (t) => {
  const raw = validConfig();
  raw.tenants[0].publicUrl = 'http://localhost:3000/';
  t.equal(normaliseConfig(raw, {}).tenants[0]!.publicUrl, 'http://localhost:3000');
});

/** validConfig() with a second tenant (a copy of the first) on `publicUrl`. */
function twoTenants(publicUrl: string): any {
  const raw = validConfig();
  raw.tenants.push({ ...structuredClone(raw.tenants[0]), id: 'b', publicUrl });
  return raw;
}

t.test('http://NAME.localhost:PORT is a loopback origin, like http://localhost:PORT (RFC 6761 section 6.3)', async (t) => {
  const raw = twoTenants('http://b.localhost:3000');
  raw.tenants[1].idporten.postLogoutRedirectUri = 'http://b.localhost:3000/signed-out';
  const config = normaliseConfig(raw, {});
  const tenant = config.tenants[1]!;
  t.equal(tenant.publicUrl, 'http://b.localhost:3000');
  t.equal(tenant.idporten.postLogoutRedirectUri, 'http://b.localhost:3000/signed-out');
  t.equal(normaliseConfig(twoTenants('http://b.localhost:3000'), {}).tenants[1]!.idporten.postLogoutRedirectUri, 'http://b.localhost:3000/', 'the default follows publicUrl');

  t.test('its cookies: plain-http loopback gets neither Secure nor the __Host- prefix', async (t) => {
    const policy = cookiePolicy(tenant.publicUrl, config.session.cookieName, config.session.sameSite);
    t.equal(policy.sessionName, 'bff');
    t.equal(policy.transactionPrefix, 'bff-login-');
    t.equal(sessionCookieAttributes(policy).secure, false);
    t.equal(transactionCookieAttributes(policy, 600).secure, false);
  });
  t.test('on https it gets both, like any https origin', async (t) => {
    const policy = cookiePolicy('https://b.localhost:3443', 'bff', 'strict');
    t.equal(policy.sessionName, '__Host-bff');
    t.equal(sessionCookieAttributes(policy).secure, true);
  });
  t.test('the gateway\'s own connections still need a literal loopback name for plain http', async (t) => {
    const upstream = validConfig();
    upstream.tenants[0].routes[0].upstream = 'http://api.localhost:4101/valider';
    assertIssue(t, () => normaliseConfig(upstream, {}), 'tenants[0].routes[0].upstream', 'http is allowed only for localhost, 127.0.0.1 and [::1]');
  });
  t.test('a name that only ends in "localhost" is not under .localhost', async (t) => {
    assertIssue(t, () => normaliseConfig(twoTenants('http://evillocalhost:3000'), {}), 'tenants[1].publicUrl', 'http is allowed only for localhost, NAME.localhost');
    assertIssue(t, () => normaliseConfig(twoTenants('http://b.localhost.example.no'), {}), 'tenants[1].publicUrl', 'use https');
  });
});

t.test('two tenants on one host name share cookies whatever their ports, so that is refused', async (t) => {
  const message =
    'has the same host name (localhost) as tenants[0].publicUrl; browsers share cookies across ports, so each tenant needs its own host name';
  assertIssue(t, () => normaliseConfig(twoTenants('http://localhost:3001'), {}), 'tenants[1].publicUrl', message);
  assertIssue(t, () => normaliseConfig(twoTenants('https://localhost'), {}), 'tenants[1].publicUrl', message);
  t.equal(normaliseConfig(twoTenants('http://127.0.0.1:3000'), {}).tenants.length, 2, 'localhost and 127.0.0.1 are different host names');
  t.equal(normaliseConfig(twoTenants('http://b.localhost:3001'), {}).tenants.length, 2, 'localhost and b.localhost are different host names');
});

t.test('session.store for Redis', async (t) => {
  const withStore = (store: unknown) => {
    const raw = validConfig();
    raw.session.store = store;
    return raw;
  };
  const storeOf = (store: unknown) => normaliseConfig(withStore(store), {}).session.store;

  t.test('one server: url', async (t) => {
    t.same(storeOf({ type: 'redis', url: 'rediss://redis.example.no:6380/2' }), {
      type: 'redis', mode: 'single', url: 'rediss://redis.example.no:6380/2', keyPrefix: 'bff:', allowPlaintext: false,
    });
    for (const url of ['redis://localhost:6379', 'redis://127.0.0.1', 'redis://[::1]:6379']) {
      t.equal((storeOf({ type: 'redis', url }) as { url: string }).url, url, `${url}: plain redis:// on this machine`);
    }
  });
  t.test('a cluster: cluster.nodes', async (t) => {
    t.same(storeOf({ type: 'redis', cluster: { nodes: ['rediss://r1.example.no:6379', 'rediss://r2.example.no:6379'] }, keyPrefix: 'gw:' }), {
      type: 'redis', mode: 'cluster', url: 'rediss://r1.example.no:6379', nodes: ['rediss://r1.example.no:6379', 'rediss://r2.example.no:6379'], keyPrefix: 'gw:', allowPlaintext: false,
    });
  });
  t.test('a primary through Sentinel: sentinel.nodes and sentinel.name', async (t) => {
    t.same(storeOf({ type: 'redis', sentinel: { nodes: ['rediss://s1.example.no:26379'], name: 'sessions' } }), {
      type: 'redis', mode: 'sentinel', url: 'rediss://s1.example.no:26379', nodes: ['rediss://s1.example.no:26379'], name: 'sessions', keyPrefix: 'bff:', allowPlaintext: false,
      replicaAcks: 1, replicaAckTimeoutMs: 500,
    }, 'a write waits for one replica, 500 ms at most, by default');
    t.match(storeOf({ type: 'redis', sentinel: { nodes: ['rediss://s1.example.no:26379'], name: 'sessions', replicaAcks: 0, replicaAckTimeout: '2s' } }), {
      replicaAcks: 0, replicaAckTimeoutMs: 2_000,
    });
  });
  t.test('plain redis:// off this machine needs allowPlaintext: true', async (t) => {
    const refusal = 'use rediss://, or set session.store.allowPlaintext: true';
    assertIssue(t, () => normaliseConfig(withStore({ type: 'redis', url: 'redis://redis.example.no:6379' }), {}), 'session.store.url', refusal);
    assertIssue(t, () => normaliseConfig(withStore({ type: 'redis', url: 'redis://10.0.0.5:6379' }), {}), 'session.store.url', 'cross the network unencrypted');
    assertIssue(
      t,
      () => normaliseConfig(withStore({ type: 'redis', cluster: { nodes: ['redis://127.0.0.1:7000', 'redis://r2.example.no:7000'] } }), {}),
      'session.store.cluster.nodes[1]',
      refusal,
    );
    assertIssue(
      t,
      () => normaliseConfig(withStore({ type: 'redis', sentinel: { nodes: ['redis://s1.example.no:26379'], name: 'sessions' } }), {}),
      'session.store.sentinel.nodes[0]',
      refusal,
    );
    const allowed = storeOf({ type: 'redis', url: 'redis://redis.internal:6379', allowPlaintext: true });
    t.match(allowed, { mode: 'single', url: 'redis://redis.internal:6379', allowPlaintext: true }, 'an explicit opt-in is honoured');
  });
  t.test('exactly one of url, cluster or sentinel', async (t) => {
    assertIssue(t, () => normaliseConfig(withStore({ type: 'redis' }), {}), 'session.store', 'needs exactly one of url (one server), cluster or sentinel');
    assertIssue(
      t,
      () => normaliseConfig(withStore({ type: 'redis', url: 'rediss://r.example.no', cluster: { nodes: ['rediss://r.example.no'] } }), {}),
      'session.store.cluster',
      'cannot be combined with session.store.url; give exactly one of url, cluster or sentinel',
    );
  });
  t.test('shapes the schema refuses', async (t) => {
    const cases: Array<[store: unknown, path: string, message: string]> = [
      [{ type: 'redis', cluster: { nodes: [] } }, 'session.store.cluster.nodes', 'at least 1 item'],
      [{ type: 'redis', cluster: { node: ['rediss://r.example.no'] } }, 'session.store.cluster.node', 'did you mean "nodes"?'],
      [{ type: 'redis', sentinel: { nodes: ['rediss://s.example.no'] } }, 'session.store.sentinel.name', 'is required'],
      [{ type: 'redis', cluster: { nodes: ['rediss://a.example.no', 'redis://127.0.0.1'] } }, 'session.store.cluster.nodes', 'must all use rediss:// or all use redis://'],
      [{ type: 'redis', cluster: { nodes: ['https://a.example.no'] } }, 'session.store.cluster.nodes[0]', 'must start with redis:// or rediss://'],
      [{ type: 'redis', url: 'rediss://r.example.no', allowPlaintext: 'yes' }, 'session.store.allowPlaintext', 'must be true or false'],
      [{ type: 'memory', cluster: { nodes: ['redis://127.0.0.1'] } }, 'session.store.cluster', 'unknown key "cluster"'],
    ];
    for (const [store, path, message] of cases) assertIssue(t, () => normaliseConfig(withStore(store), {}), path, message);
  });
});

t.test('server timeouts and the login rate limit', async (t) => {
  const raw = validConfig();
  raw.server = { requestTimeout: '2m', headersTimeout: '15s', rateLimit: { login: { max: 5, window: '30s' } } };
  t.match(normaliseConfig(raw, {}).server, { requestTimeoutMs: 120_000, headersTimeoutMs: 15_000, rateLimit: { login: { max: 5, windowMs: 30_000 } } });

  const halfWritten = validConfig();
  halfWritten.server = { rateLimit: { login: { max: 100 } } };
  t.same(normaliseConfig(halfWritten, {}).server.rateLimit, { login: { max: 100, windowMs: 60_000 } }, 'the window keeps its default');

  const shortRequest = validConfig();
  shortRequest.server = { requestTimeout: '5s' };
  t.equal(normaliseConfig(shortRequest, {}).server.headersTimeoutMs, 5_000, 'the default headers timeout follows a shorter request timeout down');

  const cases: Array<[server: unknown, path: string, message: string]> = [
    [{ requestTimeout: '30s', headersTimeout: '45s' }, 'server.headersTimeout', 'must not be longer than server.requestTimeout (30s)'],
    [{ headersTimeout: '2m' }, 'server.headersTimeout', 'must not be longer than server.requestTimeout (1m)'],
    [{ requestTimeout: 'soon' }, 'server.requestTimeout', 'must be a positive duration'],
    [{ rateLimit: { login: { max: 0 } } }, 'server.rateLimit.login.max', 'must be >= 1'],
    [{ rateLimit: { login: { window: '1 minute' } } }, 'server.rateLimit.login.window', 'must be a positive duration'],
    [{ rateLimit: { logn: {} } }, 'server.rateLimit.logn', 'did you mean "login"?'],
  ];
  for (const [server, path, message] of cases) {
    const broken = validConfig();
    broken.server = server;
    assertIssue(t, () => normaliseConfig(broken, {}), path, message);
  }
});

t.test('tenants[].app: the SPA on the tenant\'s origin', async (t) => {
  const withApp = (app: unknown) => {
    const raw = validConfig();
    raw.tenants[0].app = app;
    return raw;
  };
  t.test('static: a folder, resolved against the config file\'s folder', async (t) => {
    const config = normaliseConfig(withApp({ static: '../app', headers: { 'Content-Security-Policy': "default-src 'self'" } }), {}, fixtureDir);
    t.same(config.tenants[0]!.app, {
      kind: 'static',
      dir: fileURLToPath(new URL('./fixtures/app', import.meta.url)),
      requireLogin: false,
      publicPaths: [],
      headers: { 'content-security-policy': "default-src 'self'" },
    });
  });
  t.test('upstream: a dev server or frontend container', async (t) => {
    const config = normaliseConfig(withApp({ upstream: 'http://localhost:5173/', requireLogin: true }), {}, fixtureDir);
    t.same(config.tenants[0]!.app, { kind: 'upstream', url: 'http://localhost:5173', requireLogin: true, publicPaths: [], headers: {} });
  });
  t.test('publicPaths: globs, a trailing slash dropped, repeats once', async (t) => {
    const publicPaths = ['/', '/logget-ut/', '/info/**', '/kunde/*/kvittering', '/hjelp-*.html', '/kvittering/æøå', '/logget-ut'];
    const config = normaliseConfig(withApp({ static: '../app', requireLogin: true, publicPaths }), {}, fixtureDir);
    t.same(config.tenants[0]!.app?.publicPaths, ['/', '/logget-ut', '/info/**', '/kunde/*/kvittering', '/hjelp-*.html', '/kvittering/æøå']);
  });
  t.test('refused', async (t) => {
    const cases: Array<[app: unknown, path: string, message: string]> = [
      [{}, 'tenants[0].app', 'needs exactly one of static (a folder of built files) or upstream (a URL)'],
      [{ static: '../app', upstream: 'http://localhost:5173' }, 'tenants[0].app.upstream', 'cannot be combined with tenants[0].app.static'],
      [{ static: 'no-such-dir' }, 'tenants[0].app.static', 'ENOENT'],
      [{ static: 'lifetime-9h.yaml' }, 'tenants[0].app.static', 'is not a directory'],
      [{ upstream: 'http://frontend.example.no' }, 'tenants[0].app.upstream', 'use https'],
      [{ static: '../app', requireLogin: 'yes' }, 'tenants[0].app.requireLogin', 'must be true or false'],
      [{ static: '../app', headers: { csp: 1 } }, 'tenants[0].app.headers.csp', 'must be a string'],
      [{ static: '../app', headers: { 'bad name': 'x' } }, 'tenants[0].app.headers.bad name', 'is not an HTTP header name'],
      [{ static: '../app', headers: { 'x-a': 'one\r\nset-cookie: x=1' } }, 'tenants[0].app.headers.x-a', 'must not contain line breaks'],
      [{ static: '../app', headers: { 'Set-Cookie': 'a=1' } }, 'tenants[0].app.headers.Set-Cookie', 'never sets cookies'],
      [{ static: '../app', headers: { 'X-A': '1', 'x-a': '2' } }, 'tenants[0].app.headers.x-a', 'repeats tenants[0].app.headers.X-A'],
      [{ dir: '../app' }, 'tenants[0].app.dir', 'unknown key "dir"'],
      [{ static: '../app', publicPaths: '/logget-ut' }, 'tenants[0].app.publicPaths', 'must be a list'],
      [{ static: '../app', publicPaths: [''] }, 'tenants[0].app.publicPaths[0]', 'must not be empty'],
      [{ static: '../app', publicPaths: ['logget-ut'] }, 'tenants[0].app.publicPaths[0]', 'must be a path starting with /'],
      [{ static: '../app', publicPaths: ['/a', '/logget-ut?x=1'] }, 'tenants[0].app.publicPaths[1]', 'no query (?) or fragment (#)'],
      [{ static: '../app', publicPaths: ['/info#top'] }, 'tenants[0].app.publicPaths[0]', 'no query (?) or fragment (#)'],
      [{ static: '../app', publicPaths: ['/logget ut'] }, 'tenants[0].app.publicPaths[0]', 'must not contain spaces'],
      [{ static: '../app', publicPaths: ['/kvittering/%C3%A6'] }, 'tenants[0].app.publicPaths[0]', 'not percent-encoded'],
      [{ static: '../app', publicPaths: ['/info/**.html'] }, 'tenants[0].app.publicPaths[0]', '** stands for whole segments only'],
      [{ static: '../app', publicPaths: ['/info/***'] }, 'tenants[0].app.publicPaths[0]', '** stands for whole segments only'],
      [{ static: '../app', publicPaths: ['/{a,b}'] }, 'tenants[0].app.publicPaths[0]', 'has only two wildcards'],
      [{ static: '../app', publicPaths: ['/[ab]'] }, 'tenants[0].app.publicPaths[0]', 'has only two wildcards'],
      [{ static: '../app', publicPaths: ['/a//b'] }, 'tenants[0].app.publicPaths[0]', 'has an empty segment'],
      [{ static: '../app', publicPaths: ['/a/../b'] }, 'tenants[0].app.publicPaths[0]', 'must not contain . or .. segments'],
      [{ static: '../app', publicPaths: ['/a\\b'] }, 'tenants[0].app.publicPaths[0]', 'must not contain a backslash'],
      [{ static: '../app', publicPaths: ['/auth/**'] }, 'tenants[0].app.publicPaths[0]', '/auth belongs to the gateway'],
      [{ static: '../app', publicPaths: ['/metrics'] }, 'tenants[0].app.publicPaths[0]', '/metrics belongs to the gateway'],
    ];
    for (const [app, path, message] of cases) assertIssue(t, () => normaliseConfig(withApp(app), {}, fixtureDir), path, message);
  });
});

t.test('tenants[].hsts: on by default for an https publicUrl, never for http; settings checked', async (t) => {
  const withHsts = (publicUrl: string, hsts?: unknown) => {
    const raw = validConfig();
    raw.tenants[0].publicUrl = publicUrl;
    if (hsts !== undefined) raw.tenants[0].hsts = hsts;
    return raw;
  };
  const hstsOf = (publicUrl: string, hsts?: unknown) => normaliseConfig(withHsts(publicUrl, hsts), {}).tenants[0]!.hsts;
  const year = 365 * 24 * 3600;
  t.same(hstsOf('https://mva.example.no'), { maxAgeSeconds: year, includeSubDomains: false }, 'https: a year, this host only');
  t.same(hstsOf('https://mva.example.no', true), { maxAgeSeconds: year, includeSubDomains: false }, 'true: the same');
  t.same(hstsOf('https://mva.example.no', { maxAge: '730d', includeSubDomains: true }), { maxAgeSeconds: 2 * year, includeSubDomains: true }, 'longer than a timer could wait');
  t.same(hstsOf('https://mva.example.no', { maxAge: 300 }), { maxAgeSeconds: 300, includeSubDomains: false }, 'seconds as a number');
  t.equal(hstsOf('https://mva.example.no', false), undefined, 'false: none');
  t.equal(hstsOf('http://localhost:3000'), undefined, 'http: none');
  t.equal(hstsOf('http://localhost:3000', { maxAge: '365d', includeSubDomains: true }), undefined, 'http: none, whatever is set');

  const cases: Array<[hsts: unknown, path: string, message: string]> = [
    ['yes', 'tenants[0].hsts', 'must be true or false or an object'],
    [{ maxAge: '1y' }, 'tenants[0].hsts.maxAge', 'must be a positive duration'],
    [{ maxAge: 0 }, 'tenants[0].hsts.maxAge', 'must be a positive duration'],
    [{ maxAge: '500ms' }, 'tenants[0].hsts.maxAge', 'must be at least 1s'],
    [{ includeSubDomains: 'yes' }, 'tenants[0].hsts.includeSubDomains', 'must be true or false'],
    [{ preload: true }, 'tenants[0].hsts.preload', 'unknown key "preload"'],
  ];
  for (const [hsts, path, message] of cases) assertIssue(t, () => normaliseConfig(withHsts('https://mva.example.no', hsts), {}), path, message);
  const raw = validConfig();
  raw.tenants[0].app = { upstream: 'http://localhost:5173', headers: { 'Strict-Transport-Security': 'max-age=1' } };
  assertIssue(t, () => normaliseConfig(raw, {}, fixtureDir), 'tenants[0].app.headers.Strict-Transport-Security', "set for the whole origin by the tenant's hsts setting");
});

t.test('routes: token none, forwardHeaders; tenants: exposePid', async (t) => {
  const raw = validConfig();
  raw.tenants[0].exposePid = true;
  raw.tenants[0].routes.push({ path: '/public', upstream: 'http://127.0.0.1:4101/public', token: 'none', methods: ['GET'] });
  raw.tenants[0].routes[0].forwardHeaders = ['X-Request-Id', 'accept-language', 'x-request-id'];
  const tenant = normaliseConfig(raw, {}).tenants[0]!;
  t.equal(tenant.exposePid, true);
  t.equal(tenant.routes[2]!.token, 'none');
  t.same(tenant.routes[0]!.forwardHeaders, ['x-request-id', 'accept-language'], 'lower-cased, repeats dropped');

  const refused: Array<[name: string, message: string]> = [
    ['Authorization', 'authorization is never forwarded'],
    ['cookie', 'cookie is never forwarded'],
    ['Host', 'host is never forwarded'],
    ['x-forwarded-for', 'the gateway sets X-Forwarded-For'],
    ['connection', 'hop-by-hop'],
    ['Transfer-Encoding', 'hop-by-hop'],
  ];
  for (const [name, message] of refused) {
    const broken = validConfig();
    broken.tenants[0].routes[0].forwardHeaders = ['x-ok', name];
    assertIssue(t, () => normaliseConfig(broken, {}), 'tenants[0].routes[0].forwardHeaders[1]', message);
  }
  const badName = validConfig();
  badName.tenants[0].routes[0].forwardHeaders = ['x request'];
  assertIssue(t, () => normaliseConfig(badName, {}), 'tenants[0].routes[0].forwardHeaders[0]', 'must be an HTTP header name');
  const badToken = validConfig();
  badToken.tenants[0].routes[0].token = 'anonymous';
  assertIssue(t, () => normaliseConfig(badToken, {}), 'tenants[0].routes[0].token', 'must be one of idporten, altinn, none');
  const badFlag = validConfig();
  badFlag.tenants[0].exposePid = 'no';
  assertIssue(t, () => normaliseConfig(badFlag, {}), 'tenants[0].exposePid', 'must be true or false');
});

t.test('an explicit issuer wins over the environment preset', async (t) => {
  const raw = validConfig();
  raw.tenants[0].idporten.environment = 'test';
  t.equal(normaliseConfig(raw, {}).tenants[0]!.idporten.issuer, 'http://127.0.0.1:4100');
});

t.test('CA files are read relative to the config file', async (t) => {
  const config = loadConfigFile(`${fixtureDir}ca-file.yaml`, env);
  t.match(config.tenants[0]!.idporten.caPem, /BEGIN CERTIFICATE/);
  t.match(config.tenants[0]!.upstreamCaPem, /BEGIN CERTIFICATE/);
});

t.test('session.journalDir is taken relative to the configuration file\'s folder; left out, there is none', async (t) => {
  const raw = validConfig();
  t.equal(normaliseConfig(raw, {}, '/etc/idporten-bff').session.journalDir, undefined);
  raw.session.journalDir = 'journal/${HOSTNAME}';
  t.equal(normaliseConfig(raw, { HOSTNAME: 'bff-0' }, '/etc/idporten-bff').session.journalDir, '/etc/idporten-bff/journal/bff-0');
  raw.session.journalDir = '/var/lib/idporten-bff';
  t.equal(normaliseConfig(raw, {}, '/etc/idporten-bff').session.journalDir, '/var/lib/idporten-bff', 'an absolute path as it is');
  raw.session.journalDir = '';
  assertIssue(t, () => normaliseConfig(raw, {}), 'session.journalDir', '');
});

t.test('broken configuration files are refused with the offending place named', async (t) => {
  const cases: Array<[file: string, path: string | RegExp, message: string | RegExp]> = [
    ['yaml-syntax-error.yaml', /yaml-syntax-error\.yaml:\d+:\d+$/, 'YAML syntax error'],
    ['json-syntax-error.json', /json-syntax-error\.json:4:\d+$/, 'JSON syntax error'],
    ['unknown-key.yaml', 'tenants[0].routes[0].tokn', 'unknown key "tokn" (did you mean "token"?)'],
    ['missing-env.yaml', 'tenants[0].idporten.clientAuth.privateKeyJwk', 'environment variable IDPORTEN_JWK_NOT_SET is not set'],
    ['lifetime-9h.yaml', 'session.absoluteLifetime', "Skatteetaten's scopes cap an ID-porten login at 8 hours"],
    ['altinn-route-without-exchange-url.yaml', 'tenants[0].routes[1].token', 'tenants[0].altinn.exchangeUrl'],
    ['duplicate-tenant-ids.yaml', 'tenants[1].id', 'tenant ids must be unique'],
    ['http-public-url.yaml', 'tenants[0].publicUrl', 'http is allowed only for localhost'],
    ['does-not-exist.yaml', /does-not-exist\.yaml$/, 'file not found'],
  ];
  for (const [file, path, message] of cases) {
    t.test(file, async (t) => {
      assertIssue(t, () => loadConfigFile(`${fixtureDir}${file}`, env), path, message);
    });
  }
});

t.test('a directory given as the config file is refused', async (t) => {
  assertIssue(t, () => loadConfigFile(fixtureDir, env), /fixtures\/config$/, 'is a directory, not a file');
});

t.test('broken configurations are refused with the offending path named', async (t) => {
  const cases: Array<[name: string, change: (raw: any) => void, path: string, message: string]> = [
    ['missing clientId', (raw) => delete raw.tenants[0].idporten.clientId, 'tenants[0].idporten.clientId', 'is required'],
    [
      'unknown client auth method',
      (raw) => (raw.tenants[0].idporten.clientAuth.method = 'client_secret_jwt'),
      'tenants[0].idporten.clientAuth.method',
      'must be one of private_key_jwt, client_secret_post, client_secret_basic',
    ],
    [
      'private_key_jwt without a key',
      (raw) => (raw.tenants[0].idporten.clientAuth = { method: 'private_key_jwt', secret: 'x' }),
      'tenants[0].idporten.clientAuth.privateKeyJwk',
      'is required',
    ],
    [
      'a public JWK where the private key belongs',
      (raw) => {
        const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = JSON.parse(rsaJwk);
        raw.tenants[0].idporten.clientAuth = { method: 'private_key_jwt', privateKeyJwk: publicJwk };
      },
      'tenants[0].idporten.clientAuth.privateKeyJwk',
      'must be a private key',
    ],
    ['bad duration', (raw) => (raw.session.idleTimeout = '30 minutes'), 'session.idleTimeout', 'a string like "500ms", "120s", "30m", "8h" or "1d"'],
    ['zero duration', (raw) => (raw.tenants[0].routes[0].timeout = '0s'), 'tenants[0].routes[0].timeout', 'must be a positive duration'],
    ['bad size', (raw) => (raw.tenants[0].routes[0].bodyLimit = '30 megabytes'), 'tenants[0].routes[0].bodyLimit', 'must be a positive size'],
    ['idle timeout longer than the lifetime', (raw) => Object.assign(raw.session, { absoluteLifetime: '1h', idleTimeout: '2h' }), 'session.idleTimeout', 'must not be longer than session.absoluteLifetime (1h)'],
    ['route without upstream', (raw) => delete raw.tenants[0].routes[0].upstream, 'tenants[0].routes[0].upstream', 'is required'],
    ['route under /auth', (raw) => (raw.tenants[0].routes[0].path = '/auth/x'), 'tenants[0].routes[0].path', 'must not start with /auth'],
    ['route with a trailing slash', (raw) => (raw.tenants[0].routes[0].path = '/mva/'), 'tenants[0].routes[0].path', 'must not end with "/"'],
    ['route with ..', (raw) => (raw.tenants[0].routes[0].path = '/mva/../metrics'), 'tenants[0].routes[0].path', '".." segments'],
    ['repeated route path', (raw) => (raw.tenants[0].routes[1].path = '/mva/validering'), 'tenants[0].routes[1].path', 'repeats tenants[0].routes[0].path'],
    ['route nested in another', (raw) => (raw.tenants[0].routes[1].path = '/mva/validering/sub'), 'tenants[0].routes[1].path', 'overlaps tenants[0].routes[0].path'],
    ['upstream with a query', (raw) => (raw.tenants[0].routes[0].upstream = 'http://127.0.0.1:4101/x?a=1'), 'tenants[0].routes[0].upstream', 'query'],
    ['plain-http upstream off this machine', (raw) => (raw.tenants[0].routes[0].upstream = 'http://skatt.example.no/x'), 'tenants[0].routes[0].upstream', 'use https'],
    ['unsupported method', (raw) => (raw.tenants[0].routes[0].methods = ['POST', 'TRACE']), 'tenants[0].routes[0].methods', 'unsupported method TRACE'],
    ['short session key', (raw) => (raw.session.keys[0].secret = randomBytes(16).toString('base64')), 'session.keys[0].secret', 'decodes to 16 bytes'],
    ['session key that is not base64', (raw) => (raw.session.keys[0].secret = 'not base64 at all!'), 'session.keys[0].secret', 'base64'],
    ['no session keys', (raw) => (raw.session.keys = []), 'session.keys', 'at least 1 item'],
    ['session key id with a "."', (raw) => (raw.session.keys[0].id = 'k.2'), 'session.keys[0].id', 'must be 1-32 letters, digits, "_" or "-" (no ".";'],
    ['session key id longer than 32', (raw) => (raw.session.keys[0].id = 'k'.repeat(33)), 'session.keys[0].id', 'must be 1-32 letters'],
    ['repeated session key id', (raw) => raw.session.keys.push({ id: 'k1', secret: sessionKey }), 'session.keys[1].id', 'key ids must be unique'],
    ['publicUrl with a path', (raw) => (raw.tenants[0].publicUrl = 'https://mva.example.no/app'), 'tenants[0].publicUrl', 'must be an origin only'],
    [
      'two tenants on one host',
      (raw) => raw.tenants.push({ ...structuredClone(raw.tenants[0]), id: 'other' }),
      'tenants[1].publicUrl',
      'same host (localhost:3000)',
    ],
    ['no issuer and no environment', (raw) => delete raw.tenants[0].idporten.issuer, 'tenants[0].idporten.issuer', 'idporten.environment'],
    ['no routes and no environment', (raw) => delete raw.tenants[0].routes, 'tenants[0].routes', 'is required'],
    ['scopes without openid', (raw) => (raw.tenants[0].idporten.scopes = ['skatteetaten:mvameldingvalidering']), 'tenants[0].idporten.scopes', 'must include openid'],
    ['unknown acr level', (raw) => (raw.tenants[0].idporten.acrValues = 'Level4'), 'tenants[0].idporten.acrValues', 'must be one of idporten-loa-substantial, idporten-loa-high'],
    ['metrics on the main port', (raw) => (raw.server = { port: 3000, metricsPort: 3000 }), 'server.metricsPort', 'must differ from server.port'],
    ['untrusted proxy entry', (raw) => (raw.server = { trustProxy: ['10.0.0.0/99'] }), 'server.trustProxy[0]', 'CIDR'],
    ['trustProxy: true', (raw) => (raw.server = { trustProxy: true }), 'server.trustProxy', 'list the addresses or CIDRs of your proxies'],
    ['redis store with an http URL', (raw) => (raw.session.store = { type: 'redis', url: 'http://127.0.0.1:6379' }), 'session.store.url', 'redis://'],
    ['memory store with a redis key', (raw) => (raw.session.store = { type: 'memory', url: 'redis://x' }), 'session.store.url', 'unknown key "url"'],
    ['cookie name with the __Host- prefix', (raw) => (raw.session.cookieName = '__Host-bff'), 'session.cookieName', 'adds __Host- itself'],
    [
      'RSA key shorter than 2048 bits',
      (raw) => {
        const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'jwk' });
        raw.tenants[0].idporten.clientAuth = { method: 'private_key_jwt', privateKeyJwk: small };
      },
      'tenants[0].idporten.clientAuth.privateKeyJwk',
      'at least 2048 bits',
    ],
    [
      'symmetric JWK',
      (raw) => (raw.tenants[0].idporten.clientAuth = { method: 'private_key_jwt', privateKeyJwk: { kty: 'oct', k: 'abc' } }),
      'tenants[0].idporten.clientAuth.privateKeyJwk',
      'must be an RSA or EC key',
    ],
    ['CA file without a certificate', (raw) => (raw.tenants[0].idporten.caFile = 'lifetime-9h.yaml'), 'tenants[0].idporten.caFile', 'holds no PEM certificate'],
    ['malformed ${} reference', (raw) => (raw.tenants[0].idporten.clientId = '${client-id}'), 'tenants[0].idporten.clientId', 'not a valid environment variable reference'],
    ['CA file that does not exist', (raw) => (raw.tenants[0].upstreamCaFile = 'no-such-ca.pem'), 'tenants[0].upstreamCaFile', 'ENOENT'],
    ['unknown top-level key', (raw) => (raw.sesion = {}), 'sesion', 'did you mean "session"?'],
  ];
  for (const [name, change, path, message] of cases) {
    t.test(name, async (t) => {
      const raw = validConfig();
      change(raw);
      assertIssue(t, () => normaliseConfig(raw, {}, fixtureDir), path, message);
    });
  }
});

t.test('every problem is reported at once, one per line', async (t) => {
  const raw = validConfig();
  delete raw.tenants[0].idporten.clientId;
  raw.tenants[0].routes[0].tokn = 'idporten';
  raw.session.idleTimeout = 'soon';
  const err = assertIssue(t, () => normaliseConfig(raw, {}), 'tenants[0].idporten.clientId', 'is required');
  t.equal(err?.issues.length, 3);
  t.same(err?.message.split('\n').length, 3);
  t.match(err?.message, /^tenants\[0\]\.idporten\.clientId: is required$/m);
});

t.test('shape errors and cross-field rules are reported in one run: a rule is checked wherever the shape allows it', async (t) => {
  const raw = validConfig();
  raw.server = { trustProxy: true, prot: 3000 };                              // a rule, and an unknown key
  raw.session.keys[0].secret = 'c2hvcnQ';                                       // a rule: too short
  raw.session.idleTimeout = 'soon';                                             // shape: not a duration
  raw.tenants[0].publicUrl = 'http://mva.example.no';                           // a rule: http off this machine
  raw.tenants[0].routes[0].tokn = 'idporten';                                   // shape: unknown key in the same tenant
  raw.tenants[0].routes[1].path = '/mva/../metrics';                            // a rule in the same tenant
  raw.tenants.push({ ...structuredClone(validConfig().tenants[0]), id: 'demo', publicUrl: 'http://localhost:3001', exposePid: 'yes' }); // repeated id, and shape
  const err = assertIssue(t, () => normaliseConfig(raw, {}, fixtureDir), 'server.prot', 'did you mean "port"?');
  const paths = err?.issues.map((issue) => issue.path) ?? [];
  for (const path of [
    'server.prot',
    'session.idleTimeout',
    'tenants[0].routes[0].tokn',
    'tenants[1].exposePid',
    'server.trustProxy',
    'session.keys[0].secret',
    'tenants[0].publicUrl',
    'tenants[0].routes[1].path',
    'tenants[1].id',
  ]) t.ok(paths.includes(path), `${path} is reported`, { paths });
  t.equal(new Set(paths).size, paths.length, 'each problem once');
  t.ok(paths.indexOf('server.prot') < paths.indexOf('server.trustProxy'), 'the shape errors come first');
});

t.test('a rule is not checked on a value whose shape is already wrong, so nothing is reported twice or by a stand-in', async (t) => {
  const raw = validConfig();
  raw.session.absoluteLifetime = 12;       // a number is fine for the schema: 12 s
  raw.session.idleTimeout = { minutes: 5 }; // shape: wrong type
  raw.tenants[0].idporten = 'http://127.0.0.1:4100'; // shape: must be an object
  raw.tenants[0].routes = 'all';           // shape: must be a list
  const err = assertIssue(t, () => normaliseConfig(raw, {}, fixtureDir), 'session.idleTimeout', 'duration');
  t.same(
    err?.issues.map((issue) => issue.path),
    ['session.idleTimeout', 'tenants[0].idporten', 'tenants[0].routes'],
    'only the shape errors: no rule ran on those values, and nothing crashed',
  );
});

t.test('a broken tenant file in tenantsDir does not hide the problems of the rest of the configuration', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-tenants-'));
  writeFileSync(join(dir, 'a.yaml'), 'id: [unclosed\n');
  const raw = validConfig();
  raw.tenantsDir = dir;
  raw.session.keys[0].secret = 'c2hvcnQ';
  const err = assertIssue(t, () => normaliseConfig(raw, {}, fixtureDir), /a\.yaml/, /./);
  t.ok(err?.issues.some((issue) => issue.path === 'session.keys[0].secret'), 'the short session key is reported in the same run', { issues: err?.issues });
});

t.test('cross-field rules are all reported together too', async (t) => {
  const raw = validConfig();
  raw.session.absoluteLifetime = '9h';
  raw.tenants[0].publicUrl = 'http://mva.example.no';
  raw.tenants[0].routes[0].path = '/healthz';
  const err = assertIssue(t, () => normaliseConfig(raw, {}), 'session.absoluteLifetime', '8h');
  t.same(err?.issues.map((issue) => issue.path), ['session.absoluteLifetime', 'tenants[0].publicUrl', 'tenants[0].routes[0].path']);
});

t.test('error messages never repeat a secret from the configuration', async (t) => {
  const shortKey = Buffer.from('sixteen-byte-key').toString('base64');
  const raw = validConfig();
  raw.session.keys[0].secret = shortKey;
  raw.tenants[0].idporten.clientAuth = { method: 'private_key_jwt', privateKeyJwk: '{"kty":"RSA","d":"very-secret-value"' };
  raw.session.store = { type: 'redis', url: 'http://user:hunter2@127.0.0.1' };
  try {
    normaliseConfig(raw, {});
    t.fail('should not load');
  } catch (err) {
    const message = (err as Error).message;
    t.equal((err as ConfigError).issues.length, 3, message);
    t.notMatch(message, shortKey);
    t.notMatch(message, 'very-secret-value');
    t.notMatch(message, 'hunter2');
  }
});

t.test('${NAME} expansion', async (t) => {
  t.test('expands inside strings and takes values as plain text', async (t) => {
    const raw = validConfig();
    raw.tenants[0].idporten.clientId = '${CLIENT_PREFIX}-${CLIENT_SUFFIX}';
    const config = normaliseConfig(raw, { CLIENT_PREFIX: 'a: b', CLIENT_SUFFIX: '${NOT_EXPANDED_TWICE}' });
    t.equal(config.tenants[0]!.idporten.clientId, 'a: b-${NOT_EXPANDED_TWICE}');
  });
  t.test('$${NAME} is a literal ${NAME}', async (t) => {
    const raw = validConfig();
    raw.tenants[0].idporten.clientAuth.secret = 'pa$${SS}';
    t.equal((normaliseConfig(raw, {}).tenants[0]!.idporten.clientAuth as { secret: string }).secret, 'pa${SS}');
  });
  t.test('every missing variable is named with the path where it is used', async (t) => {
    const raw = validConfig();
    raw.session.keys[0].secret = '${KEY_ONE}';
    raw.tenants[0].idporten.clientId = '${CLIENT_ID}';
    const err = assertIssue(t, () => normaliseConfig(raw, {}), 'session.keys[0].secret', 'environment variable KEY_ONE is not set');
    t.same(err?.issues, [
      { path: 'session.keys[0].secret', message: 'environment variable KEY_ONE is not set' },
      { path: 'tenants[0].idporten.clientId', message: 'environment variable CLIENT_ID is not set' },
    ], 'the unexpanded values cause no further errors');
  });
});

t.test('durations', async (t) => {
  t.equal(parseDurationMs(120), 120_000, 'a number is seconds');
  t.equal(parseDurationMs('120'), 120_000, 'a bare string is seconds');
  t.equal(parseDurationMs('120s'), 120_000);
  t.equal(parseDurationMs('500ms'), 500);
  t.equal(parseDurationMs('30m'), 1_800_000);
  t.equal(parseDurationMs('8h'), 28_800_000);
  t.equal(parseDurationMs('1d'), 86_400_000);
  t.equal(parseDurationMs(0.5), 500);
  for (const bad of [0, -1, '0s', '-5s', '5 minutes', '1h30m', '', 'h', true, null]) {
    t.throws(() => parseDurationMs(bad), /must be a positive duration/, `refuses ${JSON.stringify(bad)}`);
  }
  t.throws(() => parseDurationMs('30d'), /at most 24 days/);
});

t.test('sizes', async (t) => {
  t.equal(parseSizeBytes(1024), 1024, 'a number is bytes');
  t.equal(parseSizeBytes('30MB'), 30_000_000);
  t.equal(parseSizeBytes('25MiB'), 25 * 1024 * 1024);
  t.equal(parseSizeBytes('512KB'), 512_000);
  t.equal(parseSizeBytes('1GiB'), 2 ** 30);
  t.equal(parseSizeBytes('100'), 100);
  for (const bad of [0, -1, '0MB', '30 mb', '30TB', 'big']) {
    t.throws(() => parseSizeBytes(bad), /must be a positive size/, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('session keys', async (t) => {
  const material = randomBytes(64);
  const fromBase64 = deriveSessionKey('k', material.toString('base64'));
  const fromBase64url = deriveSessionKey('k', material.toString('base64url'));
  t.equal(fromBase64.secret.length, 32, 'a 64-byte secret is condensed to a 32-byte key');
  t.ok(fromBase64.secret.equals(fromBase64url.secret), 'base64 and base64url of the same bytes give the same key');
  t.notOk(fromBase64.secret.equals(material.subarray(0, 32)), 'the key is derived, not the raw secret');
  t.notOk(deriveSessionKey('k', randomBytes(32).toString('base64')).secret.equals(fromBase64.secret));
  t.throws(() => deriveSessionKey('k', randomBytes(31).toString('base64')), /at least 32 random bytes/);
});

t.test('where the configuration comes from', async (t) => {
  t.equal(resolveConfigPath(['--config', 'a.yaml'], { BFF_CONFIG: 'b.yaml' }), 'a.yaml', '--config wins over BFF_CONFIG');
  t.equal(resolveConfigPath(['--config=a.yaml'], {}), 'a.yaml');
  t.equal(resolveConfigPath([], { BFF_CONFIG: 'b.yaml' }), 'b.yaml');
  t.equal(resolveConfigPath([], {}), undefined);
  t.equal(resolveConfigPath([], { BFF_CONFIG: '' }), undefined);
  assertIssue(t, () => resolveConfigPath(['--config'], {}), '--config', 'needs a file path');

  t.test('without any configuration the process refuses to start and says how to give one', async (t) => {
    const err = assertIssue(t, () => loadConfigFromProcess([], {}), '', NO_CONFIG_MESSAGE);
    t.equal(err?.message, 'no config: pass --config FILE or set BFF_CONFIG');
  });
  t.test('loads the file named by BFF_CONFIG', async (t) => {
    const config = loadConfigFromProcess([], { ...env, BFF_CONFIG: `${configDir}demo.yaml` });
    t.equal(config.tenants[0]!.id, 'demo');
  });
  t.test('loads the file named by --config', async (t) => {
    const config = loadConfigFromProcess(['--config', `${configDir}multi-tenant.yaml`], { ...env, BFF_CONFIG: `${configDir}demo.yaml` });
    t.equal(config.tenants.length, 2);
  });
  t.test('a --config file that does not exist is an error, never a fallback', async (t) => {
    assertIssue(t, () => loadConfigFromProcess(['--config', `${fixtureDir}missing.yaml`], env), /missing\.yaml$/, 'file not found');
  });
});

t.test('DPoP settings: routes carrying the ID-porten token of a DPoP tenant send DPoP unless they say dpop: false (RFC 9449)', async (t) => {
  const on = validConfig();
  on.tenants[0].idporten.dpop = true;
  on.tenants[0].routes.push({ path: '/plain', upstream: 'http://127.0.0.1:4101/plain', token: 'idporten', dpop: false });
  const tenant = normaliseConfig(on, {}).tenants[0]!;
  t.equal(tenant.idporten.dpop, true);
  t.same(tenant.routes.map((r) => [r.path, r.dpop ?? false]), [['/mva/validering', true], ['/mva/innsending', false], ['/plain', false]], 'the Altinn token is not bound; dpop: false is Bearer');
  t.equal(normaliseConfig(validConfig(), {}).tenants[0]!.idporten.dpop, false, 'off by default');

  const routeWithoutTenant = validConfig();
  routeWithoutTenant.tenants[0].routes[0].dpop = true;
  assertIssue(t, () => normaliseConfig(routeWithoutTenant, {}), 'tenants[0].routes[0].dpop', 'tenants[0].idporten.dpop');
  const altinnRoute = structuredClone(on);
  altinnRoute.tenants[0].routes[1].dpop = true;
  assertIssue(t, () => normaliseConfig(altinnRoute, {}), 'tenants[0].routes[1].dpop', 'only a route with token idporten');
  const altinnWithout = validConfig();
  altinnWithout.tenants[0].altinn.dpop = true;
  assertIssue(t, () => normaliseConfig(altinnWithout, {}), 'tenants[0].altinn.dpop', 'needs tenants[0].idporten.dpop');
  const notBoolean = validConfig();
  notBoolean.tenants[0].idporten.dpop = 'yes';
  assertIssue(t, () => normaliseConfig(notBoolean, {}), 'tenants[0].idporten.dpop', 'must be true or false');
});

t.test('routes[].acr: a level the tenant allows is kept; another, or no level at all, is refused', async (t) => {
  const allowed = validConfig();
  allowed.tenants[0].routes[1].acr = 'idporten-loa-high';
  const config = normaliseConfig(allowed, {});
  t.equal(config.tenants[0]!.routes[1]!.acr, 'idporten-loa-high');
  t.notOk('acr' in config.tenants[0]!.routes[0]!, 'a route without acr has none');

  // A step-up login asks /auth/login for the route's level, which grants only allowedAcrValues.
  const notAllowed = validConfig();
  notAllowed.tenants[0].idporten.allowedAcrValues = ['idporten-loa-substantial'];
  notAllowed.tenants[0].routes[1].acr = 'idporten-loa-high';
  assertIssue(t, () => normaliseConfig(notAllowed, {}), 'tenants[0].routes[1].acr', 'must be one of tenants[0].idporten.allowedAcrValues (idporten-loa-substantial)');

  const unknown = validConfig();
  unknown.tenants[0].routes[0].acr = 'level4';
  assertIssue(t, () => normaliseConfig(unknown, {}), 'tenants[0].routes[0].acr', /idporten-loa-substantial/);
});

t.test('digdir and orgno: a tenant without a client awaits the integration apply makes; the admin key is checked', async (t) => {
  const digdir = { environment: 'test', clientId: 'vendor-admin', key: { jwk: rsaJwk } };
  const awaiting = () => {
    const c = validConfig();
    delete c.tenants[0].idporten.clientId;
    delete c.tenants[0].idporten.clientAuth;
    c.tenants[0].orgno = '123456789';
    return c;
  };
  const config = normaliseConfig({ ...awaiting(), digdir }, env);
  t.same(config.tenants, [], 'no client yet: not among the tenants served');
  t.match(config.awaitingClient, [{ id: 'demo', orgno: '123456789', publicUrl: 'http://localhost:3000' }]);
  t.match(config.digdir, { environment: 'test', adminApiUrl: 'https://api.test.samarbeid.digdir.no/', maskinportenIssuer: 'https://test.maskinporten.no/', key: { kind: 'jwk' } });
  assertIssue(t, () => normaliseConfig(awaiting(), env), 'tenants[0].idporten.clientId', 'give the tenant an orgno and the file a digdir block');
  const onlyId = validConfig();
  delete onlyId.tenants[0].idporten.clientAuth;
  assertIssue(t, () => normaliseConfig(onlyId, env), 'tenants[0].idporten.clientAuth', 'is required');
  assertIssue(t, () => normaliseConfig({ ...awaiting(), tenants: [{ ...awaiting().tenants[0], orgno: '12345' }], digdir }, env), 'tenants[0].orgno', '9 digits');
  assertIssue(t, () => normaliseConfig({ ...awaiting(), digdir: { ...digdir, key: { jwk: rsaJwk, privateKey: 'x' } } }, env), 'digdir.key', 'either jwk, or certificateChain and privateKey');
  assertIssue(t, () => normaliseConfig({ ...awaiting(), digdir: { ...digdir, key: { jwk: ecJwk } } }, env), 'digdir.key', 'must be an RSA key');
});
