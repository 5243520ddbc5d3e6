/**
 * `idporten-bff integrations …` run as a process against look-alikes of Maskinporten (the JWT-bearer grant, RFC 7523
 * section 2.1) and of Digdir's self-service API (its documented rules), then a login of the onboarded tenant at the
 * ID-porten look-alike, which reads the clients the self-service look-alike registered.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { startSelfServiceLookalike, loginClientFrom, type SelfServiceLookalike } from '../demo/digdir-self-service.js';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startMaskinportenLookalike, type MaskinportenClient } from '../demo/maskinporten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { loadConfig } from '../src/config/cli.js';
import type { JsonWebKeyWithKid } from '../src/config/types.js';
import { withAppliedIntegrations } from '../src/digdir/applied-integrations.js';
import { adminAccessToken } from '../src/digdir/maskinporten.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun, spawnCli, type CliRun } from './helpers/cli.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { SESSION_KEY, startGateway } from './helpers/stack.js';

const VENDOR_ORGNO = '999888777';
const CUSTOMER_ORGNO = '123456789';
const API_SCOPE = 'skatteetaten:mvameldingvalidering';

interface World {
  dir: string;
  tenantFile: string;
  configFile: string;
  selfService: SelfServiceLookalike;
  opIssuer: string;
  publicUrl: string;
  port: number;
  /** Runs the CLI with this world's configuration. */
  cli(...args: string[]): Promise<CliRun>;
  /** Rewrites the main configuration's digdir block. */
  setDigdir(digdir: Record<string, unknown>): void;
  digdir: Record<string, unknown>;
  adminJwk: JsonWebKeyWithKid;
}

async function world(t: Test, opts: { adminScopes?: string[]; grantedScopes?: string[]; redisUrl?: string; certificate?: { pem: string; keyPem: string } } = {}): Promise<World> {
  const admin = await generateKeyPair('RS256', { extractable: true });
  const adminJwk = { ...(await exportJWK(admin.privateKey)), kid: 'vendor-admin-key', alg: 'RS256' };
  const adminClient: MaskinportenClient = {
    clientId: 'vendor-admin',
    orgno: VENDOR_ORGNO,
    scopes: opts.adminScopes ?? ['idporten:dcr.supplier'],
    ...(opts.certificate ? { certificate: opts.certificate.pem } : { keys: [{ ...(await exportJWK(admin.publicKey)), kid: 'vendor-admin-key', alg: 'RS256', use: 'sig' }] }),
  };
  const maskinporten = await startMaskinportenLookalike({ clients: [adminClient] });
  t.teardown(() => maskinporten.close());
  const selfService = await startSelfServiceLookalike({ verifyAccessToken: (tok) => maskinporten.verifyAccessToken(tok), grantedScopes: opts.grantedScopes ?? [API_SCOPE] });
  t.teardown(() => selfService.close());
  const op = await startIdportenLookalike({ clients: [], findClient: (id) => loginClientFrom(selfService.registry, id) as never });
  t.teardown(() => op.close());

  const dir = mkdtempSync(join(tmpdir(), 'bff-integrations-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'tenants'));
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const tenantFile = join(dir, 'tenants', 'acme.yaml');
  writeFileSync(
    tenantFile,
    [
      '# Acme AS, onboarded by the vendor',
      'id: acme',
      `publicUrl: ${publicUrl}`,
      `orgno: "${CUSTOMER_ORGNO}"`,
      'idporten:',
      `  issuer: ${op.issuer}`,
      `  scopes: [openid, profile, ${API_SCOPE}]`,
      'routes: []',
      '',
    ].join('\n'),
  );
  const configFile = join(dir, 'gateway.json');
  const w: World = {
    dir,
    adminJwk,
    tenantFile,
    configFile,
    selfService,
    opIssuer: op.issuer,
    publicUrl,
    port,
    digdir: { environment: 'test', clientId: 'vendor-admin', key: opts.certificate ? { certificateChain: '${ADMIN_CERT}', privateKey: '${ADMIN_CERT_KEY}' } : { jwk: '${ADMIN_JWK}' }, adminApiUrl: selfService.url, maskinportenIssuer: maskinporten.issuer },
    setDigdir(digdir) {
      w.digdir = digdir;
      const store = opts.redisUrl ? { store: { type: 'redis', url: opts.redisUrl } } : {};
      writeFileSync(configFile, JSON.stringify({ server: { port }, session: { keys: [{ id: 'k1', secret: '${BFF_SESSION_KEY}' }], ...store }, digdir, tenantsDir: 'tenants' }));
    },
    cli: (...args) => spawnCli(['integrations', ...args, '--config', configFile], { env: { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: JSON.stringify(adminJwk), ADMIN_CERT: opts.certificate?.pem ?? '', ADMIN_CERT_KEY: opts.certificate?.keyPem ?? '' } }).done,
  };
  w.setDigdir(w.digdir);
  return w;
}

const json = (run: CliRun) => JSON.parse(run.stdout) as { tenants: { id: string; clientId?: string | null; differences?: { field: string; want: unknown; have: unknown }[]; notes?: string[]; changes?: string[] }[] };
const onlyClient = (w: World) => {
  const clients = [...w.selfService.registry.values()];
  return clients.length === 1 ? clients[0]! : undefined;
};

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
  const { config } = loadConfig(w.configFile, { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: JSON.stringify(w.adminJwk) } as NodeJS.ProcessEnv);
  const { config: resolved, missing } = await withAppliedIntegrations(config);
  t.same(missing, []);
  await startGateway(t, resolved);
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

t.test('rotate-keys adds a key, switches signing, removes the old one after the overlap, within the API key limit', async (t) => {
  const w = await world(t);
  t.equal((await w.cli('apply')).code, 0);
  const client = onlyClient(w)!;
  const first = client.jwks!.keys[0]!.kid!;
  const rotated = await w.cli('rotate-keys', '--overlap', '2s');
  t.equal(rotated.code, 0, describeRun(rotated));
  t.match(rotated.stdout, new RegExp(`registered and signing; ${first.replace(/\./g, '\\.')} removed at`));
  t.match(rotated.stdout, /removed\n/);
  const kids = client.jwks!.keys.map((k) => k.kid);
  t.equal(kids.length, 1, 'after the overlap only the new key is registered');
  t.not(kids[0], first, 'and it is a new one');
  t.match(readFileSync(w.tenantFile, 'utf8'), new RegExp(`kid: ${kids[0]!.replace(/\./g, '\\.')}`), 'the gateway signs with the new key');
  t.equal((await w.cli('check')).code, 0, 'check is clean after the rotation');

  // Four more keys registered by someone else: a fifth would be the API's limit, a sixth is refused.
  const { publicKey } = await generateKeyPair('RS256', { extractable: true });
  const pub = await exportJWK(publicKey);
  client.jwks!.keys.push(...[1, 2, 3, 4].map((i) => ({ ...pub, kid: `other-${i}`, alg: 'RS256', use: 'sig', exp: 0 })));
  const full = await w.cli('rotate-keys', '--overlap', '1s');
  t.equal(full.code, 1, describeRun(full));
  t.match(full.stderr, /the integration has 5 keys, and the API takes at most 5/);
  t.equal(client.jwks!.keys.length, 5, 'nothing was added');
});

t.test('a running gateway follows rotate-keys: it signs with the new key within seconds, with no reload or restart', async (t) => {
  const w = await world(t);
  t.equal((await w.cli('apply')).code, 0);
  const serving = spawnCli(['--config', w.configFile], { env: { BFF_SESSION_KEY: SESSION_KEY, ADMIN_JWK: JSON.stringify(w.adminJwk) } });
  t.teardown(() => void serving.child.kill('SIGKILL'));
  const loginWorks = async () => {
    const browser = new Browser();
    const landed = await loginAtLookalike(browser, `${w.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid }).catch(() => undefined);
    return landed !== undefined && new URL(landed.url).origin === w.publicUrl && (await browser.fetch(`${w.publicUrl}/auth/session`)).status === 200;
  };
  const within = async (ms: number, ok: () => Promise<boolean>) => {
    for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) if (await ok()) return true;
    return false;
  };
  t.ok(await within(30_000, loginWorks), `a login with the applied key (${serving.output().slice(-2000)})`);

  // The old key goes at once (overlap 1 s): a gateway still signing with it could not log anyone in.
  const rotated = await w.cli('rotate-keys', '--overlap', '1s');
  t.equal(rotated.code, 0, describeRun(rotated));
  t.equal(onlyClient(w)!.jwks!.keys.length, 1, 'only the new key is registered');
  const switched = Date.now();
  t.ok(await within(15_000, loginWorks), 'the running gateway logs in with the new key');
  t.ok(Date.now() - switched < 15_000, `within ${Date.now() - switched} ms`);
  t.match(serving.output(), /applied integrations changed; reloading/, 'it read the change itself: no SIGHUP was sent');
});

t.test('the API refuses a sixth key itself (at most 5) and a key that is not RS256 2048', async (t) => {
  const w = await world(t);
  t.equal((await w.cli('apply')).code, 0);
  const client = onlyClient(w)!;
  const token = await adminTokenFor(w);
  const post = (keys: unknown[]) =>
    fetch(`${w.selfService.url}/api/v1/clients/${client.client_id}/jwks`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ keys }) });
  const key = async (kid: string, modulusLength = 2048) => ({ ...(await exportJWK(generateKeyPairSync('rsa', { modulusLength }).publicKey)), kid, alg: 'RS256', use: 'sig' });
  const six = await post(await Promise.all([1, 2, 3, 4, 5, 6].map((i) => key(`k${i}`))));
  t.equal(six.status, 400);
  t.match(await six.json(), { error: 'invalid_client_metadata', error_description: /at most 5 keys/ });
  const small = await post([await key('small', 1024)]);
  t.match(await small.json(), { error_description: /2048-bit/ });
  const noUse = await post([{ ...(await key('nouse')), use: undefined }]);
  t.match(await noUse.json(), { error_description: /use is required/ });
});

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

/** A self-signed RSA certificate standing in for an enterprise certificate (Node has no X.509 issuing API). */
async function rsaCertificate(name: string): Promise<{ pem: string; keyPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bff-cert-'));
  try {
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${name}/O=${name} AS`]);
    return { pem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An admin access token, as the CLI gets one, for calling the look-alike directly. */
function adminTokenFor(w: World): Promise<string> {
  return adminAccessToken({ environment: 'test', clientId: 'vendor-admin', key: { kind: 'jwk', jwk: w.adminJwk }, adminApiUrl: w.selfService.url, maskinportenIssuer: String(w.digdir.maskinportenIssuer) });
}
