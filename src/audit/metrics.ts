import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditEvent, AuditFields, AuditLog } from './audit-log.js';
import { LabelledCounter, LabelledHistogram } from './labelled-metrics.js';
import { timedStore, type StoreOperation } from './store-timing.js';

/**
 * Prometheus metrics (names and labels in docs/observability.md).
 *
 * - Process and Node.js metrics under their standard names (`process_cpu_seconds_total`,
 *   `nodejs_eventloop_lag_seconds`, …), so the usual Node.js dashboards work unchanged.
 * - The gateway's own under `bff_`: counted from the audit events (one source of truth for what happened), the
 *   HTTP request histogram, session store latency and live sessions.
 *
 * Outcomes are a fixed vocabulary, `success` | `failure` | `rejected` | `cancelled`: never an HTTP status or a
 * channel. A logout's channel is its own label; a proxied answer's status is its `status_class`.
 */
export type Outcome = 'success' | 'failure' | 'rejected' | 'cancelled';
export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #events: LabelledCounter<'event' | 'tenant' | 'outcome'>;
  readonly #logins: LabelledCounter<'tenant' | 'outcome'>;
  readonly #loginStarts: LabelledCounter<'tenant'>;
  readonly #refreshes: LabelledCounter<'tenant' | 'outcome'>;
  readonly #exchanges: LabelledCounter<'tenant' | 'outcome'>;
  readonly #logouts: LabelledCounter<'tenant' | 'channel'>;
  readonly #proxy: LabelledCounter<'tenant' | 'route' | 'method' | 'status_class'>;
  readonly #requests: LabelledHistogram<'tenant' | 'route' | 'method' | 'status_class'>;
  readonly #store: LabelledHistogram<'operation' | 'outcome'>;
  /** Sessions begun minus sessions ended on this instance, for stores that cannot count themselves. */
  #sessionBalance = 0;
  #storeSize: (() => number | undefined) | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.#events = new LabelledCounter({
      name: 'bff_audit_events_total',
      help: 'Audit events by name, with the outcome (success, failure, rejected, cancelled).',
      labelNames: ['event', 'tenant', 'outcome'],
      registers,
    });
    this.#loginStarts = new LabelledCounter({ name: 'bff_login_starts_total', help: 'Logins sent to ID-porten.', labelNames: ['tenant'], registers });
    this.#logins = new LabelledCounter({
      name: 'bff_logins_total',
      help: 'Finished logins: success (a session was created), failure (refused callback or a login that could not start), cancelled (by the user).',
      labelNames: ['tenant', 'outcome'],
      registers,
    });
    this.#refreshes = new LabelledCounter({
      name: 'bff_token_refreshes_total',
      help: 'Access token refreshes: success, rejected (ID-porten refused the refresh token; the session ends), failure (ID-porten or the store unavailable).',
      labelNames: ['tenant', 'outcome'],
      registers,
    });
    this.#exchanges = new LabelledCounter({ name: 'bff_token_exchanges_total', help: 'Altinn token exchanges: success or failure.', labelNames: ['tenant', 'outcome'], registers });
    this.#logouts = new LabelledCounter({ name: 'bff_logouts_total', help: 'Ended sessions by channel (rp, frontchannel, backchannel, expired, idle, all, user, admin, replaced).', labelNames: ['tenant', 'channel'], registers });
    this.#proxy = new LabelledCounter({
      name: 'bff_proxy_requests_total',
      help: 'Answered API requests by route and status class (the client hanging up first counts as 4xx, status 499).',
      labelNames: ['tenant', 'route', 'method', 'status_class'],
      registers,
    });
    this.#requests = new LabelledHistogram({
      name: 'bff_http_request_duration_seconds',
      help: 'Gateway request duration by tenant and route pattern.',
      labelNames: ['tenant', 'route', 'method', 'status_class'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#store = new LabelledHistogram({
      name: 'bff_session_store_operation_duration_seconds',
      help: 'Session store operations (get, set, update, touch, delete, findByIndex, ping) by outcome (success, failure).',
      labelNames: ['operation', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'bff_sessions_live',
      help: 'Live sessions: the memory store size; for a shared store, sessions begun minus ended on this instance (sum over instances).',
      registers,
      collect() {
        this.set(self.#storeSize?.() ?? self.#sessionBalance);
      },
    });
  }

  /** Wraps an audit log so every event is also counted. */
  counting(audit: AuditLog): AuditLog {
    return {
      event: (name, fields, trace) => {
        this.#count(name, fields);
        audit.event(name, fields, trace);
      },
    };
  }

  /** Times every operation of a session store; a store with a numeric `size` (memory) also feeds `bff_sessions_live`. */
  timedStore<S extends object>(store: S): S {
    const size = (store as { size?: unknown }).size;
    if (typeof size === 'number') this.#storeSize = () => (store as { size: number }).size;
    return timedStore(store, (operation: StoreOperation, outcome: 'success' | 'failure', seconds: number) => this.#store.observe({ operation, outcome }, seconds));
  }

  observeRequest(tenant: string | undefined, route: string, method: string, status: number, seconds: number): void {
    this.#requests.observe({ tenant: tenant ?? 'unknown', route, method, status_class: statusClass(status) }, seconds);
  }

  #count(name: AuditEvent, fields: AuditFields): void {
    const tenant = fields.tenant;
    const outcome = outcomeOf(name, fields);
    this.#events.inc({ event: name, tenant, outcome });
    switch (name) {
      case 'login.start':
        this.#loginStarts.inc({ tenant });
        break;
      case 'login.success':
        this.#sessionBalance++;
        this.#logins.inc({ tenant, outcome });
        break;
      case 'login.failure':
      case 'login.cancelled':
        this.#logins.inc({ tenant, outcome });
        break;
      case 'token.refresh':
      case 'token.refresh.failure':
        this.#refreshes.inc({ tenant, outcome });
        break;
      case 'token.exchange':
        this.#exchanges.inc({ tenant, outcome });
        break;
      case 'logout':
        this.#sessionBalance--;
        this.#logouts.inc({ tenant, channel: String(fields.channel) });
        break;
      case 'proxy':
        this.#proxy.inc({ tenant, route: String(fields.route), method: String(fields.method), status_class: statusClass(Number(fields.status)) });
        break;
      case 'csrf.reject':
        break;
    }
  }
}

/** Each event's outcome in the fixed vocabulary (the table in docs/observability.md). */
export function outcomeOf(name: AuditEvent, fields: AuditFields): Outcome {
  switch (name) {
    case 'login.start':
    case 'login.success':
    case 'token.refresh':
    case 'logout':
      return 'success';
    case 'login.failure':
      return 'failure';
    case 'login.cancelled':
      return 'cancelled';
    case 'token.refresh.failure':
      return fields.kind === 'rejected' ? 'rejected' : 'failure';
    case 'token.exchange':
      return fields.failed ? 'failure' : 'success';
    case 'csrf.reject':
      return 'rejected';
    case 'proxy': {
      const status = Number(fields.status);
      if (status === 499) return 'cancelled';
      if (status >= 500) return 'failure';
      if (status >= 400) return 'rejected';
      return 'success';
    }
  }
}

const STATUS_CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx'];

export function statusClass(status: number): StatusClass {
  // The same five strings every time (metric label look-ups hash them once).
  const hundreds = Math.floor(status / 100);
  return STATUS_CLASSES[hundreds >= 5 ? 4 : hundreds > 1 ? hundreds - 1 : 0]!;
}
