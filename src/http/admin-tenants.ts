/**
 * Tenants at run time, on the internal listener behind the admin credential (admin.ts checks it first):
 *
 *   GET    /admin/tenants         every tenant served now: id, publicUrl, where it comes from, whether it is ready
 *   GET    /admin/tenants/{id}    one of them; a tenant added here also with its entry as given (secrets masked)
 *   PUT    /admin/tenants/{id}    adds or replaces a tenant (body: one entry of `tenants`, checked as at start-up):
 *                                 201 added, 200 replaced; 400 problem with `errors: [{ path, message }]`.
 *                                 `?apply=true`: a tenant with an orgno and no client gets its ID-porten integration
 *                                 made through Digdir's self-service API first (integrations apply), then is kept
 *   DELETE /admin/tenants/{id}    removes a tenant added here: 204, or 404
 *
 * A change is kept in the Redis store (sealed) or as a file in tenantsDir, served here before the answer, and on
 * every other instance within about a second (see tenant/runtime.ts).
 */
import type { IncomingMessage } from 'node:http';
import { maskConfig } from '../cli/mask-config.js';
import type { ConfigIssue } from '../config/errors.js';
import { hasClient } from '../config/normalise.js';
import { DigdirRefused, DigdirUnavailable } from '../digdir/errors.js';
import type { AppliedChanges } from '../digdir/apply-integration.js';
import type { TenantIntegrations } from '../digdir/tenant-integrations.js';
import { TenantRefused, type RuntimeTenant } from '../tenant/runtime.js';
import type { Tenant } from '../tenant/tenant.js';
import type { GatewayCore } from './core.js';

/** A tenant is a few kilobytes; this leaves room for a long CA bundle or many routes. */
const BODY_LIMIT_BYTES = 256 * 1024;

export interface AdminTenantEntry {
  id: string;
  publicUrl: string;
  /** `admin`: added through this API; `configuration`: from the configuration file (or tenantsDir with a Redis store). */
  source: 'admin' | 'configuration';
  ready: boolean;
}

/** How the admin listener answers (admin.ts). */
export interface Reply {
  json(status: number, body: unknown): void;
  problem(code: 'route_not_found' | 'method_not_allowed' | 'invalid_request' | 'payload_too_large' | 'upstream_unavailable', detail: string, extra?: object): void;
  noContent(): void;
  allow(methods: string[]): void;
}

export async function handleTenants(core: Pick<GatewayCore, 'tenants' | 'runtimeTenants' | 'integrations'>, method: string, id: string | undefined, req: IncomingMessage, reply: Reply): Promise<void> {
  const allowed = id === undefined ? ['GET'] : ['GET', 'PUT', 'DELETE'];
  if (!allowed.includes(method)) {
    reply.allow(allowed);
    return reply.problem('method_not_allowed', `Allowed: ${allowed.join(', ')}.`);
  }
  const runtime = core.runtimeTenants;
  const entry = (tenant: Tenant): AdminTenantEntry => ({
    id: tenant.id,
    publicUrl: tenant.config.publicUrl,
    source: runtime?.entry(tenant.id) === undefined ? 'configuration' : 'admin',
    ready: tenant.idporten.ready,
  });
  if (id === undefined) return reply.json(200, { tenants: core.tenants.all.map(entry) });

  if (method === 'GET') {
    const tenant = core.tenants.byId(id);
    if (!tenant) return reply.problem('route_not_found', 'No such tenant.');
    const given = runtime?.entry(id);
    return reply.json(200, given === undefined ? entry(tenant) : { ...entry(tenant), tenant: maskConfig(given) });
  }
  if (!runtime) {
    return reply.problem('route_not_found', 'Tenants cannot be added or removed at run time: the gateway keeps them in its Redis store or in tenantsDir, and has neither.');
  }
  if (method === 'DELETE') {
    if (runtime.entry(id) === undefined && core.tenants.byId(id)) return refused(reply, [{ path: 'id', message: 'names a tenant of the configuration file; remove it there' }]);
    if (!(await runtime.delete(id))) return reply.problem('route_not_found', 'No tenant added at run time has this id.');
    return reply.noContent();
  }
  const apply = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').getAll('apply');
  if (apply.length > 1 || (apply.length === 1 && apply[0] !== 'true' && apply[0] !== 'false')) {
    return reply.problem('invalid_request', 'apply must be given once, as true or false.', { errors: [{ path: '', message: 'apply must be true or false' }] });
  }
  const body = await readJson(req, reply);
  if (body === undefined) return;
  try {
    const integrations = apply[0] === 'true' ? core.integrations : undefined;
    if (apply[0] === 'true' && !integrations) {
      return refused(reply, [{ path: '', message: 'apply=true needs a digdir block in the configuration and the Redis session store, where every instance reads the applied client' }]);
    }
    const given = runtime.check(id, body.value);
    let integration: AppliedChanges | undefined;
    if (integrations) {
      integration = await applyIntegration(integrations, given, reply);
      if (integration === undefined) return;
    } else if (!hasClient(given)) {
      return refused(reply, [{ path: 'idporten.clientId', message: 'is required (or PUT with ?apply=true, and integrations apply makes the client)' }]);
    }
    const outcome = await runtime.put(id, body.value);
    const tenant = core.tenants.byId(id);
    const answer = tenant ? entry(tenant) : { id };
    return reply.json(outcome === 'created' ? 201 : 200, integration ? { ...answer, integration: { clientId: integration.clientId, changes: integration.changes } } : answer);
  } catch (err) {
    if (err instanceof TenantRefused) return refused(reply, err.issues);
    throw err;
  }
}

/**
 * `integrations apply` for a tenant checked as PUT checks it: the integration made or updated and its key kept where
 * every instance reads it. Undefined once a problem has been answered.
 */
async function applyIntegration(integrations: TenantIntegrations, tenant: RuntimeTenant, reply: Reply): Promise<AppliedChanges | undefined> {
  if (hasClient(tenant)) {
    refused(reply, [{ path: 'idporten.clientId', message: 'must be left out with apply=true: integrations apply makes the client' }]);
    return undefined;
  }
  try {
    return await integrations.apply(tenant);
  } catch (err) {
    if (err instanceof DigdirRefused && !err.aboutAdminClient) {
      refused(reply, [{ path: '', message: `Digdir refused the integration: ${err.message}` }]);
      return undefined;
    }
    if (err instanceof DigdirRefused || err instanceof DigdirUnavailable) {
      reply.problem('upstream_unavailable', `Digdir's self-service API could not make the integration: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

function refused(reply: Reply, issues: readonly ConfigIssue[]): void {
  const detail = issues.map((issue) => (issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`)).join('; ');
  reply.problem('invalid_request', `The tenant was not accepted: ${detail}`, { errors: issues });
}

/** The request's JSON body, or undefined once a problem has been answered. */
async function readJson(req: IncomingMessage, reply: Reply): Promise<{ value: unknown } | undefined> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    reply.problem('invalid_request', 'The body must be JSON (Content-Type: application/json).', { errors: [{ path: '', message: 'must be JSON' }] });
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT_BYTES) {
      reply.problem('payload_too_large', `The body may hold at most ${BODY_LIMIT_BYTES} bytes.`);
      req.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
  } catch {
    reply.problem('invalid_request', 'The body is not valid JSON.', { errors: [{ path: '', message: 'is not valid JSON' }] });
    return undefined;
  }
}
