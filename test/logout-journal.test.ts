/**
 * The back-channel logout journal (`session.journalDir`) on a real directory: what it writes and when, what a
 * restart finds in it (a torn last line, entries past the session lifetime, more than the bound), compaction, and a
 * directory it cannot use.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../src/config/errors.js';
import { JOURNAL_FILE, LogoutJournal, type JournalEntry, type LogoutJournalOptions } from '../src/tokens/logout-journal.js';
import { captureLogger } from './helpers/stack.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 1, 12);

function options(overrides: Partial<LogoutJournalOptions> = {}) {
  const logs = captureLogger();
  return { logs, opts: { now: () => T0, maxAgeMs: 8 * HOUR, maxEntries: 100, log: logs.logger, ...overrides } };
}

function fileLines(dir: string): string[] {
  return readFileSync(join(dir, JOURNAL_FILE), 'utf8').split('\n').filter((l) => l !== '');
}

const entry = (sid: string, at = T0): JournalEntry => ({ tenant: 'mva', sid, sub: `sub-${sid}`, at });

t.test('an add is on disk when it resolves: one JSON line with the tenant, sid, sub and time, and nothing else', async (t) => {
  const dir = t.testdir();
  const { opts } = options();
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  await journal.add(entry('s1'));
  const lines = fileLines(dir).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(lines, [{ op: 'add', tenant: 'mva', sid: 's1', sub: 'sub-s1', at: T0 }]);
  t.same(Object.keys(lines[0]!).sort(), ['at', 'op', 'sid', 'sub', 'tenant'], 'no token, no session id');
  t.equal(statSync(join(dir, JOURNAL_FILE)).mode & 0o777, 0o600, 'readable by this user only');
  await journal.add({ tenant: 'mva', sub: 'only-sub', at: T0 + 1 });
  t.same(JSON.parse(fileLines(dir)[1]!), { op: 'add', tenant: 'mva', sub: 'only-sub', at: T0 + 1 }, 'a logout by sub alone (OIDC BCL 1.0 section 2.4)');
});

t.test('a reopened journal gives back what is pending, oldest first, and not what is done', async (t) => {
  const dir = t.testdir();
  const { opts } = options();
  const first = await LogoutJournal.open(dir, opts);
  await first.add(entry('s2', T0 - 1000));
  await first.add(entry('s1', T0 - 2000));
  await first.add(entry('s3', T0 - 500));
  await first.done(entry('s2', T0 - 1000));
  // No close: a crash leaves the file as the last fsync did.
  const second = await LogoutJournal.open(dir, opts);
  t.teardown(async () => {
    await first.close();
    await second.close();
  });
  t.same(second.pending.map((e) => e.sid), ['s1', 's3']);
  t.same(fileLines(dir).map((l) => JSON.parse(l).sid), ['s1', 's3'], 'rewritten at open with the pending entries only');
});

t.test('a torn last line from a crash is ignored, and what is appended next is whole', async (t) => {
  const dir = t.testdir({ [JOURNAL_FILE]: `${JSON.stringify({ op: 'add', tenant: 'mva', sid: 's1', sub: 'u1', at: T0 })}\n{"op":"add","tenant":"mva","si` });
  const { opts, logs } = options();
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  t.same(journal.pending.map((e) => e.sid), ['s1']);
  t.match(logs.lines.find((l) => l.msg === 'back-channel logout journal replayed'), { pending: 1, torn: 1, unreadable: 0, level: 'info' });
  await journal.add(entry('s2'));
  t.same(fileLines(dir).map((l) => JSON.parse(l).sid), ['s1', 's2'], 'no line glued to the torn one');
});

t.test('a whole last line without its newline still counts; damage elsewhere is passed over and logged as a warning', async (t) => {
  const good = (sid: string) => JSON.stringify({ op: 'add', tenant: 'mva', sid, at: T0 });
  const dir = t.testdir({ [JOURNAL_FILE]: `${good('s1')}\nnot json\n{"op":"add","tenant":"mva","at":1}\n${good('s2')}` });
  const { opts, logs } = options();
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  t.same(journal.pending.map((e) => e.sid), ['s1', 's2']);
  t.match(logs.lines.find((l) => l.msg === 'back-channel logout journal replayed'), { unreadable: 2, torn: 0, level: 'warn' });
});

t.test('entries older than the session absolute lifetime are dropped on replay: no session outlives it', async (t) => {
  const dir = t.testdir();
  const writer = await LogoutJournal.open(dir, options().opts);
  await writer.add(entry('old', T0 - 8 * HOUR));
  await writer.add(entry('young', T0 - 8 * HOUR + 1));
  await writer.close();
  const { opts, logs } = options();
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  t.same(journal.pending.map((e) => e.sid), ['young']);
  t.match(logs.lines.find((l) => l.msg === 'back-channel logout journal replayed'), { pending: 1, expired: 1 });
});

t.test('at most maxEntries are replayed, the newest', async (t) => {
  const dir = t.testdir();
  const writer = await LogoutJournal.open(dir, options().opts);
  for (let i = 0; i < 5; i++) await writer.add(entry(`s${i}`, T0 - 5 + i));
  await writer.close();
  const { opts, logs } = options({ maxEntries: 3 });
  const journal = await LogoutJournal.open(dir, opts);
  t.teardown(() => journal.close());
  t.same(journal.pending.map((e) => e.sid), ['s2', 's3', 's4']);
  t.match(logs.lines.find((l) => l.msg === 'back-channel logout journal replayed'), { overBound: 2 });
  t.equal(fileLines(dir).length, 3);
});

t.test('done lines piling up make a new file with the pending entries only (renamed over the old one)', async (t) => {
  const dir = t.testdir();
  const journal = await LogoutJournal.open(dir, options({ compactAfter: 6 }).opts);
  t.teardown(() => journal.close());
  for (let i = 0; i < 4; i++) await journal.add(entry(`s${i}`));
  const before = statSync(join(dir, JOURNAL_FILE)).ino;
  await journal.done(entry('s0'));
  await journal.done(entry('s1'));
  t.equal(fileLines(dir).length, 6, 'two done lines appended: four lines that no longer count');
  await journal.done(entry('s2'));
  t.same(fileLines(dir).map((l) => JSON.parse(l)), [{ op: 'add', tenant: 'mva', sid: 's3', sub: 'sub-s3', at: T0 }], 'compacted');
  t.not(statSync(join(dir, JOURNAL_FILE)).ino, before, 'a new file, renamed into place');
  t.same(readdirSync(dir), [JOURNAL_FILE], 'no temporary file left behind');
  await journal.add(entry('s4'));
  t.equal(fileLines(dir).length, 2, 'appends go to the new file');
  t.equal(journal.size, 2);
});

t.test('a done for an earlier acceptance leaves a later one of the same provider session pending', async (t) => {
  const dir = t.testdir();
  const journal = await LogoutJournal.open(dir, options().opts);
  await journal.add(entry('s1', T0 - 10));
  await journal.add(entry('s1', T0));
  await journal.done(entry('s1', T0 - 10));
  t.equal(journal.size, 1);
  await journal.close();
  const reopened = await LogoutJournal.open(dir, options().opts);
  t.teardown(() => reopened.close());
  t.same(reopened.pending, [entry('s1', T0)]);
});

t.test('a directory that cannot be used is a configuration error naming session.journalDir', async (t) => {
  const dir = t.testdir({ 'a-file': 'not a directory' });
  for (const path of [join(dir, 'a-file'), join(dir, 'a-file', 'journal')]) {
    const err = await LogoutJournal.open(path, options().opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ConfigError, `${path}: a ConfigError`);
    t.match((err as ConfigError).issues, [{ path: 'session.journalDir', message: new RegExp(`cannot use ${path} .*\\((ENOTDIR|EEXIST)\\)`) }]);
  }
});

t.test('a missing directory is made, readable by this user only', async (t) => {
  const dir = join(t.testdir(), 'instance-a', 'journal');
  const journal = await LogoutJournal.open(dir, options().opts);
  t.teardown(() => journal.close());
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.same(journal.pending, []);
});

t.test('after close, an add is refused and a done is ignored', async (t) => {
  const dir = t.testdir();
  const journal = await LogoutJournal.open(dir, options().opts);
  await journal.add(entry('s1'));
  await journal.close();
  await t.rejects(journal.add(entry('s2')), /closed/);
  await journal.done(entry('s1'));
  t.equal(fileLines(dir).length, 1);
});
