/**
 * Library mode: an existing Fastify server with its own routes, and the gateway registered into it.
 *
 *   BFF_CONFIG=./gateway.yaml PORT=3000 node --import tsx examples/library-mode/server.ts
 *
 * (In an application that installed the package, `import idportenBff from 'idporten-bff'` resolves to the
 * compiled plugin; inside this repository the `source` condition points it at src/.)
 */
import Fastify from 'fastify';
import idportenBff from 'idporten-bff';

export async function createServer(configPath: string) {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } });

  // The host's own routes, next to the gateway's /auth/* and API routes.
  app.get('/api/hello', async (request, reply) => {
    const user = await request.bff.user();
    if (!user) return reply.code(401).send({ error: 'log in first', loginUrl: '/auth/login?returnTo=/api/hello' });
    return { hello: user.sub, acr: user.acr };
  });

  await app.register(idportenBff, { config: configPath });
  return app;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = await createServer(process.env.BFF_CONFIG ?? 'gateway.yaml');
  await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) });
}
