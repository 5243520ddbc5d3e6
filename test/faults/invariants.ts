/**
 * The invariants of a run, checked from what the sessions saw and what the provider saw (see the gateway
 * contract, "Session state under store faults"), and the run's figures:
 * - no session is lost, except one whose instance died between ID-porten's answer and the store write;
 * - no refresh token is presented twice, except in that same case;
 * - no 5xx, except a 503 with Retry-After;
 * - every call that reached the upstream carried a valid bearer of its own session (the upstream verified it;
 *   its jti belongs to the session's own grant at the provider);
 * - nothing else but 200, the 401s that end a session and those 5xx.
 * The exception is attributed exactly: the refresh token presented again had been accepted once, from an
 * instance (traced by its connection) that was killed before the second presentation, and the token that first
 * presentation rotated to was never presented by anyone.
 */
import type { TokenGrantRecord } from '../../demo/idporten-op.js';
import type { CallRecord, SessionRecord } from './records.js';

export interface RunData {
  startedAt: number;
  calls: CallRecord[];
  sessions: SessionRecord[];
  /** Every grant the provider decided during the run. */
  grants: TokenGrantRecord[];
  /** The provider's access tokens: jti → grant. */
  accessTokenGrants: ReadonlyMap<string, string>;
  /** The pid that made a connection to the provider. */
  pidOf(connection: number): number | undefined;
  /** When the gateway instance with this pid was killed, if it was one and was. */
  killedAt(pid: number): number | undefined;
}

export type Invariant = 'session lost' | 'presented twice' | '5xx' | 'bearer' | 'unexpected answer';

export interface Violation {
  invariant: Invariant;
  /** Epoch ms. */
  at: number;
  session?: string;
  /** A refresh token's fingerprint (never a token). */
  token?: string;
  detail: string;
}

/** A loss or double presentation attributed to an instance killed mid-refresh. */
export interface Excused {
  what: 'session lost' | 'presented twice';
  at: number;
  session?: string;
  token: string;
  detail: string;
}

export interface Figures {
  requests: number;
  refreshes: number;
  lost: number;
  lostUnavoidable: number;
  presentedTwice: number;
  presentedTwiceUnavoidable: number;
  with503RetryAfter: number;
  without503RetryAfter: number;
  other5xx: number;
  /** Calls that got no answer: the instance died under them. */
  noAnswer: number;
  /** Refresh grants whose connection could not be traced to a process (their caller was gone). */
  untraced: number;
  /** The longest time a session was unusable: from its first failing answer to its next successful one. */
  longestUnusableMs: number;
  longestUnusable?: { session: string; from: number; to: number };
}

export interface Verdict {
  figures: Figures;
  violations: Violation[];
  excused: Excused[];
}

/** A grant's outcome for a refresh token presented more than once. */
interface Twice {
  token: string;
  grantId?: string;
  presentations: TokenGrantRecord[];
  /** The second presentation: after the first accepted one. */
  againAt: number;
  excuse?: string;
  reason?: string;
}

const SESSION_OVER = new Set(['session_expired', 'login_required']);

export function checkRun(data: RunData): Verdict {
  const violations: Violation[] = [];
  const excused: Excused[] = [];
  const sessionOfGrant = new Map(data.sessions.map((s) => [s.grantId, s]));
  const sessionByName = new Map(data.sessions.map((s) => [s.session, s]));
  const refreshes = data.grants.filter((g) => g.grantType === 'refresh_token');

  // Refresh tokens presented more than once.
  const twice = presentedTwice(data, refreshes);
  for (const entry of twice) {
    const session = entry.grantId ? sessionOfGrant.get(entry.grantId)?.session : undefined;
    const base = { at: entry.againAt, token: entry.token, ...(session ? { session } : {}) };
    const times = `${entry.presentations.length} presentations (${entry.presentations.map((p) => `${p.ok ? 'accepted' : p.error} at ${clock(data, p.at)}`).join(', ')})`;
    if (entry.excuse) excused.push({ what: 'presented twice', ...base, detail: `${times}; ${entry.excuse}` });
    else violations.push({ invariant: 'presented twice', ...base, detail: `${times}; ${entry.reason}` });
  }

  // Sessions the gateway ended.
  for (const session of data.sessions) {
    if (session.endedAt === undefined) continue;
    const ofGrant = twice.filter((entry) => entry.grantId === session.grantId);
    const excuse = ofGrant.find((entry) => entry.excuse);
    const base = { at: session.endedAt, session: session.session };
    if (excuse) {
      excused.push({ what: 'session lost', ...base, token: excuse.token, detail: `${session.endedWith}: ${excuse.excuse}` });
    } else {
      const cause = ofGrant[0];
      violations.push({
        invariant: 'session lost',
        ...base,
        ...(cause ? { token: cause.token } : {}),
        detail: cause
          ? `${session.endedWith} after its refresh token was presented twice (${cause.reason})`
          : `${session.endedWith}, though no refresh token of its grant was presented twice: the session's record was lost`,
      });
    }
  }

  // Each answer.
  let with503RetryAfter = 0;
  let without503RetryAfter = 0;
  let other5xx = 0;
  for (const call of data.calls) {
    const base = { at: call.doneAt, session: call.session };
    const where = `from instance ${call.instance}`;
    if (call.status === undefined) continue;
    if (call.status === 200) {
      const grant = call.jti === undefined ? undefined : data.accessTokenGrants.get(call.jti);
      const own = sessionByName.get(call.session)?.grantId;
      if (call.jti === undefined) violations.push({ invariant: 'bearer', ...base, detail: `a 200 that does not come from the upstream's check of a bearer (${where})` });
      else if (grant === undefined) violations.push({ invariant: 'bearer', ...base, detail: `the upstream got a bearer the provider never issued (${where})` });
      else if (grant !== own) {
        const other = sessionOfGrant.get(grant)?.session ?? 'no session of this run';
        violations.push({ invariant: 'bearer', ...base, detail: `the upstream got the bearer of ${other} (${where})` });
      }
      continue;
    }
    if (call.upstreamError) {
      violations.push({ invariant: 'bearer', ...base, detail: `${call.status}: the upstream refused the bearer (${call.upstreamError}) ${where}` });
    } else if (call.status === 503 && call.retryAfter !== undefined) {
      with503RetryAfter += 1;
    } else if (call.status >= 500) {
      if (call.status === 503) without503RetryAfter += 1;
      else other5xx += 1;
      const note = call.status === 503 ? ' without Retry-After' : '';
      violations.push({ invariant: '5xx', ...base, detail: `${call.status} ${call.code ?? ''}${note} ${where}` });
    } else if (!(call.status === 401 && call.code && SESSION_OVER.has(call.code))) {
      violations.push({ invariant: 'unexpected answer', ...base, detail: `${call.status} ${call.code ?? ''} ${where}` });
    }
  }

  const lost = data.sessions.filter((s) => s.endedAt !== undefined).length;
  const lostUnavoidable = excused.filter((e) => e.what === 'session lost').length;
  return {
    figures: {
      requests: data.calls.length,
      refreshes: refreshes.filter((g) => g.ok).length,
      lost,
      lostUnavoidable,
      presentedTwice: twice.length,
      presentedTwiceUnavoidable: twice.filter((entry) => entry.excuse).length,
      with503RetryAfter,
      without503RetryAfter,
      other5xx,
      noAnswer: data.calls.filter((c) => c.status === undefined).length,
      untraced: refreshes.filter((g) => data.pidOf(g.connection) === undefined).length,
      ...longestUnusable(data.calls),
    },
    violations: violations.sort((a, b) => a.at - b.at),
    excused: excused.sort((a, b) => a.at - b.at),
  };
}

/** Every refresh token presented more than once, with the attribution of the exception where it applies. */
function presentedTwice(data: RunData, refreshes: TokenGrantRecord[]): Twice[] {
  const grantOfToken = new Map<string, string>();
  for (const g of data.grants) {
    if (g.grantId && g.issued) grantOfToken.set(g.issued, g.grantId);
    if (g.grantId && g.presented) grantOfToken.set(g.presented, g.grantId);
  }
  const presented = new Set(refreshes.map((g) => g.presented));
  const byToken = new Map<string, TokenGrantRecord[]>();
  for (const g of refreshes) {
    if (!g.presented) continue;
    byToken.set(g.presented, [...(byToken.get(g.presented) ?? []), g]);
  }
  const result: Twice[] = [];
  for (const [token, presentations] of byToken) {
    if (presentations.length < 2) continue;
    presentations.sort((a, b) => a.at - b.at);
    const accepted = presentations.find((p) => p.ok);
    const again = presentations.find((p) => p !== accepted && (!accepted || p.at >= accepted.at)) ?? presentations[1]!;
    const grantId = grantOfToken.get(token);
    const entry: Twice = { token, presentations, againAt: again.at, ...(grantId ? { grantId } : {}) };
    result.push(entry);
    if (!accepted) {
      entry.reason = 'the provider never accepted it';
      continue;
    }
    const pid = data.pidOf(accepted.connection);
    const killedAt = pid === undefined ? undefined : data.killedAt(pid);
    const rotatedUsed = accepted.issued !== undefined && presented.has(accepted.issued);
    if (pid === undefined) entry.reason = 'the process that presented it first could not be told';
    else if (killedAt === undefined || killedAt > again.at) {
      entry.reason = `instance ${pid}, which presented it first, was alive when it was presented again`;
    } else if (rotatedUsed) {
      entry.reason = `the token it was rotated to (${accepted.issued}) was presented too: the store had it`;
    } else {
      const when = killedAt >= accepted.at ? `${killedAt - accepted.at} ms after` : `${accepted.at - killedAt} ms before (its request under way)`;
      entry.excuse = `instance ${pid} presented it at ${clock(data, accepted.at)} and was killed ${when} the provider decided, `
        + `before the token it was rotated to (${accepted.issued}) was presented by anyone`;
    }
  }
  return result;
}

/** Per session: from the first failing answer to the next 200; the longest of them. */
function longestUnusable(calls: CallRecord[]): Pick<Figures, 'longestUnusableMs' | 'longestUnusable'> {
  const bySession = new Map<string, CallRecord[]>();
  for (const call of calls) bySession.set(call.session, [...(bySession.get(call.session) ?? []), call]);
  let best: Pick<Figures, 'longestUnusableMs' | 'longestUnusable'> = { longestUnusableMs: 0 };
  for (const [session, list] of bySession) {
    let failingSince: number | undefined;
    for (const call of [...list].sort((a, b) => a.doneAt - b.doneAt)) {
      if (call.status === undefined) continue;
      if (call.status === 200) {
        if (failingSince !== undefined && call.doneAt - failingSince > best.longestUnusableMs) {
          best = { longestUnusableMs: call.doneAt - failingSince, longestUnusable: { session, from: failingSince, to: call.doneAt } };
        }
        failingSince = undefined;
      } else {
        failingSince ??= call.doneAt;
      }
    }
  }
  return best;
}

/** A moment as seconds into the run. */
export function clock(data: Pick<RunData, 'startedAt'>, at: number): string {
  return `t+${((at - data.startedAt) / 1000).toFixed(3)}s`;
}
