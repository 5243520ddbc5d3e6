/**
 * Metrics and trace context against real parts: the ID-porten, Skatteetaten and Altinn look-alikes, a gateway
 * on a real port, a cookie-keeping browser; /metrics scraped over HTTP, traceparent read where the upstream
 * received it.
 */
import t from 'tap';
import { request } from 'node:http';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const api = { 'x-csrf': '1' };
const BROWSER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const BROWSER_SPAN = '00f067aa0ba902b7';
const traceparent = (trace = BROWSER_TRACE, span = BROWSER_SPAN, flags = '01') => `00-${trace}-${span}-${flags}`;

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parses the Prometheus text format (enough of it for these assertions). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(stack: Stack): Promise<Sample[]> {
  const res = await fetch(`${stack.publicUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** The value of the one sample with exactly these labels (0 when it does not exist yet). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

async function login(stack: Stack): Promise<Browser> {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  return browser;
}

t.test('after a login, a refresh, an Altinn exchange, API calls and a logout, /metrics counts each under standard names', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  let samples = await scrape(stack);
  t.equal(value(samples, 'bff_sessions_live'), 1, 'one live session after the login');

  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/a`, { headers: api })).status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api })).status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' })).status, 201);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/b`)).status, 403, 'no X-CSRF: refused');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { ...api, accept: 'application/json' } })).status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/c`, { headers: api })).status, 401, 'after the logout');

  samples = await scrape(stack);
  const names = new Set(samples.map((s) => s.name));
  for (const standard of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_version_info']) {
    t.ok(names.has(standard), `${standard} under its standard name`);
  }
  t.same([...names].filter((n) => n.startsWith('bff_process_') || n.startsWith('bff_nodejs_')), [], 'no prefixed default metrics');

  const tenant = 'test';
  t.equal(value(samples, 'bff_login_starts_total', { tenant }), 1);
  t.equal(value(samples, 'bff_logins_total', { tenant, outcome: 'success' }), 1);
  t.equal(value(samples, 'bff_token_refreshes_total', { tenant, outcome: 'success' }), 1);
  t.equal(value(samples, 'bff_token_exchanges_total', { tenant, outcome: 'success' }), 1);
  t.equal(value(samples, 'bff_logouts_total', { tenant, channel: 'rp' }), 1);
  t.equal(value(samples, 'bff_proxy_requests_total', { tenant, route: '/mva/echo', method: 'GET', status_class: '2xx' }), 1);
  t.equal(value(samples, 'bff_proxy_requests_total', { tenant, route: '/mva/echo', method: 'GET', status_class: '4xx' }), 2, 'the CSRF refusal and the 401');
  t.equal(value(samples, 'bff_proxy_requests_total', { tenant, route: '/mva/innsending', method: 'POST', status_class: '2xx' }), 1);
  t.equal(value(samples, 'bff_audit_events_total', { event: 'csrf.reject', tenant, outcome: 'rejected' }), 1);
  t.equal(value(samples, 'bff_audit_events_total', { event: 'logout', tenant, outcome: 'success' }), 1);
  t.equal(value(samples, 'bff_sessions_live'), 0, 'no live session after the logout');

  const outcomes = new Set(samples.filter((s) => s.labels.outcome !== undefined && s.name.startsWith('bff_')).map((s) => s.labels.outcome));
  t.same([...outcomes].filter((o) => !['success', 'failure', 'rejected', 'cancelled'].includes(o!)), [], `outcomes only from the vocabulary: ${[...outcomes].join(', ')}`);

  t.equal(value(samples, 'bff_http_request_duration_seconds_count', { tenant, route: '/auth/callback', method: 'GET', status_class: '3xx' }), 1, 'the callback, by tenant');
  t.ok(value(samples, 'bff_http_request_duration_seconds_count', { tenant, route: '/mva/echo/*', method: 'GET', status_class: '2xx' }) >= 1, 'a proxied route, by tenant');
  for (const operation of ['get', 'set', 'update', 'delete']) {
    t.ok(value(samples, 'bff_session_store_operation_duration_seconds_count', { operation, outcome: 'success' }) >= 1, `store ${operation} timed`);
  }
});

t.test("a browser's valid traceparent is continued: the upstream sees its trace id with the gateway's span as parent", async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  const res = await browser.fetch(`${stack.publicUrl}/mva/echo/traced`, { headers: { ...api, traceparent: traceparent(), tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' } });
  t.equal(res.status, 200);
  const seen = stack.skatteetaten!.requests.at(-1)!.headers;
  const [version, traceId, parentId, flags] = String(seen.traceparent).split('-');
  t.equal(version, '00');
  t.equal(traceId, BROWSER_TRACE, 'same trace');
  t.match(parentId, /^[0-9a-f]{16}$/);
  t.not(parentId, BROWSER_SPAN, "the parent is the gateway's span, not the browser's");
  t.equal(flags, '01', 'sampled flag kept');
  t.equal(seen.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'tracestate passed on');

  const proxyLine = stack.audit('proxy').find((l) => l.traceId === BROWSER_TRACE);
  t.ok(proxyLine, 'the proxy audit line carries the trace id');
  t.same(proxyLine?.span, { name: 'proxy', id: parentId, parentId: BROWSER_SPAN }, "the audit line names the span the upstream saw as its parent");
  const requestLine = stack.logs.find((l) => l.msg === 'request' && l.traceId === BROWSER_TRACE);
  t.equal(requestLine?.spanId, parentId, "the request's own log line carries traceId and spanId");
});

t.test('an absent or invalid traceparent starts a new trace; its tracestate is not passed on', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  const invalid = [
    undefined,
    traceparent(BROWSER_TRACE.toUpperCase()),
    traceparent('0'.repeat(32)),
    traceparent(BROWSER_TRACE, '0'.repeat(16)),
    `ff-${BROWSER_TRACE}-${BROWSER_SPAN}-01`,
    `${traceparent()}-extra`,
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01',
  ];
  const traces = new Set<string>();
  for (const header of invalid) {
    const headers: Record<string, string> = { ...api, tracestate: 'congo=t61rcWkgMzE' };
    if (header !== undefined) headers.traceparent = header;
    t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers })).status, 200);
    const seen = stack.skatteetaten!.requests.at(-1)!.headers;
    const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(String(seen.traceparent));
    t.ok(match, `${header ?? 'no traceparent'}: a new, valid traceparent (${String(seen.traceparent)})`);
    t.not(match?.[1], BROWSER_TRACE.toLowerCase());
    t.notOk('tracestate' in seen, 'tracestate dropped');
    traces.add(match?.[1] ?? '');
  }
  t.equal(traces.size, invalid.length, 'a new trace each time');
});

t.test("a later traceparent version is continued by its first four fields", async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/v`, { headers: { ...api, traceparent: `01-${BROWSER_TRACE}-${BROWSER_SPAN}-01-what-comes-next` } })).status, 200);
  t.match(String(stack.skatteetaten!.requests.at(-1)!.headers.traceparent), new RegExp(`^00-${BROWSER_TRACE}-[0-9a-f]{16}-01$`));
});

t.test('every problem answer carries the traceId: continued, new, and before any route', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = new Browser();
  const noSession = await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: { ...api, traceparent: traceparent() } });
  t.equal(noSession.status, 401);
  t.match(JSON.parse(noSession.body), { code: 'login_required', traceId: BROWSER_TRACE });

  const csrf = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST' });
  t.equal(csrf.status, 403);
  const csrfBody = JSON.parse(csrf.body) as { traceId: string };
  t.match(csrfBody.traceId, /^[0-9a-f]{32}$/);
  t.ok(stack.audit('csrf.reject').some((l) => l.traceId === csrfBody.traceId), 'the same id is on the audit line');

  const unknown = await browser.fetch(`${stack.publicUrl}/nowhere`, { headers: { traceparent: traceparent() } });
  t.equal(unknown.status, 404);
  t.match(JSON.parse(unknown.body), { code: 'route_not_found', traceId: BROWSER_TRACE });
});

t.test('audit lines of login, callback, refresh and Altinn exchange carry the trace id and a named span', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { ...api, traceparent: traceparent() } })).status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: { ...api, traceparent: traceparent(BROWSER_TRACE, 'aaaaaaaaaaaaaaaa') }, body: '' })).status, 201);

  const [start] = stack.audit('login.start');
  const [success] = stack.audit('login.success');
  t.match(start, { traceId: /^[0-9a-f]{32}$/, span: { name: 'login', id: /^[0-9a-f]{16}$/ } });
  t.match(success, { traceId: /^[0-9a-f]{32}$/, span: { name: 'callback', id: /^[0-9a-f]{16}$/ } });
  t.not(start?.traceId, success?.traceId, 'login and callback are separate browser requests, so separate traces without a browser traceparent');

  const [refresh] = stack.audit('token.refresh');
  t.equal(refresh?.traceId, BROWSER_TRACE);
  const refreshSpan = refresh?.span as { name: string; id: string; parentId: string };
  t.equal(refreshSpan.name, 'token.refresh');
  const refreshRequest = stack.logs.find((l) => l.msg === 'request' && l.traceId === BROWSER_TRACE && l.route === '/auth/session/refresh');
  t.equal(refreshSpan.parentId, refreshRequest?.spanId, "a child of the request's span");
  t.not(refreshSpan.id, refreshSpan.parentId);

  const [exchange] = stack.audit('token.exchange');
  t.match(exchange, { traceId: BROWSER_TRACE, span: { name: 'altinn.exchange', id: /^[0-9a-f]{16}$/ } });
  const proxied = stack.audit('proxy').find((l) => l.route === '/mva/innsending');
  t.equal((exchange?.span as { parentId: string }).parentId, (proxied?.span as { id: string }).id, 'the exchange runs under the proxied request');

  // A body that arrives 100 ms after its headers is read from later socket events: the logout line written
  // once it is read still carries the request's trace.
  const LOGOUT_TRACE = '0af7651916cd43dd8448eb211c80319c';
  const publicUrl = new URL(stack.publicUrl);
  const cookieHeader = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  const status = await new Promise<number>((resolve, reject) => {
    const body = 'reason=done';
    const req = request(publicUrl, {
      method: 'POST',
      path: '/auth/logout',
      headers: { ...api, cookie: cookieHeader, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length, traceparent: traceparent(LOGOUT_TRACE) },
    }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.flushHeaders();
    setTimeout(() => req.end(body), 100);
  });
  t.equal(status, 200);
  t.match(stack.audit('logout').find((l) => l.channel === 'rp'), { traceId: LOGOUT_TRACE, span: { name: 'logout' } });
});

t.test('the Grafana dashboard queries only metric names /metrics serves', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const dashboard = JSON.parse(await readFile(new URL('../deploy/grafana/idporten-bff.json', import.meta.url), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  await browser.fetch(`${stack.publicUrl}/mva/echo/a`, { headers: api });
  // Declared names (a counter nobody incremented yet has no sample, only its TYPE line), histograms with their series.
  const text = await (await fetch(`${stack.publicUrl}/metrics`)).text();
  const served = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name!])));
  const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((target) => [...target.expr.matchAll(/\b((?:bff|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!))));
  t.ok(used.size >= 10, `${used.size} metric names in the dashboard`);
  for (const name of used) t.ok(served.has(name), `${name} is served`);
});
