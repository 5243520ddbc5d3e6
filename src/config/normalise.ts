/**
 * raw configuration → validated GatewayConfig, in three stages:
 *   1. `${NAME}` expansion (a missing variable is reported where it was used),
 *   2. the schema in schema.ts (shape, types, unknown keys),
 *   3. rules across fields (lifetimes, URLs, unique ids, key strength, presets).
 * Each stage reports every problem it finds; a later stage runs only when the earlier ones passed,
 * because its checks rely on the shape the schema guarantees.
 */

import { ConfigError, IssueList } from './errors.js';
import { expandEnv } from './env.js';
import { childPath, isWithin } from './path.js';
import type { RawConfig } from './schema.js';
import { normaliseServer } from './server.js';
import { normaliseSession } from './session.js';
import { normaliseTenant } from './tenant.js';
import type { GatewayConfig, TenantConfig } from './types.js';
import { mergeTenantsDir, nameTenantFiles } from './tenants-dir.js';
import { validateAgainstSchema } from './validate.js';

/** `baseDir` is where relative file paths (CA bundles, session.journalDir) are taken from: the config file's folder. */
export function normaliseConfig(raw: unknown, env: NodeJS.ProcessEnv, baseDir: string = process.cwd()): GatewayConfig {
  const { raw: merged, sources } = mergeTenantsDir(raw, baseDir);
  try {
    return normaliseMerged(merged, env, baseDir);
  } catch (err) {
    throw err instanceof ConfigError ? nameTenantFiles(err, sources) : err;
  }
}

function normaliseMerged(raw: unknown, env: NodeJS.ProcessEnv, baseDir: string): GatewayConfig {
  const expanded = expandEnv(raw, env);
  // A value still holding an unexpanded ${NAME} fails its own checks too; that would only repeat the cause.
  const schemaIssues = validateAgainstSchema(expanded.value).filter(
    (issue) => !expanded.issues.some((missing) => isWithin(issue.path, missing.path)),
  );
  const firstIssues = [...expanded.issues, ...schemaIssues];
  if (firstIssues.length > 0) throw new ConfigError(firstIssues);

  const config = expanded.value as RawConfig;
  const issues = new IssueList();
  const server = normaliseServer(config.server, issues);
  const session = normaliseSession(config.session, issues, baseDir);
  if (config.tenants === undefined) issues.add('tenants', 'is required: list at least one tenant here, or give tenantsDir');
  const tenants = normaliseTenants(config.tenants ?? [], baseDir, issues);
  issues.throwIfAny();
  return { server, session, tenants };
}

function normaliseTenants(raw: NonNullable<RawConfig['tenants']>, baseDir: string, issues: IssueList): TenantConfig[] {
  const tenants: TenantConfig[] = [];
  const indexById = new Map<string, number>();
  const indexByHost = new Map<string, number>();
  const indexByHostname = new Map<string, number>();
  raw.forEach((entry, index) => {
    const path = childPath('tenants', index);
    const sameId = indexById.get(entry.id);
    if (sameId !== undefined) issues.add(childPath(path, 'id'), `repeats tenants[${sameId}].id; tenant ids must be unique`);
    else indexById.set(entry.id, index);

    const tenant = normaliseTenant(entry, path, baseDir, issues);
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
    tenants.push(tenant);
  });
  return tenants;
}
