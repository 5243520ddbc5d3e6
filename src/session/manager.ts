import { hash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { SessionConfig } from '../config/types.js';
import { fingerprint } from '../audit/fingerprint.js';
import { isWellFormedSessionValue, newSessionCookieValue } from './cookies.js';
import type { KeyRing } from './key-ring.js';
import { OpenedRecords, type OpenedRecord } from './opened-records.js';
import { PendingWrites, type PendingOutcome } from './pending-writes.js';
import type { SessionContext, SessionRecord } from './session.js';
import { StoreUnavailableError, type ClaimOutcome, type ClaimTiming, type ReadMode, type SessionLock, type SessionStore, type StoredSession, type WriteOutcome } from './store.js';

export type LoadResult<D extends SessionRecord = SessionRecord> =
  | { state: 'live'; session: SessionContext<D> }
  | { state: 'none' }
  | { state: 'expired'; reason: 'absolute' | 'idle'; session: SessionContext<D> }
  /** Named by a provider logout that could not reach the store (see refuse): to be ended now. */
  | { state: 'expired'; reason: 'refused'; session: SessionContext<D> };

/** How many provider sessions (sid or sub) one instance keeps refusing while their ending is pending. */
const MAX_REFUSED = 10_000;
/** How many token updates one instance keeps for the store while it cannot take them (see PendingWrites). */
const MAX_PENDING_WRITES = 10_000;

/** What update did: the store's answer, or `kept` (the store failed; the write is made again once it answers). */
export type UpdateOutcome = WriteOutcome | 'kept';

/**
 * Owns the session life cycle: create with a fresh id, load and check expiry, save token updates, destroy.
 * Hides the store, the encryption and the lock from everyone above it.
 */
export class SessionManager<D extends SessionRecord = SessionRecord> {
  readonly #store: SessionStore;
  readonly #lock: SessionLock;
  readonly #keys: KeyRing;
  readonly #keysFor: (tenant: string) => KeyRing | undefined;
  readonly #config: SessionConfig;
  readonly #now: () => number;
  readonly #versionOf: (data: D) => string;
  readonly #pending = new PendingWrites(MAX_PENDING_WRITES);
  /** Index keys (unhashed; memory only) whose sessions must end, with the subject they must have if any. */
  readonly #refused: LRUCache<string, { sub?: string | undefined }>;
  /** Sessions in active use, opened once per sealed value (records loaded are frozen: updates build new ones). */
  readonly #opened = new OpenedRecords<D>();

  /**
   * `keys` seals every session and keys the indexes; `keysFor`, when given, names a tenant's own ring, which then
   * seals and opens that tenant's sessions instead, so one tenant's key never opens another's.
   */
  constructor(opts: {
    store: SessionStore;
    lock: SessionLock;
    keys: KeyRing;
    keysFor?: (tenant: string) => KeyRing | undefined;
    config: SessionConfig;
    now?: () => number;
    /** The record's fencing value (see StoredSession.version): changes exactly when its refresh token does. */
    versionOf?: (data: D) => string;
  }) {
    this.#store = opts.store;
    this.#versionOf = opts.versionOf ?? (() => '');
    this.#lock = opts.lock;
    this.#keys = opts.keys;
    this.#keysFor = opts.keysFor ?? (() => undefined);
    this.#config = opts.config;
    this.#now = opts.now ?? Date.now;
    // No session lives longer than the absolute lifetime: after that a refusal has nothing left to refuse.
    this.#refused = new LRUCache({ max: MAX_REFUSED, ttl: Math.max(1, this.#config.absoluteLifetimeMs) });
  }

  get absoluteLifetimeMs(): number {
    return this.#config.absoluteLifetimeMs;
  }

  get idleTimeoutMs(): number {
    return this.#config.idleTimeoutMs;
  }

  /** Store key for a cookie value: a dump of the store yields no usable cookie. */
  static storeKey(cookieValue: string): string {
    // One-shot crypto.hash: the same SHA-256 as createHash().update().digest() without a Hash object per request.
    return hash('sha256', cookieValue, 'base64url');
  }

  static hashForLog(id: string): string {
    return fingerprint(id) ?? '';
  }

  /** Creates a session under a brand-new cookie value (never reuses one the browser brought: no fixation). */
  async create(data: D): Promise<{ cookieValue: string; session: SessionContext<D> }> {
    const cookieValue = newSessionCookieValue();
    const id = SessionManager.storeKey(cookieValue);
    const session: SessionContext<D> = { id, hash: SessionManager.hashForLog(id), data, lastSeenAt: this.#now() };
    await this.save(session);
    return { cookieValue, session };
  }

  /**
   * The session a request's cookie names. `tenant` names the tenant the caller expects (its key ring opens the
   * record); a record of another is none. A tracked read (see ReadMode): for the request path only.
   */
  async load(cookieValue: unknown, tenant?: string): Promise<LoadResult<D>> {
    const id = SessionManager.idForCookie(cookieValue);
    return id === undefined ? { state: 'none' } : this.loadById(id, tenant, 'tracked');
  }

  /** The store key a cookie value would have; undefined for anything that is not a well-formed value. */
  static idForCookie(cookieValue: unknown): string | undefined {
    return isWellFormedSessionValue(cookieValue) ? SessionManager.storeKey(cookieValue) : undefined;
  }

  async loadById(id: string, tenant?: string, mode: ReadMode = 'exact'): Promise<LoadResult<D>> {
    // A token update this instance still keeps goes to the store first: the store's copy is older, and its
    // refresh token may be redeemed already.
    if (this.#pending.has(id)) await this.#guard(() => this.#pending.flush(id));
    // A kept Redis read, or the memory store's own record, answers without a promise (and without a store operation in the metrics).
    const stored = (mode === 'tracked' ? this.#store.kept?.(id) : undefined) ?? (await this.#guard(() => this.#store.get(id, mode)));
    if (!stored) {
      this.#opened.forget(id);
      return { state: 'none' };
    }
    const result = this.#judge(id, stored, tenant);
    // A session is ended only on what the store holds now: a kept copy may predate another instance's touch.
    if (result.state === 'expired' && result.reason !== 'refused' && mode === 'tracked') return this.loadById(id, tenant, 'exact');
    return result;
  }

  /**
   * The live session a cookie names, answered from the store's kept copy without waiting (no promise), or
   * undefined whenever that cannot be said at once: no kept copy, or anything but a live session (the
   * caller then asks load, which reads and decides as always).
   */
  liveNow(cookieValue: unknown, tenant: string): SessionContext<D> | undefined {
    const id = SessionManager.idForCookie(cookieValue);
    if (id === undefined || this.#pending.has(id)) return undefined;
    const stored = this.#store.kept?.(id);
    if (!stored) return undefined;
    const result = this.#judge(id, stored, tenant);
    return result.state === 'live' ? result.session : undefined;
  }

  /** Opens a stored record and judges it against its deadlines and the refusals. */
  #judge(id: string, stored: StoredSession, tenant: string | undefined): LoadResult<D> {
    const opened = this.#open(id, stored.sealed, this.#ringOf(tenant));
    if (opened === undefined || (tenant !== undefined && opened.data.tenant !== tenant)) return { state: 'none' };
    const { data, hash } = opened;
    const session: SessionContext<D> = { id, hash, data, lastSeenAt: stored.lastSeenAt };
    if (this.#isRefused(data)) return { state: 'expired', reason: 'refused', session };
    const now = this.#now();
    const expired = now >= data.createdAt + this.#config.absoluteLifetimeMs ? 'absolute' : now >= stored.lastSeenAt + this.#config.idleTimeoutMs ? 'idle' : undefined;
    return expired ? { state: 'expired', reason: expired, session } : { state: 'live', session };
  }

  /** Records activity for the idle timeout. Writes at most about once a second per session. */
  async touch(session: SessionContext<D>): Promise<void> {
    if (!this.touchDue(session)) return;
    const now = this.#now();
    session.lastSeenAt = now;
    await this.#guard(() => this.#store.touch(session.id, now, this.#ttl(session)));
  }

  /** Whether touch would write now (else the idle timeout is within its one-second grain already). */
  touchDue(session: SessionContext<D>): boolean {
    return this.#now() - session.lastSeenAt >= Math.min(1000, this.#config.idleTimeoutMs / 10);
  }

  /** Writes the whole session (a new one). */
  async save(session: SessionContext<D>): Promise<void> {
    await this.#guard(() => this.#store.set(session.id, this.#stored(session), this.#ttl(session), this.#indexKeysOf(session.data)));
  }

  /** The fencing value of a record holding this data (see StoredSession.version). */
  versionOf(data: D): string {
    return this.#versionOf(data);
  }

  /**
   * Writes a token update, compare-and-set in the store: only while the record still holds version `expected`
   * (what the caller read before it changed the tokens). `gone`: the session was destroyed meanwhile (a logout)
   * and stays so; `changed`: someone else rotated its tokens, and they stay. Callers hold the session lock, but a
   * lapsed lease no longer matters: the store's condition decides. `holder`: the claim the update resolves (see
   * claim), lifted by the write.
   *
   * With `keep`, a store failure does not lose the update: it is kept (`kept`) and written as soon as the store
   * answers — before this instance reads the session again — and `keep` hears once what became of it. Callers
   * ask `canKeep` before they obtain what they would have to keep.
   */
  async update(session: SessionContext<D>, expected: string, opts: { holder?: string; keep?: (outcome: PendingOutcome) => void } = {}): Promise<UpdateOutcome> {
    const stored = this.#stored(session);
    const write = async (): Promise<PendingOutcome> => {
      const ttl = this.#ttl(session);
      if (ttl <= 0) return 'expired';
      return this.#guard(() => this.#store.update(session.id, stored, ttl, this.#indexKeysOf(session.data), expected, opts.holder ?? ''));
    };
    try {
      const outcome = await write();
      return outcome === 'expired' ? 'gone' : outcome;
    } catch (err) {
      const { keep } = opts;
      if (!keep || !(err instanceof StoreUnavailableError) || !this.#pending.keep({ id: session.id, write, settled: keep })) throw err;
      return 'kept';
    }
  }

  /** Whether an update could be kept now if the store failed (see update). */
  get canKeep(): boolean {
    return this.#pending.hasRoom;
  }

  /**
   * A new holder's claim on the session's refresh token, to be made (and renewed) before the token is presented to
   * ID-porten: see SessionStore.claim. Random per refresh, so that no other refresh — on another instance, or
   * on this one after a lost lock — takes it for its own.
   */
  newClaimHolder(): string {
    return randomBytes(12).toString('base64url');
  }

  /**
   * Claims (or, by the same holder, renews the claim on) the refresh token of the record at `version` (what the
   * caller read): the store keeps the claim until a token update lifts it, so no other refresh presents the same
   * token while this one may hold its rotated successor. A renewal after that update finds another version
   * (`changed`) and leaves no claim behind.
   */
  async claim(id: string, version: string, holder: string, timing: ClaimTiming): Promise<ClaimOutcome> {
    return this.#guard(() => this.#store.claim(id, version, holder, timing));
  }

  /** Lifts a claim: its refresh token was not redeemed after all (ID-porten could not be reached). Best effort. */
  async unclaim(session: SessionContext<D>, holder: string): Promise<void> {
    await this.#store.unclaim(session.id, holder).catch(() => undefined);
  }

  /**
   * Destroys the session; with `expected`, only while the record still holds that version (`changed`: its
   * tokens were rotated since the caller read them, so the caller looks again and ends what it finds).
   */
  async destroy(id: string, expected?: string): Promise<WriteOutcome> {
    this.#opened.forget(id);
    return this.#guard(() => this.#store.delete(id, expected));
  }

  #stored(session: SessionContext<D>): StoredSession {
    const sealed = this.#ringOf(session.data.tenant).sealBytes(JSON.stringify(session.data), aadFor(session.id));
    return { sealed, lastSeenAt: session.lastSeenAt, version: this.versionOf(session.data) };
  }

  /** Live sessions of this tenant that ID-porten knows under `sid` (front-/back-channel logout). */
  async findBySid(tenant: string, sid: string): Promise<SessionContext<D>[]> {
    return this.#findByIndex(sidIndexKey(tenant, sid), tenant);
  }

  async findBySub(tenant: string, sub: string): Promise<SessionContext<D>[]> {
    return this.#findByIndex(subIndexKey(tenant, sub), tenant);
  }

  /**
   * Sessions of this tenant with this sid (and this sub, when given), or with this sub when there is no sid,
   * load as `refused` on this instance from now on (bounded, in memory), until `unrefuse`: for a provider
   * logout that could not end them because the store failed. Their owner ends them when it sees them.
   */
  refuse(tenant: string, who: { sid?: string | undefined; sub?: string | undefined }): void {
    const key = refusalKey(tenant, who);
    if (key) this.#refused.set(key, { sub: who.sub });
  }

  unrefuse(tenant: string, who: { sid?: string | undefined; sub?: string | undefined }): void {
    const key = refusalKey(tenant, who);
    if (key) this.#refused.delete(key);
  }

  #isRefused(data: SessionRecord): boolean {
    if (this.#refused.size === 0) return false;
    const bySid = data.user.sid === undefined ? undefined : this.#refused.get(sidIndexKey(data.tenant, data.user.sid));
    if (bySid && (bySid.sub === undefined || bySid.sub === data.user.sub)) return true;
    return this.#refused.has(subIndexKey(data.tenant, data.user.sub));
  }

  /**
   * Set-if-absent in the store (shared by every instance on Redis) for one-time values such as a logout
   * token's jti: true when the key was new.
   */
  async remember(key: string, ttlMs: number): Promise<boolean> {
    return this.#guard(() => this.#store.remember(key, ttlMs));
  }

  async remembered(key: string): Promise<boolean> {
    return this.#guard(() => this.#store.remembered(key));
  }

  /**
   * Token updates run under this lock, so that concurrent requests share one refresh; the lock itself reports
   * store failures as StoreUnavailableError, a lock it could not get in time as LockTimeoutError, and one it lost
   * before fn finished as LockLostError. It keeps refreshes single-flight; update's compare-and-set and claim keep
   * them correct when a lease lapses under a holder that lives on.
   */
  withLock<T>(session: SessionContext<D>, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.#lock.withLock(session.id, fn);
  }

  /** Shutdown: makes every kept write once more (the store may answer by now), then stops retrying. */
  async close(): Promise<void> {
    await this.#pending.flushAll().catch(() => undefined);
    this.#pending.stop();
  }

  async ping(): Promise<void> {
    await this.#guard(() => this.#store.ping());
  }

  /**
   * Index keys are HMACs of the sid or sub (see indexKeysOf): a reader of the store learns no sid to log
   * someone out with at the front channel, nor whose sessions they are. Written under the current key,
   * looked up under every key of the ring, so sessions indexed before a rotation are still found.
   */
  #ringOf(tenant: string | undefined): KeyRing {
    return (tenant === undefined ? undefined : this.#keysFor(tenant)) ?? this.#keys;
  }

  /** The record a sealed value holds (opened once while it stays the stored one), or undefined if it does not open. */
  #open(id: string, sealed: Buffer, ring: KeyRing): OpenedRecord<D> | undefined {
    const kept = this.#opened.get(id, sealed, ring);
    if (kept) return kept;
    const plain = ring.openBytes(sealed, aadFor(id));
    if (plain === undefined) return undefined;
    try {
      return this.#opened.keep(id, sealed, ring, { data: JSON.parse(plain) as D, hash: SessionManager.hashForLog(id) });
    } catch {
      return undefined;
    }
  }

  #indexKeysOf(data: SessionRecord): string[] {
    return logicalIndexKeys(data).map((key) => this.#keys.macs(key)[0]!);
  }

  async #findByIndex(key: string, tenant: string): Promise<SessionContext<D>[]> {
    const ids = new Set<string>();
    for (const mac of this.#keys.macs(key)) for (const id of await this.#guard(() => this.#store.findByIndex(mac))) ids.add(id);
    const found: SessionContext<D>[] = [];
    for (const id of ids) {
      const result = await this.loadById(id, tenant);
      if (result.state !== 'none') found.push(result.session);
    }
    return found;
  }

  /**
   * Store expiry: the session's own deadline plus a short grace, so a browser returning just after the
   * deadline is told (and audited) as idle or expired instead of silently finding nothing. Deadlines are
   * enforced by load(), not by the store.
   */
  #ttl(session: SessionContext<D>): number {
    const absoluteLeft = session.data.createdAt + this.#config.absoluteLifetimeMs - this.#now();
    const idleLeft = session.lastSeenAt + this.#config.idleTimeoutMs - this.#now();
    const left = Math.min(absoluteLeft, idleLeft);
    return left <= 0 ? 0 : left + EXPIRED_RECORD_GRACE_MS;
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError('session store failed', { cause: err });
    }
  }
}

const EXPIRED_RECORD_GRACE_MS = 60_000;

function aadFor(id: string): string {
  return `session:${id}`;
}

// Length-prefixed parts, so no tenant id or value can make two different pairs read the same.
function sidIndexKey(tenant: string, sid: string): string {
  return `sid:${tenant.length}:${tenant}:${sid}`;
}

function subIndexKey(tenant: string, sub: string): string {
  return `sub:${tenant.length}:${tenant}:${sub}`;
}

function refusalKey(tenant: string, who: { sid?: string | undefined; sub?: string | undefined }): string | undefined {
  if (who.sid) return sidIndexKey(tenant, who.sid);
  return who.sub ? subIndexKey(tenant, who.sub) : undefined;
}

/** What a session is indexed under, before the HMAC (never stored as such). */
function logicalIndexKeys(data: SessionRecord): string[] {
  const keys = [subIndexKey(data.tenant, data.user.sub)];
  if (data.user.sid) keys.push(sidIndexKey(data.tenant, data.user.sid));
  return keys;
}
