import t from 'tap';
import { decodeJwt } from 'jose';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { DEMO_ORGNR, INVALID_MVA_MELDING, konvolutt, VALID_MVA_MELDING } from '../demo/samples.js';
import { ENVELOPE_TYPE } from '../demo/altinn.js';

const user = TEST_USERS[2]!;
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Long enough that 200 requests finish inside the token's leeway on a busy machine (see token-refresh.test.ts).
const TTL = 8;

async function login(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  return browser;
}

t.test('the SPA flows work end to end through the proxy: validation with the ID-porten token, submission with an Altinn token', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const browser = await login(stack);
  const xml = { ...api, 'content-type': 'application/xml' };
  const valid = await browser.fetch(`${stack.publicUrl}/mva/validering`, { method: 'POST', headers: xml, body: VALID_MVA_MELDING });
  t.equal(valid.status, 200);
  t.match(valid.body, /<avvikVedMeldingslevering>ingen avvik<\/avvikVedMeldingslevering>/);
  const invalid = await browser.fetch(`${stack.publicUrl}/mva/validering`, { method: 'POST', headers: xml, body: INVALID_MVA_MELDING });
  t.equal(invalid.status, 200, 'Skatteetaten answers 200 for an invalid return too');
  t.match(invalid.body, /<avvikVedMeldingslevering>ugyldig skattemelding<\/avvikVedMeldingslevering>/);
  const wrongMethod = await browser.fetch(`${stack.publicUrl}/mva/validering`, { method: 'GET', headers: api });
  t.equal(wrongMethod.status, 405);

  const created = await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, {
    method: 'POST', headers: { ...api, 'content-type': 'application/json' }, body: JSON.stringify({ instanceOwner: { organisationNumber: DEMO_ORGNR } }),
  });
  t.equal(created.status, 201);
  const instance = JSON.parse(created.body) as { id: string; data: { id: string; dataType: string }[] };
  const base = `${stack.publicUrl}/mva/innsending/instances/${instance.id}`;
  const envelope = instance.data.find((d) => d.dataType === ENVELOPE_TYPE)!;
  t.equal((await browser.fetch(`${base}/data/${envelope.id}`, { method: 'PUT', headers: xml, body: konvolutt() })).status, 200);
  const data = await browser.fetch(`${base}/data?dataType=mvamelding`, { method: 'POST', headers: xml, body: VALID_MVA_MELDING });
  t.equal(data.status, 201);
  t.equal((await browser.fetch(`${base}/process/next`, { method: 'PUT', headers: api })).status, 200);
  t.equal((await browser.fetch(`${base}/process/next`, { method: 'PUT', headers: api })).status, 200);
  const feedback = await browser.fetch(`${base}/feedback`, { headers: api });
  t.equal(feedback.status, 200, 'the blocking feedback call answers once Skatteetaten has given feedback');
  t.ok((JSON.parse(feedback.body) as { data: { dataType: string }[] }).data.some((d) => d.dataType === 'kvittering'), 'with the receipt');
  t.same(JSON.parse((await browser.fetch(`${base}/feedback/status`, { headers: api })).body), { isFeedbackProvided: true });
  t.equal(stack.altinn!.stats.exchanges, 1, 'one exchange served the whole submission');
  t.equal(stack.audit('token.exchange').length, 1);
  const seen = browser.allRecordedText();
  for (const token of [...stack.op.issuedTokens, ...stack.altinn!.issuedTokens]) t.notOk(seen.includes(token), 'no ID-porten or Altinn token reaches the browser');
});

t.test('200 concurrent Altinn-routed requests share one exchange; a refresh brings exactly one re-exchange', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: TTL } });
  const browser = await login(stack);
  const created = JSON.parse((await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' })).body) as { id: string };
  t.equal(stack.altinn!.stats.exchanges, 1);
  const firstAltinn = [...stack.altinn!.issuedTokens][0]!;
  const firstIdporten = [...stack.op.issuedTokens].find((tok) => decodeJwt(tok).exp === decodeJwt(firstAltinn).exp);
  t.ok(firstIdporten, 'the Altinn token expires with the ID-porten token it came from');

  await sleep(TTL * 1000 + 100);
  const results = await Promise.all(Array.from({ length: 200 }, () => browser.fetch(`${stack.publicUrl}/mva/innsending/instances/${created.id}`, { headers: api })));
  t.same([...new Set(results.map((r) => r.status))], [200], 'all 200 succeed');
  t.equal(stack.op.stats.refreshGrants, 1, 'one refresh');
  t.equal(stack.altinn!.stats.exchanges, 2, 'one re-exchange after the refresh');
  const exchanges = stack.audit('token.exchange');
  t.equal(exchanges.length, 2);
  t.equal(new Set(exchanges.map((e) => e.accessToken)).size, exchanges.length, 'never two exchanges for one access token');
});

t.test('an Altinn exchange that fails is a 502 problem and the session survives', async (t) => {
  const stack = await startStack(t, { upstreams: true, altinnExchangeUrl: 'http://127.0.0.1:9/authentication/api/v1/exchange/id-porten' });
  const browser = await login(stack);
  const res = await browser.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' });
  t.equal(res.status, 502);
  const problem = JSON.parse(res.body);
  t.equal(problem.code, 'upstream_unavailable');
  t.notMatch(res.body, /127\.0\.0\.1|:9\b|ECONNREFUSED/, 'no internal address in the body');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200);
});
