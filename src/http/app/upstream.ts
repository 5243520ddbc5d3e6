/**
 * `app.upstream: URL`: the app comes from a dev server (Vite, webpack) or a frontend container. Every
 * request the gateway does not own streams to it, WebSocket upgrades (hot module reload) included, with
 * the hygiene of headers.ts on both the HTTP and the WebSocket path. A WebSocket upgrade passes only with
 * the tenant's own Origin: browsers send Origin on every WebSocket handshake and do not apply CORS to it,
 * so without the check any site the user visits could open the socket (cross-site WebSocket hijacking).
 */
import type { IncomingHttpHeaders } from 'node:http';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../../errors.js';
import { sendError } from '../problem.js';
import { appRequestHeaders, appResponseHeaders, appWebSocketHeaders, type AppRequestContext } from './headers.js';

const ALL_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'];

export interface UpstreamAppOptions {
  url: string;
  publicUrl: string;
  /** The host constraint of this tenant's routes. */
  host: string;
  /** Checked on each request before it is proxied (reserved paths); throws GatewayError. */
  guard(request: FastifyRequest): void;
}

export async function registerUpstreamApp(scope: FastifyInstance, opts: UpstreamAppOptions): Promise<void> {
  const upstream = new URL(opts.url);
  const origin = new URL(opts.publicUrl).origin;
  const context = (request: FastifyRequest): AppRequestContext => ({
    upstreamHost: upstream.host,
    publicUrl: opts.publicUrl,
    peerAddress: request.raw.socket.remoteAddress,
  });

  // Bodies are not parsed here: they stream to the app as they come.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  const proxyOptions: FastifyHttpProxyOptions & { websocket: true } = {
    upstream: upstream.origin,
    rewritePrefix: upstream.pathname === '/' ? '' : upstream.pathname,
    constraints: { host: opts.host },
    httpMethods: ALL_METHODS,
    proxyPayloads: false,
    undici: { connect: { rejectUnauthorized: true } },
    retryMethods: [],
    disableRequestLogging: true,
    preHandler: async (request) => {
      opts.guard(request);
      if (isWebSocketUpgrade(request) && request.headers.origin !== origin) {
        throw new GatewayError('csrf_failed', 'A WebSocket to the app is opened only from a page of this origin.');
      }
    },
    replyOptions: {
      rewriteRequestHeaders: (request, _headers) => appRequestHeaders(request.headers as IncomingHttpHeaders, context(request as FastifyRequest)),
      rewriteHeaders: (headers) => appResponseHeaders(headers),
      onError: (reply, { error }) => {
        reply.request.log.warn({ reason: (error as Error).message }, 'app upstream failed');
        sendError(reply, new GatewayError('upstream_unavailable', 'The app could not be reached.'));
      },
    },
    websocket: true,
    wsClientOptions: {
      rejectUnauthorized: true,
      // The default copies the browser's Cookie header onto the upgrade; this sends a fixed few.
      // (@fastify/http-proxy reads this option, its types do not list it.)
      rewriteRequestHeaders: (_headers: unknown, request: FastifyRequest) => appWebSocketHeaders(request.headers, context(request)),
    } as NonNullable<FastifyHttpProxyOptions['wsClientOptions']>,
  };
  await scope.register(httpProxy, proxyOptions);
}

function isWebSocketUpgrade(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket';
}
