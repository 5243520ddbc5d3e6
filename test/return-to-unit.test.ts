/**
 * Open redirects through `returnTo` (RFC 6749 10.15, OWASP ASVS 5.0 V3 "unvalidated redirects"): whatever a link to
 * /auth/login or a Referer carries, the redirect after login stays on the tenant's origin. The functions of
 * src/http/return-to.ts are checked directly against a long list of payloads (`return-to.test.ts` sends a subset
 * through a real login).
 */
import t from 'tap';
import { MAX_RETURN_TO_BYTES, refererReturnTo, returnToTooLong, safeReturnTo, sameOriginPath } from '../src/http/return-to.js';

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

t.test('returnTo is at most 2048 bytes of UTF-8, counted in bytes, not characters (the contract\'s "Limits and hygiene")', async (t) => {
  t.equal(MAX_RETURN_TO_BYTES, 2048);
  const atLimit = `/${'a'.repeat(MAX_RETURN_TO_BYTES - 1)}`;
  t.notOk(returnToTooLong(atLimit), '2048 bytes are allowed');
  t.ok(returnToTooLong(`${atLimit}a`), '2049 bytes are not');
  t.equal(safeReturnTo(atLimit, PUBLIC_URLS[0]!), atLimit, 'a path of exactly 2048 bytes is kept');
  t.equal(safeReturnTo(`${atLimit}a`, PUBLIC_URLS[0]!), '/', 'one byte more falls back to the root');
  // 1025 characters, 2050 bytes: a count of characters would let it through.
  const wide = `/${'ø'.repeat(1024)}`;
  t.ok(returnToTooLong(wide), `${wide.length} characters, ${Buffer.byteLength(wide)} bytes`);
  for (const value of [undefined, null, 42, ['x'.repeat(5000)]]) t.notOk(returnToTooLong(value), `${JSON.stringify(value)?.slice(0, 20)} is not a string, so not too long`);
});

t.test('the resolved (percent-encoded) form is held to 2048 bytes too: it is what the login transaction cookie carries', async (t) => {
  // 700 × "ø" is 1401 bytes as sent, 4201 once resolved (each ø becomes %C3%B8).
  const value = `/${'ø'.repeat(700)}`;
  t.notOk(returnToTooLong(value), 'short enough as sent');
  t.equal(sameOriginPath(value, PUBLIC_URLS[0]!), undefined, 'too long once resolved');
  t.equal(safeReturnTo(value, PUBLIC_URLS[0]!), '/');
  // 341 × "ø" resolves to 1 + 341 × 6 = 2047 bytes, plus one byte: exactly at the limit.
  const atLimit = `/${'ø'.repeat(341)}a`;
  t.equal(Buffer.byteLength(new URL(atLimit, PUBLIC_URLS[0]!).pathname), 2048);
  t.equal(sameOriginPath(atLimit, PUBLIC_URLS[0]!), new URL(atLimit, PUBLIC_URLS[0]!).pathname, 'a resolved form of exactly 2048 bytes is kept');
});

t.test('a value is decoded at most 4 times over: an encoding of 4 layers is kept as sent, a fifth layer falls back to the root', async (t) => {
  // "/x%41" decodes once to "/xA"; each "25" adds a layer.
  for (let layers = 1; layers <= 6; layers++) {
    const value = `/x%${'25'.repeat(layers - 1)}41`;
    const expected = layers <= 4 ? value : undefined;
    t.equal(sameOriginPath(value, PUBLIC_URLS[0]!), expected, `${value}: ${layers} layer(s)`);
  }
  t.equal(sameOriginPath('/%2525252F%2525252Fevil.com', PUBLIC_URLS[0]!), undefined, 'four layers over "//" are decoded and refused');
});

t.test('sameOriginPath gives the resolved path, query and fragment, or nothing: what may go in a Location header', async (t) => {
  t.equal(sameOriginPath('/app/../b?x=1#f', PUBLIC_URLS[1]!), '/b?x=1#f', 'dot segments resolved, query and fragment kept');
  t.equal(sameOriginPath('/a b', PUBLIC_URLS[1]!), undefined, 'whitespace is refused, not encoded');
  for (const value of ['', '//evil.com', 'https://mva.example.no/app', 42, undefined]) {
    t.equal(sameOriginPath(value, PUBLIC_URLS[1]!), undefined, `${JSON.stringify(value)}: nothing`);
  }
});

t.test('a Referer gives its path and query as the returnTo when it is on the tenant origin, the root otherwise', async (t) => {
  const publicUrl = PUBLIC_URLS[1]!;
  t.equal(refererReturnTo('https://mva.example.no/app/side?x=1#frag', publicUrl), '/app/side?x=1', 'path and query, not the fragment');
  t.equal(refererReturnTo('https://mva.example.no', publicUrl), '/');
  t.equal(refererReturnTo('https://mva.example.no:443/a', publicUrl), '/a', 'the default port is the same origin');
  for (const referer of [
    'https://evil.com/app',
    'http://mva.example.no/app',
    'https://mva.example.no:8443/app',
    'https://mva.example.no.evil.com/app',
    '/app',
    'not a url',
    '',
    undefined,
    42,
    ['https://mva.example.no/app'],
  ]) {
    t.equal(refererReturnTo(referer, publicUrl), '/', `${JSON.stringify(referer)}: the root`);
  }
  t.equal(refererReturnTo('https://mva.example.no/%2F%2Fevil.com', publicUrl), '/', 'a same-origin Referer still meets the returnTo rules');
  t.equal(refererReturnTo('https://mva.example.no/a%5Cb', publicUrl), '/', 'an encoded backslash too');
});
