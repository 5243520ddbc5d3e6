/**
 * A connection the gateway has answered with `Connection: close` carries nothing after that answer.
 *
 * Finding "Data after `Connection: close`" (seen first on Node 24): log in, `GET` a POST-only route (405 with
 * `Connection: close`, answered before the request's body is read), `POST` to an unknown route (404), and Node's
 * own HTTP client fails with "Parse Error: Data after `Connection: close`". Node's client writes the body of a GET
 * without Content-Length, so by HTTP/1.1 framing those bytes are not a body but the start of a next request on the
 * connection. Node's server parses them after the 405 went out, its parser refuses them, and Fastify's default
 * client-error handler wrote its own `400 Bad Request` onto the connection behind the 405 — it writes whenever the
 * socket is writable, where Node's own handler first checks that no answer has been sent on it. Whether those bytes
 * landed depended on whether the 405 had finished being written (then the socket is ended and nothing more goes
 * out), hence a failure in some runs only. The gateway now answers client errors itself (src/http/client-error.ts):
 * a problem answer with `Connection: close` when the connection has carried no answer to this request yet, else
 * nothing, and the connection is closed either way (RFC 9112 section 9.6: after `close` the server sends nothing more).
 */
import { request, Agent } from 'node:http';
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One request through Node's HTTP client. Resolves at the end of the answer; an error the client reports after
 * that (bytes arriving behind the answer are reported once it has ended) is collected in `lateErrors`.
 */
function send(agent: Agent, url: URL, method: string, headers: Record<string, string>, body: string | undefined, lateErrors: string[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        answered = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
      });
    });
    req.on('error', (err) => {
      if (answered) lateErrors.push(`${method} ${url.pathname}: ${err.message}`);
      else reject(err);
    });
    req.end(body);
  });
}

t.test('log in, GET a POST-only route with a body (405, Connection: close), POST an unknown route (404): nothing follows the 405', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[2]!.pid });
  const cookie = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  const api = { cookie, 'x-csrf': '1', 'content-type': 'application/json' };
  const agent = new Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const errors: string[] = [];
  const lateErrors: string[] = [];
  for (let run = 0; run < 20; run++) {
    try {
      t.equal((await send(agent, new URL('/auth/session', stack.publicUrl), 'GET', { cookie }, undefined, lateErrors)).status, 200);
      const wrongMethod = await send(agent, new URL('/mva/validering', stack.publicUrl), 'GET', api, '{"melding":1}', lateErrors);
      t.equal(wrongMethod.status, 405);
      t.equal(wrongMethod.headers.connection, 'close', 'the 405 closes the connection');
      t.equal(JSON.parse(wrongMethod.body).code, 'method_not_allowed');
      const unknown = await send(agent, new URL('/nowhere', stack.publicUrl), 'POST', api, '{"melding":1}', lateErrors);
      t.equal(unknown.status, 404);
      t.equal(JSON.parse(unknown.body).code, 'route_not_found');
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  // Errors reported after an answer ended surface on a later turn of the event loop.
  await new Promise((resolve) => setImmediate(resolve));
  t.same(errors, [], 'no request of the sequence failed');
  t.same(lateErrors, [], 'no bytes arrived after an answer that closed its connection');
  t.equal(stack.skatteetaten!.requests.length, 0, 'nothing reached the upstream');
});

/** Writes `raw` on a new connection and reads until the gateway closes it. */
async function exchange(port: number, raw: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => undefined);
  socket.write(raw);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

/** Splits what a connection carried into its answers (heads with their last CRLF; bodies by Content-Length). */
function answers(received: string): { head: string; body: string }[] {
  const found: { head: string; body: string }[] = [];
  let rest = received;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) {
      found.push({ head: rest, body: '' });
      break;
    }
    const head = rest.slice(0, end + 2);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    found.push({ head, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return found;
}

t.test('bytes that cannot be parsed behind a request answered with Connection: close get no second answer', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const port = Number(new URL(stack.publicUrl).port);
  const head = `Host: localhost:${port}\r\nX-CSRF: 1\r\nCookie: bff=x\r\n`;
  const cases: Record<string, string> = {
    'a GET body without Content-Length (as Node\'s client sends it)': `GET /mva/validering HTTP/1.1\r\n${head}Content-Type: application/json\r\n\r\n{"melding":1}`,
    'a request line that is not HTTP': `GET /mva/validering HTTP/1.1\r\n${head}\r\nthis is not a request\r\n\r\n`,
    'a declared body over the route limit, then garbage': `POST /mva/validering HTTP/1.1\r\n${head}Content-Length: 99999999999\r\n\r\nxx`,
  };
  for (const [name, raw] of Object.entries(cases)) {
    const received = answers(await exchange(port, raw));
    t.equal(received.length, 1, `${name}: one answer, nothing after it`, { received });
    t.match(received[0]?.head, /\r\nconnection: close\r\n/i, `${name}: the answer says Connection: close`);
  }
});

t.test('a malformed request on a fresh connection still gets a problem answer that closes the connection', async (t) => {
  const stack = await startStack(t);
  const port = Number(new URL(stack.publicUrl).port);
  const received = answers(await exchange(port, 'NOT-HTTP\r\n\r\n'));
  t.equal(received.length, 1);
  t.match(received[0]?.head, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.match(received[0]?.head, /\r\nconnection: close\r\n/i);
  t.match(received[0]?.head, /\r\ncontent-type: application\/problem\+json\r\n/i);
  t.match(JSON.parse(received[0]?.body ?? '{}'), { status: 400, code: 'invalid_request' });
});
