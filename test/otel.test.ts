import t from 'tap';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTelemetry, telemetry, tracingExporters } from '../src/audit/otel.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[2]!;
const api = { 'x-csrf': '1' };
const TTL = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ALLOWED_ATTRIBUTES = new Set(['http.request.method', 'http.route', 'http.response.status_code', 'bff.tenant', 'bff.outcome']);

t.test('the OTEL_* variables switch tracing on; off by default, OTEL_SDK_DISABLED wins', async (t) => {
  t.same(tracingExporters({}), [], 'nothing set: off');
  t.same(tracingExporters({ OTEL_TRACES_EXPORTER: 'otlp' }), ['otlp']);
  t.same(tracingExporters({ OTEL_TRACES_EXPORTER: 'console, otlp' }), ['console', 'otlp']);
  t.same(tracingExporters({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), []);
  t.same(tracingExporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), ['otlp']);
  t.same(tracingExporters({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), ['otlp']);
  t.same(tracingExporters({ OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_EXPORTER: 'otlp' }), [], 'OTEL_SDK_DISABLED=true wins');
  t.equal(await startTelemetry({ env: {} }), undefined, 'an environment without OTEL_* starts nothing');
  t.equal(telemetry(), undefined);
});

t.test('with tracing on: server, refresh, exchange and client spans in one trace from the browser to the upstream', async (t) => {
  const exporter = new InMemorySpanExporter();
  const otel = (await startTelemetry({ env: {}, exporter }))!;
  t.teardown(() => otel.shutdown());
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: TTL } });
  const spans = () => exporter.getFinishedSpans();
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
  const byId = (id: string | undefined) => spans().find((s) => s.spanContext().spanId === id);
  /** Server spans end in onResponse, which may run just after the answer has reached the client. */
  const settle = async (done: () => boolean) => {
    for (let i = 0; i < 100 && !done(); i++) await sleep(20);
  };

  // Login: the start and the callback are server spans; the callback's code exchange a client span under it.
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  await settle(() => spans().some((s) => s.name === 'GET /auth/callback'));
  const login = spans().find((s) => s.name === 'GET /auth/login');
  const callback = spans().find((s) => s.name === 'GET /auth/callback');
  t.ok(login && login.kind === SpanKind.SERVER, 'a server span for the login');
  t.ok(callback && callback.kind === SpanKind.SERVER, 'a server span for the callback');
  t.equal(callback!.attributes['http.response.status_code'], 302);
  t.equal(callback!.attributes['bff.tenant'], 'test');
  const codeExchange = spans().find((s) => s.kind === SpanKind.CLIENT && parentOf(s) === callback!.spanContext().spanId);
  t.ok(codeExchange, 'the token request to ID-porten is a client span under the callback');
  t.equal(codeExchange!.attributes['http.request.method'], 'POST');

  // A proxied call with the browser's trace, after the access token has expired: it is refreshed first.
  await sleep(TTL * 1000 + 200);
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const BROWSER_SPAN = '00f067aa0ba902b7';
  const before = stack.skatteetaten!.requests.length;
  const res = await browser.fetch(`${stack.publicUrl}/mva/echo/hello`, { headers: { ...api, traceparent: `00-${TRACE}-${BROWSER_SPAN}-01` } });
  t.equal(res.status, 200);
  t.ok(stack.op.stats.refreshGrants >= 1, 'the access token was refreshed');
  await settle(() => spans().some((s) => s.spanContext().traceId === TRACE && s.kind === SpanKind.SERVER));
  const inTrace = spans().filter((s) => s.spanContext().traceId === TRACE);
  const server = inTrace.find((s) => s.kind === SpanKind.SERVER)!;
  t.ok(server, 'a server span in the browser trace');
  t.equal(parentOf(server), BROWSER_SPAN, "the browser's span is its parent");
  t.equal(server.attributes['http.route'], '/mva/echo/*');
  const refresh = inTrace.find((s) => s.name === 'token.refresh')!;
  t.ok(refresh, 'a token.refresh span');
  t.equal(parentOf(refresh), server.spanContext().spanId, 'under the server span');
  t.equal(refresh.attributes['bff.outcome'], 'success');
  t.ok(inTrace.some((s) => s.kind === SpanKind.CLIENT && parentOf(s) === refresh.spanContext().spanId), "the refresh grant to ID-porten is a client span under it");
  const refreshAudit = stack.audit('token.refresh').at(-1)!;
  t.same(refreshAudit.span, { name: 'token.refresh', id: refresh.spanContext().spanId, parentId: server.spanContext().spanId }, 'the audit line names the exported span');

  const received = stack.skatteetaten!.requests.slice(before).find((r) => r.path.startsWith('/echo/'))!;
  const upstreamParent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(received.headers.traceparent));
  t.ok(upstreamParent, `the upstream got a traceparent: ${String(received.headers.traceparent)}`);
  t.equal(upstreamParent![1], TRACE, "with the browser's trace id");
  const upstreamCall = byId(upstreamParent![2]);
  t.ok(upstreamCall, "whose parent is one of the gateway's exported spans");
  t.equal(upstreamCall!.kind, SpanKind.CLIENT, 'the client span of the upstream call');
  t.equal(parentOf(upstreamCall!), server.spanContext().spanId, 'under the server span');
  t.equal(upstreamCall!.attributes['http.response.status_code'], 200);

  // An Altinn-routed call: the exchange is a span of its own, its request to Altinn a client span under it.
  const TRACE2 = '0af7651916cd43dd8448eb211c80319c';
  const created = await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: { ...api, traceparent: `00-${TRACE2}-b7ad6b7169203331-01` }, body: '' });
  t.equal(created.status, 201);
  await settle(() => spans().some((s) => s.spanContext().traceId === TRACE2 && s.kind === SpanKind.SERVER));
  const inTrace2 = spans().filter((s) => s.spanContext().traceId === TRACE2);
  const server2 = inTrace2.find((s) => s.kind === SpanKind.SERVER)!;
  const exchange = inTrace2.find((s) => s.name === 'altinn.exchange')!;
  t.ok(exchange, 'an altinn.exchange span');
  t.equal(parentOf(exchange), server2.spanContext().spanId, 'under the server span');
  t.ok(inTrace2.some((s) => s.kind === SpanKind.CLIENT && parentOf(s) === exchange.spanContext().spanId), 'the exchange request is a client span under it');
  t.same(stack.audit('token.exchange').at(-1)!.span, { name: 'altinn.exchange', id: exchange.spanContext().spanId, parentId: server2.spanContext().spanId });

  // Problems and log lines keep the trace id.
  const TRACE3 = 'aaf7651916cd43dd8448eb211c80319c';
  const anonymous = await new Browser().fetch(`${stack.publicUrl}/mva/echo/x`, { headers: { ...api, traceparent: `00-${TRACE3}-b7ad6b7169203331-01` } });
  t.equal(anonymous.status, 401);
  t.equal(JSON.parse(anonymous.body).traceId, TRACE3, 'the problem answer carries the trace id');
  t.ok(stack.logs.some((l) => l.traceId === TRACE), 'log lines carry the trace id');

  // No span carries a token, a code, a cookie or the user's pid.
  const secrets = [...stack.op.issuedTokens, ...stack.altinn!.issuedTokens, ...browser.cookies('localhost').map((c) => c.value), user.pid];
  t.ok(secrets.length > 3);
  for (const span of spans()) {
    for (const [key, value] of Object.entries(span.attributes)) {
      t.ok(ALLOWED_ATTRIBUTES.has(key), `${span.name}: attribute ${key} is one of the allowed`);
      for (const secret of secrets) if (String(value).includes(secret)) t.fail(`${span.name}: ${key} carries a secret`);
    }
    t.notOk(/[?]/.test(span.name), `${span.name}: no query in a span name`);
  }
});
