/**
 * Open redirects through `returnTo` (RFC 6749 10.15, OWASP "unvalidated redirects"): whatever a link to
 * /auth/login carries, the redirect after login stays on the tenant's origin. The pure function is
 * checked against a long list of payloads; a representative subset goes through a real login against the
 * ID-porten look-alike, where the callback's Location header is what a browser would follow.
 */
import t from 'tap';
import { safeReturnTo } from '../src/http/return-to.js';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';

// Many real logins (and RSA key generation) on a shared, busy machine: more room than tap's default 30 s.
t.setTimeout(90_000);

const PUBLIC_URLS = ['http://localhost:3000', 'https://mva.example.no'];

/** Ways out of the origin, each of which must fall back to the tenant root. */
const HOSTILE_BASES: string[] = [
  // protocol-relative and slash/backslash mixes (browsers treat \ as / in http(s) URLs)
  '//evil.com',
  '///evil.com',
  '////evil.com',
  '/\\evil.com',
  '\\/evil.com',
  '\\\\evil.com',
  '/\\/evil.com',
  '//\\evil.com',
  '/\\\\evil.com',
  '\\\\\\evil.com',
  '//evil.com/path?x=1#y',
  '//evil.com:443',
  '//evil.com%2F..',
  '//@evil.com',
  '//localhost:3000@evil.com',
  '//user:pass@evil.com',
  '//evil。com',
  '//evil%E3%80%82com',
  '//127.0.0.1',
  '//[::1]',
  '//0x7f.1',
  // absolute URLs and schemes, in every case
  'http://evil.com',
  'https://evil.com',
  'HTTPS://evil.com',
  'hTtP://evil.com',
  'https:evil.com',
  'https:/evil.com',
  'http:\\\\evil.com',
  'https:\\/evil.com',
  'http://localhost:3000@evil.com',
  'https://mva.example.no.evil.com/',
  'http://localhost:3000.evil.com/',
  'ftp://evil.com',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'JaVaScRiPt:alert(1)',
  'javascript://%0aalert(1)',
  'java\tscript:alert(1)',
  'java%0ascript:alert(1)',
  ' javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  'DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  'vbscript:msgbox(1)',
  'blob:https://evil.com/uuid',
  // not a path at all
  'evil.com',
  '.evil.com',
  '@evil.com',
  'app',
  './app',
  '../app',
  '?x=1',
  '#frag',
  ' //evil.com',
  '\t//evil.com',
  '\n//evil.com',
  // control characters and whitespace that browsers strip inside URLs
  '/\t/evil.com',
  '/\n/evil.com',
  '/\r/evil.com',
  '/\r\n/evil.com',
  '/\u0000/evil.com',
  '/\u000b/evil.com',
  '/\u000c/evil.com',
  '/\u007f/evil.com',
  '/ /evil.com',
  '/\u00a0/evil.com',
  '/\u3000/evil.com',
  '/\u2028/evil.com',
  '/\ufeff/evil.com',
  '//evil.com\u0000',
  // dot segments that collapse into a protocol-relative path
  '/.//evil.com',
  '/./\\evil.com',
  '/..//evil.com',
  '/../\\evil.com',
  '/x/../..//evil.com',
  '/%2e//evil.com',
  '/%2E%2E//evil.com',
  '/.%2e//evil.com',
  '/.%2F/evil.com',
  '/%2e%2e%2f%2fevil.com',
  '/x/..%2F..%2F%2Fevil.com',
  // percent-encoded once, twice, thrice
  '%2F%2Fevil.com',
  '%2f%2fevil.com',
  '/%2F/evil.com',
  '/%2f/evil.com',
  '/%2F%2Fevil.com',
  '/%5Cevil.com',
  '/%5cevil.com',
  '%5C%5Cevil.com',
  '/%5C%5Cevil.com',
  '/%09/evil.com',
  '/%0a/evil.com',
  '/%0D/evil.com',
  '/%00/evil.com',
  '%252F%252Fevil.com',
  '/%252F/evil.com',
  '/%255Cevil.com',
  '/%25252F/evil.com',
  '/%2525252F/evil.com',
  '/%09%2F/evil.com',
  '/app/%5Cevil',
  '/a\\b',
  '/?/\\evil',
  // broken encodings
  '/%',
  '/%E0%A4%A',
  '/%C0%AFevil',
  '/%%32%46/evil.com',
  // look-alike slashes that some parsers normalise (never a path start for us)
  '／／evil.com',
  '／evil.com',
  '⁄⁄evil.com',
  '∕∕evil.com',
  '＼＼evil.com',
  '\u2215\u2215evil.com',
  // far too long
  `/${'a'.repeat(3000)}`,
];

/** Every hostile base, also as a browser or a proxy might re-encode it on its way to us. */
const HOSTILE = [...new Set(HOSTILE_BASES.flatMap((p) => [p, encodeURIComponent(p), encodeURIComponent(encodeURIComponent(p)), encodeURI(p)]))];

/** Odd but harmless: same-origin paths that are kept as (normalised) paths. */
const SAME_ORIGIN_ODDITIES: [string, string][] = [
  ['/@evil.com', '/@evil.com'],
  ['/a?next=//evil.com', '/a?next=//evil.com'],
  ['/#//evil.com', '/#//evil.com'],
  ['/path//double', '/path//double'],
  ['/app/%2F%2Fevil.com', '/app/%2F%2Fevil.com'],
  ['/.%2e/evil.com', '/evil.com'],
  ['/／evil.com', '/%EF%BC%8Fevil.com'],
  ['/⁄evil.com', '/%E2%81%84evil.com'],
  ['/\u200b/evil.com', '/%E2%80%8B/evil.com'],
];

/** Legitimate values are kept exactly. */
const LEGITIMATE = ['/', '/app', '/app?x=1#frag', '/a/b/c', '/app/page?x=1&y=2', '/mva/innsending?periode=2026-1', '/a-b_c.d~e', '/s%C3%B8k?q=%C3%A6'];

const NON_STRINGS: unknown[] = [undefined, null, 42, ['//evil.com'], { toString: () => '//evil.com' }, ''];

t.test(`safeReturnTo keeps every one of ${HOSTILE.length + SAME_ORIGIN_ODDITIES.length + NON_STRINGS.length} hostile or odd values on the tenant origin`, async (t) => {
  t.ok(HOSTILE.length >= 100, `at least 100 hostile payloads (${HOSTILE.length})`);
  for (const publicUrl of PUBLIC_URLS) {
    const origin = new URL(publicUrl).origin;
    const inputs: unknown[] = [...HOSTILE, ...SAME_ORIGIN_ODDITIES.map(([p]) => p), ...NON_STRINGS];
    const escaped = inputs.filter((p) => {
      const result = safeReturnTo(p, publicUrl);
      // Browsers resolve the Location header with the WHATWG URL parser, as URL does here.
      return new URL(result, publicUrl).origin !== origin || !isPlainPath(result);
    });
    t.same(escaped.map((p) => JSON.stringify(p)), [], `nothing escapes ${origin}`);
  }
});

t.test('hostile values fall back to the tenant root', async (t) => {
  const kept = HOSTILE.filter((p) => safeReturnTo(p, PUBLIC_URLS[0]!) !== '/');
  t.same(kept.map((p) => JSON.stringify(p)), [], 'every hostile value becomes "/"');
  for (const value of NON_STRINGS) t.equal(safeReturnTo(value, PUBLIC_URLS[0]!), '/', `${JSON.stringify(value) ?? String(value)} becomes "/"`);
});

t.test('odd same-origin paths are kept as paths on the tenant origin', async (t) => {
  for (const [input, expected] of SAME_ORIGIN_ODDITIES) t.equal(safeReturnTo(input, PUBLIC_URLS[1]!), expected, JSON.stringify(input));
});

t.test('legitimate values are kept as they are', async (t) => {
  for (const publicUrl of PUBLIC_URLS) {
    for (const value of LEGITIMATE) t.equal(safeReturnTo(value, publicUrl), value, `${value} on ${publicUrl}`);
  }
});

/** A value the gateway may put after its origin: one leading slash, nothing a browser would fold into another. */
function isPlainPath(value: string): boolean {
  return value.startsWith('/') && !value.startsWith('//') && !/[\\\u0000-\u0020\u007f]/.test(value);
}

// ---------------------------------------------------------------- through a real login

/** A representative subset, sent percent-encoded so the gateway sees exactly these values. */
const THROUGH_LOGIN = [
  '//evil.com',
  '/\\evil.com',
  '\\/evil.com',
  'https:evil.com',
  'http://evil.com',
  'javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  '/%2F/evil.com',
  '/%5Cevil.com',
  '%252F%252Fevil',
  '/\t/evil.com',
  '/%09/evil.com',
  '/.//evil.com',
  '／／evil.com',
  '///evil.com',
  '@evil.com',
  '/@evil.com',
];

/** Raw query strings, decoded once by the gateway's query parser before safeReturnTo sees them. */
const RAW_QUERIES = ['returnTo=//evil.com', 'returnTo=%2F%2Fevil.com', 'returnTo=/%2F/evil.com', 'returnTo=/%252F/evil.com', 'returnTo=/%5C/evil.com', 'returnTo=/%09/evil.com'];

t.test('through a real login against the ID-porten look-alike', async (t) => {
  // Dozens of logins from one address in a minute: above the default login rate limit, which this test is not about.
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 1000, window: '1m' } } } });
  const origin = new URL(stack.publicUrl).origin;
  const user = TEST_USERS[0]!;

  /**
   * Logs in with this query on /auth/login and returns the callback's answer. A browser of its own each time: one
   * browser logging in dozens of times a minute is what the login-loop breaker is there to stop.
   */
  async function loginWith(query: string) {
    const browser = new Browser();
    const from = browser.history.length;
    const final = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?${query}`, { pid: user.pid });
    const callback = browser.history.slice(from).find((r) => r.url.startsWith(`${stack.publicUrl}/auth/callback`));
    return { final, callback };
  }

  t.test('the login never redirects off the tenant origin, whatever returnTo says', async (t) => {
    const successesBefore = stack.audit('login.success').length;
    const queries = [...THROUGH_LOGIN.map((p) => `returnTo=${encodeURIComponent(p)}`), ...RAW_QUERIES];
    for (const query of queries) {
      const { final, callback } = await loginWith(query);
      t.equal(callback?.status, 302, `${query}: the login finished`);
      const location = callback?.headers.get('location') ?? '';
      t.equal(new URL(location, stack.publicUrl).origin, origin, `${query}: Location ${location} stays on ${origin}`);
      t.equal(new URL(final.url).origin, origin, `${query}: the browser ends on ${origin}`);
    }
    t.equal(stack.audit('login.success').length - successesBefore, queries.length, 'every login succeeded');
  });

  t.test('legitimate returnTo values are kept', async (t) => {
    for (const value of ['/app', '/app?x=1#frag', '/a/b/c', '/@evil.com']) {
      const { callback } = await loginWith(`returnTo=${encodeURIComponent(value)}`);
      t.equal(callback?.headers.get('location'), `${stack.publicUrl}${value}`, `${value} is kept`);
    }
  });

  t.test('a repeated returnTo is refused before any login starts', async (t) => {
    const startsBefore = stack.audit('login.start').length;
    const url = `${stack.publicUrl}/auth/login?returnTo=https://evil.com&returnTo=/app`;
    const res = await new Browser().navigate(url);
    t.equal(res.status, 400, 'invalid_request');
    t.equal(res.url, url, 'no redirect at all');
    t.equal(stack.audit('login.start').length, startsBefore);
  });
});
