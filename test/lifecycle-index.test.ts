/**
 * TokenLifecycle (src/tokens/lifecycle.ts): a user's sessions are found through the store's sub index, and each one
 * found is checked against its own record before it is listed or ended. Over the real memory store whose index
 * look-ups also answer another user's session, as a corrupt index, or one written by someone with access to the
 * store (who cannot forge a sealed record, but can add an id to an index), would.
 */
import t from 'tap';
import { lifecycleWorld } from './helpers/lifecycle-world.js';

t.test('an index that names another user\'s session: the user\'s list, handles and "log out everywhere" reach only their own sessions', async (t) => {
  const w = await lifecycleWorld(t);
  const mine = (await w.begin(w.mva, 'u1')).session;
  const theirs = (await w.begin(w.mva, 'u2')).session;
  w.store.extraIds = [theirs.id];
  t.same((await w.lifecycle.listSessions(w.mva, 'u1')).map((s) => s.session.id), [mine.id], 'only the user\'s own session is listed');
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', w.lifecycle.handleOf(theirs), 'user'), undefined, 'another user\'s session is not ended by its handle');
  t.equal(await w.lifecycle.endAll(w.mva, 'u1', 'all'), 1, 'one session ended');
  t.equal((await w.sessions.loadById(theirs.id, 'mva')).state, 'live', 'the other user\'s session lives on');
  t.same(w.logouts().map((l) => l.session), [mine.hash]);
});
