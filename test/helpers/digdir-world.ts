/**
 * The world the integrations tests run in: look-alikes of Maskinporten, Digdir's self-service API and ID-porten (the
 * last reading the clients the self-service look-alike registered), a vendor's admin client, and a gateway
 * configuration with one customer tenant awaiting its integration in tenantsDir.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import type { Test } from 'tap';
import { startSelfServiceLookalike, loginClientFrom, type SelfServiceLookalike } from '../../demo/digdir-self-service.js';
import { freePort } from '../../demo/free-port.js';
import { startIdportenLookalike } from '../../demo/idporten-op.js';
import { startMaskinportenLookalike, type MaskinportenClient } from '../../demo/maskinporten.js';
import type { JsonWebKeyWithKid } from '../../src/config/types.js';
import { adminAccessToken } from '../../src/digdir/maskinporten.js';
import { spawnCli, type CliRun } from './cli.js';
import { SESSION_KEY } from './stack.js';

export const VENDOR_ORGNO = '999888777';
export const CUSTOMER_ORGNO = '123456789';
export const API_SCOPE = 'skatteetaten:mvameldingvalidering';

export interface World {
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

export async function world(t: Test, opts: { adminScopes?: string[]; grantedScopes?: string[]; redisUrl?: string; certificate?: { pem: string; keyPem: string } } = {}): Promise<World> {
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

export const json = (run: CliRun) => JSON.parse(run.stdout) as { tenants: { id: string; clientId?: string | null; differences?: { field: string; want: unknown; have: unknown }[]; notes?: string[]; changes?: string[] }[] };
export const onlyClient = (w: World) => {
  const clients = [...w.selfService.registry.values()];
  return clients.length === 1 ? clients[0]! : undefined;
};

/** A self-signed RSA certificate standing in for an enterprise certificate (Node has no X.509 issuing API). */
export async function rsaCertificate(name: string): Promise<{ pem: string; keyPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bff-cert-'));
  try {
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${name}/O=${name} AS`]);
    return { pem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An admin access token, as the CLI gets one, for calling the look-alike directly. */
export function adminTokenFor(w: World): Promise<string> {
  return adminAccessToken({ environment: 'test', clientId: 'vendor-admin', key: { kind: 'jwk', jwk: w.adminJwk }, adminApiUrl: w.selfService.url, maskinportenIssuer: String(w.digdir.maskinportenIssuer) });
}
