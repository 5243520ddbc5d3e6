/**
 * What the Altinn token exchange makes of each answer, called directly against a real HTTP server: which failures
 * are the exchange's trouble (`unavailable`, 502 for the browser) and which a refusal of the token (`rejected`), in
 * words an operator can act on; where the size limit lies and that a declared oversize is refused before the body
 * is read; and that an answer not used is not left hanging.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { boundedFetch } from '../src/net/fetch.js';
import { AltinnExchangeError, exchangeForAltinnToken, MAX_EXCHANGE_RESPONSE_BYTES } from '../src/tokens/altinn-exchange.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const exp = Math.floor(Date.now() / 1000) + 3600;
/** A JWT-shaped token (the gateway does not verify Altinn's signature; Altinn's APIs do), `length` characters long. */
function token(claims: Record<string, unknown> = { exp }, length?: number): string {
  const head = `${b64({ alg: 'RS256' })}.${b64(claims)}.`;
  return length === undefined ? `${head}c2ln` : head + 'A'.repeat(length - head.length);
}

let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
const seen: IncomingHttpHeaders[] = [];
const server = createServer((req, res) => {
  seen.push(req.headers);
  handler(req, res);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => {
  server.closeAllConnections();
  server.close();
});
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/authentication/api/v1/exchange/id-porten`;
const fetchImpl = boundedFetch({ timeoutMs: 2_000 });
const later = Date.now() + 7_200_000;
const answer = (status: number, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'text/plain' }) => {
  handler = (_req, res) => res.writeHead(status, headers).end(body);
};
const failure = (now?: number) => exchangeForAltinnToken(fetchImpl, url, 'idporten-at', later, now).then(() => undefined, (err: unknown) => err as AltinnExchangeError);

t.test('the ID-porten token goes as Bearer, asking for text or JSON', async (t) => {
  answer(200, token());
  t.same(await exchangeForAltinnToken(fetchImpl, url, 'idporten-at', later), { token: token(), expiresAt: exp * 1000 });
  t.equal(seen.at(-1)!.authorization, 'Bearer idporten-at');
  t.equal(seen.at(-1)!.accept, 'text/plain, application/json', 'Altinn answers the token as text or as a JSON string');
});

t.test('a status of 500 or more is the exchange\'s trouble; below, the token was refused', async (t) => {
  for (const [status, kind] of [[500, 'unavailable'], [503, 'unavailable'], [499, 'rejected'], [401, 'rejected'], [403, 'rejected']] as const) {
    answer(status, '{"error":"x"}');
    const err = await failure();
    t.match(err, { name: 'AltinnExchangeError', kind, message: `Altinn token exchange answered ${status}` }, String(status));
  }
});

t.test('an answer that is not a usable JWT is unavailable, saying which way it is not', async (t) => {
  const cases: Array<[string, string | Buffer, string]> = [
    ['text before the token', `junk ${token()}`, 'returned something that is not a JWT'],
    ['text after the token', `${token()} junk`, 'returned something that is not a JWT'],
    ['the token with white space around it', ` ${token()}\r\n`, ''],
    ['three parts whose payload is not JSON', 'abc.def.ghi', 'returned something that is not a JWT'],
    ['a JSON string with spaces inside its quotes', JSON.stringify(` ${token()} `), ''],
    ['a JWT whose exp is not a number', token({ exp: String(exp) }), 'returned a token without a valid exp'],
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from(token()), Buffer.from([0xff, 0xfe])]), 'answer is not UTF-8'],
  ];
  for (const [what, body, message] of cases) {
    answer(200, body);
    if (message === '') {
      t.same(await exchangeForAltinnToken(fetchImpl, url, 'idporten-at', later), { token: token(), expiresAt: exp * 1000 }, `${what}: taken, trimmed`);
      continue;
    }
    const err = await failure();
    t.match(err, { name: 'AltinnExchangeError', kind: 'unavailable', message: `Altinn token exchange ${message}` }, what);
    if (message === 'answer is not UTF-8') t.ok(err?.cause, 'the decoder\'s error is the cause');
  }
});

t.test('a token whose exp is now has expired (RFC 7519 section 4.1.4: on or after exp it must not be accepted)', async (t) => {
  answer(200, token());
  t.match(await failure(exp * 1000), { kind: 'unavailable', message: 'Altinn token exchange returned a token without a valid exp' });
  t.same(await exchangeForAltinnToken(fetchImpl, url, 'idporten-at', later, exp * 1000 - 1), { token: token(), expiresAt: exp * 1000 }, 'a millisecond before, it is taken');
});

t.test(`an answer of exactly ${MAX_EXCHANGE_RESPONSE_BYTES} bytes is read, one byte more is not, with or without Content-Length`, async (t) => {
  const fits = token({ exp }, MAX_EXCHANGE_RESPONSE_BYTES);
  const over = token({ exp }, MAX_EXCHANGE_RESPONSE_BYTES + 1);
  for (const chunked of [false, true]) {
    const how = chunked ? 'streamed without Content-Length' : 'with Content-Length';
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', ...(chunked ? {} : { 'content-length': String(fits.length) }) });
      res.end(fits);
    };
    t.equal((await exchangeForAltinnToken(fetchImpl, url, 'idporten-at', later)).token, fits, `the limit itself, ${how}`);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', ...(chunked ? {} : { 'content-length': String(over.length) }) });
      res.end(over);
    };
    t.match(await failure(), { kind: 'unavailable', message: `Altinn token exchange answer exceeds ${MAX_EXCHANGE_RESPONSE_BYTES} bytes` }, `one byte over, ${how}`);
  }
});

t.test('a declared size over the limit is refused at once, without waiting for a body that may never come', async (t) => {
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(MAX_EXCHANGE_RESPONSE_BYTES + 1) });
    res.write('eyJ');
  };
  // Waiting for the body would end in the read timeout, with other words ("could not be read").
  t.match(await failure(), { kind: 'unavailable', message: `Altinn token exchange answer exceeds ${MAX_EXCHANGE_RESPONSE_BYTES} bytes` });
});

t.test('a body that stops arriving, and an exchange that cannot be reached, are unavailable with the cause kept', async (t) => {
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2000' });
    res.write('eyJ');
  };
  const stalled = await exchangeForAltinnToken(boundedFetch({ timeoutMs: 300 }), url, 'idporten-at', later).then(() => undefined, (err: unknown) => err as AltinnExchangeError);
  t.match(stalled, { kind: 'unavailable', message: 'Altinn token exchange answer could not be read' });
  t.ok(stalled?.cause, 'the read error is the cause');

  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const gone = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/exchange`;
  closed.close();
  await once(closed, 'close');
  const unreachable = await exchangeForAltinnToken(fetchImpl, gone, 'idporten-at', later).then(() => undefined, (err: unknown) => err as AltinnExchangeError);
  t.match(unreachable, { kind: 'unavailable', message: 'Altinn token exchange unreachable' });
  t.ok(unreachable?.cause, 'the connection error is the cause');
});

t.test('the body of a refusal is not read on: the exchange sees the connection let go', async (t) => {
  const closedAt: Promise<void>[] = [];
  for (const status of [401, 200]) {
    handler = (_req, res) => {
      closedAt.push(once(res, 'close').then(() => undefined));
      res.writeHead(status, { 'content-type': 'text/plain', ...(status === 200 ? { 'content-length': String(MAX_EXCHANGE_RESPONSE_BYTES + 1) } : {}) });
      // An endless answer: without the client letting go, this would go on until the server gives up.
      const chunk = Buffer.alloc(16 * 1024, 'A');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('error', () => undefined);
      pump();
    };
    // A read timeout far beyond the wait below: only letting the answer go can close the connection in time.
    await exchangeForAltinnToken(boundedFetch({ timeoutMs: 60_000 }), url, 'idporten-at', later).catch(() => undefined);
    const let_go = await Promise.race([closedAt.at(-1)!.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000))]);
    t.ok(let_go, `a ${status} answer${status === 200 ? ' declared too large' : ''}: the connection is let go (within 5 s)`);
  }
});
