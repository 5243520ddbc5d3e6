/**
 * The two small helpers of src/tokens/, called directly: a session record's fencing value (sessionVersion, the
 * compare-and-set version of a refresh) and SingleFlight (concurrent refreshes of one session become one).
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { SingleFlight } from '../src/tokens/single-flight.js';
import { sessionVersion, type SessionData } from '../src/tokens/session-data.js';
import { sessionRecord } from './helpers/session-record.js';

function withRefreshToken(refreshToken: string | undefined): SessionData {
  const data = sessionRecord();
  return { ...data, tokens: { ...data.tokens, refreshToken } };
}

t.test('sessionVersion names the refresh token a record holds: 132 bits of its SHA-256, base64url, and not the token', async (t) => {
  const token = 'refresh-token-1';
  const expected = createHash('sha256').update(token).digest('base64url').slice(0, 22);
  const version = sessionVersion(withRefreshToken(token));
  t.equal(version, expected);
  t.match(version, /^[A-Za-z0-9_-]{22}$/, '22 base64url characters (132 bits)');
  t.notMatch(version, token, 'the token itself is not in it');
  t.equal(sessionVersion(withRefreshToken(token)), version, 'the same token, the same version');
  t.not(sessionVersion(withRefreshToken('refresh-token-2')), version, 'a rotated token (RFC 6749 section 6) gives another version');
});

t.test('a record without a refresh token has the empty version', async (t) => {
  t.equal(sessionVersion(withRefreshToken(undefined)), '');
  t.equal(sessionVersion(withRefreshToken('')), '');
});

t.test('SingleFlight: concurrent calls with one key share one call and its result', async (t) => {
  const flight = new SingleFlight<string>();
  let calls = 0;
  let release!: (value: string) => void;
  const fn = () => {
    calls += 1;
    return new Promise<string>((resolve) => (release = resolve));
  };
  const a = flight.run('k', fn);
  const b = flight.run('k', fn);
  t.equal(calls, 1, 'the second caller joins the first call');
  release('one');
  t.same(await Promise.all([a, b]), ['one', 'one']);
});

t.test('SingleFlight: different keys run apart', async (t) => {
  const flight = new SingleFlight<string>();
  const seen: string[] = [];
  const results = await Promise.all(['a', 'b'].map((key) => flight.run(key, async () => (seen.push(key), key))));
  t.same(results, ['a', 'b']);
  t.same(seen, ['a', 'b']);
});

t.test('SingleFlight: a call that has settled is not reused, whether it succeeded or failed', async (t) => {
  const flight = new SingleFlight<number>();
  let calls = 0;
  t.equal(await flight.run('k', async () => ++calls), 1);
  t.equal(await flight.run('k', async () => ++calls), 2, 'a later call runs again (a refresh result is not cached)');
  const failing = flight.run('k', async () => {
    calls += 1;
    throw new Error('refresh failed');
  });
  const joined = flight.run('k', async () => ++calls);
  await t.rejects(failing, /refresh failed/);
  await t.rejects(joined, /refresh failed/, 'a caller who joined gets the same failure');
  t.equal(await flight.run('k', async () => ++calls), 4, 'a failure is not kept either');
});
