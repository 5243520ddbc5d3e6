/**
 * raw configuration → validated GatewayConfig, in three stages:
 *   1. `${NAME}` expansion (a missing variable is reported where it was used),
 *   2. the schema in schema.ts (shape, types, unknown keys),
 *   3. rules across fields (lifetimes, URLs, unique ids, key strength, presets).
 * Every problem of every stage is reported in one run. The rules rely on the shape the schema guarantees, so
 * where a value's shape is wrong (and, for a missing key or a wrong choice such as `method`, the object around
 * it) their findings are left out — they would repeat the cause or be made up from a stand-in — and a rule
 * that cannot run on a malformed part stops there without hiding the rest.
 */

import { ConfigError, IssueList, type ConfigIssue } from './errors.js';
import { expandEnv } from './env.js';
import { childPath, isWithin } from './path.js';
import type { RawConfig } from './schema.js';
import { normaliseServer } from './server.js';
import { normaliseSession } from './session.js';
import { normaliseTenant } from './tenant.js';
import type { GatewayConfig, TenantConfig, TenantSettings } from './types.js';
import { normaliseDigdir } from './digdir.js';
import { mergeTenantsDir, nameTenantFiles } from './tenants-dir.js';
import { validateAgainstSchema } from './validate.js';

/** `baseDir` is where relative file paths (CA bundles, session.journalDir) are taken from: the config file's folder. */
export function normaliseConfig(raw: unknown, env: NodeJS.ProcessEnv, baseDir: string = process.cwd()): GatewayConfig {
  const { raw: merged, dir, sources, issues: fileIssues } = mergeTenantsDir(raw, baseDir);
  let config: GatewayConfig;
  try {
    config = normaliseMerged(merged, env, baseDir, fileIssues, sources);
  } catch (err) {
    throw err instanceof ConfigError ? nameTenantFiles(err, sources) : err;
  }
  if (dir !== undefined) {
    const listed = (merged as { tenants: { id: string }[] }).tenants;
    const fromDir = [...sources.keys()].map((index) => listed[index]!.id);
    const awaiting = new Set(config.awaitingClient?.map((tenant) => tenant.id));
    config.tenantsDir = { path: dir, baseDir, ids: fromDir.filter((id) => !awaiting.has(id)), applied: fromDir.filter((id) => awaiting.has(id)) };
  }
  return config;
}

/** A session key that only lets a lone tenant pass through the whole file's rules (it is never used). */
const PLACEHOLDER_SESSION = { keys: [{ id: 'placeholder', secret: Buffer.alloc(32, 1).toString('base64url') }] };

/**
 * One tenant in the shape of an entry of `tenants` (a tenant file, or a tenant given to the admin API), checked by
 * the same schema and rules as at start-up. Issues name paths inside the entry (`idporten.clientId`).
 * `awaitingClient`: a tenant with an orgno may come without its client, which `integrations apply` makes.
 */
export function normaliseTenantEntry(raw: unknown, env: NodeJS.ProcessEnv, baseDir: string, opts: { awaitingClient?: boolean } = {}): TenantConfig | TenantSettings {
  try {
    const config = normaliseMerged({ session: PLACEHOLDER_SESSION, tenants: [raw] }, env, baseDir, [], new Map(), opts.awaitingClient ?? false);
    return config.tenants[0] ?? config.awaitingClient![0]!;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(err.issues.map((issue) => ({ ...issue, path: issue.path.replace(/^tenants\[0\]\.?/, '') })));
  }
}

/** A tenant with its ID-porten client; the others await the one `integrations apply` makes. */
export function hasClient(tenant: TenantConfig | TenantSettings): tenant is TenantConfig {
  return 'clientId' in tenant.idporten;
}

/**
 * Why `tenant` cannot join `others`: requests find their tenant by Host, and cookies are scoped by host name alone,
 * so two tenants share neither a host nor a host name. Undefined when it can.
 */
export function hostClash(tenant: Pick<TenantConfig, 'publicUrl'>, others: Iterable<Pick<TenantConfig, 'id' | 'publicUrl'>>): string | undefined {
  const { host, hostname } = new URL(tenant.publicUrl);
  for (const other of others) {
    const theirs = new URL(other.publicUrl);
    if (theirs.host === host) return `uses the same host (${host}) as tenant ${other.id}; each tenant needs its own host`;
    if (theirs.hostname === hostname) return `has the same host name (${hostname}) as tenant ${other.id}; browsers share cookies across ports, so each tenant needs its own host name`;
  }
  return undefined;
}

/** `allowAwaiting`: tenants with an orgno may come without a client although there is no digdir block (a lone tenant's check). */
function normaliseMerged(raw: unknown, env: NodeJS.ProcessEnv, baseDir: string, fileIssues: readonly ConfigIssue[], sources: Map<number, string>, allowAwaiting = false): GatewayConfig {
  const expanded = expandEnv(raw, env);
  // A value still holding an unexpanded ${NAME} fails its own checks too; that would only repeat the cause.
  const schemaIssues = validateAgainstSchema(expanded.value).filter(
    (issue) => !expanded.issues.some((missing) => isWithin(issue.path, missing.path)),
  );
  const shapeIssues: ConfigIssue[] = [...fileIssues, ...expanded.issues, ...schemaIssues.map(({ path, message }) => ({ path, message }))];
  const unreliable = [...expanded.issues.map((issue) => issue.path), ...schemaIssues.map((issue) => issue.affects)];

  const config = expanded.value as RawConfig;
  const rules = new IssueList();
  // A rule that fails on a malformed part (a list where an object belongs, say) stops there; the schema has said why.
  const check = <T>(run: () => T): T | undefined => {
    try {
      return run();
    } catch (err) {
      if (err instanceof ConfigError) for (const issue of err.issues) rules.add(issue.path, issue.message);
      else if (shapeIssues.length === 0) throw err;
      return undefined;
    }
  };
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject(config)) throw new ConfigError(shapeIssues);
  const server = check(() => normaliseServer(isObject(config.server) ? config.server : {}, rules));
  const session = check(() => normaliseSession(config.session, rules, baseDir));
  const digdir = isObject(config.digdir) ? check(() => normaliseDigdir(config.digdir!, 'digdir', rules)) : undefined;
  if (config.tenants === undefined) rules.add('tenants', 'is required: list at least one tenant here, or give tenantsDir');
  const { tenants, awaitingClient } = Array.isArray(config.tenants)
    ? normaliseTenants(config.tenants, baseDir, rules, check, allowAwaiting || config.digdir !== undefined, sources)
    : { tenants: [], awaitingClient: [] };

  const ruleIssues = rules.items.filter((issue) => !unreliable.some((part) => isWithin(issue.path, part) || isWithin(part, issue.path)));
  const all = [...shapeIssues, ...ruleIssues];
  if (all.length > 0) throw new ConfigError(all);
  const gateway: GatewayConfig = { server: server!, session: session!, tenants };
  if (awaitingClient.length > 0) gateway.awaitingClient = awaitingClient;
  if (digdir) gateway.digdir = digdir;
  return gateway;
}

function normaliseTenants(
  raw: NonNullable<RawConfig['tenants']>,
  baseDir: string,
  issues: IssueList,
  check: <T>(run: () => T) => T | undefined,
  hasDigdir: boolean,
  sources: Map<number, string>,
): { tenants: TenantConfig[]; awaitingClient: TenantSettings[] } {
  const tenants: TenantConfig[] = [];
  const awaitingClient: TenantSettings[] = [];
  const indexById = new Map<string, number>();
  const indexByHost = new Map<string, number>();
  const indexByHostname = new Map<string, number>();
  raw.forEach((entry, index) => {
    const path = childPath('tenants', index);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return;
    if (typeof entry.id === 'string') {
      const sameId = indexById.get(entry.id);
      if (sameId !== undefined) issues.add(childPath(path, 'id'), `repeats tenants[${sameId}].id; tenant ids must be unique`);
      else indexById.set(entry.id, index);
    }

    const tenant = check(() => normaliseTenant(entry, path, baseDir, issues, hasDigdir));
    if (!tenant) return;
    // Requests are matched to a tenant by their Host header, so two tenants cannot share one. Nor can they
    // share a host name on different ports (or schemes): cookies are scoped by host name alone, so one
    // tenant's session cookie would reach the other.
    const { host, hostname } = new URL(tenant.publicUrl);
    const sameHost = indexByHost.get(host);
    const sameHostname = indexByHostname.get(hostname);
    if (sameHost !== undefined) {
      issues.add(childPath(path, 'publicUrl'), `uses the same host (${host}) as tenants[${sameHost}].publicUrl; each tenant needs its own host`);
    } else if (sameHostname !== undefined) {
      issues.add(
        childPath(path, 'publicUrl'),
        `has the same host name (${hostname}) as tenants[${sameHostname}].publicUrl; browsers share cookies across ports, so each tenant needs its own host name`,
      );
    } else {
      indexByHost.set(host, index);
      indexByHostname.set(hostname, index);
    }
    if (hasClient(tenant)) tenants.push(tenant);
    else {
      const file = sources.get(index);
      awaitingClient.push(file === undefined ? tenant : { ...tenant, sourceFile: file });
    }
  });
  return { tenants, awaitingClient };
}
