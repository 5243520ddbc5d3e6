import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { DEVIATING_MVA_MELDING, INVALID_MVA_MELDING, VALID_MVA_MELDING } from './samples.js';

const SPA_DIR = new URL('./spa/', import.meta.url);
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The demo SPA: static files on the gateway's own origin, as a vendor's SPA would be. It holds no token:
 * only the HttpOnly cookie and the X-CSRF header on its calls.
 */
export async function registerDemoSpa(app: FastifyInstance): Promise<void> {
  const files = {
    '/': ['index.html', 'text/html; charset=utf-8'],
    '/demo/app.js': ['app.js', 'text/javascript; charset=utf-8'],
    '/demo/app.css': ['app.css', 'text/css; charset=utf-8'],
  } as const;
  for (const [path, [file, type]] of Object.entries(files)) {
    const body = await readFile(new URL(file, SPA_DIR), 'utf8');
    app.get(path, async (_request, reply) => reply.header('content-type', type).header('content-security-policy', CSP).header('cache-control', 'no-cache').send(body));
  }
  app.get('/demo/samples/valid.xml', async (_request, reply) => reply.header('content-type', 'application/xml').send(VALID_MVA_MELDING));
  app.get('/demo/samples/deviating.xml', async (_request, reply) => reply.header('content-type', 'application/xml').send(DEVIATING_MVA_MELDING));
  app.get('/demo/samples/invalid.xml', async (_request, reply) => reply.header('content-type', 'application/xml').send(INVALID_MVA_MELDING));
}
