import pino, { type Logger } from 'pino';

/**
 * The process logger: pino JSON lines on stdout, redacted by the field names the code really logs.
 *
 * Redaction walks each logged object (plain objects and arrays, a few levels deep) and decides by key:
 * - SECRET_KEYS are replaced whatever their value: credentials in headers, raw OAuth parameters, `pid`,
 *   key and client secrets, cookie values and the session's token bundle (`tokens`).
 * - FINGERPRINT_FIELDS carry what a reviewer needs in the audit log: token fingerprints (`accessToken`,
 *   `oldRefreshToken`, `state`, `sid`, …) and revocation outcomes (`revoked.refreshToken: true`). A value
 *   stays when it is a 12-character fingerprint or a boolean and is replaced otherwise, so a raw token that
 *   slips into one of them is still caught.
 * - `code` stays when it looks like a problem or error code (`idp_unavailable`, `ECONNREFUSED`,
 *   `FST_ERR_CTP_BODY_TOO_LARGE`) and is replaced otherwise; under `query` it is the authorization code and
 *   always replaced.
 * - A `url` keeps its path and loses its query string (a callback URL carries the code and state).
 *
 * This is done in pino's `formatters.log`, not with pino's `redact` paths: the path-based redaction costs
 * tens of microseconds per line, this walk well under one.
 */
export const CENSOR = '[redacted]';

export const SECRET_KEYS: ReadonlySet<string> = new Set([
  // HTTP credentials, wherever headers are logged.
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  // Raw OAuth / OpenID Connect parameters (a token endpoint answer, a form body, a logout token).
  'access_token',
  'refresh_token',
  'id_token',
  'logout_token',
  'client_secret',
  'client_assertion',
  'code_verifier',
  'subject_token',
  'assertion',
  // The national identity number and the session's raw tokens (SessionData.user.pid, SessionData.tokens).
  'pid',
  'tokens',
  // Configuration secrets: client secrets, session key secrets, private JWKs, passwords.
  'secret',
  'privateKeyJwk',
  'password',
  // Cookie values (request.cookies, the session cookie itself).
  'cookies',
  'cookieValue',
]);

/** Fields that hold a fingerprint (or a boolean outcome) in the audit log. */
export const FINGERPRINT_FIELDS: ReadonlySet<string> = new Set(['accessToken', 'refreshToken', 'idToken', 'altinnToken', 'oldAccessToken', 'oldRefreshToken', 'token', 'logoutToken', 'state', 'sid']);

/** Under these a `code` or a token field is the real thing: the callback query's code, a session's Altinn token. */
const SECRET_PARENTS: ReadonlySet<string> = new Set(['query', 'altinn', 'body', 'form']);

const FINGERPRINT = /^[A-Za-z0-9_-]{12}$/;
/** `invalid_grant`, `idp_unavailable`, `ECONNREFUSED`, `FST_ERR_CTP_BODY_TOO_LARGE`, `ERR_JWT_EXPIRED`. */
const CODE = /^(?:[a-z][a-z0-9]*(?:[_.][a-z0-9]+)*|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)$/;
const MAX_DEPTH = 4;

function redactField(key: string, value: unknown, parent: string | undefined, depth: number): unknown {
  if (value === undefined || value === null) return value;
  if (SECRET_KEYS.has(key)) return CENSOR;
  if (FINGERPRINT_FIELDS.has(key)) {
    if (parent !== undefined && SECRET_PARENTS.has(parent)) return CENSOR;
    return typeof value === 'boolean' || (typeof value === 'string' && FINGERPRINT.test(value)) ? value : CENSOR;
  }
  if (key === 'code') {
    if (parent !== undefined && SECRET_PARENTS.has(parent)) return CENSOR;
    return typeof value === 'number' || (typeof value === 'string' && value.length <= 64 && CODE.test(value)) ? value : CENSOR;
  }
  if (key === 'url' && typeof value === 'string') {
    const q = value.indexOf('?');
    return q === -1 ? value : `${value.slice(0, q)}?${CENSOR}`;
  }
  if (typeof value === 'object' && depth < MAX_DEPTH) return redactObject(value as object, key, depth + 1);
  return value;
}

/** Returns `obj` itself when nothing needs hiding, otherwise a redacted shallow copy (the caller's object is never changed). */
function redactObject(obj: object, parent: string | undefined, depth: number): object {
  if (Array.isArray(obj)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < obj.length; i++) {
      const value: unknown = obj[i];
      if (typeof value !== 'object' || value === null) continue;
      const redacted = redactField('', value, parent, depth);
      if (redacted !== value) (out ??= obj.slice())[i] = redacted;
    }
    return out ?? obj;
  }
  const proto: unknown = Object.getPrototypeOf(obj);
  // Errors, Buffers, requests…: left to their serializers.
  if (proto !== Object.prototype && proto !== null) return obj;
  let out: Record<string, unknown> | undefined;
  const record = obj as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const value = record[key];
    const redacted = redactField(key, value, parent, depth);
    if (redacted !== value) (out ??= { ...record })[key] = redacted;
  }
  return out ?? obj;
}

/** Redacts one log object (exported for tests and tools; the logger applies it to every line and binding). */
export function redact<T extends object>(obj: T): T {
  return redactObject(obj, undefined, 0) as T;
}

export interface LogSinkOptions {
  /** Where the lines go (default: process.stdout). */
  stream?: NodeJS.WritableStream & { writableLength?: number };
  /** Longest a line waits in the buffer (default 100 ms). */
  flushIntervalMs?: number;
  /** A batch this large is written at once (default 16 KiB). */
  batchBytes?: number;
  /** When the stream already holds this much unwritten output, new lines are dropped and counted (default 8 MiB). */
  maxPendingBytes?: number;
}

const sinksToFlushOnExit = new Set<LogSink>();
let exitHookInstalled = false;

/**
 * A small, bounded line buffer in front of stdout.
 *
 * - Prompt: a line waits at most `flushIntervalMs` (an unref'd timer) or until `batchBytes` accumulate.
 * - Cheap: `write` appends to an array; one write(2) per batch, never one per line.
 * - Never blocks: process.stdout on a pipe is non-blocking, so a reader that stopped reading only makes the
 *   stream queue grow — up to `maxPendingBytes`, then lines are dropped and the count is logged once output
 *   moves again. A closed reader (EPIPE) turns the sink off; nothing retries.
 * - On exit (any `process.exit`, an uncaught exception) the buffer is handed to the stream once more: on a
 *   pipe that is a single non-blocking write attempt, so exiting never waits for stdout.
 */
export class LogSink {
  readonly #stream: NodeJS.WritableStream & { writableLength?: number };
  readonly #intervalMs: number;
  readonly #batchBytes: number;
  readonly #maxPendingBytes: number;
  #chunks: string[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #dropped = 0;
  #broken = false;
  #waiters: (() => void)[] = [];
  readonly #flushTimer = () => {
    this.#timer = undefined;
    this.flushNow();
  };

  constructor(opts: LogSinkOptions = {}) {
    this.#stream = opts.stream ?? process.stdout;
    this.#intervalMs = opts.flushIntervalMs ?? 100;
    this.#batchBytes = opts.batchBytes ?? 16 * 1024;
    this.#maxPendingBytes = opts.maxPendingBytes ?? 8 * 1024 * 1024;
    // EPIPE (the reader is gone) or any other write error: stop writing, never retry, never throw.
    this.#stream.on('error', () => this.#break());
    this.#stream.on('close', () => this.#break());
    this.#stream.on('drain', () => this.#settle());
    sinksToFlushOnExit.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const sink of sinksToFlushOnExit) sink.flushNow();
      });
    }
  }

  /** pino's destination interface: one serialised line (with its newline). */
  write(line: string): boolean {
    if (this.#broken) {
      this.#dropped++;
      return true;
    }
    this.#chunks.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= this.#batchBytes) this.flushNow();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#flushTimer, this.#intervalMs);
      this.#timer.unref();
    }
    return true;
  }

  /** Hands the buffer to the stream now (non-blocking). */
  flushNow(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#chunks.length === 0) return;
    const lines = this.#chunks.length;
    const data = this.#chunks.length === 1 ? this.#chunks[0]! : this.#chunks.join('');
    this.#chunks = [];
    this.#bytes = 0;
    if (this.#broken) {
      this.#dropped += lines;
      return;
    }
    if ((this.#stream.writableLength ?? 0) > this.#maxPendingBytes) {
      this.#dropped += lines;
      return;
    }
    try {
      if (this.#dropped > 0) {
        this.#stream.write(droppedLine(this.#dropped));
        this.#dropped = 0;
      }
      this.#stream.write(data);
    } catch {
      // A stream destroyed under us throws on write; the lines are lost either way.
      this.#break();
    }
    this.#settle();
  }

  /** pino's `logger.flush(cb)`: the callback runs once the buffered lines have left the process (or cannot). */
  flush(cb?: (err?: Error) => void): void {
    void this.drained().then(() => cb?.());
  }

  /** Flushes, then resolves when the stream has written everything (or is broken). May never resolve on a stuck pipe: race it with a deadline. */
  drained(): Promise<void> {
    this.flushNow();
    if (this.#isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lines that were dropped (stuck or closed stdout) and not reported yet. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Stops the sink for good (tests): flushes and forgets its exit hook. */
  close(): void {
    this.flushNow();
    sinksToFlushOnExit.delete(this);
  }

  #isSettled(): boolean {
    return this.#broken || (this.#stream.writableLength ?? 0) === 0;
  }

  #settle(): void {
    if (this.#waiters.length === 0 || !this.#isSettled()) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  #break(): void {
    this.#broken = true;
    this.#dropped += this.#chunks.length;
    this.#chunks = [];
    this.#bytes = 0;
    this.#settle();
  }
}

function droppedLine(count: number): string {
  return `${JSON.stringify({ level: 'warn', time: new Date().toISOString(), service: 'idporten-bff', dropped: count, msg: 'log lines dropped: stdout was not being read' })}\n`;
}

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const logger = pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'idporten-bff' },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }), log: redact, bindings: redact },
      serializers: { req: serializeRequest },
    },
    opts.destination ?? new LogSink(),
  );
  // pino applies formatters.bindings to the root's base only; a child's bindings (fastify's request logger,
  // the audit child) go through the same redaction here. Children inherit this `child` from the root.
  const child = logger.child;
  logger.child = function redactedChild(this: Logger, bindings, options) {
    return child.call(this, redact(bindings), options);
  } as typeof logger.child;
  return logger;
}

let isoSecond = Number.NaN;
let isoPrefix = '';

/**
 * pino's `"time"` field as ISO 8601 UTC with milliseconds, the same text as pino's isoTime: formatting the date
 * once per second and appending the milliseconds costs a fraction of a toISOString per line.
 */
export function isoTime(now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
  }
  const ms = now - second * 1000;
  return `,"time":"${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

/** A request, if one is ever logged whole: method, path and route, never headers, cookies or the query string. */
function serializeRequest(req: { method?: string; url?: string; routeOptions?: { url?: string }; id?: string }): Record<string, unknown> {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return { id: req.id, method: req.method, path: q === -1 ? url : url.slice(0, q), route: req.routeOptions?.url };
}
