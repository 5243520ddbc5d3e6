/**
 * What the server answers by itself when Node's HTTP parser refuses what a client sent on a connection (a
 * malformed request line, a request head over Node's limit, a client too slow to send its request): Fastify's
 * `clientErrorHandler`. No route runs; the answer is written to the socket and the connection closed.
 *
 * The answer is the gateway's problem JSON with `Connection: close`, and only when the connection has not started
 * an answer to the request in progress. Node's own handler makes the same check; Fastify's default does not, and
 * wrote a 400 behind an answer that had already said `Connection: close` (the gateway answers some requests before
 * reading their body, e.g. a 405), which clients report as "Data after `Connection: close`". RFC 9112 section 9.6:
 * a server that sent `close` sends nothing more on that connection.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, PROBLEMS, problemBody } from './problem.js';

/** Node's parser errors that have an answer of their own; any other refusal is 400 invalid_request. */
const ANSWERS: Partial<Record<string, { code: ErrorCode; detail: string }>> = {
  HPE_HEADER_OVERFLOW: { code: 'headers_too_large', detail: 'The request line and headers together exceed the server\'s limit.' },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'request_timeout', detail: 'The request did not arrive in time.' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { code: 'payload_too_large', detail: 'The request body\'s chunk extensions are too large.' },
};
const MALFORMED = { code: 'invalid_request', detail: 'The request is not valid HTTP/1.1.' } as const;

/** The socket's answer in progress, as Node's server keeps it (`socket._httpMessage`). */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null };

export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  // A reset connection, or one already torn down: nobody to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // Not writable: the last answer said `close` and has been written (the socket is ended). Headers sent: an answer
  // to this connection's request is under way, or has been written, and anything more would follow it.
  if (socket.writable && (socket as ServerSocket)._httpMessage?.headersSent !== true) {
    const { code, detail } = ANSWERS[err.code ?? ''] ?? MALFORMED;
    const { status } = PROBLEMS[code];
    const body = JSON.stringify(problemBody(code, detail));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
