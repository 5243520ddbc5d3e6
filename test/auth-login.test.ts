import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type AuthMethod } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[0]!;

for (const authMethod of ['client_secret_post', 'client_secret_basic', 'private_key_jwt'] as AuthMethod[]) {
  t.test(`logs in with ${authMethod} and /auth/session shows the user without any token`, async (t) => {
    // pid is shown only to tenants that opt in (data minimisation); this one does, to check the claim arrives.
    const stack = await startStack(t, { authMethod, tenant: { exposePid: true } });
    const browser = new Browser();
    const final = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=/app/page%3Fx%3D1`, { pid: user.pid });
    t.equal(final.url, `${stack.publicUrl}/app/page?x=1`, 'lands on returnTo');
    const res = await browser.fetch(`${stack.publicUrl}/auth/session`);
    t.equal(res.status, 200);
    const body = JSON.parse(res.body);
    t.equal(body.authenticated, true);
    t.equal(body.user.pid, user.pid);
    t.equal(body.user.acr, 'idporten-loa-substantial');
    t.ok(Array.isArray(body.user.amr));
    t.type(body.user.sub, 'string');
    t.match(body.session.createdAt, /^\d{4}-\d\d-\d\dT/);
    t.equal(body.accessToken.refreshable, true);
    t.ok(stack.op.issuedTokens.size >= 3, 'the OP issued tokens');
    const seen = browser.allRecordedText();
    for (const token of stack.op.issuedTokens) t.notOk(seen.includes(token), 'no issued token reaches the browser');
    t.equal(stack.audit('login.success').length, 1);
  });
}
