/**
 * Administration on the internal listener (`server.metricsPort`), never on the public port: an operator lists
 * and ends a user's sessions by tenant and `sub` (OWASP ASVS 5.0 7.4.5), and adds, changes and removes tenants
 * at run time (`admin-tenants.ts`: GET /admin/tenants, GET/PUT/DELETE /admin/tenants/{id}).
 *
 *   GET    /admin/tenants/{tenant}/users/{sub}/sessions            the user's live sessions
 *   DELETE /admin/tenants/{tenant}/users/{sub}/sessions            ends them all: 200 { ended }
 *   DELETE /admin/tenants/{tenant}/users/{sub}/sessions/{handle}   ends one: 204, or 404
 *
 * Every request under /admin/ needs `Authorization: Bearer <server.admin.credential>` (compared in constant
 * time) before anything else is looked at; without it: 401, whatever the path. Endings go through the token
 * lifecycle like any other and are audited as `logout` with channel `admin`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, type ErrorCode } from '../errors.js';
import type { GatewayCore } from './core.js';
import { PROBLEM_CONTENT_TYPE, problemBody, retryAfterSeconds } from './problem.js';
import { handleTenants } from './admin-tenants.js';
import { userAgentSummary } from './user-agent.js';

export interface AdminSessionEntry {
  handle: string;
  /** The session's hash as the audit log writes it, to follow it there. */
  session: string;
  createdAt: string;
  lastSeenAt: string;
  userAgent: string;
}

const ROUTE = /^\/admin\/tenants\/([^/]+)\/users\/([^/]+)\/sessions(?:\/([^/]+))?$/;
const TENANT_ROUTE = /^\/admin\/tenants(?:\/([^/]+))?$/;

/** Handles a request under /admin/ (true), or leaves it to the listener (false). */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function adminHandler(core: Pick<GatewayCore, 'tenants' | 'lifecycle' | 'runtimeTenants' | 'integrations'>, credential: string): AdminHandler {
  const expected = digest(credential);
  const authorised = (header: string | undefined): boolean => {
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(header ?? '');
    // Both sides hashed to the same length first, so the comparison time says nothing about the credential.
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path !== '/admin' && !path.startsWith('/admin/')) return false;
    if (!authorised(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="idporten-bff admin"');
      problem(res, 'login_required', 'This endpoint needs Authorization: Bearer with the admin credential.');
      return true;
    }
    handle(core, req, path, res).catch((err: unknown) => {
      if (res.headersSent) return void res.end();
      // A store outage is a 503 with its Retry-After like anywhere else; nothing else of a failure reaches the answer.
      if (err instanceof GatewayError) problem(res, err.code, err.message, err.retryAfterSeconds);
      else problem(res, 'internal_error', 'Something went wrong in the gateway.');
    });
    return true;
  };
}

async function handle(core: Pick<GatewayCore, 'tenants' | 'lifecycle' | 'runtimeTenants' | 'integrations'>, req: IncomingMessage, path: string, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  const tenantRoute = TENANT_ROUTE.exec(path);
  if (tenantRoute) {
    const id = tenantRoute[1] === undefined ? undefined : decode(tenantRoute[1]);
    if (id === null) return problem(res, 'route_not_found', 'No such admin endpoint.');
    return handleTenants(core, method, id, req, {
      json: (status, body) => json(res, status, body),
      problem: (code, detail, extra) => problem(res, code, detail, undefined, extra),
      noContent: () => void res.writeHead(204, { 'cache-control': 'no-store' }).end(),
      allow: (methods) => void res.setHeader('allow', methods.join(', ')),
    });
  }
  const match = ROUTE.exec(path);
  const parts = match ? [match[1], match[2], match[3]].map((p) => (p === undefined ? undefined : decode(p))) : undefined;
  if (!match || !parts || parts.includes(null)) return problem(res, 'route_not_found', 'No such admin endpoint.');
  const [tenantId, sub, handleParam] = parts as [string, string, string | undefined];
  const allowed = handleParam === undefined ? ['GET', 'DELETE'] : ['DELETE'];
  if (!allowed.includes(method)) {
    res.setHeader('allow', allowed.join(', '));
    return problem(res, 'method_not_allowed', `Allowed: ${allowed.join(', ')}.`);
  }
  const tenant = core.tenants.byId(tenantId);
  if (!tenant) return problem(res, 'route_not_found', 'No such tenant.');
  const { lifecycle } = core;

  if (handleParam !== undefined) {
    const ended = await lifecycle.endByHandle(tenant, sub, handleParam, 'admin');
    if (!ended) return problem(res, 'route_not_found', 'This user has no such session in this tenant.');
    res.writeHead(204, { 'cache-control': 'no-store' }).end();
    return;
  }
  if (method === 'DELETE') return json(res, 200, { ended: await lifecycle.endAll(tenant, sub, 'admin') });
  const sessions = await lifecycle.listSessions(tenant, sub);
  const list: AdminSessionEntry[] = sessions.map((s) => ({
    handle: s.handle,
    session: s.session.hash,
    createdAt: new Date(s.createdAt).toISOString(),
    lastSeenAt: new Date(s.lastSeenAt).toISOString(),
    userAgent: userAgentSummary(s.userAgent),
  }));
  return json(res, 200, list);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function decode(segment: string): string | null {
  try {
    const value = decodeURIComponent(segment);
    return value.length > 0 && value.length <= 512 ? value : null;
  } catch {
    return null;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function problem(res: ServerResponse, code: ErrorCode, detail: string, ownRetryAfter?: number, extra: object = {}): void {
  const body = { ...problemBody(code, detail), ...extra };
  const retryAfter = retryAfterSeconds(code, ownRetryAfter);
  if (retryAfter !== undefined) res.setHeader('retry-after', String(retryAfter));
  res.writeHead(body.status, { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
