/**
 * How an upstream's answer reaches the browser (src/proxy/forward.ts): small answers in one piece, large and
 * unsized ones streamed with backpressure, HEAD and 304 without a body, failures before and after the headers,
 * and a browser that hangs up taking the upstream request with it. The upstream here is a plain HTTP server
 * whose every answer is scripted per test, and which refuses a request without the gateway's bearer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import fc from 'fast-check';
import Fastify from 'fastify';
import { generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { pino } from 'pino';
import t from 'tap';
import { createAuditLog } from '../src/audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import { BUFFERED_BODY_BYTES } from '../src/proxy/forward.js';
import { registerProxyRoutes } from '../src/proxy/register.js';

const MiB = 1024 * 1024;
const key = await generateKeyPair('ES256');
const bearer = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('alice').setExpirationTime('10m').sign(key.privateKey);

// --- a scripted upstream ------------------------------------------------------------------------------------

type Script = (req: IncomingMessage, res: ServerResponse) => void;
let script: Script = (_req, res) => res.end();
/** Each request's server-side socket closed before its answer was complete. */
const upstreamAborts: string[] = [];
const upstream = createServer((req, res) => {
  const authorization = req.headers.authorization ?? '';
  jwtVerify(authorization.replace(/^Bearer /, ''), key.publicKey).then(
    () => {
      res.on('close', () => {
        if (!res.writableFinished) upstreamAborts.push(req.url ?? '');
      });
      script(req, res);
    },
    () => res.writeHead(401).end(),
  );
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
t.teardown(() => {
  upstream.closeAllConnections();
  upstream.close();
});

// --- the gateway's proxy in front of it ------------------------------------------------------------------------

const route: RouteConfig = { path: '/api', upstream: `${upstreamOrigin}/base`, token: 'idporten', methods: ['GET', 'HEAD', 'POST'], timeoutMs: 2000, bodyLimitBytes: MiB };
const small: RouteConfig = { ...route, path: '/small', upstream: `${upstreamOrigin}/small`, methods: ['POST'], bodyLimitBytes: 1024 };
const tenant = {
  id: 'a',
  publicUrl: 'http://a.test',
  routes: [route, small],
  idporten: {},
} as unknown as TenantConfig;

const app = Fastify({ logger: false });
const logger = pino({ level: 'silent' });
await registerProxyRoutes(app, {
  tenants: [tenant],
  bearerFor: async () => bearer,
  hasSession: async () => true,
  loginUrl: () => '/auth/login',
  auditContext: () => ({}),
  audit: createAuditLog(logger),
  trustProxy: false,
});
await app.listen({ port: 0, host: '127.0.0.1' });
t.teardown(() => app.close());
const gatewayPort = (app.server.address() as AddressInfo).port;

function call(path: string, method = 'GET'): Promise<IncomingMessage> {
  const req = httpRequest({ host: '127.0.0.1', port: gatewayPort, path, method, agent: false, headers: { host: 'a.test', 'x-csrf': '1' } });
  req.end();
  return once(req, 'response').then(([res]) => res as IncomingMessage);
}

async function bodyOf(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

t.beforeEach(() => {
  upstreamAborts.length = 0;
});

// --- answers ----------------------------------------------------------------------------------------------------------

t.test('a small answer arrives whole, with its own Content-Length, Content-Type and status', async (t) => {
  const body = Buffer.from(JSON.stringify({ ok: true, pad: 'x'.repeat(1000) }));
  script = (req, res) => res.writeHead(201, { 'content-type': 'application/json', 'content-length': body.length, etag: '"v1"', 'x-path': req.url }).end(body);
  const res = await call('/api/items?q=1');
  t.equal(res.statusCode, 201);
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['content-length'], String(body.length));
  t.equal(res.headers.etag, '"v1"');
  t.equal(res.headers['x-path'], '/base/items?q=1', 'the upstream path and raw query');
  t.notOk(res.headers['transfer-encoding'], 'sent in one piece, not chunked');
  t.same(await bodyOf(res), body);
});

t.test('an answer without a Content-Type gets none from the gateway either', async (t) => {
  script = (_req, res) => res.writeHead(200, { 'content-length': 3 }).end('abc');
  const res = await call('/api/raw');
  t.equal(res.statusCode, 200);
  t.notOk('content-type' in res.headers, 'no type invented for an untyped answer');
  t.equal((await bodyOf(res)).toString(), 'abc');
});

t.test('an empty answer and a 204 stay empty', async (t) => {
  script = (_req, res) => res.writeHead(200, { 'content-length': 0 }).end();
  const empty = await call('/api/empty');
  t.equal(empty.statusCode, 200);
  t.equal(empty.headers['content-length'], '0');
  t.equal((await bodyOf(empty)).length, 0);

  script = (_req, res) => res.writeHead(204).end();
  const none = await call('/api/none');
  t.equal(none.statusCode, 204);
  t.notOk('content-length' in none.headers, 'RFC 9110 section 8.6: no Content-Length on a 204');
  t.equal((await bodyOf(none)).length, 0);
});

t.test('HEAD keeps the upstream Content-Length and has no body; 304 passes its validators on', async (t) => {
  script = (_req, res) => res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': 5 * MiB }).end();
  const head = await call('/api/file', 'HEAD');
  t.equal(head.statusCode, 200);
  t.equal(head.headers['content-length'], String(5 * MiB), 'RFC 9110 section 9.3.2: the length a GET would have');
  t.equal((await bodyOf(head)).length, 0);

  script = (_req, res) => res.writeHead(304, { etag: '"v2"' }).end();
  const notModified = await call('/api/file');
  t.equal(notModified.statusCode, 304);
  t.equal(notModified.headers.etag, '"v2"');
  t.equal((await bodyOf(notModified)).length, 0);
});

t.test('answers above the buffered size and answers of unknown length stream through byte-exact', async (t) => {
  const large = randomBytes(4 * MiB);
  script = (_req, res) => res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': large.length }).end(large);
  const sized = await call('/api/large');
  t.equal(sized.headers['content-length'], String(large.length));
  t.equal(sha256(await bodyOf(sized)), sha256(large));

  const justOver = randomBytes(BUFFERED_BODY_BYTES + 1);
  script = (_req, res) => res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': justOver.length }).end(justOver);
  t.equal(sha256(await bodyOf(await call('/api/over'))), sha256(justOver));

  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (let i = 0; i < 100; i++) res.write(`line ${i}\n`);
    res.end();
  };
  const chunked = await call('/api/lines');
  t.equal(chunked.headers['transfer-encoding'], 'chunked');
  t.equal((await bodyOf(chunked)).toString().split('\n').length, 101);
});

/**
 * What the kernel may hold of an answer on its way upstream → gateway → browser: the largest receive and send buffers
 * TCP may grow to (tcp_rmem, tcp_wmem), on both connections. Loopback buffers autotune up to these; on some machines
 * that is more than 64 MiB.
 */
function kernelBufferBytes(): number {
  const largest = (file: string) => Number(readFileSync(file, 'utf8').trim().split(/\s+/)[2]);
  try {
    return 2 * (largest('/proc/sys/net/ipv4/tcp_rmem') + largest('/proc/sys/net/ipv4/tcp_wmem'));
  } catch {
    return 32 * MiB;
  }
}

t.test('a browser that reads slowly holds the upstream back instead of filling the gateway memory', async (t) => {
  // Besides the kernel's buffers, a few MiB may sit in the streams' own buffers; a gateway without backpressure would
  // take the whole answer, twice as much as all of that.
  const heldOutside = kernelBufferBytes() + 8 * MiB;
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = Math.ceil(Math.max(64 * MiB, 2 * heldOutside) / chunk.length) * chunk.length;
  let written = 0;
  let blocked = false;
  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!res.write(chunk)) {
          blocked = true;
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
  const res = await call('/api/download');
  res.pause();
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.ok(blocked, 'the upstream had to wait');
  t.ok(written <= heldOutside, `with the browser not reading, the upstream got only ${(written / MiB).toFixed(1)} of ${total / MiB} MiB out (at most ${(heldOutside / MiB).toFixed(0)} MiB can sit in buffers outside the gateway)`);
  let received = 0;
  for await (const part of res) received += (part as Buffer).length;
  t.equal(received, total, 'and everything arrives once the browser reads');
});

t.test('a GET that carries a body goes upstream without it (RFC 9110 section 9.3.1: no defined meaning)', async (t) => {
  let seen: { length?: string | undefined; bytes: number } | undefined;
  script = (req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      seen = { length: req.headers['content-length'], bytes };
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok');
    });
  };
  const req = httpRequest({ host: '127.0.0.1', port: gatewayPort, path: '/api/get-with-body', method: 'GET', agent: false, headers: { host: 'a.test', 'x-csrf': '1', 'content-type': 'text/plain', 'content-length': '5' } });
  req.end('hello');
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  t.equal(res.statusCode, 200);
  t.equal((await bodyOf(res)).toString(), 'ok');
  t.same(seen, { length: undefined, bytes: 0 }, 'no Content-Length and no bytes upstream');
});

t.test('any answer shape passes through intact: status, body bytes, length, type, and no upstream cookie', async (t) => {
  // Around the buffered size on purpose: the two ways an answer can take must agree.
  const lengths = fc.oneof(fc.constantFrom(0, 1, BUFFERED_BODY_BYTES - 1, BUFFERED_BODY_BYTES, BUFFERED_BODY_BYTES + 1), fc.integer({ min: 0, max: 300_000 }));
  const shape = fc.record({
    status: fc.constantFrom(200, 201, 203, 400, 404, 409, 422, 500, 503),
    length: lengths,
    typed: fc.boolean(),
    chunked: fc.boolean(),
    method: fc.constantFrom('GET', 'HEAD'),
  });
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(shape, async ({ status, length, typed, chunked, method }) => {
      runs += 1;
      const body = randomBytes(length);
      script = (_req, res) => {
        const headers: Record<string, string | number> = { 'x-shape': `${status}/${length}`, 'set-cookie': 'upstream=1' };
        if (typed) headers['content-type'] = 'application/octet-stream';
        if (!chunked) headers['content-length'] = length;
        res.writeHead(status, headers);
        // Several writes, so a chunked answer is really sent in chunks.
        for (let at = 0; at < length; at += 50_000) res.write(body.subarray(at, at + 50_000));
        res.end();
      };
      const res = await call('/api/shape', method);
      const received = await bodyOf(res);
      if (res.statusCode !== status) throw new Error(`status ${res.statusCode}, expected ${status}`);
      if (res.headers['x-shape'] !== `${status}/${length}`) throw new Error('an upstream header was lost');
      if ('set-cookie' in res.headers) throw new Error('an upstream cookie reached the browser');
      if (typed !== (res.headers['content-type'] === 'application/octet-stream')) throw new Error(`content-type ${res.headers['content-type']}`);
      if (!chunked && res.headers['content-length'] !== String(length)) throw new Error(`content-length ${res.headers['content-length']}, expected ${length}`);
      const expected = method === 'HEAD' ? Buffer.alloc(0) : body;
      if (!received.equals(expected)) throw new Error(`body of ${received.length} bytes, expected ${expected.length}`);
    }),
    { numRuns: 60 },
  );
  t.equal(runs, 60, 'every generated answer went through the gateway');
});

// --- failures ---------------------------------------------------------------------------------------------------------

t.test('an upstream that dies inside a small answer is 502 problem JSON, with none of the upstream headers', async (t) => {
  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100, etag: '"half"' });
    res.write('{"partial":');
    setTimeout(() => res.socket?.destroy(), 50);
  };
  const res = await call('/api/broken');
  const body = JSON.parse((await bodyOf(res)).toString()) as Record<string, unknown>;
  t.equal(res.statusCode, 502);
  t.match(res.headers['content-type'], /^application\/problem\+json/);
  t.match(body, { code: 'upstream_unavailable' });
  t.notOk('etag' in res.headers, 'no header of the answer that never completed');
});

t.test('an upstream that dies inside a streamed answer ends the browser response early, never as complete', async (t) => {
  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 2 * MiB });
    res.write(Buffer.alloc(MiB));
    setTimeout(() => res.socket?.destroy(), 50);
  };
  const res = await call('/api/cut');
  t.equal(res.statusCode, 200, 'the headers were already out');
  const outcome = await bodyOf(res).then((body) => `complete with ${body.length} bytes`, (err: Error) => `aborted: ${err.message}`);
  t.match(outcome, /^aborted/, 'the browser sees the answer end short of its Content-Length');
});

t.test('an informational 103 Early Hints before the answer is skipped, and the answer passes', async (t) => {
  script = (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok');
  };
  const res = await call('/api/hints');
  t.equal(res.statusCode, 200);
  t.equal((await bodyOf(res)).toString(), 'ok');
});

t.test('an upstream status outside 200-599 is 502, not passed on', async (t) => {
  script = (req, res) => {
    // Written by hand: Node's own server refuses to send such a status.
    (res.socket as Socket).end('HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n');
    void req;
  };
  const res = await call('/api/odd');
  t.equal(res.statusCode, 502);
  t.match(JSON.parse((await bodyOf(res)).toString()), { code: 'upstream_unavailable' });
});

t.test('an upstream header with a control character is 502 problem JSON, never passed on', async (t) => {
  script = (req, res) => {
    // Written by hand: Node's own server refuses to send such a value (RFC 9110 section 5.5).
    (res.socket as Socket).end(Buffer.from('HTTP/1.1 200 OK\r\nx-odd: a\x01b\r\ncontent-length: 0\r\n\r\n', 'latin1'));
    void req;
  };
  const res = await call('/api/control-char');
  t.equal(res.statusCode, 502);
  t.notOk('x-odd' in res.headers);
  t.match(JSON.parse((await bodyOf(res)).toString()), { code: 'upstream_unavailable' });
});

t.test('a browser that hangs up takes its upstream request with it', async (t) => {
  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(1024));
    // and never ends
  };
  const res = await call('/api/endless');
  await once(res, 'data');
  res.destroy();
  for (let waited = 0; !upstreamAborts.includes('/base/endless') && waited < 3000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  t.ok(upstreamAborts.includes('/base/endless'), 'the upstream saw its connection closed');
});

t.test('an upstream that sends headers and then stalls is 504 upstream_timeout', async (t) => {
  script = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 10 });
    res.write('{');
  };
  const res = await call('/api/stall');
  t.equal(res.statusCode, 504);
  t.match(JSON.parse((await bodyOf(res)).toString()), { code: 'upstream_timeout' });
});

t.test('a body that crosses its limit after it started going upstream is 413, not an upstream failure', async (t) => {
  let received = 0;
  let progress: () => void = () => {};
  script = (req) => {
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      progress();
    });
  };
  const req = httpRequest({
    host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/small/upload', agent: false,
    headers: { host: 'a.test', 'x-csrf': '1', 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
  });
  req.on('error', () => {});
  req.write(Buffer.alloc(600, 1));
  await new Promise<void>((resolve) => {
    progress = () => received >= 600 && resolve();
    progress();
  });
  t.pass('the first 600 bytes reached the upstream');
  req.write(Buffer.alloc(600, 2));
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const body = JSON.parse((await bodyOf(res)).toString()) as Record<string, unknown>;
  req.destroy();
  t.equal(res.statusCode, 413);
  t.match(body, { code: 'payload_too_large' });
  t.equal(received, 600, 'nothing past the limit went upstream');
});
