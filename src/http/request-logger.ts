import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Logger } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Fastify's logger for one request (`request.log`), whose pino child is made only when the request writes a
 * line at an enabled level. Most requests write none (a proxied request's audit line has its own logger), and
 * a child with its request id and trace ids costs about as much as the rest of the request's logging. The
 * line, when there is one, is the same: the child gets every binding given so far, in order.
 */
export class RequestLogger implements FastifyBaseLogger {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: Logger, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  /** Fastify's childLoggerFactory: a lazy logger unless the route asks for options of its own (a log level). */
  static factory(this: void, parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
    const logger = parent as Logger;
    if (Object.keys(opts).length > 0 || typeof logger.isLevelEnabled !== 'function') return parent.child(bindings, opts);
    return new RequestLogger(logger, bindings);
  }

  get #logger(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings));
  }

  get level(): string {
    return this.#child?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger.level = level;
  }

  /** Bindings added before the first line are given to the child when it is made. */
  setBindings(bindings: Bindings): void {
    if (this.#child) (this.#child as Logger).setBindings(bindings);
    else Object.assign(this.#bindings, bindings);
  }

  bindings(): Bindings {
    return this.#child ? (this.#child as Logger).bindings() : { ...this.#parent.bindings(), ...this.#bindings };
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger.child(bindings, options);
  }

  #write(level: Level, args: unknown[]): void {
    if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return;
    (this.#logger[level] as (...a: unknown[]) => void)(...args);
  }

  fatal(...args: unknown[]): void {
    this.#write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#write('error', args);
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args);
  }
  info(...args: unknown[]): void {
    this.#write('info', args);
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args);
  }
  silent(): void {}
}
