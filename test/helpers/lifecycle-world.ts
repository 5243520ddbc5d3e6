import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuditLog } from '../../src/audit/audit-log.js';
import type { SessionConfig, TenantConfig } from '../../src/config/types.js';
import { IdportenClient, type LoginTokens } from '../../src/idporten/client.js';
import { Provider } from '../../src/idporten/provider.js';
import { KeyRing } from '../../src/session/key-ring.js';
import { SessionManager } from '../../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../../src/session/memory-store.js';
import type { StoredSession } from '../../src/session/store.js';
import type { Tenant } from '../../src/tenant/tenant.js';
import { TokenLifecycle } from '../../src/tokens/lifecycle.js';
import { sessionVersion, type SessionData } from '../../src/tokens/session-data.js';

export const HOUR = 3_600_000;
export const START = 1_800_000_000_000;
export const IDLE_MS = HOUR;
export const ABSOLUTE_MS = 8 * HOUR;
export const LEEWAY_MS = 30_000;

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A form POST the provider received: its path and fields. */
export interface ProviderCall {
  path: string;
  form: URLSearchParams;
}

/**
 * A small OpenID Provider on 127.0.0.1: discovery, an empty JWKS, a token endpoint for refresh grants (RFC 6749
 * section 6) and a revocation endpoint (RFC 7009). What each grant answers is up to the test (`grant`), and a test
 * can act while a revocation is being made (`onRevoke`), as another instance would.
 */
export async function startProvider(t: Teardown) {
  const calls: ProviderCall[] = [];
  const state = {
    grant: (form: URLSearchParams): { status: number; body: object } | Promise<{ status: number; body: object }> => ({
      status: 200,
      body: { access_token: `at-for-${form.get('refresh_token')}`, token_type: 'Bearer', expires_in: 120, refresh_token: `${form.get('refresh_token')}+` },
    }),
    onRevoke: undefined as ((form: URLSearchParams) => Promise<void>) | undefined,
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', issuer).pathname;
        const json = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        if (path === '/.well-known/openid-configuration') {
          return json(200, {
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
            revocation_endpoint: `${issuer}/revoke`,
            jwks_uri: `${issuer}/jwks`,
            response_types_supported: ['code'],
            subject_types_supported: ['pairwise'],
            id_token_signing_alg_values_supported: ['RS256'],
          });
        }
        if (path === '/jwks') return json(200, { keys: [] });
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        calls.push({ path, form });
        if (path === '/revoke') {
          await state.onRevoke?.(form);
          return res.writeHead(200).end();
        }
        if (path === '/token') {
          const { status, body } = await state.grant(form);
          return json(status, body);
        }
        return json(404, {});
      })();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  /** The tokens revoked, in order, as `hint:token` (with the client that asked, when `withClient`). */
  const revoked = (opts: { withClient?: boolean } = {}) =>
    calls.filter((c) => c.path === '/revoke').map((c) => `${opts.withClient ? `${c.form.get('client_id')} ` : ''}${c.form.get('token_type_hint')}:${c.form.get('token')}`);
  const grants = () => calls.filter((c) => c.path === '/token').map((c) => c.form);
  return { issuer, calls, state, revoked, grants };
}

/**
 * A store that fails while told to: reads (get), index look-ups, or deletes; and that lets a test act just before a
 * delete (as another instance would). Otherwise the real memory store.
 */
export class FlakyStore extends MemorySessionStore {
  failing = { get: false, findByIndex: false, delete: false };
  beforeDelete: ((id: string) => Promise<void>) | undefined;
  beforeGet: ((id: string) => Promise<void>) | undefined;
  /** Ids every index look-up answers besides its own (an index that is corrupt, or written by someone with store access). */
  extraIds: string[] = [];

  override async get(id: string): Promise<StoredSession | undefined> {
    if (this.failing.get) throw new Error('connection reset');
    await this.beforeGet?.(id);
    return super.get(id);
  }

  override kept(id: string): StoredSession | undefined {
    return this.failing.get ? undefined : super.kept(id);
  }

  override async findByIndex(key: string): Promise<string[]> {
    if (this.failing.findByIndex) throw new Error('connection reset');
    return [...(await super.findByIndex(key)), ...this.extraIds];
  }

  override async delete(id: string, expected?: string) {
    if (this.failing.delete) throw new Error('connection reset');
    await this.beforeDelete?.(id);
    return super.delete(id, expected);
  }
}

/** One gateway's token lifecycle over the real memory store, with two tenants on the provider and a clock the test moves. */
export async function lifecycleWorld(t: Teardown, opts: { handleKeys?: KeyRing } = {}) {
  const provider = await startProvider(t);
  const clock = { now: START };
  const now = () => clock.now;
  const keys = new KeyRing([{ id: 'k1', secret: Buffer.alloc(32, 1) }]);
  const store = new FlakyStore(1000);
  const config = { absoluteLifetimeMs: ABSOLUTE_MS, idleTimeoutMs: IDLE_MS, refreshLeewayMs: LEEWAY_MS } as SessionConfig;
  const sessions = new SessionManager<SessionData>({ store, lock: new MemorySessionLock(), keys, config, now, versionOf: sessionVersion });
  const audits: Record<string, unknown>[] = [];
  const audit = createAuditLog({ child: () => ({ info: (fields: object) => void audits.push(fields as Record<string, unknown>) }) }, () => undefined);
  const warnings: Record<string, unknown>[] = [];
  const log = { warn: (fields: object, msg: string) => void warnings.push({ ...fields, msg }), info: () => undefined };
  const makeTenant = (id: string): Tenant => {
    const tenantConfig = {
      id,
      publicUrl: `https://${id}.example.no`,
      idporten: { issuer: provider.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: `${id}-secret` }, scopes: ['openid'], httpTimeoutMs: 5_000 },
      routes: [],
    } as unknown as TenantConfig;
    const idporten = new IdportenClient(tenantConfig, new Provider(tenantConfig.idporten), { now });
    return { id, config: tenantConfig, idporten, keys } as unknown as Tenant;
  };
  const mva = makeTenant('mva');
  const skatt = makeTenant('skatt');
  const newLifecycle = (handleKeys: KeyRing = opts.handleKeys ?? keys) =>
    new TokenLifecycle({ sessions, audit, log, refreshLeewayMs: LEEWAY_MS, now, handleKeys });
  const lifecycle = newLifecycle();
  t.teardown(() => lifecycle.settled());

  let logins = 0;
  /** What a finished login hands over, for this user. */
  const login = (sub: string, over: Partial<LoginTokens> & { sid?: string; claims?: Record<string, unknown> } = {}): LoginTokens => {
    logins += 1;
    const { sid, claims, ...rest } = over;
    return {
      accessToken: `at-${sub}-${logins}`,
      accessTokenExpiresAt: clock.now + 120_000,
      refreshToken: `rt-${sub}-${logins}`,
      idToken: `id-${sub}-${logins}`,
      scope: 'openid',
      idTokenClaims: { iss: provider.issuer, sub, acr: 'idporten-loa-high', amr: ['BankID'], ...(sid === undefined ? {} : { sid }), ...claims },
      ...rest,
    } as LoginTokens;
  };
  /** A session begun by a login of this user (replacing nothing). */
  const begin = (tenant: Tenant, sub: string, over: Parameters<typeof login>[1] = {}, userAgent?: string) =>
    lifecycle.begin(tenant, login(sub, over), { requestedAcr: 'idporten-loa-substantial', replaces: [], userAgent });
  /** Another instance refreshing the session: the stored record gets new tokens (`~` appended), by compare-and-set. */
  const rotate = async (id: string, tenant = 'mva') => {
    const stored = await sessions.loadById(id, tenant);
    if (stored.state === 'none') throw new Error('no session to rotate');
    const { data } = stored.session;
    const tokens = { ...data.tokens, accessToken: `${data.tokens.accessToken}~`, refreshToken: `${data.tokens.refreshToken}~` };
    const outcome = await sessions.update({ ...stored.session, data: { ...data, tokens } }, sessionVersion(data));
    if (outcome !== 'written') throw new Error(`rotation not written: ${outcome}`);
  };
  const logouts = () => audits.filter((a) => a.event === 'logout');
  const events = (name: string) => audits.filter((a) => a.event === name);
  return { provider, clock, keys, store, sessions, audits, warnings, mva, skatt, lifecycle, newLifecycle, login, begin, rotate, logouts, events };
}

/** A copy of a session with other data (loaded records are frozen: an update builds a new one). */
export function withData<S extends { data: SessionData }>(session: S, change: (data: SessionData) => Partial<SessionData>): S {
  return { ...session, data: { ...session.data, ...change(session.data) } };
}
