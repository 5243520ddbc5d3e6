/**
 * The proxy's path rule (src/proxy/path-safety.ts) on its own: which raw request targets map onto the route's
 * upstream base and which are refused. proxy.test.ts sends the traversal payloads through a real gateway to an
 * upstream that records what arrives; this file holds each clause of the rule (RFC 3986 3.3 pchar, 5.2.4 dot
 * segments, 2.3 unreserved characters need no escape) so that weakening one fails here.
 */
import t from 'tap';
import { upstreamPathFor } from '../src/proxy/path-safety.js';

const map = (raw: string, base = '/v1') => upstreamPathFor(raw, '/api/mva', base);

t.test('the route prefix maps onto the upstream base; the query is not part of the path', async (t) => {
  t.equal(map('/api/mva'), '/v1', 'the route itself is the base');
  t.equal(map('/api/mva', '/v1/'), '/v1', 'a trailing slash on the base is not doubled');
  t.equal(map('/api/mva', ''), '/', 'an empty base is the root');
  t.equal(map('/api/mva', '/'), '/', 'a root base is the root');
  t.equal(map('/api/mva/'), '/v1/', 'one trailing slash is kept');
  t.equal(map('/api/mva/returns/2024'), '/v1/returns/2024');
  t.equal(map('/api/mva/returns/2024', '/v1/'), '/v1/returns/2024', 'base with a trailing slash');
  t.equal(map('/api/mva/returns', ''), '/returns', 'root base');
  t.equal(map('/api/mva/returns?year=2024&x=../..'), '/v1/returns', 'the query is left to the caller, and its dots are no path');
  t.equal(map('/api/mva?x=1'), '/v1', 'a query on the route itself');
  t.equal(map("/api/mva/a-b._~!$&'()*+,;=:@"), "/v1/a-b._~!$&'()*+,;=:@", 'every RFC 3986 pchar passes');
  t.equal(map('/api/mva/%C3%A6%C3%B8%C3%A5'), '/v1/%C3%A6%C3%B8%C3%A5', 'valid UTF-8 escapes pass as they came');
  t.equal(map('/api/mva/a%20b'), '/v1/a%20b', 'an escaped space');
  t.equal(map('/api/mva/q%5B0%5D%5E'), '/v1/q%5B0%5D%5E', 'escapes beside the refused %5C ("[", "]", "^") pass');
  t.equal(map('/api/mva/.%C3%A6'), '/v1/.%C3%A6', 'an escaped segment that only begins with a dot is no dot segment');
  t.equal(map('/api/mva/...a/a..'), '/v1/...a/a..', 'dots inside a segment are no dot segment');
  t.equal(map('/api/mva/%C3%A6..'), '/v1/%C3%A6..', 'nor with escapes');
  t.equal(map('/api/mva/a;..'), '/v1/a;..', 'dots in a ;parameter after a name');
  t.equal(map('/api/mva/%C3%A6;x=..'), '/v1/%C3%A6;x=..', 'nor after an escaped name');
});

t.test('a path outside the route is not this route', async (t) => {
  t.equal(map('/api/mvax'), undefined, 'a longer sibling name');
  t.equal(map('/api/mva-admin/x'), undefined);
  t.equal(map('/api/other'), undefined, 'another prefix');
  t.equal(map('/API/MVA/x'), undefined, 'another case');
  t.equal(map('?/api/mva'), undefined, 'the prefix only in the query');
});

t.test('dot segments (RFC 3986 5.2.4), plain, escaped, with a ;parameter or as a look-alike, are refused', async (t) => {
  for (const raw of [
    '/api/mva/..',
    '/api/mva/.',
    '/api/mva/../admin',
    '/api/mva/./x',
    '/api/mva/x/../../admin',
    '/api/mva/...',
    '/api/mva/..;/admin',
    '/api/mva/..;jsessionid=x/admin',
    '/api/mva/.;/x',
    '/api/mva/%C3%A6/%EF%BC%8E%EF%BC%8E/admin', // fullwidth full stops: NFKC makes them ".."
    '/api/mva/%EF%BC%8E%EF%BC%8E;x/admin',
    '/api/mva/%E2%80%A5', // two dot leader: NFKC ".."
  ]) {
    t.equal(map(raw), undefined, raw);
  }
});

t.test('escapes of ".", "/", backslash, "%" and control characters are refused, also double-encoded; malformed UTF-8 too', async (t) => {
  for (const raw of [
    '/api/mva/%2e%2e/admin',
    '/api/mva/%2E%2E/admin',
    '/api/mva/%2e',
    '/api/mva/a%2fb',
    '/api/mva/a%2Fb',
    '/api/mva/a%5cb',
    '/api/mva/a%5Cb',
    '/api/mva/%252e%252e/admin',
    '/api/mva/a%25',
    '/api/mva/a%00b',
    '/api/mva/a%0ab',
    '/api/mva/a%0Db',
    '/api/mva/a%1fb',
    '/api/mva/a%1Fb',
    '/api/mva/a%10',
    '/api/mva/a%7f',
    '/api/mva/a%7F',
    '/api/mva/%c0%ae%c0%ae/admin', // overlong "."
    '/api/mva/%c0%af', // overlong "/"
    '/api/mva/%e0%80%ae',
    '/api/mva/%ff',
    '/api/mva/%C3',
    '/api/mva/%EF%BC%8F', // fullwidth solidus: NFKC "/"
    '/api/mva/a%EF%BC%8Fb',
    '/api/mva/%EF%BC%BC', // fullwidth reverse solidus: NFKC "\"
    '/api/mva/a%EF%BC%BCb',
  ]) {
    t.equal(map(raw), undefined, raw);
  }
});

t.test('characters outside pchar and empty segments are refused', async (t) => {
  for (const raw of [
    '/api/mva//admin',
    '/api/mva//',
    '/api/mva/x//y',
    '/api/mva/a\\b',
    '/api/mva/\\..\\admin',
    '/api/mva/a b',
    '/api/mva/a#b',
    '/api/mva/a"b',
    '/api/mva/a<b',
    '/api/mva/a\u0000b',
    '/api/mva/a\tb',
    '/api/mva/a%',
    '/api/mva/a%2',
    '/api/mva/a%zz',
    '/api/mva/æ',
  ]) {
    t.equal(map(raw), undefined, JSON.stringify(raw));
  }
});
