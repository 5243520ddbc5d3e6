/** Small node:http helpers shared by the upstream look-alikes. */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts a server on host:port (0 = ephemeral); a handler that throws answers 500. */
export async function serve(host: string, port: number, handler: Handler): Promise<RunningServer> {
  let base = '';
  const server = createServer((req, res) => {
    handler(req, res, new URL(req.url ?? '/', base)).catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: actual } = server.address() as AddressInfo;
  base = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
  return {
    server,
    url: base,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export class BodyTooLargeError extends Error {}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Streams a body through SHA-256 without keeping it. `onChunk` sees each chunk and the running
 * size; more than `limit` bytes throws BodyTooLargeError.
 */
export async function digestBody(
  req: IncomingMessage,
  opts: { limit?: number; onChunk?: (chunk: Buffer, size: number) => void } = {},
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (opts.limit !== undefined && size > opts.limit) throw new BodyTooLargeError();
    hash.update(chunk as Buffer);
    opts.onChunk?.(chunk as Buffer, size);
  }
  return { sha256: hash.digest('hex'), size };
}
