/**
 * `idporten-bff integrations check|apply|rotate-keys|remove`: each tenant's ID-porten integration kept through
 * Digdir's self-service API. Exit status: 0 done (check: nothing differs), 1 a difference (check) or a refusal by
 * the API, 2 could not check or apply (configuration, Maskinporten or the API unreachable, the admin client refused).
 */
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { parseDurationMs, parseUnboundedDurationMs } from '../config/duration.js';
import type { AppliedIntegrationRecord, GatewayConfig, TenantConfig, TenantSettings } from '../config/types.js';
import { appliedIntegrations, NowhereToKeep, sealKey, type AppliedIntegrations } from '../digdir/applied-integrations.js';
import { DigdirRefused, DigdirUnavailable } from '../digdir/errors.js';
import { compare, describe, descriptionFor, wantedIntegration, type Comparison } from '../digdir/integration-spec.js';
import { adminAccessToken } from '../digdir/maskinporten.js';
import { MAX_KEYS, SelfServiceApi, type PublicJwk, type RegisteredClient } from '../digdir/self-service.js';
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
    const tenants = selectTenants(config, command.tenant);
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

function selectTenants(config: GatewayConfig, only: string | undefined): Tenant[] {
  const all: Tenant[] = [...config.tenants, ...(config.awaitingClient ?? [])];
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

/** A tenant whose client the configuration names by hand: the integrations commands read it but leave it. */
const isConfigured = (tenant: Tenant): tenant is TenantConfig => 'clientId' in tenant.idporten;

interface Found {
  client: RegisteredClient | undefined;
  record: AppliedIntegrationRecord | undefined;
  signingKid: string | undefined;
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
    const report: { id: string; clientId: string | null; changes: string[] }[] = [];
    let refused = false;
    for (const tenant of tenants) {
      const changes: string[] = [];
      const entry = { id: tenant.id, clientId: null as string | null, changes };
      report.push(entry);
      if (isConfigured(tenant)) {
        changes.push(`left as it is: its client (${tenant.idporten.clientId}) is in the configuration; remove idporten.clientId and clientAuth to let apply keep it`);
        continue;
      }
      try {
        const found = await this.find(tenant);
        const want = this.want(tenant);
        let client = found.client;
        if (!client) {
          changes.push(`create an integration (${want.integration_type}, client_orgno ${want.client_orgno})`);
          if (!dry) client = await this.api.create(want);
        } else {
          const differing = compare(want, client, [], 'n/a').differences.filter((d) => d.field !== 'jwks');
          if (differing.length > 0) {
            changes.push(...differing.map((d) => `update ${describe(d)}`));
            if (!dry) client = await this.api.update(client.client_id, want);
          }
        }
        entry.clientId = client?.client_id ?? null;
        const registered = client ? await this.api.keys(client.client_id) : [];
        const held = found.record?.clientId === client?.client_id ? found.record : undefined;
        if (held && registered.some((k) => k.kid === held.keys[0]!.kid)) {
          if (changes.length === 0) changes.push('nothing to change');
          continue;
        }
        // No key of ours is registered (a new integration, or a record lost): a new key replaces what is there,
        // since a key whose private half nobody holds is of no use.
        changes.push('register a new RS256 key and keep its private half sealed in ' + this.records.where);
        if (dry || !client) continue;
        const key = await newKey(tenant.id);
        await this.api.setKeys(client.client_id, [key.publicJwk]);
        await this.records.write(tenant, { clientId: client.client_id, keys: [sealKey(this.config, tenant.id, key.privateJwk)] });
      } catch (err) {
        if (!(err instanceof DigdirRefused) || err.aboutAdminClient) throw err;
        refused = true;
        changes.push(`refused: ${err.message}`);
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

  /** The tenant's registered integration: by the client id it was given or kept, else by apply's description. */
  async find(tenant: Tenant): Promise<Found> {
    const record = isConfigured(tenant) ? undefined : await this.records.read(tenant);
    const clientId = isConfigured(tenant) ? tenant.idporten.clientId : record?.clientId;
    const signingKid = isConfigured(tenant)
      ? tenant.idporten.clientAuth.method === 'private_key_jwt' ? tenant.idporten.clientAuth.privateKeyJwk.kid : undefined
      : record?.keys[0]?.kid;
    const registered = await (this.#registered ??= this.api.list());
    const client =
      registered.find((c) => clientId !== undefined && c.client_id === clientId) ??
      (isConfigured(tenant) ? undefined : registered.find((c) => c.description === descriptionFor(tenant.id) && c.client_orgno === tenant.orgno));
    return { client, record, signingKid };
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

/**
 * A new RS256 key of 2048 bits (the API's documented limit). Its kid is unique across all of Digdir's clients, as
 * one reading of the documentation requires: the tenant's id, the time and random bytes, of [A-Za-z0-9._-].
 */
async function newKey(tenantId: string): Promise<{ publicJwk: PublicJwk; privateJwk: PublicJwk & { kid: string } }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const kid = `${tenantId}.${new Date().toISOString().slice(0, 10)}.${randomBytes(6).toString('base64url')}`;
  const common = { kid, alg: 'RS256', use: 'sig' };
  return {
    publicJwk: { ...(await exportJWK(publicKey)), ...common } as PublicJwk,
    privateJwk: { ...(await exportJWK(privateKey)), ...common } as PublicJwk & { kid: string },
  };
}
