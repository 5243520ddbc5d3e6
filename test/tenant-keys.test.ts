/**
 * Tenant-scoped session keys: a tenant with its own `sessionKeys` seals its sessions and login transactions with
 * them, so a key of one customer never opens another customer's sessions, and the shared ring opens none of them.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { deriveSessionKey } from '../src/config/session-keys.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway } from './helpers/stack.js';

t.test("a tenant's own sessionKeys seal its sessions: the shared ring and other tenants' keys open none of them", async (t) => {
  const port = await freePort();
  const origins = { acme: `http://localhost:${port}`, beta: `http://127.0.0.1:${port}` };
  const op = await startIdportenLookalike({ clients: [lookalikeClient('acme-client', origins.acme), lookalikeClient('beta-client', origins.beta)] });
  t.teardown(() => op.close());
  const betaSecret = randomBytes(32).toString('base64url');
  const tenant = (id: 'acme' | 'beta') => ({
    id,
    publicUrl: origins[id],
    idporten: { issuer: op.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } },
    routes: [],
    ...(id === 'beta' ? { sessionKeys: [{ id: 'beta-1', secret: betaSecret }] } : {}),
  });
  const config = normaliseConfig({ server: { port }, session: { keys: [{ id: 'k1', secret: SESSION_KEY }] }, tenants: [tenant('acme'), tenant('beta')] }, {});
  t.equal(config.tenants[1]!.sessionKeys?.[0]?.id, 'beta-1', 'the config carries the tenant ring');
  const store = new MemorySessionStore(100);
  const gateway = await startGateway(t, config, { store, lock: new MemorySessionLock() });

  const browser = new Browser();
  await loginAtLookalike(browser, `${origins.acme}/auth/login`, { pid: TEST_USERS[0]!.pid });
  await loginAtLookalike(browser, `${origins.beta}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${origins.acme}/auth/session`)).status, 200, 'acme (shared ring) logs in');
  t.equal((await browser.fetch(`${origins.beta}/auth/session`)).status, 200, 'beta (its own ring) logs in, its login transaction sealed with its keys');

  const stored = async (host: string) => {
    const id = SessionManager.storeKey(browser.cookie(host, 'bff')!.value);
    return { id, sealed: (await store.get(id))!.sealed };
  };
  const acme = await stored('localhost');
  const beta = await stored('127.0.0.1');
  const sharedRing = new KeyRing(config.session.keys);
  const betaRing = new KeyRing([deriveSessionKey('beta-1', betaSecret)]);
  t.ok(sharedRing.openBytes(acme.sealed, `session:${acme.id}`), "the shared ring opens acme's session");
  t.equal(sharedRing.openBytes(beta.sealed, `session:${beta.id}`), undefined, "the shared ring does not open beta's session");
  t.ok(betaRing.openBytes(beta.sealed, `session:${beta.id}`), "beta's ring opens beta's session");
  t.equal(betaRing.openBytes(acme.sealed, `session:${acme.id}`), undefined, "beta's ring does not open acme's session");

  const sessions = gateway.core.lifecycle.sessions;
  t.equal((await sessions.loadById(beta.id)).state, 'none', 'loaded without naming the tenant, beta\'s record is nothing');
  t.equal((await sessions.loadById(beta.id, 'acme')).state, 'none', 'nor as acme\'s');
  t.equal((await sessions.loadById(beta.id, 'beta')).state, 'live', 'it opens only as beta\'s');
  t.equal((await browser.fetch(`${origins.beta}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } })).status, 200, 'and refreshes, re-sealed with beta\'s ring');
  t.ok(betaRing.openBytes((await store.get(beta.id))!.sealed, `session:${beta.id}`), 'the refreshed record is still sealed with beta\'s ring');
});
