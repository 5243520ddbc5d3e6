/**
 * Behind Sentinel, the store's client follows a failover within about a second of the Sentinels naming the new
 * primary, instead of staying on the old one until Sentinel turns it into a replica (about 10 s after it is
 * seen again, and every write it took meanwhile is then discarded).
 *
 * The client asks the Sentinels for the primary whenever it (re)connects, but nothing makes a connection that
 * stays open reconnect: a primary paused past down-after-milliseconds and resumed after the promotion, or the
 * old primary of a coordinated failover, still answers as a primary. So, beside the client:
 *
 * - every second, each configured Sentinel is asked which primary it names (`SENTINEL GET-MASTER-ADDR-BY-NAME`,
 *   and `SENTINEL MASTER` for the config epoch of that naming), on a connection of its own; the answer with the
 *   highest epoch wins, so a Sentinel that has not caught up with a failover (partitioned, just restarted, a
 *   moment behind the others) does not pull the client back;
 * - each Sentinel's `+switch-master` is subscribed to, on another connection (subscribed again whenever it
 *   reconnects); a message asks the Sentinels at once, so a failover is acted on as soon as it is published.
 *   A message missed (a connection down at that moment, a Sentinel down, an ACL that refuses the channel) is
 *   caught by the next periodic question.
 *
 * When the client is connected (status ready) to another address than the named primary, its connection is
 * dropped, as a network failure would drop it: ioredis reconnects by its retryStrategy and asks the Sentinels
 * again. The client is never told to disconnect for good, nor interrupted while it is connecting (when ioredis'
 * own failoverDetector could leave it down); if it lands on the old primary once more, because the Sentinel it
 * asked had not caught up yet, the check that follows every reconnect moves it again.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

const SWITCH_MASTER = '+switch-master';
/** How often the Sentinels are asked which primary they name. */
export const SENTINEL_CHECK_INTERVAL_MS = 1_000;
/** A Sentinel answers at once when it answers at all: one that takes longer is passed over. */
export const SENTINEL_TIMEOUT_MS = 1_000;
/** How long a round waits for the other Sentinels once one has answered. */
const ROUND_GRACE_MS = 200;
/** The name of the watch's connections to the Sentinels (CLIENT SETNAME). */
export const WATCH_CONNECTION_NAME = 'bff-failover-watch';

/** The primary one Sentinel names, with the config epoch of that naming (raised by every failover). */
interface Named {
  host: string;
  port: number;
  epoch: number;
}

/** What made the Sentinels be asked: the periodic check, a Sentinel's +switch-master, the client reconnecting. */
type Trigger = 'check' | 'switch-master' | 'reconnect';

interface SentinelLink {
  readonly address: string;
  /** For questions. */
  readonly ask: Redis;
  /** Subscribed to +switch-master. */
  readonly listen: Redis;
  /** Whether the subscription was refused (logged once until it is accepted). */
  refused: boolean;
  /** A question is out (to a frozen Sentinel, until it times out): no other is sent meanwhile. */
  asking: boolean;
}

export interface FailoverWatch {
  close(): void;
}

/**
 * Follows failovers for `client`, a Sentinel-mode ioredis client: its Sentinels, primary name, Sentinel
 * credentials and TLS are the client's own options. Stops with close().
 */
export function followFailovers(client: Redis, logger: Logger): FailoverWatch {
  return new Watch(client, logger);
}

class Watch implements FailoverWatch {
  readonly #client: Redis;
  readonly #log: Logger;
  readonly #name: string;
  readonly #links: SentinelLink[];
  readonly #timer: NodeJS.Timeout;
  /** The primary named by the last round any Sentinel answered. */
  #named: Named | undefined;
  /** The round of questions out now; one at a time. */
  #round: Promise<void> | undefined;
  /** Asked for (not by the timer) while a round was out, whose answers may predate it: one more round after it. */
  #again: Trigger | undefined;
  #closed = false;

  constructor(client: Redis, logger: Logger) {
    const { sentinels, name } = client.options;
    if (!sentinels?.length || !name) throw new Error('followFailovers needs a client in Sentinel mode');
    this.#client = client;
    this.#log = logger;
    this.#name = name;
    this.#links = sentinels.map(({ host = '127.0.0.1', port = 26379 }) => this.#link(host, port));
    this.#timer = setInterval(() => this.#check('check'), SENTINEL_CHECK_INTERVAL_MS);
    this.#timer.unref();
    // Whatever the client reconnected to is checked at once: the Sentinel it asked may not have caught up yet.
    client.on('ready', this.#reconnected);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#client.off('ready', this.#reconnected);
    for (const link of this.#links) {
      link.ask.disconnect();
      link.listen.disconnect();
    }
  }

  readonly #reconnected = (): void => this.#check('reconnect');

  #link(host: string, port: number): SentinelLink {
    const o = this.#client.options;
    // As ioredis connects to the Sentinels to resolve the primary: the same credentials and TLS.
    const options: RedisOptions = {
      host,
      port,
      username: o.sentinelUsername,
      password: o.sentinelPassword,
      tls: o.sentinelTLS,
      // Named, so that they can be told apart in a Sentinel's CLIENT LIST.
      connectionName: WATCH_CONNECTION_NAME,
      connectTimeout: SENTINEL_TIMEOUT_MS * 2,
      commandTimeout: SENTINEL_TIMEOUT_MS,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
    };
    const link: SentinelLink = {
      address: `${host}:${port}`,
      // A question while disconnected fails at once instead of waiting.
      ask: new Redis({ ...options, enableOfflineQueue: false }),
      listen: new Redis({ ...options, autoResubscribe: false }),
      refused: false,
      asking: false,
    };
    // A Sentinel that is down shows as no answer; the client's own errors are the store's to report.
    link.ask.on('error', () => undefined);
    link.listen.on('error', () => undefined);
    link.listen.on('ready', () => this.#subscribe(link));
    link.listen.on('message', (channel: string, message: string) => {
      // "<name> <old ip> <old port> <new ip> <new port>"
      if (channel === SWITCH_MASTER && message.split(' ')[0] === this.#name) this.#check('switch-master');
    });
    return link;
  }

  #subscribe(link: SentinelLink): void {
    link.listen.subscribe(SWITCH_MASTER).then(
      () => (link.refused = false),
      (err: unknown) => {
        if (!(err instanceof ReplyError) || link.refused || this.#closed) return;
        link.refused = true;
        this.#log.warn(
          { sentinel: link.address, reason: (err as Error).message },
          'sentinel refused the +switch-master subscription; its failovers are noticed by the periodic check',
        );
      },
    );
  }

  #check(trigger: Trigger): void {
    if (this.#closed) return;
    if (this.#round) {
      if (trigger !== 'check') this.#again = trigger;
      return;
    }
    this.#round = this.#ask(trigger)
      .catch((err: unknown) => this.#log.warn({ reason: (err as Error).message }, 'sentinel failover check failed'))
      .finally(() => {
        this.#round = undefined;
        const again = this.#again;
        this.#again = undefined;
        if (again) this.#check(again);
      });
  }

  /**
   * Asks every Sentinel and follows the primary named with the highest epoch. A round waits for all answers
   * (right after a failover, a Sentinel that has not caught up yet names the old primary, and only beside the
   * others' answers is it seen to be behind), but for no more than ROUND_GRACE_MS after the first: a frozen
   * Sentinel does not hold up the rest.
   */
  async #ask(trigger: Trigger): Promise<void> {
    const answers = await firstAnswers(this.#links.map((link) => this.#namedBy(link)), ROUND_GRACE_MS);
    if (this.#closed) return;
    let named: Named | undefined;
    for (const answer of answers) if (answer && (!named || answer.epoch > named.epoch)) named = answer;
    if (!named) return;
    const before = this.#named;
    this.#named = named;
    if (before && !sameAddress(before, named)) {
      this.#log.warn({ from: addressOf(before), to: addressOf(named), noticedBy: trigger }, 'redis primary failed over; following it');
    }
    await this.#follow(named);
  }

  /** The primary this Sentinel names; undefined when it is down, frozen or does not monitor the name. */
  async #namedBy(link: SentinelLink): Promise<Named | undefined> {
    if (link.asking) return undefined;
    link.asking = true;
    try {
      // Sent together, the epoch first: a switch between the two pairs the new address with the old epoch, which
      // loses to any Sentinel that already has the new epoch.
      const [master, address] = await Promise.all([
        link.ask.call('SENTINEL', 'MASTER', this.#name),
        link.ask.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.#name),
      ]);
      return namedPrimary(master, address);
    } catch {
      return undefined;
    } finally {
      link.asking = false;
    }
  }

  /** Drops the client's connection when it is ready on another server than the named primary. */
  async #follow(named: Named): Promise<void> {
    const client = this.#client;
    if (client.status !== 'ready') return;
    const stream = client.stream;
    const on = await connectedTo(stream, named);
    // Unknown (a host name that did not resolve) is left alone rather than guessed at.
    if (on !== false || this.#closed || client.status !== 'ready' || client.stream !== stream) return;
    this.#log.debug({ connectedTo: `${stream.remoteAddress}:${stream.remotePort}`, primary: addressOf(named) }, 'redis client is not on the named primary; reconnecting');
    stream.destroy();
  }
}

/** The answers in once all are in, or `graceMs` after the first that is not undefined; the rest count as undefined. */
function firstAnswers<T>(pending: Array<Promise<T | undefined>>, graceMs: number): Promise<Array<T | undefined>> {
  return new Promise((resolve) => {
    const answers: Array<T | undefined> = pending.map(() => undefined);
    let left = pending.length;
    let grace: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(grace);
      resolve([...answers]);
    };
    pending.forEach((answer, i) =>
      void answer.then((value) => {
        answers[i] = value;
        left -= 1;
        if (left === 0) done();
        else if (value !== undefined) grace ??= setTimeout(done, graceMs);
      }),
    );
  });
}

/**
 * The primary a Sentinel names: the address of `SENTINEL GET-MASTER-ADDR-BY-NAME` (the one ioredis connects to,
 * already the promoted replica while the other replicas are being reconfigured) and the config epoch of
 * `SENTINEL MASTER` (a flat list of field names and values).
 */
function namedPrimary(master: unknown, address: unknown): Named | undefined {
  if (!Array.isArray(master) || !Array.isArray(address)) return undefined;
  let epoch: number | undefined;
  for (let i = 0; i + 1 < master.length; i += 2) if (String(master[i]) === 'config-epoch') epoch = Number(master[i + 1]);
  const host = String(address[0] ?? '');
  const port = Number(address[1]);
  if (!host || !Number.isInteger(port) || port <= 0 || epoch === undefined || !Number.isFinite(epoch)) return undefined;
  return { host, port, epoch };
}

function sameAddress(a: Named, b: Named): boolean {
  return a.host === b.host && a.port === b.port;
}

function addressOf(named: Named): string {
  return isIP(named.host) === 6 ? `[${named.host}]:${named.port}` : `${named.host}:${named.port}`;
}

/** Whether the socket is connected to the named primary; undefined when that cannot be told. */
async function connectedTo(stream: { remoteAddress?: string | undefined; remotePort?: number | undefined }, named: Named): Promise<boolean | undefined> {
  const remote = stream.remoteAddress;
  if (!remote || !stream.remotePort) return undefined;
  if (stream.remotePort !== named.port) return false;
  if (isIP(named.host)) return plainIp(remote) === plainIp(named.host);
  // Sentinel announces host names (announce-hostnames): compare with every address the name has.
  try {
    const addresses = await lookup(named.host, { all: true });
    return addresses.some((a) => plainIp(a.address) === plainIp(remote));
  } catch {
    return undefined;
  }
}

/** An IPv4 address written as IPv4-mapped IPv6 (::ffff:127.0.0.1) is the IPv4 address. */
function plainIp(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}
