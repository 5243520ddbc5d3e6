/**
 * The whole token flow in a real browser: Chromium drives the demo SPA through login at the ID-porten
 * look-alike, validation with deviations, a submission with an attachment up to the payment information and
 * the receipt, a transparent refresh, a cross-site attack and logout, while every
 * response the browser receives and everything the page's JavaScript can read is kept and scanned for
 * tokens and secrets afterwards.
 */
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Cookie, Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { ACR_HIGH } from '../../demo/idporten-op.js';
import { startDemoStack, type DemoStack } from '../../demo/stack.js';
import { TEST_USERS } from '../../demo/test-users.js';
import { browserTestOptions, launchChromium, ResponseRecorder, type SeenResponse } from '../helpers/chromium.js';
import { freePort } from '../../demo/free-port.js';
import { captureLogger } from '../helpers/stack.js';

const SCREENSHOTS = fileURLToPath(new URL('../../test-output/browser/', import.meta.url));
const ACCESS_TOKEN_TTL_SECONDS = 5;
/** Not the login page's preselected user, so the pick on the page is what decides who logs in. */
const USER = TEST_USERS[1]!;
/** The login redirect-loop breaker's counter cookie (`<session cookie name>-loop`); it holds no session. */
const LOOP_COOKIE = 'bff-loop';

/** What the page's own JavaScript can read at one step. */
interface PageView {
  step: string;
  url: string;
  cookie: string;
  localStorage: string;
  sessionStorage: string;
  dom: string;
}

async function readPage(page: Page, step: string): Promise<PageView> {
  const view = await page.evaluate(() => ({
    cookie: document.cookie,
    localStorage: JSON.stringify({ ...localStorage }),
    sessionStorage: JSON.stringify({ ...sessionStorage }),
    dom: document.documentElement.outerHTML,
  }));
  return { step, url: page.url(), ...view };
}

/** A secret and the strings that betray it: the whole value and, for a JWT, its signature on its own. */
interface Secret {
  label: string;
  value: string;
}

function needles(value: string): string[] {
  const parts = value.split('.');
  return parts.length === 3 && parts[2]!.length >= 32 ? [value, parts[2]!] : [value];
}

/** Names (never values) of the secrets found in the text. */
function leaksIn(text: string, secrets: Secret[], allowed?: (secret: Secret) => boolean): string[] {
  return secrets.filter((s) => !allowed?.(s) && needles(s.value).some((n) => text.includes(n))).map((s) => s.label);
}

function localhostCookies(cookies: Cookie[]): Cookie[] {
  return cookies.filter((c) => c.domain === 'localhost');
}

/** A page on another site (127.0.0.1 is not the same site as localhost) that attacks the gateway with the user's browser. */
async function startAttackerSite(t: Test, gateway: string): Promise<string> {
  const xml = '<?xml version="1.0"?><mvamelding/>';
  const pages: Record<string, string> = {
    '/fetch': `<!doctype html><title>attacker: fetch</title><pre id="results"></pre><script>
      (async () => {
        const results = {};
        try {
          const res = await fetch('${gateway}/mva/validering?via=cors-fetch', { method: 'POST', credentials: 'include',
            headers: { 'X-CSRF': '1', 'Content-Type': 'application/xml' }, body: '${xml}' });
          results.corsFetch = 'answered ' + res.status + ' ' + (await res.text());
        } catch (err) {
          results.corsFetch = 'blocked: ' + err.name;
        }
        try {
          const res = await fetch('${gateway}/mva/validering?via=no-cors-fetch', { method: 'POST', mode: 'no-cors',
            credentials: 'include', headers: { 'Content-Type': 'text/plain' }, body: '${xml}' });
          results.noCorsFetch = 'opaque=' + (res.type === 'opaque') + ' status=' + res.status;
        } catch (err) {
          results.noCorsFetch = 'blocked: ' + err.name;
        }
        document.getElementById('results').textContent = JSON.stringify(results);
        document.body.dataset.done = 'true';
      })();
    </script>`,
    // text/plain lets a form body look like XML: the classic way to forge a non-form POST body.
    '/form-validering': `<!doctype html><title>attacker: form</title>
      <form method="post" enctype="text/plain" action="${gateway}/mva/validering?via=form">
        <input type="hidden" name='<?xml version' value='"1.0"?><mvamelding/>'>
      </form><script>document.forms[0].submit()</script>`,
    '/form-logout': `<!doctype html><title>attacker: logout</title>
      <form method="post" action="${gateway}/auth/logout"><input type="hidden" name="x" value="1"></form>
      <script>document.forms[0].submit()</script>`,
  };
  const server = createServer((req, res) => {
    const html = pages[req.url ?? ''];
    res.writeHead(html ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('a browser logs in, validates, submits, refreshes, resists cross-site requests and logs out without ever holding a token', browserTestOptions(), async (t) => {
  await mkdir(SCREENSHOTS, { recursive: true });
  const context = await launchChromium(t);
  const captured = captureLogger();
  const stack: DemoStack = await startDemoStack({
    ports: { gateway: await freePort(), op: await freePort(), skatteetaten: await freePort(), altinn: await freePort() },
    logger: captured.logger,
    op: { accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS },
  });
  t.teardown(() => stack.close());
  const { publicUrl, op, skatteetaten, altinn, gateway } = stack;
  const opOrigin = new URL(op.issuer).origin;

  const responses = new ResponseRecorder(context);
  const views: PageView[] = [];
  const cookieValues = new Set<string>();
  const page = context.pages()[0] ?? (await context.newPage());
  await responses.watch(page);
  const shoot = (p: Page, name: string) => p.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
  const view = async (step: string) => {
    const v = await readPage(page, step);
    views.push(v);
    return v;
  };
  const jar = async () => {
    const cookies = localhostCookies(await context.cookies());
    for (const c of cookies) cookieValues.add(c.value);
    return cookies;
  };
  const sessionCookie = async () => {
    const bff = (await jar()).find((c) => c.name === 'bff');
    if (!bff) throw new Error('the browser holds no session cookie');
    return bff.value;
  };
  const liveSession = async () => {
    const loaded = await gateway.core.lifecycle.sessions.load(await sessionCookie());
    if (loaded.state !== 'live') throw new Error(`session is ${loaded.state}`);
    return loaded.session;
  };

  let broken = false;
  const step = async (name: string, fn: (t: Test) => Promise<void>) => {
    await t.test(name, broken ? { skip: 'an earlier step failed' } : {}, async (st) => {
      try {
        await fn(st);
      } catch (err) {
        broken = true;
        throw err;
      }
      if (!st.passing()) broken = true;
    });
  };

  await step('the demo SPA shows that nobody is logged in', async (t) => {
    await page.goto(`${publicUrl}/`);
    const status = page.locator('#status[data-state="logged-out"]');
    await status.waitFor();
    t.equal(await status.textContent(), 'Not logged in');
    t.ok(await page.locator('#login').isVisible(), 'the login button is shown');
    const v = await view('spa, logged out');
    t.equal(v.cookie, '', 'document.cookie is empty');
    t.same(await jar(), [], 'no cookie for localhost yet');
    await shoot(page, '01-logged-out');
  });

  await step('login with high assurance leads to the ID-porten look-alike\'s login page', async (t) => {
    await page.check('#acr-high');
    await Promise.all([page.waitForURL((url) => url.origin === opOrigin), page.click('#login')]);
    await page.locator('#login-form').waitFor();
    t.ok(await page.locator(`input[name="acr"][value="${ACR_HIGH}"]`).isChecked(), 'the provider was asked for idporten-loa-high');
    const cookies = await jar();
    t.equal(cookies.length, 1, 'only the login transaction cookie is set on localhost');
    const login = cookies[0];
    t.match(login?.name, /^bff-login-/);
    t.equal(login?.httpOnly, true, 'the login transaction cookie is HttpOnly');
    // It must come back on the cross-site redirect from ID-porten to the callback.
    t.equal(login?.sameSite, 'Lax', 'the login transaction cookie is SameSite=Lax');
    t.equal(login?.path, '/');
    await view('idporten login page');
    await shoot(page, '02-idporten-login');
  });

  await step('after picking a test user the SPA shows who is logged in, from /auth/session', async (t) => {
    await page.selectOption('#pid', USER.pid);
    const session = page.waitForResponse((r) => r.url() === `${publicUrl}/auth/session`);
    await Promise.all([page.waitForURL(`${publicUrl}/`), page.click('#login-submit')]);
    t.equal((await session).status(), 200);
    await page.locator('#status[data-state="logged-in"]').waitFor();
    t.equal(await page.textContent('#status'), `Logged in as ${USER.pid}`);
    t.equal(await page.textContent('#user-pid'), USER.pid);
    t.equal(await page.textContent('#user-acr'), ACR_HIGH);
    const v = await view('spa, logged in');
    t.equal(v.cookie, '', 'document.cookie is empty');
    const all = await jar();
    // The login redirect-loop breaker keeps a sealed, HttpOnly round-trip counter of its own for a minute.
    const loop = all.find((c) => c.name === LOOP_COOKIE);
    if (loop) t.ok(loop.httpOnly && loop.sameSite === 'Lax' && loop.expires > 0 && loop.expires - Date.now() / 1000 <= 60, 'the loop counter is HttpOnly, Lax and short-lived');
    const cookies = all.filter((c) => c.name !== LOOP_COOKIE);
    t.same(cookies.map((c) => c.name), ['bff'], 'only the session cookie is left on localhost');
    const bff = cookies[0]!;
    t.equal(bff.httpOnly, true, 'the session cookie is HttpOnly');
    t.equal(bff.sameSite, 'Strict', 'the session cookie is SameSite=Strict as configured');
    t.equal(bff.path, '/');
    t.equal(bff.secure, false, 'plain-http localhost cannot carry Secure');
    t.match(bff.value, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
    await shoot(page, '03-logged-in');
  });

  await step('validation shows "ingen avvik", the deviations of a valid return with their paths and rule codes, and an invalid return as "ugyldig skattemelding"', async (t) => {
    await page.click('#validate-valid');
    await page.locator('#result-valid-status[data-ok]').waitFor();
    t.equal(await page.getAttribute('#result-valid-status', 'data-result'), 'ingen avvik', `valid sample: ${await page.textContent('#result-valid-status')}`);
    t.ok(await page.locator('#result-valid-avvik').isHidden(), 'no deviations to show');
    await page.click('#validate-deviating');
    await page.locator('#result-deviating-status[data-ok]').waitFor();
    t.equal(await page.getAttribute('#result-deviating-status', 'data-result'), 'avvikende skattemelding', `deviating sample: ${await page.textContent('#result-deviating-status')}`);
    t.equal(await page.getAttribute('#result-deviating-status', 'data-submittable'), 'true', 'deviations only: may be submitted');
    const deviation = page.locator('#result-deviating-avvik tr.avvik-row');
    t.equal(await deviation.count(), 1);
    t.equal(await deviation.locator('td.sti').textContent(), '/mvaMeldingDto/skattegrunnlagOgBeregnetSkatt/mvaSpesifikasjonslinje[1]/merverdiavgift', 'the path of the deviation');
    t.equal(await deviation.locator('td.regel').textContent(), 'R019', 'its rule');
    await page.click('#validate-invalid');
    await page.locator('#result-invalid-status[data-ok]').waitFor();
    t.equal(await page.getAttribute('#result-invalid-status', 'data-result'), 'ugyldig skattemelding', `invalid sample: ${await page.textContent('#result-invalid-status')}`);
    t.equal(await page.getAttribute('#result-invalid-status', 'data-submittable'), 'false');
    const rules = await page.locator('#result-invalid-avvik td.regel').allTextContents();
    t.ok(rules.includes('R018'), `the broken rules are listed: ${rules.join(', ')}`);
    await view('spa, validated');
    await shoot(page, '04-validated');
  });

  await step('an attachment over 25 MB is refused in the page, before anything is sent', async (t) => {
    t.match(await page.textContent('#attachment-limits'), /0–57 files, at most 25 MB each/, 'the limits are shown');
    const before = altinn.instances.size;
    // A sparse file on disk, handed to the local browser by its path: 25 MB sent as a buffer takes the browser
    // protocol longer than the step may wait on a loaded machine.
    const dir = await mkdtemp(join(tmpdir(), 'bff-attachment-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const tooLarge = join(dir, 'for-stor.pdf');
    const handle = await open(tooLarge, 'w');
    await handle.truncate(25 * 1024 * 1024 + 1);
    await handle.close();
    await page.setInputFiles('#attachments', tooLarge);
    await page.locator('#attachment-error:not([hidden])').waitFor();
    t.match(await page.textContent('#attachment-error'), /for-stor\.pdf is 25\.0 MB; the limit is 25 MB per file/);
    t.ok(await page.locator('#submit').isDisabled(), 'submit is disabled');
    t.equal(altinn.instances.size, before, 'nothing reached Altinn');
  });

  await step('a submission with an attachment runs validation, instance, envelope, return, attachment, process/next twice and feedback/status, then shows the payment information and the receipt', async (t) => {
    const attachment = Buffer.concat([Buffer.from('%PDF-1.4\n% merknader\n'), Buffer.alloc(1024 * 1024, 0x41)]);
    await page.setInputFiles('#attachments', { name: 'merknaderTilMvaMeldingen.pdf', mimeType: 'application/pdf', buffer: attachment });
    await page.locator('#attachment-error[hidden]').waitFor({ state: 'attached' });
    t.ok(await page.locator('#submit').isEnabled(), 'an attachment within the limits can be sent');
    await page.click('#submit');
    await page.locator('#submission-result[data-ok]').waitFor();
    t.equal(await page.getAttribute('#submission-result', 'data-result'), 'Mottatt', `submission: ${await page.textContent('#submission-result')}`);
    const steps = await page.locator('#submission-steps li').allTextContents();
    t.same(steps.map((s) => s.replace(/:.*$/, '')), [
      'Validate',
      'Create instance',
      'Upload envelope (konvolutt)',
      'Upload mva-melding',
      'Upload attachment merknaderTilMvaMeldingen.pdf (1.0 MB)',
      'Complete (process/next)',
      'Submit (process/next)',
      'Feedback status',
      'Fetch feedback',
      'Payment information',
      'Receipt',
    ], 'every call went through');
    t.equal(altinn.instances.size, 1, 'Altinn holds the instance');
    const instance = [...altinn.instances.values()][0]!;
    const uploaded = instance.data.find((d) => d.dataType === 'binaerVedlegg');
    t.same([uploaded?.filename, uploaded?.contentType, uploaded?.size], ['merknaderTilMvaMeldingen.pdf', 'application/pdf', attachment.length], 'the attachment reached Altinn whole');
    t.ok(instance.feedbackProvided && instance.ended, 'Skatteetaten gave feedback and the process ended');

    t.ok(await page.locator('#feedback').isVisible(), 'the feedback is shown');
    t.equal(await page.textContent('#payment-amount'), '8500 kr', 'the amount to pay');
    t.match(await page.textContent('#payment-kid'), /^\d{16}$/, 'the KID');
    t.match(await page.textContent('#payment-account'), /^\d{11}$/, 'the account');
    t.equal(await page.textContent('#payment-due'), '2025-04-10', 'the due date of januar-februar 2025');
    t.equal(await page.textContent('#payment-reference'), instance.id, 'the submission reference');
    const link = page.locator('#receipt-link');
    t.match(await link.getAttribute('href'), /^blob:http:\/\/localhost:\d+\//, 'the receipt link points at the fetched PDF, not at the gateway (a bare link would carry no X-CSRF)');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    t.equal(download.suggestedFilename(), 'kvittering.pdf');
    const saved = await download.path();
    const pdf = await readFile(saved);
    t.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-', 'the receipt is a PDF');
    t.match(pdf.toString('latin1'), instance.id, 'for this submission');
    await view('spa, submitted');
    await shoot(page, '05-submitted');
  });

  await step('a page on another site can neither call the gateway with the user\'s session nor log them out', async (t) => {
    const attacker = await startAttackerSite(t, publicUrl);
    const upstreamBefore = skatteetaten.requests.length;
    const rejectsBefore = captured.lines.filter((l) => l.event === 'csrf.reject').length;
    const evil = await context.newPage();
    await responses.watch(evil);

    await evil.goto(`${attacker}/fetch`);
    await evil.locator('body[data-done="true"]').waitFor();
    const results = JSON.parse((await evil.textContent('#results')) ?? '{}') as Record<string, string>;
    // X-CSRF is not a CORS-safelisted header: the preflight gets no CORS approval, so the POST is never sent.
    t.match(results.corsFetch, /^blocked: TypeError/, 'a credentialed fetch with X-CSRF fails at the preflight');
    t.match(results.noCorsFetch, /^opaque=true status=0$/, 'a no-cors fetch gives the attacker nothing to read');
    await shoot(evil, '06-attacker-fetch');

    await responses.settled();
    const noCors = responses.seen.filter((r) => r.url === `${publicUrl}/mva/validering?via=no-cors-fetch`);
    t.same(noCors.map((r) => r.status), [403, 403], 'the gateway refused the no-cors fetch');
    t.notOk(responses.seen.some((r) => r.url.includes('via=cors-fetch') && r.method === 'POST'), 'the preflighted POST never reached the gateway');

    for (const [path, target] of [['/form-validering', `${publicUrl}/mva/validering?via=form`], ['/form-logout', `${publicUrl}/auth/logout`]] as const) {
      const answered = evil.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
      await evil.goto(`${attacker}${path}`);
      const res = await answered;
      t.equal(res.status(), 403, `a cross-site form POST to ${new URL(target).pathname} is refused`);
      t.equal(res.headers()['access-control-allow-origin'], undefined, 'no CORS approval');
    }
    await evil.waitForLoadState();
    await shoot(evil, '07-attacker-forms');
    await evil.close();

    t.equal(skatteetaten.requests.length, upstreamBefore, 'nothing reached Skatteetaten');
    const rejected = captured.lines.filter((l) => l.event === 'csrf.reject').slice(rejectsBefore).map((l) => `${l.method} ${l.route ?? l.path}`);
    t.same(rejected, [
      'OPTIONS /mva/validering', // the preflight of the X-CSRF fetch: refused, so the POST is never sent
      'POST /mva/validering', // the no-cors fetch
      'POST /mva/validering', // the form
      'POST /auth/logout', // the logout form
    ], 'the gateway audited every cross-site attempt as csrf.reject');

    await page.reload();
    await page.locator('#status[data-state="logged-in"]').waitFor();
    t.equal(await page.evaluate(async () => (await fetch('/auth/session', { credentials: 'include' })).status), 200, 'the session survived');
  });

  await step('after the access token expires a validation still succeeds through a transparent refresh', async (t) => {
    const before = await liveSession();
    // The demo's validation route names an RFC 8707 resource: its token is the one that expires and is refreshed.
    const [resource, ...others] = Object.keys(before.data.resourceTokens ?? {});
    t.ok(resource !== undefined && others.length === 0, `one resource token, for the validation route (${resource})`);
    const expiring = before.data.resourceTokens![resource!]!;
    const refreshGrants = op.stats.refreshGrants;
    // Past this token's expiry (≥ 5.5 s after it was issued): the next call cannot use it.
    await page.waitForTimeout(Math.max(0, expiring.accessTokenExpiresAt + 500 - Date.now()));
    t.ok(Date.now() > expiring.accessTokenExpiresAt, 'the access token has expired');
    const answered = page.waitForResponse((r) => r.url() === `${publicUrl}/mva/validering` && r.request().method() === 'POST');
    await page.click('#validate-valid');
    t.equal((await answered).status(), 200);
    await page.locator('#result-valid-status[data-ok]').waitFor();
    t.equal(await page.getAttribute('#result-valid-status', 'data-result'), 'ingen avvik', `valid sample: ${await page.textContent('#result-valid-status')}`);
    t.ok(op.stats.refreshGrants > refreshGrants, 'the gateway used a refresh grant');
    const after = await liveSession();
    const renewed = after.data.resourceTokens?.[resource!]?.accessToken;
    t.not(renewed, expiring.accessToken, 'the session holds a new access token');
    const sent = skatteetaten.requests.at(-1)?.headers;
    // The demo binds tokens (idporten.dpop): the new token goes as DPoP, with a proof (RFC 9449 section 7.1).
    t.equal(sent?.authorization, `DPoP ${renewed}`, 'Skatteetaten got the new token');
    t.type(sent?.dpop, 'string', 'with a DPoP proof');
    await view('spa, after refresh');
    await shoot(page, '08-after-refresh');
  });

  let idTokenAtLogout = '';
  await step('logout goes through ID-porten\'s end-session endpoint and back to the SPA, logged out; the old session is dead', async (t) => {
    const cookieValue = await sessionCookie();
    const { tokens } = (await liveSession()).data;
    const refreshToken = tokens.refreshToken;
    idTokenAtLogout = tokens.idToken;
    if (!refreshToken) throw new Error('the session has no refresh token');
    t.ok(await op.isRefreshTokenActive(refreshToken), 'the refresh token is active before logout');

    const visited: string[] = [];
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) visited.push(frame.url());
    });
    await page.click('#logout');
    const loggedOut = await page.locator('#status[data-state="logged-out"]').waitFor({ timeout: 10_000 }).then(() => true, () => false);
    if (!loggedOut) {
      t.fail(`the browser did not come back to the SPA logged out; it stopped at ${new URL(page.url()).pathname}: ${(await page.textContent('body'))?.slice(0, 300)}`);
      return;
    }
    const back = new URL(page.url());
    t.equal(back.origin + back.pathname, `${publicUrl}/`, 'the browser is back on the SPA');
    t.ok(visited.includes(`${publicUrl}/auth/logout`), 'the gateway\'s logout page was shown');
    t.ok(visited.some((u) => u.startsWith(`${op.issuer}/endsession`)), 'the browser went through the end-session endpoint');
    t.equal(await page.textContent('#status'), 'Not logged in');
    const v = await view('spa, logged out again');
    t.equal(v.cookie, '');
    t.same((await jar()).map((c) => c.name).filter((n) => n !== LOOP_COOKIE), [], 'the session cookie is gone');
    await shoot(page, '09-logged-out-again');

    const replay = await fetch(`${publicUrl}/auth/session`, { headers: { cookie: `bff=${cookieValue}` } });
    t.equal(replay.status, 401, 'the old cookie value no longer opens a session');
    t.equal(await op.isRefreshTokenActive(refreshToken), false, 'ID-porten reports the refresh token revoked');
  });

  await step('no token or client secret reaches the browser, and the logs hold no token, secret, cookie or pid', async (t) => {
    await responses.settled();
    const clientAuth = gateway.core.config.tenants[0]!.idporten.clientAuth;
    const secrets: Secret[] = [
      ...[...op.issuedTokens].map((value, i) => ({ label: `ID-porten token #${i + 1}`, value })),
      ...[...altinn.issuedTokens].map((value, i) => ({ label: `Altinn token #${i + 1}`, value })),
      ...('secret' in clientAuth ? [{ label: 'client secret', value: clientAuth.secret }] : []),
    ];
    t.ok(op.issuedTokens.size >= 6, 'the provider issued tokens for the login and the refresh');
    t.ok(altinn.issuedTokens.size >= 1, 'Altinn issued a token for the submission');
    t.equal(secrets.filter((s) => s.label === 'client secret').length, 1, 'the client secret is known');

    const logoutPage = (r: SeenResponse) => r.method === 'POST' && r.url === `${publicUrl}/auth/logout` && r.status === 200;
    const logoutPages = responses.seen.filter((r) => r.source === 'wire' && logoutPage(r));
    t.equal(logoutPages.length, 1, 'the browser received one logout page');
    t.ok(logoutPages[0]?.body?.includes(`name="id_token_hint" value="${idTokenAtLogout}"`), 'the logout page carries id_token_hint');

    const found: string[] = [];
    for (const r of responses.seen) {
      const url = new URL(r.url);
      // Names the place without repeating a leaked value.
      const where = `${r.method} ${url.origin}${url.pathname} → ${r.status} (${r.source})`;
      for (const label of leaksIn(r.url, secrets)) found.push(`${label} in the URL of ${where}`);
      for (const label of leaksIn(JSON.stringify(r.headers), secrets)) found.push(`${label} in the headers of ${where}`);
      // The contract's one exception: the ID token as id_token_hint in the auto-posting form that
      // POST /auth/logout returns (after the session is destroyed and its tokens revoked). Only that
      // body, and only that token, is excused.
      const excused = logoutPage(r) ? (s: Secret) => s.value === idTokenAtLogout : undefined;
      for (const label of leaksIn(r.body ?? '', secrets, excused)) found.push(`${label} in the body of ${where}`);
    }
    for (const v of views) {
      for (const [part, text] of Object.entries({ URL: v.url, 'document.cookie': v.cookie, localStorage: v.localStorage, sessionStorage: v.sessionStorage, DOM: v.dom })) {
        for (const label of leaksIn(text, secrets)) found.push(`${label} in ${part} at "${v.step}"`);
      }
    }
    t.same(found, [], 'nothing secret on the browser side');
    const withBody = (r: SeenResponse) => r.source === 'wire' && r.body !== undefined;
    const missed = responses.seen.filter((r) => r.source === 'event' && r.status !== 0 && (r.status < 300 || r.status >= 400)
      && !responses.seen.some((w) => withBody(w) && w.method === r.method && w.url === r.url && w.status === r.status));
    t.same(missed.map((r) => `${r.method} ${r.url} → ${r.status}`), [], 'the body of every response with one was read');
    t.ok(responses.seen.some((r) => r.status === 302 || r.status === 303), 'redirects were recorded too');
    t.comment(`${responses.seen.length} responses and ${views.length} page views scanned for ${secrets.length} secrets`);

    const logText = captured.text();
    const logSecrets: Secret[] = [
      ...secrets,
      ...[...cookieValues].map((value, i) => ({ label: `cookie value #${i + 1}`, value })),
      { label: 'pid', value: USER.pid },
    ];
    t.ok(captured.lines.length > 0, 'the gateway logged');
    t.same(leaksIn(logText, logSecrets), [], 'no token, secret, cookie value or pid in the gateway log');
  });
});
