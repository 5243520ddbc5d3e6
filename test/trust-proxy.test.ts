import t from 'tap';
import { startStack } from './helpers/stack.js';

// Tenants are told apart by host. Behind a load balancer that rewrites Host, the browser's host arrives as
// X-Forwarded-Host; the gateway honours it only from a trusted proxy (server.trustProxy).
t.test('X-Forwarded-Host chooses the tenant only when the peer is a trusted proxy', async (t) => {
  const trusted = await startStack(t, { upstreams: true, server: { trustProxy: ['loopback'] } });
  const untrusted = await startStack(t, { upstreams: true });
  for (const [name, stack, expectTenant] of [['trusted', trusted, true], ['untrusted', untrusted, false]] as const) {
    const headers = { host: 'gateway.internal:8080', 'x-forwarded-host': `spoofed.example, ${new URL(stack.publicUrl).host}`, 'x-csrf': '1' };
    const session = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers });
    const proxied = await stack.gateway.app.inject({ method: 'GET', url: '/mva/echo/x', headers });
    if (expectTenant) {
      t.equal(session.statusCode, 401, `${name}: /auth/* finds the tenant (401, no session)`);
      t.equal(session.json().loginUrl, `${stack.publicUrl}/auth/login`, `${name}: login URL on the public origin`);
      t.equal(proxied.statusCode, 401, `${name}: the proxy route matches too`);
    } else {
      t.equal(session.statusCode, 421, `${name}: the forwarded host is ignored`);
      t.equal(proxied.statusCode, 404, `${name}: no tenant's route matches the internal host`);
    }
  }
  const nearestOnly = await trusted.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: 'gateway.internal', 'x-forwarded-host': `${new URL(trusted.publicUrl).host}, spoofed.example` } });
  t.equal(nearestOnly.statusCode, 421, 'only the nearest proxy\'s value counts, not one the client put first');
});
