import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { ownBytes } from './opened-records.js';
import type { StoredSession } from './store.js';

/** The longest a kept read serves, even when its invalidation never comes (a connection that died unnoticed). */
export const TRACKED_READ_MAX_AGE_MS = 1_000;
/** Sessions whose last read is kept; the least recently used go first. */
const MAX_KEPT = 1024;
const INVALIDATE_CHANNEL = '__redis__:invalidate';

/** A read in flight; it is kept when it returns only if its ticket is still the one its key holds. */
export interface ReadTicket {
  readonly key: string;
  readonly generation: number;
}

/**
 * Session reads this instance serves again without asking Redis, because Redis tells it when they change
 * (client-side caching: CLIENT TRACKING in redirect mode). The store's connection reads with tracking on;
 * whenever anyone changes, deletes, expires or evicts a key it read, Redis sends that key on
 * `__redis__:invalidate` to a second connection, and the copy is dropped. Redis sends it while it makes the
 * change, before it answers the writer: a logout or refresh on another instance reaches this one before the
 * browser hears of it, and a request already queued here is the only one that can still see the old record.
 *
 * Nothing is kept unless both connections are up and tracking is confirmed on the same server (run_id): when
 * either drops, every copy goes and reads go to Redis until tracking is set up again. A copy never serves past
 * TRACKED_READ_MAX_AGE_MS, which bounds how stale it can be should an invalidation be lost without either
 * connection noticing. A read is kept only if no invalidation of its key arrived while it was in flight.
 */
export class TrackedReads {
  readonly #data: Redis;
  readonly #sub: Redis;
  readonly #log: Logger | undefined;
  readonly #kept = new LRUCache<string, StoredSession>({ max: MAX_KEPT, ttl: TRACKED_READ_MAX_AGE_MS, ttlAutopurge: false });
  readonly #inFlight = new Map<string, ReadTicket>();
  /** Bumped whenever tracking may have stopped; a setup or read of an older generation keeps nothing. */
  #generation = 0;
  /** The subscribed connection's client id and server, once it is subscribed (until it drops). */
  #subscribed: { id: string; server: string } | undefined;
  #tracking = false;
  #closed = false;

  constructor(data: Redis, log?: Logger) {
    this.#data = data;
    this.#log = log;
    // Its own connection, to the same server (or the same Sentinel-named primary); subscribed anew by #start.
    this.#sub = data.duplicate({ autoResubscribe: false, lazyConnect: true });
    // The data connection's errors are the store's to report; the subscriber's show as tracking stopped.
    this.#sub.on('error', () => undefined);
    this.#sub.on('messageBuffer', (channel: Buffer, keys: unknown) => this.#invalidated(channel, keys));
    this.#sub.on('close', () => {
      this.#subscribed = undefined;
      this.#stop();
    });
    data.on('close', () => this.#stop());
    for (const connection of [data, this.#sub]) connection.on('ready', () => void this.#start());
    this.#sub.connect().catch(() => undefined);
  }

  /** Whether reads are being kept now (both connections up, tracking confirmed). */
  get tracking(): boolean {
    return this.#tracking;
  }

  /** The kept copy of this key's record, if there is one. */
  get(key: string): StoredSession | undefined {
    return this.#tracking ? this.#kept.get(key) : undefined;
  }

  /** Called before a read that may be kept; undefined when nothing can be kept now. */
  begin(key: string): ReadTicket | undefined {
    if (!this.#tracking) return undefined;
    const ticket = { key, generation: this.#generation };
    this.#inFlight.set(key, ticket);
    return ticket;
  }

  /**
   * Called when that read returned (or failed: `value` undefined). Keeps it unless its key changed meanwhile,
   * and returns what the caller hands on: the kept copy (its bytes its own, the same object every later `get`
   * returns), or `value` as it came.
   */
  settle(ticket: ReadTicket, value: StoredSession | undefined): StoredSession | undefined {
    if (this.#inFlight.get(ticket.key) !== ticket) return value;
    this.#inFlight.delete(ticket.key);
    // An absent record is not kept: a stream of unknown ids must not fill the memory.
    if (!value || !this.#tracking || ticket.generation !== this.#generation) return value;
    const kept = { sealed: ownBytes(value.sealed), lastSeenAt: value.lastSeenAt };
    this.#kept.set(ticket.key, kept);
    return kept;
  }

  /** Drops this key's copy and voids its reads in flight: for this instance's own writes, before they are sent. */
  forget(key: string): void {
    this.#kept.delete(key);
    this.#inFlight.delete(key);
  }

  close(): void {
    this.#closed = true;
    this.#stop();
    this.#sub.disconnect();
  }

  #invalidated(channel: Buffer, keys: unknown): void {
    if (channel.toString() !== INVALIDATE_CHANNEL) return;
    // A null payload is Redis's "everything changed" (FLUSHALL, FLUSHDB, or too many keys tracked).
    if (!Array.isArray(keys)) return this.#clear();
    for (const key of keys) this.forget(String(key));
  }

  #stop(): void {
    if (this.#tracking && !this.#closed) this.#log?.info('session reads are not kept while client tracking is down');
    this.#tracking = false;
    this.#generation += 1;
    this.#clear();
  }

  #clear(): void {
    this.#kept.clear();
    this.#inFlight.clear();
  }

  /** Subscribes the second connection and points the data connection's tracking at it, both on one server. */
  async #start(): Promise<void> {
    if (this.#closed || this.#tracking || this.#data.status !== 'ready' || this.#sub.status !== 'ready') return;
    const generation = this.#generation;
    try {
      if (!this.#subscribed) {
        const [server, id] = await Promise.all([serverRunId(this.#sub), this.#sub.client('ID')]);
        await this.#sub.subscribe(INVALIDATE_CHANNEL);
        if (generation !== this.#generation) return;
        this.#subscribed = { id: String(id), server };
      }
      const dataServer = await serverRunId(this.#data);
      if (generation !== this.#generation || this.#closed) return;
      // After a failover the two may have found different servers for a moment: the subscriber looks again.
      if (dataServer !== this.#subscribed.server) return this.#sub.disconnect(true);
      await this.#data.client('TRACKING', 'OFF');
      await this.#data.client('TRACKING', 'ON', 'REDIRECT', this.#subscribed.id);
      if (generation !== this.#generation || this.#closed) return;
      this.#tracking = true;
      this.#log?.info('session reads are kept between changes (client tracking on)');
    } catch (err) {
      // A server before Redis 6, or one whose ACL forbids CLIENT: every read goes to Redis, as it always can.
      if (generation === this.#generation) this.#log?.warn({ reason: (err as Error).message }, 'client tracking unavailable; every session read goes to Redis');
    }
  }
}

async function serverRunId(connection: Redis): Promise<string> {
  const info = await connection.info('server');
  const runId = /^run_id:(\w+)/m.exec(info)?.[1];
  if (!runId) throw new Error('the server reported no run_id');
  return runId;
}
