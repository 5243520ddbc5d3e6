/**
 * The CSRF rule itself (src/http/csrf.ts), below the routes that apply it: proxy.test.ts and the /auth/* tests
 * show the rule at work over HTTP; this file holds each condition of it on its own, so that weakening any one
 * of them fails a test (OWASP ASVS 5.0 V3.5, browser origin separation: a non-safelisted header that forces a
 * CORS preflight, an Origin check, Fetch Metadata for top-level navigations).
 */
import type { IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import type { AuditEvent, AuditFields, AuditLog } from '../src/audit/audit-log.js';
import { checkCsrf, enforceCsrf, isFirstPartyNavigation } from '../src/http/csrf.js';
import { GatewayError } from '../src/errors.js';

const PUBLIC_URL = 'https://mva.example.no/app';
const ORIGIN = 'https://mva.example.no';

t.test('checkCsrf: X-CSRF must be exactly "1" (a non-safelisted header a cross-origin page cannot send without a preflight)', async (t) => {
  t.same(checkCsrf({ 'x-csrf': '1' }, PUBLIC_URL), { ok: true }, 'X-CSRF: 1 and no Origin passes');
  for (const value of [undefined, '', '0', 'true', '1 ', ' 1', '11']) {
    t.same(checkCsrf(value === undefined ? {} : { 'x-csrf': value }, PUBLIC_URL), { ok: false, reason: 'missing_header' }, `X-CSRF: ${JSON.stringify(value)}`);
  }
  // Node folds a repeated header into an array for unknown names; an array is not the single value "1".
  t.same(checkCsrf({ 'x-csrf': ['1', '1'] } as unknown as IncomingHttpHeaders, PUBLIC_URL), { ok: false, reason: 'missing_header' }, 'a repeated header');
});

t.test('checkCsrf: an Origin that is sent must be the tenant origin; "null" and look-alikes never match', async (t) => {
  t.same(checkCsrf({ 'x-csrf': '1', origin: ORIGIN }, PUBLIC_URL), { ok: true }, 'the tenant origin (publicUrl has a path; the origin has none)');
  for (const origin of ['null', 'https://evil.example', 'http://mva.example.no', 'https://mva.example.no:8443', 'https://mva.example.no.evil.example', `${ORIGIN}/`, '']) {
    t.same(checkCsrf({ 'x-csrf': '1', origin }, PUBLIC_URL), { ok: false, reason: 'origin_mismatch' }, `Origin: ${JSON.stringify(origin)}`);
  }
  t.same(checkCsrf({ origin: 'https://evil.example' }, PUBLIC_URL), { ok: false, reason: 'missing_header' }, 'the header is checked first');
});

t.test('isFirstPartyNavigation: only a GET top-level navigation the user started or the own site started (Fetch Metadata)', async (t) => {
  const nav = (site: string | undefined, mode = 'navigate'): IncomingHttpHeaders => ({ 'sec-fetch-mode': mode, ...(site === undefined ? {} : { 'sec-fetch-site': site }) });
  t.equal(isFirstPartyNavigation('GET', nav('same-origin')), true, 'same-origin');
  t.equal(isFirstPartyNavigation('GET', nav('none')), true, 'typed in, bookmark (none)');
  t.equal(isFirstPartyNavigation('GET', nav('same-site')), false, 'a sibling subdomain is another origin');
  t.equal(isFirstPartyNavigation('GET', nav('cross-site')), false, 'cross-site');
  t.equal(isFirstPartyNavigation('GET', nav(undefined)), false, 'no Sec-Fetch-Site: fails closed');
  t.equal(isFirstPartyNavigation('GET', {}), false, 'a browser without Fetch Metadata');
  t.equal(isFirstPartyNavigation('GET', nav('same-origin', 'cors')), false, 'fetch() from page script is no navigation');
  t.equal(isFirstPartyNavigation('GET', nav('same-origin', 'no-cors')), false, 'no-cors');
  t.equal(isFirstPartyNavigation('POST', nav('same-origin')), false, 'a form POST is state-changing');
  t.equal(isFirstPartyNavigation('HEAD', nav('none')), false, 'only GET');
});

/** An audit log that keeps what it is told. */
function recordingAudit(): AuditLog & { events: Array<{ name: AuditEvent; fields: AuditFields }> } {
  const events: Array<{ name: AuditEvent; fields: AuditFields }> = [];
  return { events, event: (name, fields) => void events.push({ name, fields }) };
}

const tenant = { id: 'mva', config: { publicUrl: PUBLIC_URL } };
const request = (method: string, headers: IncomingHttpHeaders) => ({ method, headers, routeOptions: { url: '/auth/logout' } });

t.test('enforceCsrf: a refused request throws csrf_failed and writes one csrf.reject audit line with the reason', async (t) => {
  const audit = recordingAudit();
  t.doesNotThrow(() => enforceCsrf(request('POST', { 'x-csrf': '1', origin: ORIGIN }), tenant, audit), 'a good request passes');
  t.same(audit.events, [], 'and is not audited');

  const err = t.throws(() => enforceCsrf(request('POST', { origin: 'https://evil.example' }), tenant, audit)) as unknown;
  t.ok(err instanceof GatewayError && err.code === 'csrf_failed', 'GatewayError csrf_failed');
  t.match((err as Error).message, /X-CSRF: 1/, 'the detail says what is needed');
  t.same(audit.events, [{ name: 'csrf.reject', fields: { tenant: 'mva', path: '/auth/logout', method: 'POST', reason: 'missing_header' } }]);

  audit.events.length = 0;
  t.throws(() => enforceCsrf(request('DELETE', { 'x-csrf': '1', origin: 'null' }), tenant, audit));
  t.same(audit.events, [{ name: 'csrf.reject', fields: { tenant: 'mva', path: '/auth/logout', method: 'DELETE', reason: 'origin_mismatch' } }]);
});

t.test('enforceCsrf with allowSameOriginForm: a same-origin HTML form (Origin, no X-CSRF) passes; other origins and no Origin do not', async (t) => {
  const audit = recordingAudit();
  const form = { allowSameOriginForm: true };
  t.doesNotThrow(() => enforceCsrf(request('POST', { origin: ORIGIN }), tenant, audit, form), 'same-origin form');
  t.same(audit.events, [], 'not audited');
  t.throws(() => enforceCsrf(request('POST', { origin: 'https://evil.example' }), tenant, audit, form), 'a cross-origin form');
  t.throws(() => enforceCsrf(request('POST', {}), tenant, audit, form), 'no Origin at all');
  t.throws(() => enforceCsrf(request('POST', { origin: 'null' }), tenant, audit, form), 'the opaque origin');
  t.throws(() => enforceCsrf(request('POST', { origin: ORIGIN }), tenant, audit), 'without the option a same-origin form needs X-CSRF');
  t.equal(audit.events.length, 4, 'each refusal audited');
});
