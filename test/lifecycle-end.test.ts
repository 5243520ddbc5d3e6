/**
 * TokenLifecycle (src/tokens/lifecycle.ts) driven directly: a user's list of sessions and the handles it names them
 * by, ending one, all, or those a provider logout names, and how a session ends — its tokens revoked at the
 * provider (RFC 7009) before answering or in the background, whatever refresh rotated them meanwhile, and one
 * `logout` audit line. Over the real memory store and a small provider on 127.0.0.1.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import t from 'tap';
import type { LogoutChannel } from '../src/audit/audit-log.js';
import { fingerprint } from '../src/audit/fingerprint.js';
import { StoreUnavailableError } from '../src/errors.js';
import { KeyRing } from '../src/session/key-ring.js';
import type { Session } from '../src/tokens/session-data.js';
import { ABSOLUTE_MS, IDLE_MS, lifecycleWorld, START, withData } from './helpers/lifecycle-world.js';

const HANDLE_PURPOSE = 'idporten-bff session handle v1';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tokensOf = (s: Session) => [`refresh_token:${s.data.tokens.refreshToken}`, `access_token:${s.data.tokens.accessToken}`];

/** HMAC-SHA-256 of the store key under the ring key's HKDF for the handle purpose, 22 base64url characters. */
function expectedHandle(secret: Buffer, id: string): string {
  const key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), HANDLE_PURPOSE, 32));
  return createHmac('sha256', key).update(id).digest('base64url').slice(0, 22);
}

// ---------------------------------------------------------------- listSessions, handles

t.test('a user\'s list: their live sessions in this tenant, oldest first, with what the user may see', async (t) => {
  const w = await lifecycleWorld(t);
  w.clock.now = START + 120_000;
  const third = (await w.begin(w.mva, 'u1', {}, 'Safari')).session;
  w.clock.now = START;
  const first = (await w.begin(w.mva, 'u1', {}, 'Firefox')).session;
  w.clock.now = START + 60_000;
  const second = (await w.begin(w.mva, 'u1')).session;
  await w.begin(w.mva, 'u2');
  await w.begin(w.skatt, 'u1');
  w.clock.now = START + 180_000;
  const list = await w.lifecycle.listSessions(w.mva, 'u1');
  t.same(list.map((s) => s.session.id), [first.id, second.id, third.id], 'oldest first; no other user\'s or tenant\'s');
  t.same(list[0], { handle: w.lifecycle.handleOf(first), session: list[0]!.session, createdAt: START, lastSeenAt: START, userAgent: 'Firefox' });
  t.same([list[1]!.createdAt, list[1]!.lastSeenAt, list[1]!.userAgent], [START + 60_000, START + 60_000, undefined]);
  t.same(await w.lifecycle.listSessions(w.mva, 'nobody'), []);
});

t.test('the list leaves out sessions past their idle or absolute deadline', async (t) => {
  const w = await lifecycleWorld(t);
  const idle = await w.begin(w.mva, 'u1');
  w.clock.now = START + IDLE_MS - 1;
  t.equal((await w.lifecycle.listSessions(w.mva, 'u1')).length, 1, 'a millisecond before the idle deadline');
  w.clock.now = START + IDLE_MS;
  t.same(await w.lifecycle.listSessions(w.mva, 'u1'), [], 'at it');
  await w.lifecycle.end(idle.session, w.mva, 'user');

  w.clock.now = START;
  const { cookieValue } = await w.begin(w.mva, 'u1');
  while (w.clock.now + 50 * 60_000 < START + ABSOLUTE_MS) {
    w.clock.now += 50 * 60_000;
    await w.lifecycle.current(w.mva, cookieValue);
  }
  w.clock.now = START + ABSOLUTE_MS - 1;
  await w.lifecycle.current(w.mva, cookieValue);
  t.equal((await w.lifecycle.listSessions(w.mva, 'u1')).length, 1, 'in use, a millisecond before its absolute deadline');
  w.clock.now = START + ABSOLUTE_MS;
  t.same(await w.lifecycle.listSessions(w.mva, 'u1'), [], 'at it, though used a millisecond ago');
});

t.test('a session\'s handle is a keyed hash of its store key: never its id, its log hash, an index key or a cookie value', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1');
  const handle = w.lifecycle.handleOf(session);
  t.match(handle, /^[A-Za-z0-9_-]{22}$/, '22 base64url characters (a cookie value has 43)');
  t.equal(handle, expectedHandle(Buffer.alloc(32, 1), session.id), 'HMAC-SHA-256 under a key derived for handles');
  for (const secret of [session.id, session.hash, cookieValue, w.keys.macs(session.id)[0]!]) t.notOk(secret.includes(handle) || handle.includes(secret.slice(0, 12)), 'reveals nothing it is not');
  t.equal(w.newLifecycle().handleOf(session), handle, 'the same on every instance with the same keys (and after a restart)');
  t.not(w.lifecycle.handleOf((await w.begin(w.mva, 'u1')).session), handle, 'one per session');
});

t.test('a handle ends that one session of the user, and nothing else: another user\'s, another tenant\'s, a malformed or a stale handle does nothing', async (t) => {
  const w = await lifecycleWorld(t);
  const mine = (await w.begin(w.mva, 'u1')).session;
  const kept = (await w.begin(w.mva, 'u1')).session;
  const theirs = (await w.begin(w.mva, 'u2')).session;
  const elsewhere = (await w.begin(w.skatt, 'u1')).session;
  const handle = w.lifecycle.handleOf(mine);
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u2', handle, 'user'), undefined, 'not by another user');
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', w.lifecycle.handleOf(theirs), 'user'), undefined, 'not another user\'s session');
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', w.lifecycle.handleOf(elsewhere), 'user'), undefined, 'not another tenant\'s');
  t.equal(await w.lifecycle.endByHandle(w.skatt, 'u1', handle, 'user'), undefined, 'not from another tenant');
  for (const bad of ['', handle.slice(1), `${handle}A`, `A${handle}`, `${handle.slice(0, 21)}=`, `${handle.slice(0, 21)}+`]) {
    t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', bad, 'user'), undefined, `malformed: ${JSON.stringify(bad)}`);
  }
  t.equal(w.logouts().length, 0, 'nothing ended so far');
  const ended = await w.lifecycle.endByHandle(w.mva, 'u1', handle, 'user');
  t.equal(ended?.id, mine.id, 'the session it names');
  t.same(w.logouts().map((l) => [l.session, l.channel, l.revoked]), [[mine.hash, 'user', { refreshToken: true, accessToken: true }]]);
  t.same(w.provider.revoked(), tokensOf(mine), 'its tokens revoked before answering (RFC 7009)');
  t.same((await w.lifecycle.listSessions(w.mva, 'u1')).map((s) => s.session.id), [kept.id], 'the user\'s other session lives on');
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', handle, 'user'), undefined, 'a handle ends its session once');
  t.equal((await w.sessions.loadById(theirs.id, 'mva')).state, 'live');
  t.equal((await w.sessions.loadById(elsewhere.id, 'skatt')).state, 'live');

  w.clock.now = START + IDLE_MS;
  t.equal(await w.lifecycle.endByHandle(w.mva, 'u1', w.lifecycle.handleOf(kept), 'user'), undefined, 'a session past its deadline is not listed, and not ended by handle');
});

t.test('after a key rotation, a handle listed under the previous key still names its session; the list shows the current key\'s', async (t) => {
  const old = new KeyRing([{ id: 'k1', secret: Buffer.alloc(32, 1) }]);
  const rotated = new KeyRing([{ id: 'k2', secret: Buffer.alloc(32, 2) }, { id: 'k1', secret: Buffer.alloc(32, 1) }]);
  const w = await lifecycleWorld(t, { handleKeys: rotated });
  const { session } = await w.begin(w.mva, 'u1');
  const before = w.newLifecycle(old).handleOf(session);
  const now = w.lifecycle.handleOf(session);
  t.equal(now, expectedHandle(Buffer.alloc(32, 2), session.id), 'the current key\'s handle');
  t.equal(before, expectedHandle(Buffer.alloc(32, 1), session.id));
  t.equal((await w.lifecycle.listSessions(w.mva, 'u1'))[0]!.handle, now);
  t.equal((await w.lifecycle.endByHandle(w.mva, 'u1', before, 'user'))?.id, session.id, 'the handle under the previous key');
});

t.test('ending all of a user\'s sessions in a tenant ends those past a deadline too, revokes their tokens, and counts them', async (t) => {
  const w = await lifecycleWorld(t);
  const idle = (await w.begin(w.mva, 'u1')).session;
  w.clock.now = START + IDLE_MS;
  const live = (await w.begin(w.mva, 'u1')).session;
  const theirs = (await w.begin(w.mva, 'u2')).session;
  const elsewhere = (await w.begin(w.skatt, 'u1')).session;
  t.equal(await w.lifecycle.endAll(w.mva, 'u1', 'all'), 2);
  t.same(w.logouts().map((l) => [l.session, l.channel]).sort(), [[idle.hash, 'all'], [live.hash, 'all']].sort());
  t.same(w.provider.revoked().sort(), [...tokensOf(idle), ...tokensOf(live)].sort());
  t.equal((await w.sessions.loadById(idle.id)).state, 'none');
  t.equal((await w.sessions.loadById(theirs.id, 'mva')).state, 'live');
  t.equal((await w.sessions.loadById(elsewhere.id, 'skatt')).state, 'live');
  t.equal(await w.lifecycle.endAll(w.mva, 'u1', 'all'), 0, 'nothing left');
});

// ---------------------------------------------------------------- end

t.test('ending a session revokes its tokens (RFC 7009): before answering when someone asked for the logout, in the background when time or a new login ended it', async (t) => {
  const w = await lifecycleWorld(t);
  const asked: LogoutChannel[] = ['rp', 'frontchannel', 'backchannel', 'all', 'user', 'admin'];
  const background: LogoutChannel[] = ['expired', 'idle', 'replaced'];
  for (const channel of [...asked, ...background]) {
    const { session } = await w.begin(w.mva, `u-${channel}`);
    const before = w.provider.revoked().length;
    await w.lifecycle.end(session, w.mva, channel);
    t.equal((await w.sessions.loadById(session.id)).state, 'none', `${channel}: destroyed`);
    const line = w.logouts().at(-1)!;
    if (asked.includes(channel)) {
      t.same(line.revoked, { refreshToken: true, accessToken: true }, `${channel}: revoked before answering`);
      t.same(w.provider.revoked().slice(before), tokensOf(session), `${channel}: the provider has heard`);
    } else {
      t.equal(line.revoked, 'background', `${channel}: in the background`);
      await w.lifecycle.settled();
      t.same(w.provider.revoked().slice(before), tokensOf(session), `${channel}: revoked all the same`);
    }
  }
});

t.test('the one logout audit line: who, how, which tokens (fingerprints), what was revoked, and a reason only when there is one', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { sid: 'sid-1', resources: ['https://api.example.no/'] });
  const withResource = withData(session, () => ({ resourceTokens: { 'https://api.example.no/': { accessToken: 'api-at', accessTokenIssuedAt: START, accessTokenExpiresAt: START + 60_000 } } }));
  await w.sessions.update(withResource, w.sessions.versionOf(session.data));
  await w.lifecycle.end(session, w.mva, 'admin');
  t.same(w.logouts(), [{
    event: 'logout',
    tenant: 'mva',
    session: session.hash,
    sub: 'u1',
    channel: 'admin',
    sid: fingerprint('sid-1'),
    accessToken: fingerprint(session.data.tokens.accessToken),
    refreshToken: fingerprint(session.data.tokens.refreshToken),
    revoked: { refreshToken: true, accessToken: true, resourceTokens: true },
  }]);
  t.notOk('reason' in w.logouts()[0]!, 'no reason key without a reason');
  t.same(w.provider.revoked(), [...tokensOf(session), 'access_token:api-at'], 'the resource token too');
  const other = (await w.begin(w.mva, 'u2')).session;
  await w.lifecycle.end(other, w.mva, 'admin', { reason: 'account closed' });
  t.equal(w.logouts()[1]!.reason, 'account closed');
});

t.test('revoke: false ends the session without revoking anything, and says so', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  await w.lifecycle.end(session, w.mva, 'rp', { revoke: false, reason: 'shared authorization' });
  t.equal((await w.sessions.loadById(session.id)).state, 'none');
  t.same(w.logouts().map((l) => [l.channel, l.reason, l.revoked]), [['rp', 'shared authorization', 'not revoked']]);
  await w.lifecycle.settled();
  t.same(w.provider.revoked(), []);
});

t.test('the tokens revoked and audited are the ones stored now, not an older copy\'s (a refresh on another instance)', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  await w.rotate(session.id);
  await w.lifecycle.end(session, w.mva, 'rp');
  const rotated = withData(session, (d) => ({ tokens: { ...d.tokens, accessToken: `${d.tokens.accessToken}~`, refreshToken: `${d.tokens.refreshToken}~` } }));
  t.same(w.provider.revoked(), tokensOf(rotated));
  t.same(w.logouts().map((l) => [l.accessToken, l.refreshToken]), [[fingerprint(rotated.data.tokens.accessToken), fingerprint(rotated.data.tokens.refreshToken)]]);
  t.equal((await w.sessions.loadById(session.id)).state, 'none');
});

t.test('a session already gone, or one the store cannot read now, is ended on the caller\'s copy: its tokens are revoked all the same', async (t) => {
  const w = await lifecycleWorld(t);
  const gone = (await w.begin(w.mva, 'u1')).session;
  await w.sessions.destroy(gone.id);
  await w.lifecycle.end(gone, w.mva, 'rp');
  t.same(w.provider.revoked(), tokensOf(gone));
  t.equal(w.logouts().length, 1, 'audited once');

  const unreadable = (await w.begin(w.mva, 'u2')).session;
  w.store.failing.get = true;
  await w.lifecycle.end(unreadable, w.mva, 'rp');
  w.store.failing.get = false;
  t.same(w.provider.revoked().slice(2), tokensOf(unreadable));
  t.equal((await w.sessions.loadById(unreadable.id)).state, 'none', 'destroyed');
  t.same(w.logouts().map((l) => l.session), [gone.hash, unreadable.hash]);
});

t.test('a refresh that rotates the tokens while the session ends: those tokens are revoked too, and no refresh token outlives the session', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  let rotations = 1;
  w.provider.state.onRevoke = async (form) => {
    if (form.get('token_type_hint') === 'refresh_token' && rotations-- > 0) await w.rotate(session.id);
  };
  await w.lifecycle.end(session, w.mva, 'rp');
  const rotated = withData(session, (d) => ({ tokens: { ...d.tokens, accessToken: `${d.tokens.accessToken}~`, refreshToken: `${d.tokens.refreshToken}~` } }));
  t.same(w.provider.revoked(), [...tokensOf(session), ...tokensOf(rotated)], 'the old tokens, then the rotated ones');
  t.equal((await w.sessions.loadById(session.id)).state, 'none');
  t.same(w.logouts().map((l) => [l.refreshToken, l.revoked]), [[fingerprint(rotated.data.tokens.refreshToken), { refreshToken: true, accessToken: true }]], 'one line, naming the tokens it ended with');
});

t.test('a session rotated on every attempt is deleted whatever it holds at the third', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  w.provider.state.onRevoke = async (form) => {
    if (form.get('token_type_hint') === 'refresh_token') await w.rotate(session.id);
  };
  await w.lifecycle.end(session, w.mva, 'rp');
  const rt = session.data.tokens.refreshToken!;
  t.same(w.provider.revoked().filter((r) => r.startsWith('refresh_token:')), [`refresh_token:${rt}`, `refresh_token:${rt}~`, `refresh_token:${rt}~~`], 'three rounds');
  t.equal((await w.sessions.loadById(session.id)).state, 'none', 'gone');
  t.equal(w.logouts().length, 1);
});

t.test('in the background too: a rotation just before the delete is found, and its tokens revoked', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  let once = true;
  w.store.beforeDelete = async (id) => {
    if (once) {
      once = false;
      await w.rotate(id);
    }
  };
  await w.lifecycle.end(session, w.mva, 'expired');
  await w.lifecycle.settled();
  const rotated = withData(session, (d) => ({ tokens: { ...d.tokens, accessToken: `${d.tokens.accessToken}~`, refreshToken: `${d.tokens.refreshToken}~` } }));
  t.same(w.provider.revoked().sort(), [...tokensOf(session), ...tokensOf(rotated)].sort());
  t.equal((await w.sessions.loadById(session.id)).state, 'none');
  t.same(w.logouts().map((l) => [l.refreshToken, l.revoked]), [[fingerprint(rotated.data.tokens.refreshToken), 'background']]);
});

t.test('a session another instance ends between a conditional delete that found it rotated and the read after it: ended here once, without error', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  w.store.beforeDelete = async (id) => {
    w.store.beforeDelete = undefined;
    await w.rotate(id);
    w.store.beforeGet = async (gid) => {
      w.store.beforeGet = undefined;
      await w.store.delete(gid);
    };
  };
  await w.lifecycle.end(session, w.mva, 'rp');
  t.equal((await w.sessions.loadById(session.id)).state, 'none');
  t.same(w.logouts().map((l) => [l.refreshToken, l.revoked]), [[fingerprint(session.data.tokens.refreshToken), { refreshToken: true, accessToken: true }]]);
});

// ---------------------------------------------------------------- provider logouts

t.test('a provider logout by sid ends that provider session\'s sessions in the tenant (only the named user\'s, when it names one); by sub, all of that user\'s', async (t) => {
  const w = await lifecycleWorld(t);
  const a = (await w.begin(w.mva, 'u1', { sid: 'sid-1' })).session;
  const b = (await w.begin(w.mva, 'u2', { sid: 'sid-1' })).session;
  const c = (await w.begin(w.mva, 'u1', { sid: 'sid-2' })).session;
  const d = (await w.begin(w.skatt, 'u1', { sid: 'sid-1' })).session;
  t.same((await w.lifecycle.findBySid(w.mva, 'sid-1')).map((s) => s.id).sort(), [a.id, b.id].sort());
  t.same((await w.lifecycle.findBySub(w.mva, 'u1')).map((s) => s.id).sort(), [a.id, c.id].sort());
  await w.lifecycle.endProviderSession(w.mva, { sid: 'sid-1', sub: 'u1' });
  t.same(w.logouts().map((l) => [l.session, l.channel, l.revoked]), [[a.hash, 'backchannel', { refreshToken: true, accessToken: true }]]);
  for (const s of [b, c]) t.equal((await w.sessions.loadById(s.id, 'mva')).state, 'live');
  t.equal((await w.sessions.loadById(d.id, 'skatt')).state, 'live', 'another tenant\'s');
  await w.lifecycle.endProviderSession(w.mva, { sid: 'sid-1' });
  t.same(w.logouts().map((l) => l.session), [a.hash, b.hash], 'by sid alone: every user\'s');
  await w.lifecycle.endProviderSession(w.mva, {});
  t.equal(w.logouts().length, 2, 'naming nothing ends nothing');
  const e = (await w.begin(w.mva, 'u1', { sid: 'sid-3' })).session;
  await w.lifecycle.endProviderSession(w.mva, { sub: 'u1' });
  t.same(w.logouts().map((l) => l.session).slice(2).sort(), [c.hash, e.hash].sort(), 'by sub: all of the user\'s');
});

t.test('a provider logout the store cannot apply is not lost: refused at once, the error passed on (503), and applied when the store answers', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { sid: 'sid-1' });
  w.store.failing.findByIndex = true;
  await t.rejects(w.lifecycle.endProviderSession(w.mva, { sid: 'sid-1' }), StoreUnavailableError);
  const refused = await w.sessions.loadById(session.id, 'mva');
  t.same([refused.state, refused.state === 'expired' && refused.reason], ['expired', 'refused'], 'the session is refused here from now on');
  w.store.failing.findByIndex = false;
  for (let i = 0; i < 100 && (await w.sessions.loadById(session.id)).state !== 'none'; i += 1) await sleep(20);
  t.equal((await w.sessions.loadById(session.id)).state, 'none', 'ended once the store answers');
  t.same(w.logouts().map((l) => [l.session, l.channel]), [[session.hash, 'backchannel']]);
});

t.test('after settled, pending provider logouts are no longer retried (shutdown)', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { sid: 'sid-1' });
  w.store.failing.findByIndex = true;
  await t.rejects(w.lifecycle.endProviderSession(w.mva, { sid: 'sid-1' }), StoreUnavailableError);
  await w.lifecycle.settled();
  w.store.failing.findByIndex = false;
  await sleep(600);
  t.equal((await w.sessions.loadById(session.id)).state, 'expired', 'still there, refused, not ended');
  t.equal(w.logouts().length, 0);
});
