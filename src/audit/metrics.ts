import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditLog } from './audit-log.js';

/** Prometheus metrics. Counting audit events keeps one source of truth for what happened. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #events: Counter<'event' | 'tenant' | 'outcome'>;
  readonly #requests: Histogram<'route' | 'method' | 'status'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'bff_process_' });
    this.#events = new Counter({
      name: 'bff_audit_events_total',
      help: 'Audit events by name (login, refresh, exchange, logout, csrf, proxy).',
      labelNames: ['event', 'tenant', 'outcome'],
      registers: [this.registry],
    });
    this.#requests = new Histogram({
      name: 'bff_http_request_duration_seconds',
      help: 'Gateway request duration by route pattern.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }

  /** Wraps an audit log so every event is also counted. */
  counting(audit: AuditLog): AuditLog {
    return {
      event: (name, fields) => {
        const outcome = fields.failed || name.endsWith('failure') ? 'failure' : typeof fields.status === 'number' ? String(fields.status) : 'ok';
        this.#events.inc({ event: name, tenant: fields.tenant, outcome: name === 'logout' ? String(fields.channel) : outcome });
        audit.event(name, fields);
      },
    };
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.#requests.observe({ route, method, status: String(status) }, seconds);
  }
}
