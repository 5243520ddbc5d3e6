import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey, type KeyObject } from 'jose';

/** What one request looked like on arrival, exactly as the upstream saw it. */
export interface ReceivedRequest {
  method: string;
  /** The raw request target (path and query) as sent on the wire. */
  rawUrl: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Claims of the verified bearer; undefined when the bearer was missing or invalid. */
  claims?: JWTPayload;
  /** Filled in when the body has been read to its end. */
  body?: { sha256: string; length: number };
  /** The sender went away before the body ended. */
  aborted: boolean;
}

/** How the upstream answers requests from now on. */
export interface Behaviour {
  status?: number;
  headers?: Record<string, string | string[]>;
  /** Wait this long after the body before sending the status line. */
  delayMs?: number;
  /** Destroy the connection instead of answering. */
  reset?: boolean;
  /** Send the headers and a first chunk, then wait for release() before finishing the body. */
  hold?: boolean;
}

export interface EchoUpstream {
  /** Origin, e.g. http://127.0.0.1:1234 */
  origin: string;
  requests: ReceivedRequest[];
  behave(behaviour: Behaviour): void;
  /** Resolves once the request being received has delivered at least `bytes` body bytes. */
  receivedAtLeast(bytes: number): Promise<void>;
  /** Lets a held response finish. */
  release(): void;
  close(): Promise<void>;
}

export interface EchoUpstreamOptions {
  /** Key (or key set) that must have signed the bearer (RFC 6750 bearer, a JWT here); anything else gets 401. */
  verificationKey: CryptoKey | KeyObject | JWTVerifyGetKey;
  /** The `aud` the bearer must carry (an RFC 8707 resource); a token for anything else gets 401. */
  audience?: string;
  /** Serve https with this certificate instead of http. */
  tls?: { certPem: string; keyPem: string };
}

export async function startEchoUpstream(options: EchoUpstreamOptions): Promise<EchoUpstream> {
  const requests: ReceivedRequest[] = [];
  let behaviour: Behaviour = {};
  let progressWaiters: Array<{ bytes: number; resolve: () => void }> = [];
  let releaseHeld: (() => void) | undefined;
  let releasedEarly = false;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const current = behaviour;
    const rawUrl = req.url ?? '';
    const received: ReceivedRequest = { method: req.method ?? '', rawUrl, path: rawUrl.split('?', 1)[0] ?? '', headers: req.headers, aborted: false };
    requests.push(received);
    if (current.reset) {
      req.socket.destroy();
      return;
    }

    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
      progressWaiters = progressWaiters.filter((waiter) => (length >= waiter.bytes ? (waiter.resolve(), false) : true));
    });
    req.on('aborted', () => {
      received.aborted = true;
    });
    req.on('end', () => {
      received.body = { sha256: hash.digest('hex'), length };
      void answer(req, res, received, current);
    });
  };

  const answer = async (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest, current: Behaviour): Promise<void> => {
    const claims = await verifiedClaims(req.headers.authorization, options.verificationKey, options.audience);
    if (claims === undefined) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    received.claims = claims;
    if (current.delayMs) await new Promise((resolve) => setTimeout(resolve, current.delayMs));
    if (res.destroyed) return;

    const body = JSON.stringify({ method: received.method, rawUrl: received.rawUrl, body: received.body, claims });
    res.writeHead(current.status ?? 200, { 'content-type': 'application/json', ...current.headers });
    if (!current.hold) {
      res.end(body);
      return;
    }
    res.write('first chunk\n');
    if (!releasedEarly) await new Promise<void>((resolve) => (releaseHeld = resolve));
    releasedEarly = false;
    res.end('rest\n');
  };

  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handle)
    : createHttpServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    behave(next) {
      behaviour = next;
    },
    receivedAtLeast(bytes) {
      return new Promise((resolve) => progressWaiters.push({ bytes, resolve }));
    },
    release() {
      if (releaseHeld) releaseHeld();
      else releasedEarly = true;
      releaseHeld = undefined;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

async function verifiedClaims(authorization: string | undefined, key: CryptoKey | KeyObject | JWTVerifyGetKey, audience: string | undefined): Promise<JWTPayload | undefined> {
  const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '');
  if (!match?.[1]) return undefined;
  const options = audience === undefined ? {} : { audience };
  try {
    return (typeof key === 'function' ? await jwtVerify(match[1], key, options) : await jwtVerify(match[1], key, options)).payload;
  } catch {
    return undefined;
  }
}
