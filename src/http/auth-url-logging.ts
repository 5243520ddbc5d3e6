import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

/**
 * Keeps what /auth/* URLs carry out of every line written through a request's logger: ID-porten's `code`,
 * `state` and `iss` at /auth/callback, the logout handle at /auth/logout/continue, the logout `state` at
 * /auth/logout/callback, a session handle in DELETE /auth/sessions/{handle}.
 *
 * In library mode the host's Fastify writes each request's URL ("incoming request", with its own serializers, at
 * whatever level it chose), and so may its own hooks and child-logger factory. Route options (`logLevel`,
 * `logSerializers`) only help where the host's factory honours them and its log level is not lower, so the
 * plugin does not rely on them: the gateway's scope gets a child-logger factory that calls the host's and, for
 * a request whose URL carries such values, hands Fastify a logger that passes every argument of every line
 * through a view in which those values read as `[redacted]` — the request's `url`, `originalUrl`, `query` and
 * `raw.url` as the host's serializers see them, a message string, a field a hook logged. The line is otherwise
 * the same (the path is kept: the host still sees `/auth/callback`), and requests without such values get the
 * host's logger untouched.
 */

export const REDACTED = '[redacted]';

/** Shortest query value taken for a secret wherever it appears (codes, states, handles are far longer). */
const MIN_SECRET_LENGTH = 8;
const AUTH_PATH = /^\/auth(?:[/?]|$)/;
const SESSION_HANDLE = /^\/auth\/sessions\/([^/?]+)/;
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);
/**
 * Query parameters whose values are no secret, hidden with the query but not wherever else they appear: the
 * provider's issuer (RFC 9207) and the app path a login returns to (the host logs it when the browser gets there).
 */
const PUBLIC_PARAMS = new Set(['iss', 'returnTo']);

/** The scope's child-logger factory: the host's (or Fastify's), with /auth/* secrets kept out of its lines. */
export function hideAuthUrlSecrets(scope: FastifyInstance): void {
  const inherited = scope.childLoggerFactory;
  const factory: FastifyInstance['childLoggerFactory'] = function (logger, bindings, opts, rawReq) {
    const child = inherited.call(this, logger, bindings, opts, rawReq);
    const secrets = authUrlSecrets(rawReq.url ?? '/');
    return secrets.length === 0 ? child : scrubbingLogger(child, new Scrubber(secrets));
  };
  scope.setChildLoggerFactory(factory);
}

/** The values of an /auth/* URL that no log line may carry: its whole query, each longer query value, a session handle. */
export function authUrlSecrets(url: string): string[] {
  if (!AUTH_PATH.test(url)) return [];
  const secrets: string[] = [];
  const q = url.indexOf('?');
  if (q !== -1 && q < url.length - 1) {
    const query = url.slice(q + 1);
    secrets.push(query);
    for (const part of query.split('&')) {
      const eq = part.indexOf('=');
      const value = part.slice(eq + 1);
      if (value.length < MIN_SECRET_LENGTH || (eq !== -1 && PUBLIC_PARAMS.has(part.slice(0, eq)))) continue;
      secrets.push(value);
      const decoded = decode(value);
      if (decoded !== value) secrets.push(decoded);
    }
  }
  const handle = SESSION_HANDLE.exec(url)?.[1];
  if (handle !== undefined && handle.length >= MIN_SECRET_LENGTH) secrets.push(handle);
  // Longest first: the whole query is replaced before the values inside it.
  return [...new Set(secrets)].sort((a, b) => b.length - a.length);
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return value;
  }
}

class Scrubber {
  readonly #secrets: readonly string[];
  readonly #views = new WeakMap<object, object>();

  constructor(secrets: readonly string[]) {
    this.#secrets = secrets;
  }

  string(text: string): string {
    let out = text;
    for (const secret of this.#secrets) if (out.includes(secret)) out = out.replaceAll(secret, REDACTED);
    return out;
  }

  /** A log argument as the logger may read it. */
  value(value: unknown): unknown {
    if (typeof value === 'string') return this.string(value);
    if (typeof value === 'object' && value !== null) return this.view(value);
    return value;
  }

  /**
   * `target` as seen through this scrubber: every string read from it, at any depth, scrubbed. One view per
   * object, so a serializer that walks a cyclic graph meets the same view again and stops.
   */
  view<T extends object>(target: T): T {
    let view = this.#views.get(target);
    if (view === undefined) {
      view = new Proxy(target, {
        get: (object, key) => {
          const value: unknown = Reflect.get(object, key, object);
          // A property the language says must read as it is (frozen, non-configurable) is left alone.
          const own = Reflect.getOwnPropertyDescriptor(object, key);
          if (own && !own.configurable && !own.writable && 'value' in own) return value;
          // Methods run on the object itself (private state, internal slots), and what they return is seen
          // through the view too: a URL's toJSON, an error's toString.
          if (typeof value === 'function') return (...args: unknown[]) => this.value(Reflect.apply(value, object, args));
          return this.value(value);
        },
      });
      this.#views.set(target, view);
    }
    return view as T;
  }
}

/** `logger` with every argument of every line seen through `scrubber`; children likewise. */
function scrubbingLogger(logger: FastifyBaseLogger, scrubber: Scrubber): FastifyBaseLogger {
  return new Proxy(logger, {
    get: (target, key) => {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      if (typeof key === 'string' && LEVELS.has(key)) {
        return (...args: unknown[]) => (value as (...a: unknown[]) => void).apply(target, args.map((arg) => scrubber.value(arg)));
      }
      if (key === 'child') {
        return (bindings: unknown, ...rest: unknown[]) =>
          scrubbingLogger((value as (...a: unknown[]) => FastifyBaseLogger).apply(target, [scrubber.value(bindings), ...rest]), scrubber);
      }
      return value.bind(target) as unknown;
    },
    set: (target, key, value) => Reflect.set(target, key, value, target),
  });
}
