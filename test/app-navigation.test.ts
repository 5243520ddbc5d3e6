/**
 * How the app on the gateway's origin tells a page load from other requests, over real HTTP (gateway
 * contract, "Adoption"): the history fallback decides by navigation, not by a dot in the path;
 * `requireLogin` never answers with a URL that is not a path on the tenant's own origin; and
 * `app.publicPaths` lets the pages it names through without a session.
 */
import t from 'tap';
import { HASHED_ASSET, NAV, raw, spaCopy, staticGateway } from './helpers/app.js';

/** A page load from a browser that sends no Fetch metadata (an older one, or a plain client asking for a page). */
const HTML_ONLY = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8' };

t.test('history fallback: a navigation gets index.html, dots in the path or not; other requests for a missing file get 404', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir } });

  for (const path of ['/kunde/912.345.678', '/reports.v2', '/app/settings/report.pdf', '/kunde/912.345.678?tab=2', '/v1.2/', '/favicon.ico']) {
    for (const [how, headers] of [['Sec-Fetch-Dest: document', NAV], ['Accept: text/html without Fetch metadata', HTML_ONLY]] as const) {
      const page = await raw(port, 'a.localhost', path, headers);
      t.equal(page.status, 200, `${path} (${how}): 200`);
      t.match(page.body, /<title>fixture<\/title>/, `${path} (${how}): index.html`);
      t.equal(page.headers['cache-control'], 'no-cache', `${path} (${how}): revalidated like index.html`);
    }
  }

  const notPages: Array<[string, Record<string, string>, string]> = [
    ['/assets/missing-3f9a1c2b.js', { 'sec-fetch-dest': 'script', 'sec-fetch-mode': 'cors', accept: '*/*' }, 'a module script'],
    ['/favicon.ico', { 'sec-fetch-dest': 'image', 'sec-fetch-mode': 'no-cors', accept: 'image/avif,image/webp,*/*' }, 'an image'],
    ['/assets/missing.css', { 'sec-fetch-dest': 'style', 'sec-fetch-mode': 'no-cors', accept: 'text/css,*/*;q=0.1' }, 'a style sheet'],
    ['/kunde/912.345.678', { 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors', accept: 'text/html' }, 'a fetch, even one asking for HTML'],
    ['/reports.v2', { accept: '*/*' }, 'a client without Fetch metadata that does not ask for HTML'],
    ['/reports.v2', {}, 'a client that sends no Accept'],
  ];
  for (const [path, headers, what] of notPages) {
    const res = await raw(port, 'a.localhost', path, headers);
    t.equal(res.status, 404, `${what} (${path}): 404`);
    t.notMatch(res.body, /fixture/, `${what}: never index.html`);
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem JSON`);
    t.match(JSON.parse(res.body), { code: 'route_not_found' });
  }

  const asset = await raw(port, 'a.localhost', HASHED_ASSET, NAV);
  t.equal(asset.status, 200, 'a file that exists is served as it is, even to a navigation');
  t.match(asset.headers['content-type'], /javascript/);
});

t.test('requireLogin never answers with a URL that is not a path on the tenant\'s origin (OWASP ASVS 5.0 V3.7.2, 4.0.3 V5.1.5: no open redirect)', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, { 'a.localhost': { static: dir, requireLogin: true } });
  const hostile = [
    '//evil.example/x',
    '//evil.example',
    '///evil.example/x',
    '/\\evil.example/x',
    '/%2F%2Fevil.example/x',
    '/%252F%252Fevil.example/x',
    '/%5Cevil.example/x',
    '/.//evil.example/x',
    '/x/..//evil.example/x',
    '/%09/evil.example/x',
    // The absolute form of the request target (RFC 9112 section 3.2.2), which a proxy may pass on.
    'http://evil.example/x',
  ];
  // The redirect back from a provider is cross-site; a typed or bookmarked address has Sec-Fetch-Site: none.
  const arrivals = { 'cross-site': { ...NAV, 'sec-fetch-site': 'cross-site' }, typed: NAV, 'no Fetch metadata': HTML_ONLY };
  for (const path of hostile) {
    for (const [how, headers] of Object.entries(arrivals)) {
      const res = await raw(port, 'a.localhost', path, headers);
      t.equal(res.status, 400, `${path} (${how}): 400`);
      t.equal(res.headers.location, undefined, `${path} (${how}): no Location`);
      t.match(res.headers['content-type'], /^text\/html/, `${path} (${how}): the gateway's error page, for a navigation`);
      t.notMatch(res.body, /http-equiv/i, `${path} (${how}): no meta refresh`);
      t.notMatch(res.body, /evil\.example/, `${path} (${how}): the address is not echoed`);
      t.match(res.headers['content-security-policy'], /default-src 'none'/, `${path} (${how}): under the error page's CSP`);
    }
  }

  const long = await raw(port, 'a.localhost', `/kunde/${'x'.repeat(3000)}`, NAV);
  t.equal(long.status, 400, 'a deep link longer than a login can return to: 400, not a redirect the login refuses');
  t.match(long.body, /longer than the 2048 bytes/, 'with the reason');

  // The same-origin reload and the login redirect still carry a real deep link, query and all.
  const deep = '/kunde/912.345.678?tab=2&q=%C3%A6';
  const reload = await raw(port, 'a.localhost', deep, arrivals['cross-site']);
  t.equal(reload.status, 200, 'a cross-site navigation to a real path gets the reload page');
  t.match(reload.body, `content="0;url=${deep.replaceAll('&', '&amp;')}"`, 'which reloads that path, from this origin');
  const login = await raw(port, 'a.localhost', deep, NAV);
  t.equal(login.status, 302);
  t.equal(new URL(String(login.headers.location), 'http://a.localhost').searchParams.get('returnTo'), deep, 'the login returns to the deep link');
});

t.test('app.publicPaths: requireLogin lets the paths they match through without a session, and only those', async (t) => {
  const { dir } = spaCopy(t);
  const { port } = await staticGateway(t, {
    'a.localhost': { static: dir, requireLogin: true, publicPaths: ['/logget-ut', '/info/**', '/kunde/*/kvittering', '/hjelp-*.html'] },
  });
  const publicOnes = [
    '/logget-ut', '/logget-ut/', '/logget-ut?from=logout', '/info', '/info/', '/info/om/tjenesten', '/kunde/912.345.678/kvittering',
    '/hjelp-skjema.html', '/logget%2Dut',
  ];
  for (const path of publicOnes) {
    for (const [how, headers] of [['typed', NAV], ['cross-site', { ...NAV, 'sec-fetch-site': 'cross-site' }]] as const) {
      const res = await raw(port, 'a.localhost', path, headers);
      t.equal(res.status, 200, `${path} (${how}): 200 without a session`);
      t.match(res.body, /<title>fixture<\/title>/, `${path} (${how}): the app, not the reload page`);
    }
  }
  const protectedOnes = ['/', '/logget-ut-na', '/logget-ut/mer', '/informasjon', '/kunde/1/2/kvittering', '/kunde/kvittering', '/hjelp.html', '/x/info/a'];
  for (const path of protectedOnes) {
    const res = await raw(port, 'a.localhost', path, NAV);
    t.equal(res.status, 302, `${path}: to the login`);
    t.match(String(res.headers.location), /\/auth\/login\?returnTo=/, `${path}: to the login`);
  }
});
