/**
 * The demo's vendor side: Maskinporten and Digdir's self-service API look-alikes, an admin client registered at
 * Maskinporten, and a vendor configuration (a gateway for a customer, "Kunde AS", with an orgno and no client) that
 * `idporten-bff integrations apply` onboards in one command. The ID-porten look-alike reads the clients registered
 * here (findClient), so the customer can log in right after.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { loginClientFrom, startSelfServiceLookalike, type SelfServiceLookalike } from './digdir-self-service.js';
import type { ClientMetadata } from './idporten-op.js';
import { startMaskinportenLookalike, type MaskinportenLookalike } from './maskinporten.js';

export const VENDOR_ORGNO = '999888777';
export const CUSTOMER_ORGNO = '123456789';
/** The Skatteetaten scope the vendor has been granted (the customer's gateway asks for it). */
const GRANTED_SCOPES = ['skatteetaten:mvameldingvalidering', 'skatteetaten:mvameldinginnsending', 'altinn:instances.read', 'altinn:instances.write'];

export interface OnboardingPorts {
  maskinporten: number;
  selfService: number;
  /** The customer's gateway. */
  customer: number;
}

export interface Onboarding {
  maskinporten: MaskinportenLookalike;
  selfService: SelfServiceLookalike;
  /** For the ID-porten look-alike: a client registered through the self-service look-alike. */
  findClient(clientId: string): ClientMetadata | undefined;
  /** Writes the vendor's configuration for the ID-porten look-alike at `opIssuer`; returns its file and what to run. */
  writeVendorSetup(opIssuer: string): { configFile: string; customerUrl: string; applyCommand: string; serveCommand: string };
  close(): Promise<void>;
}

export async function startOnboarding(ports: OnboardingPorts): Promise<Onboarding> {
  const admin = await generateKeyPair('RS256', { extractable: true });
  const kid = 'demo-vendor-admin';
  const maskinporten = await startMaskinportenLookalike({
    port: ports.maskinporten,
    clients: [{ clientId: 'demo-vendor-admin', orgno: VENDOR_ORGNO, scopes: ['idporten:dcr.supplier'], keys: [{ ...(await exportJWK(admin.publicKey)), kid, alg: 'RS256', use: 'sig' }] }],
  });
  let selfService: SelfServiceLookalike;
  try {
    selfService = await startSelfServiceLookalike({ port: ports.selfService, verifyAccessToken: (token) => maskinporten.verifyAccessToken(token), grantedScopes: GRANTED_SCOPES });
  } catch (err) {
    await maskinporten.close();
    throw err;
  }
  const adminJwk = { ...(await exportJWK(admin.privateKey)), kid, alg: 'RS256' };
  let dir: string | undefined;
  return {
    maskinporten,
    selfService,
    findClient: (clientId) => loginClientFrom(selfService.registry, clientId) as ClientMetadata | undefined,
    writeVendorSetup(opIssuer) {
      dir = mkdtempSync(join(tmpdir(), 'idporten-bff-vendor-'));
      mkdirSync(join(dir, 'tenants'));
      const customerUrl = `http://localhost:${ports.customer}`;
      const configFile = join(dir, 'vendor.yaml');
      // A demo's secrets written into the file: this file lives only as long as the demo.
      writeFileSync(
        configFile,
        stringify({
          server: { port: ports.customer },
          session: { keys: [{ id: 'demo', secret: randomBytes(32).toString('base64url') }] },
          digdir: { environment: 'test', clientId: 'demo-vendor-admin', key: { jwk: adminJwk }, adminApiUrl: selfService.url, maskinportenIssuer: maskinporten.issuer },
          tenantsDir: 'tenants',
        }),
        { mode: 0o600 },
      );
      writeFileSync(
        join(dir, 'tenants', 'kunde.yaml'),
        [
          '# Kunde AS: no client id and no key; `idporten-bff integrations apply` makes the integration and keeps both here.',
          'id: kunde',
          `publicUrl: ${customerUrl}`,
          `orgno: "${CUSTOMER_ORGNO}"`,
          'idporten:',
          `  issuer: ${opIssuer}`,
          '  scopes: [openid, profile, skatteetaten:mvameldingvalidering]',
          'routes: []',
          '',
        ].join('\n'),
      );
      chmodSync(dir, 0o700);
      const cli = 'node --import tsx src/main.ts';
      return { configFile, customerUrl, applyCommand: `${cli} integrations apply --config ${configFile}`, serveCommand: `${cli} --config ${configFile}` };
    },
    async close() {
      await selfService.close().catch(() => undefined);
      await maskinporten.close().catch(() => undefined);
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
