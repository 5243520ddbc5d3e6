/**
 * The Altinn token exchange against misbehaving and TLS-protected exchange servers (findings from
 * the security review), with real HTTP(S) servers on loopback and, end to end, a real gateway.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { boundedFetch, withDefaultCas } from '../src/net/fetch.js';
import { AltinnExchangeError, exchangeForAltinnToken, MAX_EXCHANGE_RESPONSE_BYTES } from '../src/tokens/altinn-exchange.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { createTestPki } from './helpers/tls.js';
import { TEST_USERS } from '../demo/test-users.js';

const run = promisify(execFile);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT-shaped string with these claims (the gateway does not verify Altinn's signature; Altinn's APIs do). */
const jwt = (claims: Record<string, unknown>, signature = 'c2lnbmF0dXJl') => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.${signature}`;
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An exchange endpoint whose answer the test chooses; it counts the bytes it managed to write. */
let handler: Handler = (_req, res) => res.end();
const exchangeServer = createServer((req, res) => handler(req, res));
const exchangeUrl = `http://${await listen(exchangeServer)}/authentication/api/v1/exchange/id-porten`;

const plain = (body: string, headers: Record<string, string> = { 'content-type': 'text/plain' }): Handler => (_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
};

/** Streams `total` bytes of base64url-looking text without a Content-Length, as long as the client reads. */
const endless = (total: number): Handler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  const chunk = Buffer.alloc(16 * 1024, 'A');
  let sent = 0;
  const pump = () => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.on('error', () => undefined);
  pump();
};

/** Sends the headers and a first part of the body, then nothing more. */
const stalls: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2000' });
  res.write('eyJhbGciOi');
};

const MALFORMED: Array<[string, Handler]> = [
  ['non-JWT text', plain('not a token')],
  ['an HTML page', plain('<!doctype html><html><body>Vedlikehold</body></html>', { 'content-type': 'text/html' })],
  ['an empty body', plain('')],
  ['a JSON string that does not end', plain(`"${jwt({ exp: inAnHour() })}`, { 'content-type': 'application/json' })],
  ['a JSON object', plain(JSON.stringify({ token: jwt({ exp: inAnHour() }) }), { 'content-type': 'application/json' })],
  ['a JWT without exp', plain(jwt({ sub: 'alice' }))],
  ['a JWT with exp as a string', plain(jwt({ exp: String(inAnHour()) }))],
  ['a JWT that has already expired', plain(jwt({ exp: Math.floor(Date.now() / 1000) - 60 }))],
  ['a JWT with no signature', plain(`${jwt({ exp: inAnHour() }).split('.').slice(0, 2).join('.')}.`)],
  ['a JWT whose signature part holds a space', plain(jwt({ exp: inAnHour() }, 'abc def'))],
  ['an oversized JWT with Content-Length', plain(jwt({ exp: inAnHour(), pad: 'x'.repeat(MAX_EXCHANGE_RESPONSE_BYTES) }))],
  ['an endless body without Content-Length', endless(64 * 1024 * 1024)],
];

t.test('finding "malformed Altinn exchange answers": every one is an AltinnExchangeError', async (t) => {
  const fetchImpl = boundedFetch({ timeoutMs: 3000 });
  for (const [what, answer] of MALFORMED) {
    handler = answer;
    const started = Date.now();
    const failure = await exchangeForAltinnToken(fetchImpl, exchangeUrl, 'idporten-token', Date.now() + 600_000).then(() => undefined, (err: unknown) => err);
    t.ok(failure instanceof AltinnExchangeError, `${what}: AltinnExchangeError (got ${String(failure)})`);
    t.ok(Date.now() - started < 2500, `${what}: refused without reading on`);
  }

  handler = stalls;
  const slow = await exchangeForAltinnToken(boundedFetch({ timeoutMs: 300 }), exchangeUrl, 'idporten-token', Date.now() + 600_000).then(() => undefined, (err: unknown) => err);
  t.ok(slow instanceof AltinnExchangeError, `a body that stops arriving: AltinnExchangeError (got ${String(slow)})`);

  const good = jwt({ exp: inAnHour() });
  for (const body of [good, ` ${good}\n`, JSON.stringify(good)]) {
    handler = plain(body);
    const accessTokenExpiresAt = Date.now() + 7_200_000;
    t.same(await exchangeForAltinnToken(fetchImpl, exchangeUrl, 'idporten-token', accessTokenExpiresAt), { token: good, expiresAt: (decodeExp(good)) * 1000 }, `accepted: ${JSON.stringify(body.slice(0, 12))}…`);
  }
  handler = plain(good);
  const soon = Date.now() + 60_000;
  t.equal((await exchangeForAltinnToken(fetchImpl, exchangeUrl, 'idporten-token', soon)).expiresAt, soon, 'never kept past the access token it came from');
});

function decodeExp(token: string): number {
  return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
}

t.test('finding "malformed Altinn exchange answers": through the gateway each is 502 upstream_unavailable, never 500', async (t) => {
  const stack = await startStack(t, { upstreams: true, altinnExchangeUrl: exchangeUrl });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[2]!.pid });
  for (const [what, answer] of MALFORMED) {
    handler = answer;
    const res = await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: { 'x-csrf': '1' }, body: '' });
    t.equal(res.status, 502, `${what}: 502`);
    t.equal((JSON.parse(res.body) as { code?: string }).code, 'upstream_unavailable', `${what}: upstream_unavailable`);
  }
  t.equal(stack.altinn!.stats.exchanges, 0, 'the real exchange was never asked');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the session survives');
});

// --- finding: an extra CA replaced the public roots ------------------------------------------------

t.test('finding "extra CA replaces the public roots": the exchange trusts the extra CA and the default store', async (t) => {
  const tenantPki = await createTestPki();
  // Stands in for a publicly trusted CA: in the child's default store through NODE_EXTRA_CA_CERTS.
  const publicPki = await createTestPki();
  const ok: Handler = (_req, res) => res.end('ok');
  const privateSite = `https://${await listen(createHttpsServer({ cert: tenantPki.certPem, key: tenantPki.keyPem }, ok))}/`;
  const publicSite = `https://${await listen(createHttpsServer({ cert: publicPki.certPem, key: publicPki.keyPem }, ok))}/`;

  const cas = withDefaultCas(tenantPki.caPem);
  t.ok(rootCertificates.every((root) => cas.includes(root)), 'every public root is still on the list');
  t.equal(cas.at(-1), tenantPki.caPem, 'the extra CA is added');

  const inProcess = boundedFetch({ timeoutMs: 3000, caPem: tenantPki.caPem });
  t.equal((await inProcess(privateSite)).status, 200, 'the extra CA is trusted');

  const dir = await mkdtemp(join(tmpdir(), 'bff-ca-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const extraCaFile = join(dir, 'public-ca.pem');
  await writeFile(extraCaFile, publicPki.caPem);
  const child = fileURLToPath(new URL('./fixtures/bounded-fetch-child.ts', import.meta.url));
  const inChild = async (caPem?: string) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', child, JSON.stringify({ caPem, urls: [privateSite, publicSite] })], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: extraCaFile },
      timeout: 30_000,
    });
    return JSON.parse(stdout) as Record<string, string | number>;
  };

  const withExtra = await inChild(tenantPki.caPem);
  t.equal(withExtra[privateSite], 200, 'with the tenant CA: its server is trusted');
  t.equal(withExtra[publicSite], 200, 'with the tenant CA: a server from the default store is still trusted');

  const without = await inChild();
  t.not(without[privateSite], 200, 'without the tenant CA: its server is refused (certificates are verified)');
  t.equal(without[publicSite], 200, 'without the tenant CA: the default store is used');
});
