/**
 * `idporten-bff integrations …` when it cannot do what it was asked: Digdir's self-service API unreachable, the
 * admin client refused by the Maskinporten look-alike (RFC 7523 section 2.1, an enterprise certificate that is not
 * the client's), a scope the vendor was not granted. Exit 2 when it could not check, 1 for a refusal about a tenant.
 */
import t from 'tap';
import { freePort } from '../demo/free-port.js';
import { describeRun, spawnCli } from './helpers/cli.js';
import { SESSION_KEY } from './helpers/stack.js';
import { rsaCertificate, world } from './helpers/digdir-world.js';

t.test('check exits 2 when it could not check: the API unreachable, the admin client refused by Maskinporten', async (t) => {
  const w = await world(t);
  const closed = await freePort();
  w.setDigdir({ ...w.digdir, adminApiUrl: `http://127.0.0.1:${closed}` });
  const unreachable = await w.cli('check');
  t.equal(unreachable.code, 2, describeRun(unreachable));
  t.match(unreachable.stderr, /could not reach Digdir.*127\.0\.0\.1/);

  // RFC 7523 section 3: the aud must identify the authorization server; Maskinporten takes its issuer verbatim.
  w.setDigdir({ ...w.digdir, maskinportenIssuer: String(w.digdir.maskinportenIssuer).replace(/\/$/, '') });
  const wrongAud = await w.cli('check');
  t.equal(wrongAud.code, 2, describeRun(wrongAud));
  t.match(wrongAud.stderr, /Maskinporten refused the admin client: 400 invalid_grant: invalid aud.*\(MP-110\)/);

  w.setDigdir({ ...w.digdir, clientId: 'not-a-client' });
  const unknown = await w.cli('check');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /invalid_grant: invalid iss: unknown client .*\(MP-100\)/);
});

t.test('the admin client without the supplier scope is refused by Maskinporten (MP-200)', async (t) => {
  const w = await world(t, { adminScopes: ['idporten:dcr.read'] });
  const run = await w.cli('apply');
  t.equal(run.code, 2, describeRun(run));
  t.match(run.stderr, /invalid_scope: the client has no access to idporten:dcr\.supplier \(MP-200\)/);
  t.equal(w.selfService.registry.size, 0);
});

t.test("a scope the vendor was not granted is refused by the API, and apply says so (exit 1)", async (t) => {
  const w = await world(t, { grantedScopes: [] });
  const run = await w.cli('apply');
  t.equal(run.code, 1, describeRun(run));
  t.match(run.stderr, /tenant acme: Digdir refused creating the integration: 400 invalid_client_metadata: scope skatteetaten:mvameldingvalidering is not available to this organisation/);
  t.equal(w.selfService.registry.size, 0);
});

t.test('an admin client with an enterprise certificate signs its grant with x5c; another certificate is refused', async (t) => {
  const [vendor, stranger] = await Promise.all([rsaCertificate('vendor'), rsaCertificate('stranger')]);
  const w = await world(t, { certificate: vendor });
  const applied = await w.cli('apply');
  t.equal(applied.code, 0, `the grant with x5c is accepted (${describeRun(applied)})`);
  t.equal(w.selfService.registry.size, 1);
  const wrong = await world(t, { certificate: vendor });
  const env = { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: '', ADMIN_CERT: stranger.pem, ADMIN_CERT_KEY: stranger.keyPem };
  const refused = await spawnCli(['integrations', 'check', '--config', wrong.configFile], { env }).done;
  t.equal(refused.code, 2, describeRun(refused));
  t.match(refused.stderr, /invalid_grant: x5c is not the client's enterprise certificate/);
});
