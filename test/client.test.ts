import { readFile } from 'node:fs/promises';
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { CLIENT_FILE } from '../src/http/routes/client.js';

const user = TEST_USERS[0]!;

async function loggedIn(stack: Stack): Promise<Browser> {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  if (!browser.cookie('localhost', 'bff')) throw new Error('no session cookie after login');
  return browser;
}

t.test('GET /auth/client.js answers the browser helper as JavaScript, revalidated by ETag', async (t) => {
  const stack = await startStack(t);
  const file = await readFile(CLIENT_FILE, 'utf8');
  const res = await fetch(`${stack.publicUrl}/auth/client.js`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  t.equal(res.headers.get('cache-control'), 'no-cache');
  t.equal(res.headers.get('x-content-type-options'), 'nosniff');
  t.equal(await res.text(), file, 'the file from client/bff.js, byte for byte');
  t.match(file, /export const bff\b/);
  t.match(file, /export default bff/);
  const etag = res.headers.get('etag');
  t.match(etag, /^"[A-Za-z0-9_-]+"$/);
  const again = await fetch(`${stack.publicUrl}/auth/client.js`, { headers: { 'if-none-match': etag! } });
  t.equal(again.status, 304);
  t.equal(await again.text(), '');
  const other = await fetch(`${stack.publicUrl}/auth/client.js`, { headers: { 'if-none-match': '"something-else"' } });
  t.equal(other.status, 200);
});

t.test('package.json exports the helper as idporten-bff/client with its types', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, Record<string, string>> };
  t.same(pkg.exports['./client'], { types: './client/bff.d.ts', default: './client/bff.js' });
  const types = await readFile(new URL('../client/bff.d.ts', import.meta.url), 'utf8');
  for (const name of ['configure', 'fetch', 'session', 'refresh', 'login', 'logout', 'onExpiring']) {
    t.match(types, new RegExp(`\\b${name}\\(`), `bff.d.ts declares ${name}`);
  }
});

t.test('the README documents every function of the browser helper, and how a bundler imports it', async (t) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## The browser helper (`idporten-bff/client`)'), readme.indexOf('## Library mode'));
  t.ok(section.length > 1000, 'the section is there');
  // Read, not imported: the helper's functions are its exported object's keys (an import here would count it in coverage).
  const source = await readFile(CLIENT_FILE, 'utf8');
  const names = /export const bff = Object\.freeze\(\{([^}]*)\}\)/.exec(source)?.[1]?.split(',').map((entry) => entry.split(':')[0]!.trim()) ?? [];
  t.ok(names.length >= 7, 'the exported functions are found');
  for (const name of names) t.match(section, new RegExp(`^\\| \`bff\\.${name}\\(`, 'm'), `a row for bff.${name}`);
  t.match(section, /import \{ bff \} from 'idporten-bff\/client'/, 'the bundler import');
  t.match(section, /import \{ bff \} from '\/auth\/client\.js'/, 'the import without a bundler');
});

t.test('/auth/session: the *In fields are whole seconds by the server clock, consistent with the timestamps', async (t) => {
  // The server's clock is an hour ahead of this process's: the fields must follow the server's.
  const skew = 3_600_000;
  const stack = await startStack(t, {
    session: { absoluteLifetime: '2h', idleTimeout: '10m' },
    appDeps: { now: () => Date.now() + skew },
  });
  const browser = await loggedIn(stack);
  const before = Date.now() + skew;
  const res = await browser.fetch(`${stack.publicUrl}/auth/session`, { headers: { accept: 'application/json' } });
  const after = Date.now() + skew;
  t.equal(res.status, 200);
  const view = JSON.parse(res.body);
  for (const [value, at] of [
    [view.session.endsIn, view.session.endsAt],
    [view.session.idleExpiresIn, view.session.idleExpiresAt],
    [view.accessToken.expiresIn, view.accessToken.expiresAt],
  ] as [number, string][]) {
    t.ok(Number.isInteger(value) && value >= 0, `${value} is a whole number of seconds`);
    const deadline = Date.parse(at);
    t.ok(value <= Math.ceil((deadline - before) / 1000) && value >= Math.floor((deadline - after) / 1000) - 1, `${value} s matches ${at} by the server's clock`);
  }
  t.ok(Math.abs(view.session.idleExpiresIn - 600) <= 1, 'idleExpiresIn ≈ idleTimeout right after a request');
  t.ok(Math.abs(view.session.endsIn - 7200) <= 5, 'endsIn ≈ absoluteLifetime just after the login');
  t.notOk('pid' in view.user, 'no pid by default');
  t.equal(view.user.sub.length > 0, true);
});

t.test('/auth/session carries pid when the tenant sets exposePid: true', async (t) => {
  const stack = await startStack(t, { tenant: { exposePid: true } });
  const browser = await loggedIn(stack);
  const res = await browser.fetch(`${stack.publicUrl}/auth/session`, { headers: { accept: 'application/json' } });
  t.equal(JSON.parse(res.body).user.pid, user.pid);
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { accept: 'application/json', 'x-csrf': '1' } });
  t.equal(refreshed.status, 200);
  t.equal(JSON.parse(refreshed.body).user.pid, user.pid, 'also after a refresh');
});
