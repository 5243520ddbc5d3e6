/**
 * src/tokens/refresh.ts: a refresh token is presented only when the rotated one it brings back could be kept should
 * the store fail right after (RFC 6749 section 10.4: a rotated refresh token lost is a session lost, and the one
 * presented cannot be presented again). With the session manager's 10 000 kept writes all taken, nothing is
 * presented. Apart from refresh-unit.test.ts because filling the backlog takes seconds.
 */
import t from 'tap';
import { world } from './helpers/refresh-world.js';

t.test('nothing is presented while no rotated token could be kept should the store fail after (the kept writes are full)', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.store.updatesFail = true;
  const filler = await w.login();
  const kept = await Promise.all(Array.from({ length: 10_000 }, (_, i) => w.sessions.update({ ...filler, id: `filler-${i}` }, 'v', { keep: () => undefined })));
  t.equal(kept.filter((k) => k === 'kept').length, 10_000);
  t.notOk(w.sessions.canKeep);
  await t.rejects(w.refresher.fresh(session, w.tenant), { name: 'StoreUnavailableError', message: /too many token updates/ });
  t.same(w.op.grants, []);
  w.store.updatesFail = false;
});

