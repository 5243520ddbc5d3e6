/**
 * Where `integrations apply` keeps what it made for a tenant — the client id and the private keys, sealed under
 * session.keys — and where the gateway reads it at start and on reload: the Redis store when the gateway uses one,
 * otherwise the tenant's own file in tenantsDir (its `integration` key). One owner for both sides.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { AppliedIntegrationRecord, GatewayConfig, JsonWebKeyWithKid, TenantConfig, TenantSettings } from '../config/types.js';
import { KeyRing } from '../session/key-ring.js';
import { redisClient } from '../session/redis-store.js';

export interface AppliedIntegrations {
  /** Where records are kept, for messages: "Redis" or "the tenant's file". */
  readonly where: string;
  read(tenant: TenantSettings): Promise<AppliedIntegrationRecord | undefined>;
  write(tenant: TenantSettings, record: AppliedIntegrationRecord): Promise<void>;
  remove(tenant: TenantSettings): Promise<void>;
  close(): Promise<void>;
}

/** The store the configuration implies; throws when a tenant's record has nowhere to go. */
export function appliedIntegrations(config: GatewayConfig): AppliedIntegrations {
  const store = config.session.store;
  if (store.type === 'redis') return redisRecords(store);
  return fileRecords;
}

export class NowhereToKeep extends Error {}

const fileRecords: AppliedIntegrations = {
  where: "the tenant's file",
  // Read from the file each time: the configuration in hand was loaded before this run changed the record.
  read: async (tenant) =>
    tenant.sourceFile === undefined ? tenant.appliedIntegration : ((parseDocument(readFileSync(tenant.sourceFile, 'utf8')).toJS() as { integration?: AppliedIntegrationRecord } | null)?.integration ?? undefined),
  write: async (tenant, record) => editTenantFile(tenant, (doc) => doc.set('integration', record)),
  remove: async (tenant) => editTenantFile(tenant, (doc) => doc.delete('integration')),
  close: async () => undefined,
};

/** Sets or deletes `integration` in the tenant's file, keeping its comments (YAML), written whole (rename). */
function editTenantFile(tenant: TenantSettings, edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const file = tenant.sourceFile;
  if (file === undefined) {
    throw new NowhereToKeep(`tenant ${tenant.id} is not in a file of tenantsDir and the session store is not Redis: apply has nowhere to keep its client id and key`);
  }
  const doc = parseDocument(readFileSync(file, 'utf8'));
  edit(doc);
  const text = /\.json$/i.test(file) ? `${JSON.stringify(doc.toJS(), null, 2)}\n` : doc.toString({ lineWidth: 0 });
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

function redisRecords(store: Extract<GatewayConfig['session']['store'], { type: 'redis' }>): AppliedIntegrations {
  const redis = redisClient(store);
  let connected: Promise<unknown> | undefined;
  const ready = () => (connected ??= redis.connect());
  const key = (tenant: TenantSettings) => `${store.keyPrefix}integration:${tenant.id}`;
  return {
    where: 'Redis',
    async read(tenant) {
      await ready();
      const text = await redis.get(key(tenant));
      return text === null ? undefined : (JSON.parse(text) as AppliedIntegrationRecord);
    },
    async write(tenant, record) {
      await ready();
      await redis.set(key(tenant), JSON.stringify(record));
    },
    async remove(tenant) {
      await ready();
      await redis.del(key(tenant));
    },
    async close() {
      redis.disconnect();
    },
  };
}

const aad = (tenantId: string, kid: string) => `idporten-bff:integration-key:${tenantId}:${kid}`;

export function sealKey(config: GatewayConfig, tenantId: string, jwk: JsonWebKeyWithKid & { kid: string }): { kid: string; sealedJwk: string } {
  return { kid: jwk.kid, sealedJwk: new KeyRing(config.session.keys).seal(JSON.stringify(jwk), aad(tenantId, jwk.kid)) };
}

/** The record's signing key (the first), opened; undefined when it does not open (session.keys changed). */
export function signingKey(config: GatewayConfig, tenantId: string, record: AppliedIntegrationRecord): JsonWebKeyWithKid | undefined {
  const first = record.keys[0];
  const text = first && new KeyRing(config.session.keys).open(first.sealedJwk, aad(tenantId, first.kid));
  return text ? (JSON.parse(text) as JsonWebKeyWithKid) : undefined;
}

/**
 * The configuration with every tenant that awaits its client given the one apply made, and the ids of those with
 * none yet (the gateway serves the others and says which are missing). `kept`: a store to read from and leave open.
 */
export async function withAppliedIntegrations(config: GatewayConfig, kept?: AppliedIntegrations): Promise<{ config: GatewayConfig; missing: string[] }> {
  const awaiting = config.awaitingClient ?? [];
  if (awaiting.length === 0) return { config, missing: [] };
  // A store handed in stays open for its owner's next read; one opened here is closed here.
  const records = kept ?? appliedIntegrations(config);
  const tenants: TenantConfig[] = [...config.tenants];
  const missing: string[] = [];
  try {
    for (const tenant of awaiting) {
      const record = await records.read(tenant);
      const jwk = record && signingKey(config, tenant.id, record);
      if (!record || !jwk) {
        missing.push(tenant.id);
        continue;
      }
      const { appliedIntegration: _record, sourceFile: _file, ...settings } = tenant;
      tenants.push({ ...settings, idporten: { ...settings.idporten, clientId: record.clientId, clientAuth: { method: 'private_key_jwt', privateKeyJwk: jwk } } });
    }
  } finally {
    if (!kept) await records.close();
  }
  const { awaitingClient: _awaiting, ...rest } = config;
  return { config: { ...rest, tenants }, missing };
}
