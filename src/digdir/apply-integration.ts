/**
 * `integrations apply` for one tenant: the integration created or updated to match what the gateway needs, and,
 * when no key of ours is registered, a new RS256 key registered and its private half kept sealed where the gateway
 * reads it. Shared by the command line and the admin API (PUT /admin/tenants/{id}?apply=true).
 */
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import type { AppliedIntegrationRecord, GatewayConfig, TenantConfig, TenantSettings } from '../config/types.js';
import { hasClient } from '../config/normalise.js';
import { sealKey, type AppliedIntegrations } from './applied-integrations.js';
import { compare, describe, descriptionFor, wantedIntegration } from './integration-spec.js';
import type { PublicJwk, RegisteredClient, SelfServiceApi } from './self-service.js';

type Tenant = TenantConfig | TenantSettings;

/** What apply did, or would do with `dryRun`, for one tenant. */
export interface AppliedChanges {
  id: string;
  clientId: string | null;
  changes: string[];
}

export interface Found {
  client: RegisteredClient | undefined;
  record: AppliedIntegrationRecord | undefined;
  signingKid: string | undefined;
}

/** A tenant whose client the configuration names by hand: the integrations commands read it but leave it. */
export const isConfigured = hasClient;

/** The tenant's registered integration: by the client id it was given or kept, else by apply's description. */
export async function findIntegration(records: AppliedIntegrations, tenant: Tenant, registered: Promise<RegisteredClient[]>): Promise<Found> {
  const record = isConfigured(tenant) ? undefined : await records.read(tenant);
  const clientId = isConfigured(tenant) ? tenant.idporten.clientId : record?.clientId;
  const signingKid = isConfigured(tenant)
    ? tenant.idporten.clientAuth.method === 'private_key_jwt' ? tenant.idporten.clientAuth.privateKeyJwk.kid : undefined
    : record?.keys[0]?.kid;
  const all = await registered;
  const client =
    all.find((c) => clientId !== undefined && c.client_id === clientId) ??
    (isConfigured(tenant) ? undefined : all.find((c) => c.description === descriptionFor(tenant.id) && c.client_orgno === tenant.orgno));
  return { client, record, signingKid };
}

/** Throws DigdirRefused (the API refused this tenant's integration, or the admin client) or DigdirUnavailable. */
export async function applyIntegration(
  ctx: { config: GatewayConfig; api: SelfServiceApi; records: AppliedIntegrations },
  tenant: Tenant,
  opts: { dryRun: boolean; registered?: Promise<RegisteredClient[]> },
): Promise<AppliedChanges> {
  const changes: string[] = [];
  const entry: AppliedChanges = { id: tenant.id, clientId: null, changes };
  if (isConfigured(tenant)) {
    changes.push(`left as it is: its client (${tenant.idporten.clientId}) is in the configuration; remove idporten.clientId and clientAuth to let apply keep it`);
    return entry;
  }
  const { api, records } = ctx;
  const found = await findIntegration(records, tenant, opts.registered ?? api.list());
  const want = wantedIntegration(tenant, ctx.config.session);
  let client = found.client;
  if (!client) {
    changes.push(`create an integration (${want.integration_type}, client_orgno ${want.client_orgno})`);
    if (!opts.dryRun) client = await api.create(want);
  } else {
    const differing = compare(want, client, [], 'n/a').differences.filter((d) => d.field !== 'jwks');
    if (differing.length > 0) {
      changes.push(...differing.map((d) => `update ${describe(d)}`));
      if (!opts.dryRun) client = await api.update(client.client_id, want);
    }
  }
  entry.clientId = client?.client_id ?? null;
  const registered = client ? await api.keys(client.client_id) : [];
  const held = found.record?.clientId === client?.client_id ? found.record : undefined;
  if (held && registered.some((k) => k.kid === held.keys[0]!.kid)) {
    if (changes.length === 0) changes.push('nothing to change');
    return entry;
  }
  // No key of ours is registered (a new integration, or a record lost): a new key replaces what is there,
  // since a key whose private half nobody holds is of no use.
  changes.push('register a new RS256 key and keep its private half sealed in ' + records.where);
  if (opts.dryRun || !client) return entry;
  const key = await newKey(tenant.id);
  await api.setKeys(client.client_id, [key.publicJwk]);
  await records.write(tenant, { clientId: client.client_id, keys: [sealKey(ctx.config, tenant.id, key.privateJwk)] });
  return entry;
}

/**
 * A new RS256 key of 2048 bits (the API's documented limit). Its kid is unique across all of Digdir's clients, as
 * one reading of the documentation requires: the tenant's id, the time and random bytes, of [A-Za-z0-9._-].
 */
export async function newKey(tenantId: string): Promise<{ publicJwk: PublicJwk; privateJwk: PublicJwk & { kid: string } }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const kid = `${tenantId}.${new Date().toISOString().slice(0, 10)}.${randomBytes(6).toString('base64url')}`;
  const common = { kid, alg: 'RS256', use: 'sig' };
  return {
    publicJwk: { ...(await exportJWK(publicKey)), ...common } as PublicJwk,
    privateJwk: { ...(await exportJWK(privateKey)), ...common } as PublicJwk & { kid: string },
  };
}
