import t, { type Test } from 'tap';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import { RequestLogger } from '../src/http/request-logger.js';
import { traceRequests } from '../src/http/trace.js';
import { captureLogger } from './helpers/stack.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

/** A Fastify server on the production logger (at `level`), with the trace hooks, counting the pino children made. */
async function server(t: Test, level: string, factory?: typeof RequestLogger.factory) {
  const { logger, lines } = captureLogger(level);
  const counted = { children: 0 };
  // Children inherit `child` from the root: every pino child made in the server is counted.
  const child = logger.child;
  logger.child = function countedChild(this: Logger, bindings, options) {
    counted.children += 1;
    return child.call(this, bindings, options);
  } as Logger['child'];
  let n = 0;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => `req-${++n}`,
    ...(factory ? { childLoggerFactory: factory } : {}),
  });
  traceRequests(app);
  app.get('/quiet', async (request) => {
    request.log.debug({ step: 'below the level' }, 'quiet');
    return 'ok';
  });
  app.get('/loud', async (request) => {
    request.log.debug({ step: 'below the level' }, 'not written');
    request.log.warn({ step: 'one' }, 'first');
    request.log.info({ step: 'two' }, 'second');
    return 'ok';
  });
  app.get('/route-level', { logLevel: 'debug' }, async (request) => {
    request.log.debug({ step: 'route level' }, 'written at the route level');
    return 'ok';
  });
  app.get('/child', async (request) => {
    request.log.child({ part: 'x' }).info('from a grandchild');
    return 'ok';
  });
  t.teardown(() => app.close());
  await app.ready();
  counted.children = 0;
  return { app, lines, counted };
}

const get = (app: Awaited<ReturnType<typeof server>>['app'], url: string) =>
  app.inject({ url, headers: { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` } });

/** A line without what differs from run to run. */
const shape = (line: Record<string, unknown>) => Object.keys({ ...line, time: undefined, spanId: undefined, pid: undefined, hostname: undefined }).join(',');

t.test('a request that writes no line at an enabled level makes no pino child', async (t) => {
  const { app, lines, counted } = await server(t, 'info', RequestLogger.factory);
  for (let i = 0; i < 5; i++) t.equal((await get(app, '/quiet')).statusCode, 200);
  t.equal(counted.children, 0, 'five requests, no child');
  t.same(lines, [], 'and no line');
});

t.test('the lines a request writes are those of an eager child: request id, trace ids, in the same order', async (t) => {
  const lazy = await server(t, 'info', RequestLogger.factory);
  const eager = await server(t, 'info');
  for (const s of [lazy, eager]) t.equal((await get(s.app, '/loud')).statusCode, 200);
  t.equal(lazy.counted.children, 1, 'one child, made at the first line');
  t.equal(lazy.lines.length, 2);
  t.same(lazy.lines.map(shape), eager.lines.map(shape), 'the same fields in the same order as with Fastify\'s own child');
  for (const line of lazy.lines) t.match(line, { reqId: 'req-1', traceId: TRACE, spanId: /^[0-9a-f]{16}$/, level: /warn|info/ });
  t.same(lazy.lines.map((l) => l.msg), ['first', 'second']);
  t.equal(lazy.lines[0]!.spanId, lazy.lines[1]!.spanId);
});

t.test("a route's own log level gets a child of that level; a grandchild carries the request's bindings", async (t) => {
  const { app, lines } = await server(t, 'info', RequestLogger.factory);
  await get(app, '/route-level');
  await get(app, '/child');
  t.match(lines[0], { msg: 'written at the route level', level: 'debug', reqId: 'req-1', traceId: TRACE });
  t.match(lines[1], { msg: 'from a grandchild', part: 'x', reqId: 'req-2', traceId: TRACE });
});

t.test('level and bindings read through the lazy logger as through the child', async (t) => {
  const parent = captureLogger('warn').logger;
  const log = new RequestLogger(parent, { reqId: 'r' });
  t.equal(log.level, 'warn');
  log.setBindings({ traceId: TRACE });
  t.match(log.bindings(), { service: 'idporten-bff', reqId: 'r', traceId: TRACE });
  log.level = 'debug';
  t.equal(log.level, 'debug', 'setting the level makes the child and sets it there');
  t.equal(parent.level, 'warn', 'the parent keeps its own');
  t.match(log.bindings(), { reqId: 'r', traceId: TRACE });
});
