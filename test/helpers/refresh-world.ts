/**
 * A Refresher (src/tokens/refresh.ts) on the real memory store and session manager, with a real token endpoint on
 * 127.0.0.1 behind a real IdportenClient: what refresh-unit.test.ts and refresh-claim-unit.test.ts drive. The store
 * and the lock can be made to fail as an unreachable store or a lost lock does; a second Refresher on the same store
 * and lock plays another instance.
 */
import type { Test } from 'tap';
import type { AuditLog } from '../../src/audit/audit-log.js';
import type { SessionConfig } from '../../src/config/types.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { KeyRing } from '../../src/session/key-ring.js';
import { SessionManager } from '../../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../../src/session/memory-store.js';
import type { ClaimOutcome, ClaimTiming, LockOptions, SessionLock, StoredSession, WriteOutcome } from '../../src/session/store.js';
import type { Tenant } from '../../src/tenant/tenant.js';
import { Refresher } from '../../src/tokens/refresh.js';
import { sessionVersion, type Session, type SessionData } from '../../src/tokens/session-data.js';
import { sessionRecord } from './session-record.js';
import { startTokenEndpoint, type TokenEndpoint } from './token-endpoint.js';

export const API = 'https://api.example.no/';
export const OTHER = 'https://other.example.no/';
/** The refresh code's claim timing (refresh.ts CLAIM_TIMING), for a second holder in the tests. */
export const TIMING: ClaimTiming = { ttlMs: 2_000, graceMs: 1_500 };
/** RETRY_AFTER_SECONDS.idporten. */
export const COOLDOWN_MS = 5_000;
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The real memory store, whose updates or claims can be made to fail as an unreachable store's do. */
export class FlakyStore extends MemorySessionStore {
  updatesFail = false;
  claimsFail = false;

  override async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], expected: string, holder: string): Promise<WriteOutcome> {
    if (this.updatesFail) throw new StoreUnavailableError('store down');
    return super.update(id, value, ttlMs, indexKeys, expected, holder);
  }

  /** The claim is made, but its answer is lost (a command that timed out and was carried out all the same). */
  claimsLost = false;

  /** How many claims were asked for. */
  claims = 0;

  override async claim(id: string, expected: string, holder: string, timing: ClaimTiming): Promise<ClaimOutcome> {
    this.claims += 1;
    if (this.claimsFail) throw new StoreUnavailableError('store down');
    if (this.claimsLost) {
      await super.claim(id, expected, holder, timing);
      throw new StoreUnavailableError('store answer lost');
    }
    return super.claim(id, expected, holder, timing);
  }
}

/** The real in-process lock, which can be made to fail as a lock that timed out or was lost does. */
export class FailingLock implements SessionLock {
  readonly #inner = new MemorySessionLock();
  failWith: Error | undefined;

  withLock<T>(id: string, fn: (signal: AbortSignal) => Promise<T>, opts?: LockOptions): Promise<T> {
    if (this.failWith) return Promise.reject(this.failWith);
    return this.#inner.withLock(id, fn, opts);
  }
}

export interface World {
  op: TokenEndpoint;
  store: FlakyStore;
  lock: FailingLock;
  sessions: SessionManager<SessionData>;
  refresher: Refresher;
  /** Another instance's refresher on the same store and lock. */
  other: Refresher;
  tenant: Tenant;
  clock: { now: number };
  events: { name: string; fields: Record<string, unknown> }[];
  ended: { id: string; refreshToken: string | undefined; reason: string }[];
  /** A logged-in session; its access token expires `expiresIn` ms from the clock (inside the leeway: due a refresh). */
  login(opts?: { expiresIn?: number; refreshToken?: string | undefined; resourceTokens?: SessionData['resourceTokens'] }): Promise<Session>;
  stored(session: Session): Promise<SessionData>;
  /** Another holder rotates the session's tokens (as another instance's refresh would). */
  rotateElsewhere(session: Session, refreshToken: string | undefined): Promise<void>;
  audit(name: string): Record<string, unknown>[];
}

export async function world(t: Test): Promise<World> {
  const op = await startTokenEndpoint(t);
  const store = new FlakyStore(100);
  const lock = new FailingLock();
  const config = { absoluteLifetimeMs: 3_600_000, idleTimeoutMs: 1_800_000 } as SessionConfig;
  const sessions = new SessionManager<SessionData>({ store, lock, keys: new KeyRing([{ id: 'k', secret: Buffer.alloc(32, 7) }]), config, versionOf: sessionVersion });
  t.teardown(() => sessions.close());
  const clock = { now: Date.now() };
  const events: World['events'] = [];
  const ended: World['ended'] = [];
  const audit: AuditLog = { event: (name, fields) => void events.push({ name, fields: fields as Record<string, unknown> }) };
  const make = () =>
    new Refresher({
      sessions,
      audit,
      refreshLeewayMs: 30_000,
      now: () => clock.now,
      end: async (session, _tenant, reason) => {
        ended.push({ id: session.id, refreshToken: session.data.tokens.refreshToken, reason });
        await sessions.destroy(session.id);
      },
    });
  const tenant = op.tenant();
  const w: World = {
    op,
    store,
    lock,
    sessions,
    refresher: make(),
    other: make(),
    tenant,
    clock,
    events,
    ended,
    async login(opts = {}) {
      const data = sessionRecord({ tenant: 'mva' });
      data.tokens = {
        accessToken: 'at-0',
        accessTokenIssuedAt: clock.now - 100_000,
        accessTokenExpiresAt: clock.now + (opts.expiresIn ?? 10_000),
        refreshToken: 'refreshToken' in opts ? opts.refreshToken : 'rt-0',
        idToken: 'id-0',
      };
      data.resources = [API, OTHER];
      if (opts.resourceTokens) data.resourceTokens = opts.resourceTokens;
      return (await sessions.create(data)).session;
    },
    async stored(session) {
      const loaded = await sessions.loadById(session.id, 'mva');
      if (loaded.state !== 'live') throw new Error(`session ${loaded.state}`);
      return loaded.session.data;
    },
    async rotateElsewhere(session, refreshToken) {
      const current = await w.stored(session);
      const next: Session = { ...session, data: { ...current, tokens: { ...current.tokens, accessToken: 'at-elsewhere', accessTokenIssuedAt: clock.now, accessTokenExpiresAt: clock.now + 120_000, refreshToken } } };
      const outcome = await sessions.update(next, sessionVersion(current), { holder: 'elsewhere' });
      if (outcome !== 'written') throw new Error(`rotation elsewhere: ${outcome}`);
    },
    audit: (name) => events.filter((e) => e.name === name).map((e) => e.fields),
  };
  return w;
}

/** Whether another holder could claim the session's current refresh token now (lifting its claim again at once). */
export async function claimable(w: World, session: Session): Promise<ClaimOutcome> {
  const data = await w.stored(session);
  const holder = `probe-${Math.random()}`;
  const outcome = await w.sessions.claim(session.id, sessionVersion(data), holder, TIMING);
  await w.sessions.unclaim(session, holder);
  return outcome;
}

/** The same session's tokens as `expected` (read again under the lock, so not the same object). */
export function sameTokens(t: Test, got: Session, expected: Session, message = 'the same tokens'): void {
  t.equal(got.id, expected.id, message);
  t.same(got.data.tokens, expected.data.tokens, message);
}

export async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

