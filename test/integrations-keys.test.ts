/**
 * `idporten-bff integrations rotate-keys` run as a process against look-alikes of Maskinporten and Digdir's
 * self-service API: the rotation within the API's key limit, and a running gateway following it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair } from 'jose';
import t from 'tap';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun, spawnCli } from './helpers/cli.js';
import { SESSION_KEY } from './helpers/stack.js';
import { adminTokenFor, onlyClient, world } from './helpers/digdir-world.js';

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
  // The process writes its log in batches: the line may reach the pipe a moment after the login it made possible.
  await within(5_000, async () => /applied integrations changed; reloading/.test(serving.output()));
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
