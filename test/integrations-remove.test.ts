/**
 * `idporten-bff integrations remove`, and `apply` keeping the client id and the sealed key in Redis, run as a
 * process against look-alikes of Maskinporten and Digdir's self-service API.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { loadConfig } from '../src/config/cli.js';
import { withAppliedIntegrations } from '../src/digdir/applied-integrations.js';
import { describeRun } from './helpers/cli.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { SESSION_KEY } from './helpers/stack.js';
import { json, onlyClient, world } from './helpers/digdir-world.js';

t.test('remove deletes the integration and what apply kept, only for the tenant named', async (t) => {
  const w = await world(t);
  t.equal((await w.cli('apply')).code, 0);
  const withoutTenant = await w.cli('remove');
  t.equal(withoutTenant.code, 2, 'remove without --tenant is a usage error');
  t.match(withoutTenant.stderr, /needs --tenant ID/);
  t.equal(w.selfService.registry.size, 1);
  const dry = await w.cli('remove', '--tenant', 'acme', '--dry-run');
  t.equal(dry.code, 0);
  t.equal(w.selfService.registry.size, 1, '--dry-run removes nothing');
  const removed = await w.cli('remove', '--tenant', 'acme');
  t.equal(removed.code, 0, describeRun(removed));
  t.equal(w.selfService.registry.size, 0);
  t.notMatch(readFileSync(w.tenantFile, 'utf8'), /integration:/);
  t.equal((await w.cli('check')).code, 1, 'check then finds no integration');
});

t.test('with a Redis session store, apply keeps the client id and the sealed key in Redis, where the gateway reads them', { skip: redisMissingReason() ?? false }, async (t) => {
  const redis = await startRedis(t);
  const w = await world(t, { redisUrl: redis.url });
  const fileBefore = readFileSync(w.tenantFile, 'utf8');
  const applied = await w.cli('apply');
  t.equal(applied.code, 0, describeRun(applied));
  t.match(applied.stdout, /sealed in Redis/);
  t.equal(readFileSync(w.tenantFile, 'utf8'), fileBefore, 'the tenant file is left as it was');
  const client = onlyClient(w)!;
  const { config } = loadConfig(w.configFile, { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: JSON.stringify(w.adminJwk) } as NodeJS.ProcessEnv);
  const { config: resolved, missing } = await withAppliedIntegrations(config);
  t.same(missing, []);
  t.match(resolved.tenants, [{ id: 'acme', idporten: { clientId: client.client_id, clientAuth: { method: 'private_key_jwt', privateKeyJwk: { kid: client.jwks!.keys[0]!.kid, d: String } } } }]);
  const again = await w.cli('apply', '--json');
  t.same(json(again).tenants[0]!.changes, ['nothing to change']);
  // Another session key ring cannot open the key: the tenant is named as missing rather than served with garbage.
  const other = { ...config, session: { ...config.session, keys: [{ id: 'k2', secret: Buffer.alloc(32, 9) }] } };
  t.same((await withAppliedIntegrations(other)).missing, ['acme']);
});
