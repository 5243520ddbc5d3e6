/**
 * `idporten-bff integrations check|apply|rotate-keys|remove`: each tenant's ID-porten integration kept through
 * Digdir's self-service API. Exit status: 0 done (check: nothing differs), 1 a difference (check) or a refusal by
 * the API, 2 could not check or apply (configuration, Maskinporten or the API unreachable, the admin client refused).
 */
import { parseDurationMs, parseUnboundedDurationMs } from '../config/duration.js';
import type { GatewayConfig, TenantConfig, TenantSettings } from '../config/types.js';
import { appliedIntegrations, NowhereToKeep, sealKey, type AppliedIntegrations } from '../digdir/applied-integrations.js';
import { applyIntegration, findIntegration, isConfigured, newKey, type AppliedChanges, type Found } from '../digdir/apply-integration.js';
import { DigdirRefused, DigdirUnavailable } from '../digdir/errors.js';
import { compare, describe, wantedIntegration, type Comparison } from '../digdir/integration-spec.js';
import { adminAccessToken } from '../digdir/maskinporten.js';
import { MAX_KEYS, SelfServiceApi, type RegisteredClient } from '../digdir/self-service.js';
import { normaliseTenantEntry } from '../config/normalise.js';
import { KeyRing } from '../session/key-ring.js';
import { redisClient } from '../session/redis-store.js';
import { RedisTenantStore } from '../tenant/tenant-store.js';
import type { IntegrationsCommand } from './args.js';

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

type Tenant = TenantConfig | TenantSettings;

/** A usage or configuration problem: exit 2 with the message. */
class CannotRun extends Error {}

export async function runIntegrations(command: IntegrationsCommand, config: GatewayConfig, io: Io, opts: { sleep?: (ms: number) => Promise<void> } = {}): Promise<number> {
  let records: AppliedIntegrations | undefined;
  try {
    if (!config.digdir) throw new CannotRun("the configuration has no digdir block (the vendor's admin client for Digdir's self-service API)");
    const tenants = selectTenants(config, await addedAtRunTime(config, io), command.tenant);
    const digdir = config.digdir;
    const api = new SelfServiceApi(digdir.adminApiUrl, () => adminAccessToken(digdir));
    records = appliedIntegrations(config);
    const run = new Run(config, api, records, io, command);
    switch (command.action) {
      case 'check':
        return await run.check(tenants);
      case 'apply':
        return await run.apply(tenants);
      case 'remove':
        return await run.remove(tenants[0]!);
      default:
        return await run.rotateKeys(tenants, opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))));
    }
  } catch (err) {
    if (err instanceof CannotRun || err instanceof NowhereToKeep) {
      io.stderr.write(`idporten-bff: integrations ${command.action}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof DigdirUnavailable) {
      io.stderr.write(`idporten-bff: integrations ${command.action}: could not reach Digdir: ${err.message}\n`);
      return 2;
    }
    if (err instanceof DigdirRefused) {
      // The admin token itself refused, or the API refused the admin client: nothing about the tenants is known.
      io.stderr.write(`idporten-bff: integrations ${command.action}: ${err.message}\n`);
      return err.aboutAdminClient || command.action === 'check' ? 2 : 1;
    }
    throw err;
  } finally {
    await records?.close();
  }
}

/**
 * The tenants added through the admin API with a Redis store (with tenantsDir they are files there, and in the
 * configuration already); one that does not hold here, or shares an id with the file's, is named and left out.
 */
async function addedAtRunTime(config: GatewayConfig, io: Io): Promise<Tenant[]> {
  const storeConfig = config.session.store;
  if (storeConfig.type !== 'redis') return [];
  const redis = redisClient(storeConfig);
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const { tenants, unreadable } = await new RedisTenantStore(redis, storeConfig.keyPrefix, new KeyRing(config.session.keys)).list();
    const inFile = new Set([...config.tenants, ...(config.awaitingClient ?? [])].map((tenant) => tenant.id));
    const added: Tenant[] = [];
    for (const reason of unreadable) io.stderr.write(`idporten-bff: integrations: a tenant added at run time is left out: ${reason}\n`);
    for (const [id, json] of tenants) {
      if (inFile.has(id)) continue;
      try {
        added.push(normaliseTenantEntry(JSON.parse(json), process.env, config.tenantsDir?.baseDir ?? process.cwd(), { awaitingClient: true }));
      } catch (err) {
        io.stderr.write(`idporten-bff: integrations: tenant ${id}, added at run time, is left out: ${(err as Error).message}\n`);
      }
    }
    return added;
  } catch (err) {
    throw new CannotRun(`the tenants added at run time could not be read from Redis: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}

function selectTenants(config: GatewayConfig, added: Tenant[], only: string | undefined): Tenant[] {
  const all: Tenant[] = [...config.tenants, ...(config.awaitingClient ?? []), ...added];
  if (only !== undefined) {
    const tenant = all.find((t) => t.id === only);
    if (!tenant) throw new CannotRun(`no tenant ${JSON.stringify(only)} in the configuration`);
    if (tenant.orgno === undefined) throw new CannotRun(`tenant ${only} has no orgno: its integration is not kept through the self-service API`);
    return [tenant];
  }
  const withOrgno = all.filter((t) => t.orgno !== undefined);
  if (withOrgno.length === 0) throw new CannotRun('no tenant has an orgno: give each customer tenant its organisation number');
  return withOrgno;
}

class Run {
  #registered: Promise<RegisteredClient[]> | undefined;

  constructor(
    readonly config: GatewayConfig,
    readonly api: SelfServiceApi,
    readonly records: AppliedIntegrations,
    readonly io: Io,
    readonly command: IntegrationsCommand,
  ) {}

  async check(tenants: Tenant[]): Promise<number> {
    const results: { id: string; clientId: string | null; differences: Comparison['differences']; notes: string[] }[] = [];
    for (const tenant of tenants) {
      const found = await this.find(tenant);
      if (!found.client) {
        results.push({ id: tenant.id, clientId: null, differences: [{ field: 'client_id', want: 'an integration for this tenant', have: null }], notes: [] });
        continue;
      }
      const kids = (await this.api.keys(found.client.client_id)).map((k) => k.kid);
      const result = compare(this.want(tenant), found.client, kids, found.signingKid);
      results.push({ id: tenant.id, clientId: found.client.client_id, ...result });
    }
    if (this.command.json) this.out(`${JSON.stringify({ tenants: results }, null, 2)}\n`);
    else {
      for (const r of results) {
        const head = `tenant ${r.id}${r.clientId ? ` (integration ${r.clientId})` : ''}`;
        if (r.clientId === null) this.out(`${head}: no integration is registered; run idporten-bff integrations apply --tenant ${r.id}\n`);
        else if (r.differences.length === 0) this.out(`${head}: matches what the gateway needs\n`);
        else this.out(`${head}: ${r.differences.length} ${r.differences.length === 1 ? 'difference' : 'differences'}\n${r.differences.map((d) => `  - ${describe(d)}\n`).join('')}`);
        for (const note of r.notes) this.out(`  note: ${note}\n`);
      }
    }
    return results.some((r) => r.differences.length > 0) ? 1 : 0;
  }

  async apply(tenants: Tenant[]): Promise<number> {
    const dry = this.command.dryRun;
    const report: AppliedChanges[] = [];
    let refused = false;
    for (const tenant of tenants) {
      try {
        report.push(await applyIntegration(this, tenant, { dryRun: dry, registered: this.registered() }));
      } catch (err) {
        if (!(err instanceof DigdirRefused) || err.aboutAdminClient) throw err;
        refused = true;
        report.push({ id: tenant.id, clientId: null, changes: [`refused: ${err.message}`] });
        this.io.stderr.write(`idporten-bff: integrations apply: tenant ${tenant.id}: ${err.message}\n`);
      }
    }
    this.report(report, dry ? 'would' : 'did');
    return refused ? 1 : 0;
  }

  async remove(tenant: Tenant): Promise<number> {
    if (isConfigured(tenant)) throw new CannotRun(`tenant ${tenant.id}'s client (${tenant.idporten.clientId}) is in the configuration, not kept by apply: remove it in Digdir's self-service`);
    const found = await this.find(tenant);
    const changes: string[] = [];
    if (found.client) changes.push(`delete integration ${found.client.client_id}`);
    if (found.record) changes.push(`forget the client id and keys kept in ${this.records.where}`);
    if (changes.length === 0) changes.push('nothing to remove: no integration is registered for this tenant');
    if (!this.command.dryRun) {
      if (found.client) await this.api.remove(found.client.client_id);
      if (found.record) await this.records.remove(tenant);
    }
    this.report([{ id: tenant.id, clientId: found.client?.client_id ?? null, changes }], this.command.dryRun ? 'would' : 'did');
    return 0;
  }

  async rotateKeys(tenants: Tenant[], sleep: (ms: number) => Promise<void>): Promise<number> {
    const overlapMs = parseDuration('--overlap', this.command.overlap, parseDurationMs);
    const everyMs = this.command.every === undefined ? undefined : parseDuration('--every', this.command.every, parseUnboundedDurationMs);
    const applied = tenants.filter((t): t is TenantSettings => !isConfigured(t));
    for (;;) {
      let refused = false;
      for (const tenant of applied) refused = !(await this.rotateOne(tenant, overlapMs)) || refused;
      if (overlapMs > 0) await sleep(overlapMs);
      for (const tenant of applied) await this.retire(tenant);
      if (everyMs === undefined) return refused ? 1 : 0;
      this.out(`next rotation in ${this.command.every}\n`);
      await sleep(Math.max(0, everyMs - overlapMs));
    }
  }

  /** Adds a key and switches signing to it; false when the API's key limit leaves no room. */
  async rotateOne(tenant: TenantSettings, overlapMs: number): Promise<boolean> {
    await this.retire(tenant);
    const record = await this.records.read(tenant);
    if (!record) {
      this.io.stderr.write(`idporten-bff: integrations rotate-keys: tenant ${tenant.id} has no applied integration; run integrations apply first\n`);
      return false;
    }
    const registered = await this.api.keys(record.clientId);
    if (registered.length + 1 > MAX_KEYS) {
      this.io.stderr.write(`idporten-bff: integrations rotate-keys: tenant ${tenant.id}: the integration has ${registered.length} keys, and the API takes at most ${MAX_KEYS}; wait until the overlap of earlier keys has passed\n`);
      return false;
    }
    const key = await newKey(tenant.id);
    await this.api.setKeys(record.clientId, [...registered, key.publicJwk]);
    // Signing switches only now that the key is registered; the old keys stay registered for the overlap.
    const retireAt = new Date(Date.now() + overlapMs).toISOString();
    const keys = [sealKey(this.config, tenant.id, key.privateJwk), ...record.keys.map((k) => ({ ...k, retireAt: k.retireAt ?? retireAt }))];
    await this.records.write(tenant, { clientId: record.clientId, keys });
    this.out(`tenant ${tenant.id}: key ${key.publicJwk.kid} registered and signing; ${record.keys.map((k) => k.kid).join(', ')} removed at ${retireAt}\n`);
    return true;
  }

  /** Removes the keys whose overlap has passed, from the registration and from the record. */
  async retire(tenant: TenantSettings): Promise<void> {
    const record = await this.records.read(tenant);
    if (!record) return;
    const now = Date.now();
    const due = record.keys.filter((k) => k.retireAt !== undefined && Date.parse(k.retireAt) <= now).map((k) => k.kid);
    if (due.length === 0) return;
    const registered = await this.api.keys(record.clientId);
    await this.api.setKeys(record.clientId, registered.filter((k) => !due.includes(k.kid)));
    await this.records.write(tenant, { clientId: record.clientId, keys: record.keys.filter((k) => !due.includes(k.kid)) });
    this.out(`tenant ${tenant.id}: key ${due.join(', ')} removed\n`);
  }

  want(tenant: Tenant) {
    return wantedIntegration(tenant, this.config.session);
  }

  /** The integrations registered for the vendor, listed once per run. */
  registered(): Promise<RegisteredClient[]> {
    return (this.#registered ??= this.api.list());
  }

  find(tenant: Tenant): Promise<Found> {
    return findIntegration(this.records, tenant, this.registered());
  }

  report(entries: { id: string; clientId: string | null; changes: string[] }[], mood: 'would' | 'did'): void {
    if (this.command.json) return this.out(`${JSON.stringify({ dryRun: mood === 'would', tenants: entries }, null, 2)}\n`);
    for (const e of entries) {
      this.out(`tenant ${e.id}${e.clientId ? ` (integration ${e.clientId})` : ''}${mood === 'would' ? ' — dry run, nothing changed' : ''}:\n${e.changes.map((c) => `  - ${c}\n`).join('')}`);
    }
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }
}

function parseDuration(option: string, text: string, parse: (value: unknown) => number): number {
  try {
    return parse(text);
  } catch (err) {
    throw new CannotRun(`${option} ${text}: ${(err as Error).message}`);
  }
}
