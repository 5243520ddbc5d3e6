/**
 * The sessions of a run and their API calls: each session is a browser of its own, logged in at the ID-porten
 * look-alike (so a grant of its own at the provider), that calls the Skatteetaten look-alike's echo through the
 * gateway, one call or a small burst at a time, each call through an instance picked at random among the live
 * ones. A session the gateway ends (401) is recorded and logged in again as a new one.
 */
import type { IdportenLookalike } from '../../demo/idporten-op.js';
import { sleep } from '../../bench/report.js';
import { Browser, loginAtLookalike, type BrowserResponse } from '../helpers/browser.js';
import type { Fleet, Instance } from './fleet.js';
import type { Random } from './random.js';
import type { CallRecord, SessionRecord } from './records.js';

export interface TrafficOptions {
  /** The tenant's public URL; logins go there (the stack's own instance), API calls to the fleet's instances. */
  publicUrl: string;
  op: IdportenLookalike;
  fleet: Fleet;
  random: Random;
  user: { pid: string };
}

interface Slot {
  index: number;
  logins: number;
  random: Random;
  browser: Browser;
  record: SessionRecord;
}

const SESSION_COOKIE = 'bff';
/** The gateway's answers that end a session for the browser: it must log in again. */
const SESSION_OVER = new Set(['session_expired', 'login_required']);

export class Traffic {
  readonly calls: CallRecord[] = [];
  readonly sessions: SessionRecord[] = [];
  readonly #opts: TrafficOptions;
  readonly #publicHost: string;
  readonly #slots: Slot[] = [];
  #loops: Promise<void>[] = [];
  #stopped = false;
  /** Logins one at a time: the code grant made meanwhile is the login's own. */
  #loginTurn: Promise<unknown> = Promise.resolve();
  #sent = 0;

  constructor(opts: TrafficOptions) {
    this.#opts = opts;
    this.#publicHost = new URL(opts.publicUrl).host;
  }

  /** Logs in `count` sessions, one after another. */
  async logIn(count: number): Promise<void> {
    for (let index = this.#slots.length; index < count; index += 1) {
      const random = this.#opts.random.stream(`session ${index}`);
      const { browser, record } = await this.#login(index, 1);
      this.#slots.push({ index, logins: 1, random, browser, record });
    }
  }

  /** Every session starts calling, until stop(). */
  start(): void {
    this.#stopped = false;
    this.#loops = this.#slots.map((slot) => this.#run(slot));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  /**
   * After the run: every session still on calls until the gateway answers it 200 or ends it, for at most
   * `boundMs` (generous: it only keeps a broken run from hanging).
   */
  async sweep(boundMs: number): Promise<void> {
    const deadline = Date.now() + boundMs;
    await Promise.all(this.#slots.map(async (slot) => {
      while (slot.record.endedAt === undefined && Date.now() < deadline) {
        const call = await this.#call(slot);
        if (call?.status === 200) return;
        await sleep(250);
      }
    }));
  }

  async #run(slot: Slot): Promise<void> {
    while (!this.#stopped) {
      await sleep(slot.random.between(100, 600));
      if (this.#stopped) return;
      const burst = slot.random.chance(0.3) ? slot.random.int(2, 3) : 1;
      await Promise.all(Array.from({ length: burst }, () => this.#call(slot)));
      if (slot.record.endedAt !== undefined) await this.#relogin(slot);
    }
  }

  async #relogin(slot: Slot): Promise<void> {
    while (!this.#stopped) {
      try {
        const { browser, record } = await this.#login(slot.index, slot.logins + 1);
        slot.logins += 1;
        slot.browser = browser;
        slot.record = record;
        return;
      } catch {
        await sleep(500); // the login can fail while the store is down; try again
      }
    }
  }

  #login(index: number, login: number): Promise<{ browser: Browser; record: SessionRecord }> {
    const turn = this.#loginTurn.then(async () => {
      const { op, publicUrl, user } = this.#opts;
      const browser = new Browser();
      const before = op.observed.grants.length;
      await loginAtLookalike(browser, `${publicUrl}/auth/login`, user);
      const codeGrants = op.observed.grants.slice(before).filter((g) => g.grantType === 'authorization_code' && g.ok);
      const grantId = codeGrants[0]?.grantId;
      if (!browser.cookie('localhost', SESSION_COOKIE) || codeGrants.length !== 1 || !grantId) {
        throw new Error(`login of session ${index} failed (${codeGrants.length} code grants)`);
      }
      const record: SessionRecord = { session: `s${String(index).padStart(2, '0')}.${login}`, grantId, loggedInAt: Date.now() };
      this.sessions.push(record);
      return { browser, record };
    });
    this.#loginTurn = turn.catch(() => undefined);
    return turn;
  }

  /** One call through a random live instance; undefined when none is live. */
  async #call(slot: Slot): Promise<CallRecord | undefined> {
    const live = this.#opts.fleet.live();
    if (live.length === 0) {
      await sleep(50);
      return undefined;
    }
    const instance: Instance = slot.random.pick(live);
    const session = slot.record;
    const call: CallRecord = { session: session.session, instance: instance.pid, sentAt: Date.now(), doneAt: 0 };
    this.#sent += 1;
    try {
      const response = await slot.browser.fetch(`http://localhost:${instance.port}/mva/echo/${session.session}/${this.#sent}`, {
        origin: this.#opts.publicUrl,
        headers: { 'x-csrf': '1', host: this.#publicHost },
      });
      Object.assign(call, readAnswer(response));
    } catch {
      // No answer: the instance died under the request.
    }
    call.doneAt = Date.now();
    this.calls.push(call);
    if (call.code && SESSION_OVER.has(call.code) && session.endedAt === undefined) {
      session.endedAt = call.doneAt;
      session.endedWith = call.code;
    }
    return call;
  }
}

function readAnswer(response: BrowserResponse): Partial<CallRecord> {
  const answer: Partial<CallRecord> = { status: response.status };
  const retryAfter = response.headers.get('retry-after');
  if (retryAfter !== null) answer.retryAfter = retryAfter;
  let body: { code?: unknown; error?: unknown; error_description?: unknown; tokenClaims?: { jti?: unknown } } = {};
  try {
    body = JSON.parse(response.body) as typeof body;
  } catch {
    // not JSON
  }
  if (typeof body.code === 'string') answer.code = body.code;
  else if (typeof body.error === 'string') {
    answer.upstreamError = typeof body.error_description === 'string' ? `${body.error}: ${body.error_description}` : body.error;
  }
  if (response.status === 200 && typeof body.tokenClaims?.jti === 'string') answer.jti = body.tokenClaims.jti;
  return answer;
}
