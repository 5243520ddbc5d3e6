/** W3C Trace Context parsing (https://www.w3.org/TR/trace-context/ sections 3.2, 3.3, 4.3) and the store timing decorator. */
import t from 'tap';
import { outgoingTraceparent, parseTraceparent, parseTracestate, w3cTraceContext } from '../src/audit/trace-context.js';
import { timedStore } from '../src/audit/store-timing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

t.test('a version 00 traceparent is parsed into its fields', async (t) => {
  t.same(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { version: '00', traceId: TRACE, parentId: SPAN, flags: '01' });
});

t.test('invalid traceparents are refused', async (t) => {
  const cases: Record<string, string | string[] | undefined> = {
    absent: undefined,
    'two headers': [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`],
    uppercase: `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${SPAN}-01`,
    'all-zero parent id': `00-${TRACE}-${'0'.repeat(16)}-01`,
    'version ff': `ff-${TRACE}-${SPAN}-01`,
    'version 00 with more fields': `00-${TRACE}-${SPAN}-01-00`,
    'short trace id': `00-${TRACE.slice(1)}-${SPAN}-01`,
    'non-hex flags': `00-${TRACE}-${SPAN}-0x`,
    'wrong separator': `00_${TRACE}-${SPAN}-01`,
    'a later version glued on': `01-${TRACE}-${SPAN}-01x`,
  };
  for (const [name, header] of Object.entries(cases)) t.equal(parseTraceparent(header), undefined, name);
});

t.test('a later version is read by its version 00 fields', async (t) => {
  t.match(parseTraceparent(`cc-${TRACE}-${SPAN}-01-anything`), { traceId: TRACE, parentId: SPAN, flags: '01' });
  t.match(parseTraceparent(`cc-${TRACE}-${SPAN}-01`), { traceId: TRACE });
});

t.test('tracestate: members kept in order, several headers joined, malformed or oversized lists dropped', async (t) => {
  t.equal(parseTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
  t.equal(parseTracestate(['rojo=1', 'tenant@vendor=2']), 'rojo=1,tenant@vendor=2');
  t.equal(parseTracestate('Rojo=1'), undefined, 'uppercase key');
  t.equal(parseTracestate('rojo=1,rojo=2'), undefined, 'duplicate key');
  t.equal(parseTracestate('rojo'), undefined, 'no value');
  t.equal(parseTracestate('rojo=a=b'), undefined, '= in the value');
  t.equal(parseTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined, 'more than 32 members');
});

t.test('a continued trace keeps the trace id and the sampled flag, with a new span of its own', async (t) => {
  const ctx = w3cTraceContext.fromHeaders({ traceparent: `00-${TRACE}-${SPAN}-ff`, tracestate: 'congo=t61rcWkgMzE' });
  t.equal(ctx.traceId, TRACE);
  t.equal(ctx.parentSpanId, SPAN);
  t.not(ctx.spanId, SPAN);
  t.equal(ctx.flags, '03', 'unknown flag bits are cleared');
  t.equal(outgoingTraceparent(ctx), `00-${TRACE}-${ctx.spanId}-03`);
  t.equal(ctx.tracestate, 'congo=t61rcWkgMzE');
});

t.test('a new trace has random non-zero ids and no tracestate', async (t) => {
  const a = w3cTraceContext.fromHeaders({ tracestate: 'congo=t61rcWkgMzE' });
  const b = w3cTraceContext.fromHeaders({});
  t.match(a.traceId, /^[0-9a-f]{32}$/);
  t.match(a.spanId, /^[0-9a-f]{16}$/);
  t.not(a.traceId, b.traceId);
  t.equal(a.tracestate, undefined);
  t.equal(a.flags, '00');
  t.ok(parseTraceparent(outgoingTraceparent(a)), 'what is sent upstream parses');
});

t.test('the timed store reports each operation and passes results and errors through unchanged', async (t) => {
  class Store {
    readonly #items = new Map<string, string>();
    async get(id: string) {
      return this.#items.get(id);
    }
    async set(id: string, value: string) {
      this.#items.set(id, value);
    }
    async ping() {
      throw new Error('down');
    }
    get size() {
      return this.#items.size;
    }
  }
  const seen: string[] = [];
  const store = timedStore(new Store(), (operation, outcome, seconds) => {
    if (seconds >= 0) seen.push(`${operation}:${outcome}`);
  });
  await store.set('a', 'x');
  t.equal(await store.get('a'), 'x');
  t.equal(store.size, 1, 'a getter over private fields still works');
  await t.rejects(store.ping(), { message: 'down' });
  t.same(seen, ['set:success', 'get:success', 'ping:failure']);
});
