/**
 * A timing decorator for a session store: every operation's duration and outcome goes to `observe`, the
 * results and errors pass through unchanged. Structural (no import of session/), so audit/ stays below it.
 */
export const STORE_OPERATIONS = ['get', 'set', 'update', 'claim', 'unclaim', 'touch', 'delete', 'findByIndex', 'ping'] as const;
export type StoreOperation = (typeof STORE_OPERATIONS)[number];

export type ObserveStoreOperation = (operation: StoreOperation, outcome: 'success' | 'failure', seconds: number) => void;

export function timedStore<S extends object>(store: S, observe: ObserveStoreOperation): S {
  const timed = new Map<PropertyKey, unknown>();
  for (const operation of STORE_OPERATIONS) {
    const method = (store as Record<string, unknown>)[operation];
    if (typeof method !== 'function') continue;
    timed.set(operation, async (...args: unknown[]) => {
      // performance.now(): the same monotonic clock as hrtime, without a BigInt per reading.
      const start = performance.now();
      try {
        const result: unknown = await (method as (...a: unknown[]) => Promise<unknown>).apply(store, args);
        observe(operation, 'success', (performance.now() - start) / 1e3);
        return result;
      } catch (err) {
        observe(operation, 'failure', (performance.now() - start) / 1e3);
        throw err;
      }
    });
  }
  // Everything else (close, size, a store's own extras such as `kept`) is the store's, called on the store itself
  // so classes with private fields keep working; each method is bound once, not on every call.
  const bound = new Map<PropertyKey, { method: unknown; bound: unknown }>();
  return new Proxy(store, {
    get(target, property) {
      if (timed.has(property)) return timed.get(property);
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const known = bound.get(property);
      if (known?.method === value) return known.bound;
      const own = (value as (...a: unknown[]) => unknown).bind(target);
      bound.set(property, { method: value, bound: own });
      return own;
    },
  });
}
