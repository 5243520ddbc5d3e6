/**
 * A running gateway follows what `integrations apply` and `rotate-keys` keep for its tenants: it reads the
 * applied integrations again every few seconds and reloads when a tenant's client id or signing key changed. The
 * old key stays registered for rotate-keys' overlap (default 1 h), so every instance has switched long before
 * it is removed, with or without a SIGHUP.
 */
import type { GatewayConfig } from '../config/types.js';
import { appliedIntegrations, withAppliedIntegrations, type AppliedIntegrations } from './applied-integrations.js';

export const APPLIED_CHECK_INTERVAL_MS = 5_000;

export interface AppliedWatchDeps {
  /** Applies a configuration whose clients changed (the gateway's reload). */
  apply(resolved: GatewayConfig): Promise<unknown>;
  log: { warn(fields: object, message: string): void; info(fields: object, message: string): void; error(fields: object, message: string): void };
  intervalMs?: number;
}

export class AppliedIntegrationsWatch {
  readonly #deps: AppliedWatchDeps;
  #records: AppliedIntegrations | undefined;
  /** What the last resolved configuration gave each waiting tenant: client id and signing key. */
  #clients: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(deps: AppliedWatchDeps) {
    this.#deps = deps;
  }

  /**
   * `loaded` with each waiting tenant given its applied client; one without any is left out (the others are
   * served) and named once per change.
   */
  async resolve(loaded: GatewayConfig): Promise<GatewayConfig> {
    if (!loaded.awaitingClient?.length) return loaded;
    this.#records ??= appliedIntegrations(loaded);
    const { config, missing } = await withAppliedIntegrations(loaded, this.#records);
    const clients = clientsOf(config, loaded);
    if (clients !== this.#clients) {
      // Whoever asks first notices a change (this watch, a run-time tenant's refresh or a reload): said here, once.
      if (this.#clients !== undefined) this.#deps.log.info({ tenants: loaded.awaitingClient.map((tenant) => tenant.id) }, 'applied integrations changed; reloading');
      for (const tenant of missing) this.#deps.log.warn({ tenant }, `tenant ${tenant} has no ID-porten client yet: run idporten-bff integrations apply --tenant ${tenant}`);
    }
    this.#clients = clients;
    return config;
  }

  /** Checks every interval whether `current()`'s tenants got another client or key, and applies it if so. */
  start(current: () => GatewayConfig): void {
    this.#timer = setInterval(() => void this.#check(current()), this.#deps.intervalMs ?? APPLIED_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#records?.close();
  }

  async #check(loaded: GatewayConfig): Promise<void> {
    if (this.#checking || !loaded.awaitingClient?.length) return;
    this.#checking = true;
    try {
      const before = this.#clients;
      const resolved = await this.resolve(loaded);
      if (this.#clients === before) return;
      await this.#deps.apply(resolved);
    } catch (err) {
      // The store away, a record that does not open: the running clients keep serving, and the next check tries again.
      this.#deps.log.error({ reason: (err as Error).message }, 'applied integrations not read; the running clients keep serving');
    } finally {
      this.#checking = false;
    }
  }
}

/** Each waiting tenant's client id and signing key id in `resolved` ('-' for none yet), in one comparable string. */
function clientsOf(resolved: GatewayConfig, loaded: GatewayConfig): string {
  const byId = new Map(resolved.tenants.map((tenant) => [tenant.id, tenant]));
  return (loaded.awaitingClient ?? [])
    .map(({ id }) => {
      const idporten = byId.get(id)?.idporten;
      const auth = idporten?.clientAuth;
      return `${id}=${idporten ? `${idporten.clientId}/${auth?.method === 'private_key_jwt' ? auth.privateKeyJwk.kid : ''}` : '-'}`;
    })
    .join(',');
}
