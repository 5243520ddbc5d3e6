/**
 * `idporten-bff integrations …` run as a process against look-alikes of Maskinporten (the JWT-bearer grant, RFC 7523
 * section 2.1) and of Digdir's self-service API (its documented rules), then a login of the onboarded tenant at the
 * ID-porten look-alike, which reads the clients the self-service look-alike registered.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import t from 'tap';
import { TEST_USERS } from '../demo/test-users.js';
import { idportenBff } from '../src/plugin.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun } from './helpers/cli.js';
import { SESSION_KEY } from './helpers/stack.js';
import { API_SCOPE, CUSTOMER_ORGNO, json, onlyClient, VENDOR_ORGNO, world } from './helpers/digdir-world.js';

t.test('check, apply (dry run, then for real, then again), check clean, and the tenant logs in at ID-porten', async (t) => {
  const w = await world(t);

  const before = await w.cli('check', '--json');
  t.equal(before.code, 1, `nothing registered yet: a difference (${describeRun(before)})`);
  t.same(json(before).tenants.map((x) => [x.id, x.differences?.map((d) => d.field)]), [['acme', ['client_id']]]);

  const fileBefore = readFileSync(w.tenantFile, 'utf8');
  const dry = await w.cli('apply', '--dry-run');
  t.equal(dry.code, 0, describeRun(dry));
  t.match(dry.stdout, /dry run, nothing changed[\s\S]*create an integration \(api_klient, client_orgno 123456789\)/);
  t.equal(w.selfService.registry.size, 0, '--dry-run registers nothing');
  t.equal(readFileSync(w.tenantFile, 'utf8'), fileBefore, '--dry-run writes nothing');

  const applied = await w.cli('apply');
  t.equal(applied.code, 0, describeRun(applied));
  const client = onlyClient(w);
  t.ok(client, 'one integration registered');
  t.match(client, {
    integration_type: 'api_klient',
    application_type: 'web',
    client_orgno: CUSTOMER_ORGNO,
    supplier_orgno: VENDOR_ORGNO,
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['authorization_code', 'refresh_token'],
    refresh_token_usage: 'ONETIME',
    redirect_uris: [`${w.publicUrl}/auth/callback`],
    post_logout_redirect_uris: [`${w.publicUrl}/`],
    frontchannel_logout_uri: `${w.publicUrl}/auth/logout/frontchannel`,
    backchannel_logout_uri: `${w.publicUrl}/auth/logout/backchannel`,
    client_uri: `${w.publicUrl}/auth/login/cancelled`,
    scopes: ['openid', 'profile', API_SCOPE].sort(),
  });
  t.ok((client!.authorization_lifetime as number) <= 8 * 3600, 'lifetime within the 8-hour cap');
  t.equal(client!.jwks?.keys.length, 1, 'one public key registered');
  t.notOk(JSON.stringify(client!.jwks).includes('"d"'), 'no private part registered');
  const file = readFileSync(w.tenantFile, 'utf8');
  t.match(file, /^# Acme AS, onboarded by the vendor/, "the tenant file's comment is kept");
  t.match(file, new RegExp(`integration:\\s+clientId: ${client!.client_id}`), 'the client id is kept in the tenant file');
  t.notMatch(file, /"d"|\bd:/, 'the private key is kept sealed only');

  const callsBefore = w.selfService.calls.length;
  const again = await w.cli('apply', '--json');
  t.equal(again.code, 0, describeRun(again));
  t.same(json(again).tenants[0]!.changes, ['nothing to change'], 'apply again: nothing to change');
  t.notOk(w.selfService.calls.slice(callsBefore).some((c) => /^(POST|PUT|DELETE) /.test(c)), `no change was sent (${w.selfService.calls.slice(callsBefore).join(', ')})`);

  const clean = await w.cli('check');
  t.equal(clean.code, 0, describeRun(clean));
  t.match(clean.stdout, /tenant acme \(integration [^)]+\): matches what the gateway needs/);

  // The gateway reads the applied integration at start: the tenant needs no clientId or clientAuth in its file.
  // In library mode too: the plugin, registered on a host's own Fastify with the configuration file, reads it.
  const host = Fastify();
  await host.register(idportenBff, { config: w.configFile, env: { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: JSON.stringify(w.adminJwk) } });
  t.teardown(() => host.close());
  await host.listen({ host: '127.0.0.1', port: w.port });
  await host.bffWarmUp();
  const browser = new Browser();
  const landed = await loginAtLookalike(browser, `${w.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal(new URL(landed.url).origin, w.publicUrl, `back at the tenant after the login (${landed.status} ${landed.url})`);
  const session = await browser.fetch(`${w.publicUrl}/auth/session`);
  t.equal(session.status, 200, session.body);
  t.match(JSON.parse(session.body), { user: { sub: String } }, 'a session of the user the ID-porten look-alike logged in');
});

t.test('check lists each difference in plain language and as JSON; extra URIs are notes only', async (t) => {
  const w = await world(t);
  t.equal((await w.cli('apply')).code, 0);
  const client = onlyClient(w)!;
  client.redirect_uris = [...(client.redirect_uris as string[]), 'https://old.example.no/auth/callback'];
  const noted = await w.cli('check', '--json');
  t.equal(noted.code, 0, `an extra registered URI alone: exit 0 (${describeRun(noted)})`);
  t.match(json(noted).tenants[0]!.notes, [/redirect_uris also has https:\/\/old\.example\.no\/auth\/callback/]);

  client.refresh_token_usage = 'REUSE';
  client.authorization_lifetime = 36000;
  client.post_logout_redirect_uris = ['https://old.example.no/'];
  const differs = await w.cli('check', '--json');
  t.equal(differs.code, 1, describeRun(differs));
  const differences = json(differs).tenants[0]!.differences!;
  t.same(differences.map((d) => d.field).sort(), ['authorization_lifetime', 'post_logout_redirect_uris', 'refresh_token_usage']);
  t.match(differences.find((d) => d.field === 'refresh_token_usage'), { want: 'ONETIME', have: 'REUSE' });
  const plain = await w.cli('check');
  t.equal(plain.code, 1);
  t.match(plain.stdout, /3 differences/);
  t.match(plain.stdout, /refresh_token_usage: the gateway needs ONETIME, the integration has REUSE/);
  t.match(plain.stdout, /note: redirect_uris also has/);

  const fixed = await w.cli('apply');
  t.equal(fixed.code, 0, describeRun(fixed));
  t.match(fixed.stdout, /update refresh_token_usage/);
  t.equal((await w.cli('check')).code, 0, 'apply writes the whole object: check is clean again');
});
