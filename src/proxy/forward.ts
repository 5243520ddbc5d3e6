/**
 * Sends one request to its upstream and answers the browser through the Fastify reply, on undici's dispatcher
 * API: no intermediate request object, no response stream for a small answer. The reply stays Fastify's, so
 * every onSend and onResponse hook (the gateway's and a host application's) sees the answer as for any route.
 *
 * - The body, if any, is the counted request stream (body-limit.ts); undici frames it and applies backpressure.
 * - An answer that declares a Content-Length of at most BUFFERED_BODY_BYTES and a Content-Type, or has no body
 *   (HEAD, 204, 304), is collected and sent as one Buffer once complete: one write to the browser's socket, and
 *   no upstream header reaches the browser if the upstream fails before the end. Anything else streams, with the
 *   upstream paused while the browser's side is full.
 * - Informational answers (1xx) are not passed on; a status above 599 is a failure.
 * - One timeout (the route's) for the connection, the response headers and each gap in the body.
 * - A browser that goes away takes the upstream request with it (aborted, its connection not reused).
 * - Nothing is retried, with one exception the caller asks for (`replay`: an upstream's DPoP nonce demand, RFC 9449
 *   section 9, answered by sending the request again with the nonce): an upstream's answer passes through as it is,
 *   and a failure before the answer is the caller's to report (ForwardFailure); one after the headers were sent ends
 *   the browser's response early.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';

/** Answers up to this size (declared by Content-Length) are sent in one piece; larger or unsized ones stream. */
export const BUFFERED_BODY_BYTES = 64 * 1024;

/** The request as it goes upstream. */
export interface UpstreamRequest {
  dispatcher: Dispatcher;
  /** scheme://host[:port] of the upstream. */
  origin: string;
  /** Path and raw query string, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The request body: a stream, a Buffer (kept for a retry), or null (GET, HEAD, no body). */
  body: Readable | Buffer | null;
  timeoutMs: number;
  /**
   * Shown the head of the upstream's answer before anything reaches the browser: a request to send in its place
   * (its body discarded), 'refused' to fail with `nonce_refused`, or undefined to pass the answer on.
   */
  replay?: ((statusCode: number, headers: IncomingHttpHeaders) => UpstreamRequest | 'refused' | undefined) | undefined;
}

/** The caller's part, made once (not per request). */
export interface ForwardHooks {
  /** The upstream's response headers (lower-case names) as the browser gets them. */
  responseHeaders(headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders;
  /** The request failed before an answer could be sent; the caller answers (and may log `cause`, never the browser's to see). */
  onFailure(failure: ForwardFailure, cause: Error, request: FastifyRequest, reply: FastifyReply): void;
}

/** Why no upstream answer reached the browser. */
export type ForwardFailure = 'timeout' | 'unavailable' | 'bad_response' | 'nonce_refused';

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Starts the upstream request; the reply is answered from its handler. */
export function forward(request: FastifyRequest, reply: FastifyReply, upstream: UpstreamRequest, hooks: ForwardHooks): void {
  const handler = new ForwardHandler(request, reply, hooks, upstream.replay);
  upstream.dispatcher.dispatch(
    {
      origin: upstream.origin,
      path: upstream.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstream.headers as Record<string, string | string[]>,
      body: upstream.body,
      headersTimeout: upstream.timeoutMs,
      bodyTimeout: upstream.timeoutMs,
    },
    handler as unknown as Dispatcher.DispatchHandler,
  );
}

/** undici's callback handler (onConnect … onComplete | onError) for one forwarded request. */
class ForwardHandler {
  readonly #request: FastifyRequest;
  readonly #reply: FastifyReply;
  readonly #hooks: ForwardHooks;
  #abort: ((reason?: Error) => void) | undefined;
  /** A buffered answer: status and headers go to the reply only with the complete body. */
  #buffered: { statusCode: number; headers: IncomingHttpHeaders; chunks: Buffer[] } | undefined;
  /** The stream of a streamed answer, once its headers were handed to the reply. */
  #stream: Readable | undefined;
  #done = false;
  #replay: UpstreamRequest['replay'];
  /** The request sent in place of this one once this answer (discarded) is complete. */
  #instead: UpstreamRequest | undefined;

  constructor(request: FastifyRequest, reply: FastifyReply, hooks: ForwardHooks, replay: UpstreamRequest['replay']) {
    this.#request = request;
    this.#reply = reply;
    this.#hooks = hooks;
    this.#replay = replay;
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    const res = this.#reply.raw;
    if (res.destroyed) return abort(new Error('the client closed the connection'));
    // The browser hung up before the answer was complete: the upstream request goes too.
    res.once('close', () => {
      if (!this.#done) this.#abort?.(new Error('the client closed the connection'));
    });
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    const reply = this.#reply;
    // An informational answer (103 Early Hints) comes before the real one; it is not passed on.
    if (statusCode < 200) return true;
    if (statusCode > 599) {
      this.#fail('bad_response', new Error(`the upstream answered with status ${statusCode}`));
      return false;
    }
    const upstreamHeaders = parseRawHeaders(rawHeaders);
    if (this.#replay !== undefined) {
      const decision = this.#replay(statusCode, upstreamHeaders);
      this.#replay = undefined;
      if (decision === 'refused') {
        this.#fail('nonce_refused', new Error('the upstream demands a DPoP nonce and the request body is too large to send again'));
        return false;
      }
      if (decision !== undefined) {
        this.#instead = decision;
        return true;
      }
    }
    const headers = this.#hooks.responseHeaders(upstreamHeaders, this.#request);
    // An HTTP/1 connection cannot be reused while the browser is still sending a body nobody reads.
    if (!this.#request.raw.complete) headers.connection = 'close';
    if (!hasBody(this.#request.method, statusCode) || fitsBuffer(headers)) {
      this.#buffered = { statusCode, headers, chunks: [] };
      return true;
    }
    reply.code(statusCode).headers(headers);
    // The browser's side asks for more: undici goes on reading the upstream (it paused when push said so).
    this.#stream = new Readable({ read: () => resume() });
    reply.send(this.#stream);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#instead !== undefined) return true;
    if (this.#buffered !== undefined) {
      this.#buffered.chunks.push(chunk);
      return true;
    }
    return this.#stream?.push(chunk) ?? false;
  }

  onComplete(): void {
    this.#done = true;
    if (this.#instead !== undefined) {
      if (!this.#reply.raw.destroyed) forward(this.#request, this.#reply, this.#instead, this.#hooks);
      return;
    }
    if (this.#stream !== undefined) {
      this.#stream.push(null);
      return;
    }
    if (this.#buffered === undefined || this.#reply.raw.destroyed) return;
    const { statusCode, headers, chunks } = this.#buffered;
    this.#reply.code(statusCode).headers(headers).send(chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  }

  onError(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#stream !== undefined) {
      // Headers are out: the browser's response ends early, as the upstream's did.
      this.#stream.destroy(err);
      return;
    }
    if (this.#reply.raw.destroyed || this.#reply.sent) return;
    const code = (err as { code?: string }).code;
    this.#hooks.onFailure(code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'unavailable', err, this.#request, this.#reply);
  }

  #fail(failure: ForwardFailure, cause: Error): void {
    this.#done = true;
    this.#abort?.(cause);
    this.#hooks.onFailure(failure, cause, this.#request, this.#reply);
  }
}

/** undici's raw header list (name, value, name, value … as Buffers) as Node's header object: lower-case names, repeats as arrays. */
function parseRawHeaders(raw: Buffer[]): IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    const seen = headers[name];
    if (seen === undefined) headers[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else headers[name] = [seen, value];
  }
  return headers;
}

function hasBody(method: string, statusCode: number): boolean {
  return method !== 'HEAD' && statusCode !== 204 && statusCode !== 304;
}

/** A declared small body with a declared type (Fastify would give a Buffer without one a type of its own). */
function fitsBuffer(headers: IncomingHttpHeaders): boolean {
  const contentLength = headers['content-length'];
  if (typeof contentLength !== 'string') return false;
  const length = Number(contentLength);
  return Number.isInteger(length) && length >= 0 && length <= BUFFERED_BODY_BYTES && (length === 0 || headers['content-type'] !== undefined);
}
