/**
 * The back-channel logout journal, called directly on a real directory: which lines a replay reads and which it
 * passes over, what identifies one pending logout, done lines out of order, and a write cut short (the disk full)
 * or a compaction that fails. A write is made to fail by wrapping the FileHandle method it goes through, once.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { JOURNAL_FILE, LogoutJournal, type LogoutJournalOptions } from '../src/tokens/logout-journal.js';
import { captureLogger } from './helpers/stack.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 1, 12);

function options(overrides: Partial<LogoutJournalOptions> = {}) {
  const logs = captureLogger();
  return { logs, opts: { now: () => T0, maxAgeMs: 8 * HOUR, maxEntries: 100, log: logs.logger, ...overrides } };
}

async function openIn(t: Test, dir: string, overrides: Partial<LogoutJournalOptions> = {}) {
  const { opts, logs } = options(overrides);
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  return { journal, logs, replayed: () => logs.lines.filter((l) => l.msg === 'back-channel logout journal replayed') };
}

const json = (value: unknown) => JSON.stringify(value);
const add = (e: Record<string, unknown>) => json({ op: 'add', tenant: 'mva', at: T0, ...e });
const done = (e: Record<string, unknown>) => json({ op: 'done', tenant: 'mva', at: T0, ...e });
const fileText = (dir: string) => readFileSync(join(dir, JOURNAL_FILE), 'utf8');

/** Makes the next call of a FileHandle method fail, after `before` has run (a partial write, say). */
async function failOnce(t: Test, method: 'appendFile' | 'sync', before?: (handle: unknown, args: unknown[]) => Promise<void>) {
  const probe = await open('/dev/null', 'r');
  const proto = Object.getPrototypeOf(probe) as Record<string, (...args: unknown[]) => Promise<unknown>>;
  await probe.close();
  const original = proto[method]!;
  t.teardown(() => void (proto[method] = original));
  proto[method] = async function (this: unknown, ...args: unknown[]) {
    proto[method] = original;
    if (before) await before(this, args);
    throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  };
}

t.test('one pending logout is one tenant, sid and sub: a user\'s two provider sessions are two (OIDC Back-Channel Logout 1.0 section 2.4)', async (t) => {
  const dir = t.testdir();
  const { journal } = await openIn(t, dir);
  await journal.add({ tenant: 'mva', sid: 's1', sub: 'u1', at: T0 - 3 });
  await journal.add({ tenant: 'mva', sid: 's2', sub: 'u1', at: T0 - 2 });
  await journal.add({ tenant: 'mva', sid: 's1', sub: 'u2', at: T0 - 1 });
  await journal.add({ tenant: 'other', sid: 's1', sub: 'u1', at: T0 });
  t.equal(journal.size, 4);
  await journal.done({ tenant: 'mva', sid: 's1', sub: 'u1', at: T0 - 3 });
  t.equal(journal.size, 3, 'a done ends its own logout only');
  await journal.close();
  const { journal: reopened } = await openIn(t, dir);
  t.same(reopened.pending.map((e) => [e.tenant, e.sid, e.sub]), [['mva', 's2', 'u1'], ['mva', 's1', 'u2'], ['other', 's1', 'u1']]);
});

t.test('an empty journal, or one with nothing left pending, opens without a log line', async (t) => {
  const first = await openIn(t, t.testdir());
  t.same(first.logs.lines, []);
  const dir = t.testdir({ [JOURNAL_FILE]: `${add({ sid: 's1' })}\n${done({ sid: 's1' })}\n` });
  const second = await openIn(t, dir);
  t.same(second.logs.lines, []);
  t.same(second.journal.pending, []);
});

t.test('a file ending in a newline has no torn line, and a blank line is not damage', async (t) => {
  const dir = t.testdir({ [JOURNAL_FILE]: `${add({ sid: 's1' })}\n\n${add({ sid: 's2' })}\n` });
  const { journal, replayed } = await openIn(t, dir);
  t.same(journal.pending.map((e) => e.sid), ['s1', 's2']);
  t.match(replayed(), [{ pending: 2, torn: 0, unreadable: 0, expired: 0, overBound: 0, level: 'info' }]);
});

t.test('a line is read only when it is a whole add or done of a named tenant, a finite time and a sid or sub that are non-empty strings', async (t) => {
  const bad = [
    'null',
    '"add"',
    '[]',
    json({ op: 'remove', tenant: 'mva', sid: 'x', at: T0 }),
    json({ op: 'add', tenant: '', sid: 'x', at: T0 }),
    json({ op: 'add', sid: 'x', at: T0 }),
    json({ op: 'add', tenant: 'mva', sid: 'x', at: String(T0) }),
    '{"op":"add","tenant":"mva","sid":"x","at":1e999}',
    json({ op: 'add', tenant: 'mva', sid: '', at: T0 }),
    json({ op: 'add', tenant: 'mva', sid: 7, at: T0 }),
    json({ op: 'add', tenant: 'mva', sub: '', at: T0 }),
    json({ op: 'add', tenant: 'mva', sid: 'x', sub: false, at: T0 }),
  ];
  const dir = t.testdir({ [JOURNAL_FILE]: `${bad.join('\n')}\n${add({ sid: 's1' })}\n${add({ sub: 'u1' })}\n` });
  const { journal, replayed } = await openIn(t, dir);
  t.same(journal.pending.map((e) => Object.keys(e).sort()), [['at', 'sid', 'tenant'], ['at', 'sub', 'tenant']], 'no sid or sub made up');
  t.match(replayed(), [{ unreadable: bad.length, torn: 0, level: 'warn' }]);
});

t.test('on replay a done ends the acceptance it names and any earlier one, never a later one', async (t) => {
  const dir = t.testdir({
    [JOURNAL_FILE]: [
      add({ sid: 'later', at: T0 - 20 }),
      add({ sid: 'later', at: T0 - 10 }),
      done({ sid: 'later', at: T0 - 20 }),
      add({ sid: 'same', at: T0 - 10 }),
      done({ sid: 'same', at: T0 - 10 }),
      add({ sid: 'newer-done', at: T0 - 10 }),
      done({ sid: 'newer-done', at: T0 - 5 }),
      '',
    ].join('\n'),
  });
  const { journal } = await openIn(t, dir);
  t.same(journal.pending, [{ tenant: 'mva', sid: 'later', at: T0 - 10 }]);
});

t.test('a done for a logout that is not pending writes nothing', async (t) => {
  const dir = t.testdir();
  const { journal } = await openIn(t, dir);
  await journal.add({ tenant: 'mva', sid: 's1', at: T0 });
  const before = fileText(dir);
  await journal.done({ tenant: 'mva', sid: 'unknown', at: T0 });
  await journal.done({ tenant: 'mva', sid: 's1', at: T0 - 1 });
  t.equal(fileText(dir), before);
  t.equal(journal.size, 1);
});

t.test('a write cut short (disk full) fails that add; the next add rewrites the file whole, with both logouts', async (t) => {
  const dir = t.testdir();
  const { journal } = await openIn(t, dir);
  await journal.add({ tenant: 'mva', sid: 's1', at: T0 });
  await failOnce(t, 'appendFile', async (handle, args) => {
    // Half the line reaches the disk before the error.
    const text = String(args[0]);
    await (handle as { write: (s: string) => Promise<unknown> }).write(text.slice(0, text.length / 2));
  });
  await t.rejects(journal.add({ tenant: 'mva', sid: 's2', at: T0 }), /ENOSPC/);
  await journal.add({ tenant: 'mva', sid: 's3', at: T0 });
  const lines = fileText(dir).split('\n').filter((l) => l !== '');
  t.same(lines.map((l) => JSON.parse(l).sid), ['s1', 's2', 's3'], 'every line whole; the logout whose line failed is kept too');
  await journal.close();
  const { journal: reopened, replayed } = await openIn(t, dir);
  t.same(reopened.pending.map((e) => e.sid), ['s1', 's2', 's3']);
  t.match(replayed(), [{ torn: 0, unreadable: 0 }]);
});

t.test('a compaction that fails is logged; the old file stays whole and in use, and the next done compacts', async (t) => {
  const dir = t.testdir();
  const { journal, logs } = await openIn(t, dir, { compactAfter: 3 });
  for (const sid of ['s1', 's2', 's3']) await journal.add({ tenant: 'mva', sid, at: T0 });
  await journal.done({ tenant: 'mva', sid: 's1', at: T0 });
  await failOnce(t, 'sync');
  await journal.done({ tenant: 'mva', sid: 's2', at: T0 });
  t.match(logs.lines.filter((l) => l.msg === 'back-channel logout journal not compacted'), [{ reason: /ENOSPC/, level: 'warn' }]);
  t.equal(fileText(dir).split('\n').filter((l) => l !== '').length, 5, 'the old file, appended to');
  await journal.add({ tenant: 'mva', sid: 's4', at: T0 });
  await journal.done({ tenant: 'mva', sid: 's3', at: T0 });
  t.same(fileText(dir).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l).sid), ['s4'], 'compacted on the next done');
});

t.test('a journal file that cannot be read is a configuration error, not an empty journal', async (t) => {
  const bad = t.testdir({ [JOURNAL_FILE]: {} });
  const err = await LogoutJournal.open(bad, options().opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { issues: [{ path: 'session.journalDir', message: /EISDIR/ }] });
});

t.test('over its bound, a replay keeps the newest logouts by their time, whatever order the lines are in (a clock set back between writes)', async (t) => {
  const dir = t.testdir({ [JOURNAL_FILE]: [add({ sid: 'newest', at: T0 - 1 }), add({ sid: 'oldest', at: T0 - 3 }), add({ sid: 'middle', at: T0 - 2 })].join('\n') + '\n' });
  const { journal } = await openIn(t, dir, { maxEntries: 2 });
  t.same(journal.pending.map((e) => e.sid), ['middle', 'newest'], 'the oldest is passed over; the rest oldest first');
});

t.test('a journal that had only expired logouts says so when it is replayed, though nothing is pending', async (t) => {
  const dir = t.testdir({ [JOURNAL_FILE]: `${add({ sid: 'old', at: T0 - 9 * HOUR })}\n` });
  const { journal, replayed } = await openIn(t, dir);
  t.equal(journal.size, 0);
  t.match(replayed(), [{ pending: 0, expired: 1 }], 'one line: nothing pending, one expired');
});
