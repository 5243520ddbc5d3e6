/**
 * Coalesces concurrent calls with the same key into one: everyone who asks while a call is running gets
 * its result. Works within one process; across instances the session lock plus a re-read does the same.
 */
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key);
    if (running) return running;
    const p = fn().finally(() => this.#running.delete(key));
    this.#running.set(key, p);
    return p;
  }
}
