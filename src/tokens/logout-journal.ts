/**
 * `session.journalDir`: the pending back-channel logouts of one instance, kept on disk so that a restart during a
 * store outage does not lose them. ID-porten delivers a back-channel logout once; an instance that accepted one
 * while the store was unreachable and then restarted would otherwise have forgotten it, and the session would live
 * on until its idle or absolute timeout.
 *
 * One file, `pending-logouts.jsonl`: a JSON line per event, appended and fsync'd (fdatasync) before the add
 * resolves — `{"op":"add","tenant":…,"sid":…,"sub":…,"at":ms}` when a logout could not be applied, `{"op":"done",…}`
 * once it was (or was given up). Only what is needed to find the sessions again: the tenant id, the provider's sid
 * and/or sub, and the time; no token, no session id. When done lines pile up, and at every open, the file is
 * rewritten with the pending entries only (a new file, fsync, rename over the old one, fsync of the directory), so
 * it stays bounded and a torn last line from a crash is never appended to.
 */
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { WarningLog } from './revocation.js';

/** One pending provider logout: its tenant's id, the provider session it names, and when it was accepted (epoch ms). */
export interface JournalEntry {
  tenant: string;
  sid?: string;
  sub?: string;
  at: number;
}

export const JOURNAL_FILE = 'pending-logouts.jsonl';
/** Rewrite the file once it holds this many lines that no longer count (done, or superseded). */
const COMPACT_AFTER_DEAD_LINES = 1_000;

export interface LogoutJournalOptions {
  now: () => number;
  /** The session absolute lifetime: an entry older than it is dropped on replay, since no session outlives it. */
  maxAgeMs: number;
  /** At most this many entries are replayed (the newest). */
  maxEntries: number;
  log: WarningLog;
  /** Dead lines that make the file be rewritten (default 1000). */
  compactAfter?: number;
}

/** The identity of a pending logout: the same tenant, sid and sub are the same logout. */
export function logoutKey(tenant: string, sid: string | undefined, sub: string | undefined): string {
  return JSON.stringify([tenant, sid || null, sub || null]);
}

export class LogoutJournal {
  /** The entries found pending when the journal was opened, oldest first: to be refused and retried at once. */
  readonly pending: readonly JournalEntry[];
  readonly #dir: string;
  readonly #file: string;
  readonly #log: WarningLog;
  readonly #compactAfter: number;
  /** Every entry pending now, by logoutKey. */
  readonly #live: Map<string, JournalEntry>;
  #handle: FileHandle | undefined;
  #lines = 0;
  /** The file may not end where the last whole line does (a write failed): rewrite it before appending again. */
  #dirty = false;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(dir: string, live: Map<string, JournalEntry>, opts: LogoutJournalOptions) {
    this.#dir = dir;
    this.#file = join(dir, JOURNAL_FILE);
    this.#log = opts.log;
    this.#compactAfter = opts.compactAfter ?? COMPACT_AFTER_DEAD_LINES;
    this.#live = live;
    this.pending = [...live.values()];
  }

  /**
   * Opens (creating it if need be) the journal in `dir`, replays it and rewrites it with what is still pending.
   * A directory that cannot be made, read or written is a ConfigError naming `session.journalDir`.
   */
  static async open(dir: string, opts: LogoutJournalOptions): Promise<LogoutJournal> {
    let text: string;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      text = await readFile(join(dir, JOURNAL_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw err;
      });
    } catch (err) {
      throw unwritable(dir, err);
    }
    const replayed = replay(text, opts);
    const journal = new LogoutJournal(dir, replayed.live, opts);
    try {
      await journal.#compact();
    } catch (err) {
      throw unwritable(dir, err);
    }
    const { live, ...dropped } = replayed;
    if (live.size > 0 || Object.values(dropped).some((n) => n > 0)) {
      const log = dropped.unreadable > 0 ? opts.log.warn.bind(opts.log) : opts.log.info.bind(opts.log);
      log({ dir, pending: live.size, ...dropped }, 'back-channel logout journal replayed');
    }
    return journal;
  }

  /** Records a pending logout; resolves once it is on disk (fdatasync). */
  add(entry: JournalEntry): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the back-channel logout journal is closed'));
    return this.#serially(async () => {
      const key = logoutKey(entry.tenant, entry.sid, entry.sub);
      this.#live.delete(key);
      this.#live.set(key, entry);
      await this.#append(line('add', entry));
    });
  }

  /** Records that a pending logout is finished (one accepted again since `entry.at` stays pending). */
  done(entry: JournalEntry): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return this.#serially(async () => {
      const key = logoutKey(entry.tenant, entry.sid, entry.sub);
      const live = this.#live.get(key);
      if (!live || live.at > entry.at) return;
      this.#live.delete(key);
      await this.#append(line('done', entry));
      if (this.#lines - this.#live.size < this.#compactAfter) return;
      try {
        await this.#compact();
      } catch (err) {
        // The old file is whole and still appended to; the next done tries again.
        this.#log.warn({ dir: this.#dir, reason: (err as Error).message }, 'back-channel logout journal not compacted');
      }
    });
  }

  /** How many entries are pending. */
  get size(): number {
    return this.#live.size;
  }

  /** Waits for the writes under way and closes the file; later adds are refused, later dones ignored. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail;
    await this.#handle?.close();
    this.#handle = undefined;
  }

  /** One write at a time, in the order asked. */
  #serially(op: () => Promise<void>): Promise<void> {
    const result = this.#tail.then(op);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async #append(text: string): Promise<void> {
    try {
      if (this.#dirty || !this.#handle) {
        await this.#compact();
      } else {
        await this.#handle.appendFile(text);
        await this.#handle.datasync();
        this.#lines += 1;
      }
      this.#dirty = false;
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
  }

  /** Replaces the file by one holding the pending entries only: new file, fsync, rename, fsync of the directory. */
  async #compact(): Promise<void> {
    const next = `${this.#file}.tmp`;
    const out = await open(next, 'w', 0o600);
    try {
      await out.writeFile([...this.#live.values()].map((entry) => line('add', entry)).join(''));
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(next, this.#file);
    await syncDirectory(this.#dir);
    // The old handle writes to the file just replaced.
    const old = this.#handle;
    this.#handle = undefined;
    await old?.close();
    this.#handle = await open(this.#file, 'a', 0o600);
    this.#lines = this.#live.size;
  }
}

/** The pending entries a journal's text leaves, oldest first, and how many lines or entries were passed over. */
function replay(text: string, opts: Pick<LogoutJournalOptions, 'now' | 'maxAgeMs' | 'maxEntries'>) {
  const live = new Map<string, JournalEntry>();
  let unreadable = 0;
  let torn = 0;
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    if (raw === '') return;
    const record = parseLine(raw);
    // Only the last line can be cut short by a crash (each line is one write); another unreadable line is damage.
    if (!record) return void (index === lines.length - 1 ? (torn += 1) : (unreadable += 1));
    const key = logoutKey(record.entry.tenant, record.entry.sid, record.entry.sub);
    const current = live.get(key);
    if (current && current.at > record.entry.at) return;
    live.delete(key);
    if (record.op === 'add') live.set(key, record.entry);
  });
  const now = opts.now();
  const sorted = [...live].filter(([, entry]) => now - entry.at < opts.maxAgeMs).sort(([, a], [, b]) => a.at - b.at);
  const expired = live.size - sorted.length;
  const kept = sorted.slice(Math.max(0, sorted.length - opts.maxEntries));
  return { live: new Map(kept), expired, overBound: sorted.length - kept.length, unreadable, torn };
}

function parseLine(text: string): { op: 'add' | 'done'; entry: JournalEntry } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const { op, tenant, sid, sub, at } = value as Record<string, unknown>;
  if (op !== 'add' && op !== 'done') return undefined;
  if (typeof tenant !== 'string' || tenant === '' || typeof at !== 'number' || !Number.isFinite(at)) return undefined;
  if (!optionalName(sid) || !optionalName(sub) || (sid === undefined && sub === undefined)) return undefined;
  return { op, entry: { tenant, ...(sid === undefined ? {} : { sid }), ...(sub === undefined ? {} : { sub }), at } };
}

function optionalName(value: unknown): value is string | undefined {
  return value === undefined || (typeof value === 'string' && value !== '');
}

function line(op: 'add' | 'done', entry: JournalEntry): string {
  const { tenant, sid, sub, at } = entry;
  return `${JSON.stringify({ op, tenant, sid, sub, at })}\n`;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function unwritable(dir: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new ConfigError([
    {
      path: 'session.journalDir',
      message: `cannot use ${dir} as the back-channel logout journal (${code}): it must be a directory this instance can create or write, of its own, on a volume that survives a restart`,
    },
  ]);
}
