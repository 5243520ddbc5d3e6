import t from 'tap';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { createLogger, isoTime, LogSink, CENSOR } from '../src/logging.js';
import { createAuditLog } from '../src/audit/audit-log.js';
import { fingerprint } from '../src/audit/fingerprint.js';

/** The production logger writing into memory. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  return { logger, audit: createAuditLog(logger), lines, text: () => text };
}

const RAW_ACCESS = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVlLWxvbmctZW5vdWdo';
const RAW_REFRESH = 'rt-7f3a9c2e1b4d5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c';
const AUTH_CODE = 'Qm9uZGkgY29kZSB2YWx1ZSB0aGF0IGlzIHJhbmRvbS1pc2g';
const PID = '24079409630';
const FP_ACCESS = fingerprint(RAW_ACCESS)!;
const FP_REFRESH = fingerprint(RAW_REFRESH)!;

t.test('what the gateway logs keeps what a reviewer needs', async (t) => {
  const { logger, audit, lines } = capture();
  // The shapes the code logs (src/routes/logout.ts, src/tokens/token-service.ts, src/app.ts, src/routes/auth-common.ts).
  audit.event('logout', { tenant: 'test', session: 'SeSsIoNhAsH1', sub: 'sub-1', channel: 'rp', sid: 'SiDfInGeRpR1', accessToken: FP_ACCESS, refreshToken: FP_REFRESH, revoked: { refreshToken: true, accessToken: false } });
  audit.event('token.refresh', { tenant: 'test', session: 'SeSsIoNhAsH1', oldAccessToken: FP_ACCESS, accessToken: 'NeWaCcEsS_-1', oldRefreshToken: FP_REFRESH, refreshToken: 'NeWrEfReSh-1', rotated: true, expiresAt: '2026-01-01T00:00:00.000Z' });
  audit.event('token.refresh.failure', { tenant: 'test', session: 'SeSsIoNhAsH1', reason: 'invalid_grant', kind: 'rejected', refreshToken: FP_REFRESH });
  audit.event('login.start', { tenant: 'test', acr: 'idporten-loa-substantial', locale: 'nb', state: 'StAtEfInGeR1', par: true });
  audit.event('token.exchange', { tenant: 'test', session: 'SeSsIoNhAsH1', accessToken: FP_ACCESS, altinnToken: 'AlTiNnFp-_12' });
  logger.warn({ code: 'idp_unavailable', cause: 'connect ECONNREFUSED 127.0.0.1:9' }, 'ID-porten could not be reached');
  logger.error({ err: { type: 'Error', message: 'boom', code: 'FST_ERR_CTP_BODY_TOO_LARGE' } }, 'unexpected error');
  logger.warn({ tenant: 'test', session: 'SeSsIoNhAsH1', token: FP_REFRESH, reason: 'revocation endpoint answered 503' }, 'token revocation failed');
  logger.debug({ method: 'GET', route: '/auth/callback', status: 302, ms: 12 }, 'request');

  const [logout, refresh, failure, start, exchange, problem, unexpected, revocation, request] = lines;
  t.same(logout!.revoked, { refreshToken: true, accessToken: false }, 'revocation outcomes stay');
  t.equal(logout!.accessToken, FP_ACCESS, 'token fingerprints stay');
  t.equal(logout!.refreshToken, FP_REFRESH);
  t.equal(logout!.sid, 'SiDfInGeRpR1', 'the sid fingerprint stays');
  t.equal(logout!.channel, 'rp');
  t.equal(logout!.session, 'SeSsIoNhAsH1');
  t.equal(logout!.sub, 'sub-1');
  t.match(refresh, { oldAccessToken: FP_ACCESS, accessToken: 'NeWaCcEsS_-1', oldRefreshToken: FP_REFRESH, refreshToken: 'NeWrEfReSh-1', rotated: true });
  t.match(failure, { reason: 'invalid_grant', kind: 'rejected', refreshToken: FP_REFRESH }, 'failure reasons stay');
  t.match(start, { state: 'StAtEfInGeR1', acr: 'idporten-loa-substantial', par: true });
  t.match(exchange, { altinnToken: 'AlTiNnFp-_12' });
  t.equal(problem!.code, 'idp_unavailable', 'a problem code stays');
  t.equal(problem!.cause, 'connect ECONNREFUSED 127.0.0.1:9');
  t.match(unexpected!.err, { message: 'boom', code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, 'an error code stays');
  t.match(revocation, { token: FP_REFRESH, reason: 'revocation endpoint answered 503' });
  t.match(request, { route: '/auth/callback', status: 302 });
  for (const line of lines) t.notOk(JSON.stringify(line).includes(CENSOR), `nothing redacted in ${String(line.msg)}`);
});

t.test('raw tokens, codes, secrets, cookies and pid vanish wherever they turn up', async (t) => {
  const { logger, audit, lines, text } = capture();
  // Mistakes the redaction must catch: a raw value in a fingerprint field, the session's data, a token answer…
  audit.event('login.success', { tenant: 'test', session: 'SeSsIoNhAsH1', accessToken: RAW_ACCESS, refreshToken: RAW_REFRESH, idToken: RAW_ACCESS, state: 'a-raw-state-value-longer-than-a-fingerprint', sid: 'a3f1c2d4-0000-4000-8000-123456789abc' });
  logger.info({ data: { user: { sub: 's', pid: PID }, tokens: { accessToken: RAW_ACCESS, refreshToken: RAW_REFRESH }, altinn: { token: RAW_ACCESS } } }, 'session');
  logger.info({ pid: PID, user: { pid: PID } }, 'user');
  logger.info({ body: { access_token: RAW_ACCESS, refresh_token: RAW_REFRESH, id_token: RAW_ACCESS, token_type: 'Bearer' } }, 'token answer');
  logger.info({ query: { code: AUTH_CODE, state: 'x' }, code: AUTH_CODE }, 'callback');
  logger.info({ url: `/auth/callback?code=${AUTH_CODE}&state=abc`, route: '/auth/callback' }, 'url');
  logger.info({ headers: { authorization: `Bearer ${RAW_ACCESS}`, cookie: 'bff=cookie-value-1', 'set-cookie': ['bff=cookie-value-2'], accept: 'text/html' } }, 'headers');
  logger.info({ cookies: { bff: 'cookie-value-3' }, cookieValue: 'cookie-value-4' }, 'cookies');
  logger.info({ clientAuth: { method: 'client_secret_post', secret: 'client-secret-value' }, keys: [{ id: 'k1', secret: 'session-key-secret' }], privateKeyJwk: { kty: 'RSA', d: 'private-exponent' }, client_secret: 'client-secret-value-2', client_assertion: 'assertion-value', code_verifier: 'verifier-value', logout_token: RAW_ACCESS, password: 'redis-password' }, 'config');
  logger.child({ pid: PID, tokens: { accessToken: RAW_ACCESS } }).info('child bindings');
  logger.info({ list: [{ access_token: RAW_ACCESS }, { nested: { refreshToken: RAW_REFRESH } }] }, 'arrays');

  for (const [name, value] of Object.entries({ RAW_ACCESS, RAW_REFRESH, AUTH_CODE, PID, raw_state: 'a-raw-state-value', raw_sid: 'a3f1c2d4', ...Object.fromEntries(['cookie-value-1', 'cookie-value-2', 'cookie-value-3', 'cookie-value-4', 'client-secret-value', 'session-key-secret', 'private-exponent', 'assertion-value', 'verifier-value', 'redis-password'].map((v) => [v, v])) })) {
    t.notOk(text().includes(value), `${name} does not appear`);
  }
  const [success, , , , callback, url, headers] = lines;
  t.equal(success!.accessToken, CENSOR, 'a raw token in a fingerprint field is replaced, the field stays');
  t.equal(success!.session, 'SeSsIoNhAsH1', 'the rest of the line stays');
  t.equal(callback!.code, CENSOR, 'a value under `code` that is no problem code is replaced');
  t.equal(url!.url, `/auth/callback?${CENSOR}`, 'a URL keeps its path, loses its query');
  t.equal((headers!.headers as Record<string, unknown>).accept, 'text/html', 'harmless headers stay');
});

t.test('redaction never changes the caller\'s objects', async (t) => {
  const { logger } = capture();
  const fields = { tenant: 't', tokens: { accessToken: RAW_ACCESS }, revoked: { refreshToken: true } };
  logger.info(fields, 'x');
  t.same(fields, { tenant: 't', tokens: { accessToken: RAW_ACCESS }, revoked: { refreshToken: true } });
});

/** A writable that can be told to stall (a reader that stopped reading) or to fail (EPIPE). */
function fakeStdout() {
  const written: string[] = [];
  let writes = 0;
  let stalled = false;
  let pendingCb: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      writes++;
      written.push(chunk.toString());
      if (stalled) pendingCb = cb;
      else cb();
    },
  });
  return {
    stream,
    written,
    writes: () => writes,
    stall: () => (stalled = true),
    unstall: () => {
      stalled = false;
      const cb = pendingCb;
      pendingCb = undefined;
      cb?.();
    },
  };
}

t.test('the log sink writes a lone line within its flush interval, in one write per batch', async (t) => {
  const out = fakeStdout();
  const sink = new LogSink({ stream: out.stream, flushIntervalMs: 50 });
  t.teardown(() => sink.close());
  const logger = createLogger({ destination: sink });
  logger.info({ event: 'login.start' }, 'one');
  t.equal(out.written.length, 0, 'buffered at first');
  await new Promise((r) => setTimeout(r, 120));
  t.equal(out.written.length, 1, 'written after the interval without anything else happening');
  for (let i = 0; i < 100; i++) logger.info({ i }, 'many');
  await new Promise((r) => setTimeout(r, 120));
  t.equal(out.writes(), 2, 'a hundred lines in one write');
  t.equal(out.written.join('').split('\n').filter(Boolean).length, 101);
});

t.test('a large burst is written at once, without waiting for the timer', async (t) => {
  const out = fakeStdout();
  const sink = new LogSink({ stream: out.stream, flushIntervalMs: 10_000, batchBytes: 1024 });
  t.teardown(() => sink.close());
  const logger = createLogger({ destination: sink });
  for (let i = 0; i < 20; i++) logger.info({ i, filler: 'x'.repeat(100) }, 'burst');
  t.ok(out.writes() >= 1, 'written as soon as a batch is full');
});

t.test('a stream that fails (EPIPE) turns the sink off: no retries, no throw, drained() resolves', async (t) => {
  let attempts = 0;
  const stream = new Writable({
    write(_chunk, _enc, cb) {
      attempts++;
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const sink = new LogSink({ stream, flushIntervalMs: 10 });
  t.teardown(() => sink.close());
  const logger = createLogger({ destination: sink });
  logger.info('first');
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 10; i++) logger.info('after');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(attempts, 1, 'one write attempt, never retried');
  t.ok(sink.dropped >= 10, 'later lines are counted as dropped');
  await sink.drained();
  t.pass('drained() does not wait for a broken stream');
});

t.test('a stalled stream bounds the memory: lines beyond the limit are dropped and counted, then reported', async (t) => {
  const out = fakeStdout();
  out.stall();
  const sink = new LogSink({ stream: out.stream, flushIntervalMs: 5, maxPendingBytes: 2048 });
  t.teardown(() => sink.close());
  const logger = createLogger({ destination: sink });
  for (let round = 0; round < 20; round++) {
    logger.info({ round, filler: 'x'.repeat(200) }, 'while stalled');
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(sink.dropped > 0, `dropped ${sink.dropped} lines instead of queueing without bound`);
  t.ok(out.stream.writableLength <= 2048 + 1024, 'the queue stays near the limit');
  let drained = false;
  void sink.drained().then(() => (drained = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(drained, 'drained() waits while the reader is stuck (main.ts races it with the deadline)');
  out.unstall();
  logger.info('moving again');
  await new Promise((r) => setTimeout(r, 50));
  const text = out.written.join('');
  t.match(text, /"dropped":\d+,"msg":"log lines dropped: stdout was not being read"/, 'the loss is reported once output moves');
  t.match(text, /moving again/);
  t.ok(drained, 'drained() resolves once the stream has caught up');
});

t.test('the time field is exactly Date#toISOString, however the milliseconds and seconds fall', async (t) => {
  // Any order of instants (the per-second prefix is cached), from 1970 to 9999, including ms 0, 9, 10, 99, 100.
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 253_402_300_799_999 }), { minLength: 1, maxLength: 20 }), (instants) => {
      for (const now of instants) if (isoTime(now) !== `,"time":"${new Date(now).toISOString()}"`) return false;
      return true;
    }),
    { numRuns: 2000 },
  );
  for (const now of [0, 9, 10, 99, 100, 999, 1000, 1_764_633_600_000, 1_764_633_600_001]) t.equal(isoTime(now), `,"time":"${new Date(now).toISOString()}"`, `at ${now}`);
});
