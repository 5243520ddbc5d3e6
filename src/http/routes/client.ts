import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

/** client/bff.js at the package root: three levels up from src/http/routes/ (tsx) and from dist/http/routes/ (built). */
export const CLIENT_FILE = new URL('../../../client/bff.js', import.meta.url);

/** GET /auth/client.js: the browser helper (ESM), read once at start-up. */
export async function clientRoute(app: FastifyInstance): Promise<void> {
  const body = await readFile(CLIENT_FILE);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;

  app.get('/auth/client.js', async (request, reply) => {
    reply.header('cache-control', 'no-cache').header('etag', etag);
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
      return reply.code(304).send();
    }
    return reply.type('text/javascript; charset=utf-8').send(body);
  });
}
