/**
 * How the app on the gateway's origin tells a page load from other requests, over real HTTP (gateway
 * contract, "Adoption"): the history fallback decides by navigation, not by a dot in the path.
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
