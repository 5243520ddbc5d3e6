import { StoreUnavailableError } from '../errors.js';
import type { Tenant } from '../tenant/tenant.js';
import { logoutKey, type JournalEntry, type LogoutJournal } from './logout-journal.js';
import type { WarningLog } from './revocation.js';

/** The provider session a back-channel logout names: its sid, its subject, or both (OIDC Back-Channel Logout 1.0 section 2.4). */
export interface ProviderSession {
  sid?: string | undefined;
  sub?: string | undefined;
}

/**
 * How often pending logouts are tried while any are pending: the store's return is noticed within this, well
 * inside the second the contract allows from the store answering to the logout applied. Nothing runs when
 * nothing is pending.
 */
export const PENDING_LOGOUT_RETRY_MS = 250;
/** At most this many provider logouts are pending at once (the oldest makes room), as many as one instance refuses. */
export const MAX_PENDING_LOGOUTS = 10_000;

/** What the pending logouts need of the session manager: the refusals that stand in for them meanwhile. */
export interface Refusals {
  refuse(tenant: string, who: ProviderSession): void;
  unrefuse(tenant: string, who: ProviderSession): void;
}

export interface PendingLogoutsOptions {
  sessions: Refusals;
  /** Ends the sessions a provider logout names; throws StoreUnavailableError while the store cannot be reached. */
  end: (tenant: Tenant, who: ProviderSession) => Promise<void>;
  log: WarningLog;
  now: () => number;
  /** The session absolute lifetime: no session outlives it, so a logout pending for longer has nothing left to end. */
  maxAgeMs: number;
  /** Keeps pending logouts across a restart (`session.journalDir`); its replayed entries are pending from the start. */
  journal?: LogoutJournal | undefined;
  /** The tenant registry: a replayed entry names its tenant by id. */
  tenantById?: ((id: string) => Tenant | undefined) | undefined;
  intervalMs?: number;
  maxEntries?: number;
}

interface Pending {
  tenant: Tenant;
  who: ProviderSession;
  /** When the logout was accepted (epoch ms). */
  at: number;
  /** Whether a failure other than the store's was logged already (once per logout). */
  failed?: boolean;
}

/**
 * Provider (back-channel) logouts that could not end their sessions because the store was unreachable. ID-porten
 * delivers one once and never again (OIDC Back-Channel Logout 1.0 section 2.7 leaves it to the RP to clear the
 * state; nothing in it redelivers), so this instance keeps it: the sessions are refused wherever this instance
 * loads them, the logout is written to the journal when there is one (before the delivery is answered), and it
 * is tried every PENDING_LOGOUT_RETRY_MS until the store answers. The one owner of that map and that loop.
 */
export class PendingLogouts {
  readonly #sessions: Refusals;
  readonly #end: (tenant: Tenant, who: ProviderSession) => Promise<void>;
  readonly #log: WarningLog;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  readonly #journal: LogoutJournal | undefined;
  readonly #intervalMs: number;
  readonly #maxEntries: number;
  /** By keyOf, oldest first (a logout accepted again moves to the end). */
  readonly #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(opts: PendingLogoutsOptions) {
    this.#sessions = opts.sessions;
    this.#end = opts.end;
    this.#log = opts.log;
    this.#now = opts.now;
    this.#maxAgeMs = opts.maxAgeMs;
    this.#journal = opts.journal;
    this.#intervalMs = opts.intervalMs ?? PENDING_LOGOUT_RETRY_MS;
    this.#maxEntries = opts.maxEntries ?? MAX_PENDING_LOGOUTS;
    for (const entry of opts.journal?.pending ?? []) this.#restore(entry, opts.tenantById);
    this.#schedule();
  }

  /** How many logouts are pending. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Keeps a logout whose sessions the store could not end: refused on this instance at once, written to the
   * journal (fsync'd) before this resolves, tried again until the store answers. A journal that cannot be written
   * is logged, not thrown: the logout is still refused and retried here, only not across a restart.
   */
  async add(tenant: Tenant, who: ProviderSession): Promise<void> {
    this.#sessions.refuse(tenant.id, who);
    const at = this.#now();
    const key = keyOf(tenant.id, who);
    this.#pending.delete(key);
    if (this.#pending.size >= this.#maxEntries) this.#evictOldest();
    this.#pending.set(key, { tenant, who, at });
    this.#stopped = false;
    this.#schedule();
    if (!this.#journal) return;
    try {
      await this.#journal.add(journalEntry(tenant.id, who, at));
    } catch (err) {
      this.#log.warn(
        { tenant: tenant.id, reason: (err as Error).message },
        'pending back-channel logout not written to the journal: it is lost if this instance restarts before the store answers',
      );
    }
  }

  /** Stops trying (shutdown); resolves once a round under way has finished. A later add starts again. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  #restore(entry: JournalEntry, tenantById: ((id: string) => Tenant | undefined) | undefined): void {
    const tenant = tenantById?.(entry.tenant);
    if (!tenant) {
      this.#log.warn({ tenant: entry.tenant }, 'pending back-channel logout from the journal dropped: its tenant is no longer configured');
      this.#journalDone(entry);
      return;
    }
    const who = { ...(entry.sid === undefined ? {} : { sid: entry.sid }), ...(entry.sub === undefined ? {} : { sub: entry.sub }) };
    this.#sessions.refuse(tenant.id, who);
    this.#pending.set(keyOf(tenant.id, who), { tenant, who, at: entry.at });
  }

  #schedule(): void {
    if (this.#stopped || this.#timer || this.#round || this.#pending.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#round = this.#retry().finally(() => {
        this.#round = undefined;
        this.#schedule();
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** One round, oldest first; the first store failure ends it (the store is still away: the rest would fail too). */
  async #retry(): Promise<void> {
    for (const [key, pending] of this.#pending) {
      if (this.#stopped) return;
      if (this.#now() - pending.at >= this.#maxAgeMs) {
        this.#log.info({ tenant: pending.tenant.id }, 'pending back-channel logout dropped: older than the session absolute lifetime, no session it named is left');
        this.#forget(key, pending);
        continue;
      }
      try {
        await this.#end(pending.tenant, pending.who);
      } catch (err) {
        if (err instanceof StoreUnavailableError) return;
        if (!pending.failed) this.#log.warn({ tenant: pending.tenant.id, reason: (err as Error).message }, 'pending back-channel logout failed; trying again');
        pending.failed = true;
        continue;
      }
      this.#forget(key, pending);
    }
  }

  /** Done with this logout, unless it was accepted again meanwhile (then that one stays). */
  #forget(key: string, pending: Pending): void {
    if (this.#pending.get(key) !== pending) return;
    this.#pending.delete(key);
    this.#sessions.unrefuse(pending.tenant.id, pending.who);
    this.#journalDone(journalEntry(pending.tenant.id, pending.who, pending.at));
  }

  #evictOldest(): void {
    const [key, oldest] = this.#pending.entries().next().value!;
    this.#log.warn({ tenant: oldest.tenant.id, pending: this.#pending.size }, 'too many pending back-channel logouts: the oldest is no longer retried (this instance still refuses its sessions)');
    this.#pending.delete(key);
    this.#journalDone(journalEntry(oldest.tenant.id, oldest.who, oldest.at));
  }

  #journalDone(entry: JournalEntry): void {
    this.#journal?.done(entry).catch((err: Error) => {
      // Replayed after a restart, it is ended again: harmless.
      this.#log.warn({ tenant: entry.tenant, reason: err.message }, 'finished back-channel logout not written to the journal');
    });
  }
}

function keyOf(tenant: string, who: ProviderSession): string {
  return logoutKey(tenant, who.sid, who.sub);
}

function journalEntry(tenant: string, who: ProviderSession, at: number): JournalEntry {
  return { tenant, ...(who.sid ? { sid: who.sid } : {}), ...(who.sub ? { sub: who.sub } : {}), at };
}
