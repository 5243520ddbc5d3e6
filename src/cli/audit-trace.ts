/**
 * `idporten-bff audit trace VALUE [FILE]`: one session's or one token's life, from a JSON log.
 *
 * A line is in the trace when any of its fields (at any depth) equals a traced value. The traced values
 * start as VALUE and grow by following links until nothing changes:
 * - a traced line's `session` (so every line of that session follows);
 * - token.refresh: `oldAccessToken` traced → `accessToken`; `oldRefreshToken` traced → `refreshToken`;
 * - token.exchange: `accessToken` traced → `altinnToken`;
 * - login.success: `replacedSession` traced → its `session` (a new login in the same browser).
 * - the token fingerprints a traced line carries (so a line about one of them without a session follows).
 * Sessions link forward only: tracing a session does not pull in the session it replaced.
 */

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export type LogLine = Record<string, unknown>;

/** Fields that carry a token fingerprint (see docs/audit.md). */
const TOKEN_FIELDS = ['accessToken', 'refreshToken', 'idToken', 'altinnToken', 'oldAccessToken', 'oldRefreshToken', 'token'];

export interface Trace {
  /** The matching lines, in time order (input order where times are equal or missing). */
  lines: LogLine[];
  /** The raw text of each line in `lines` (for --json). */
  raw: string[];
  sessions: string[];
  /** Token links followed: [from, to, how]. */
  links: [string, string, string][];
  /** Input lines that were not JSON objects. */
  skipped: number;
}

/** Follows VALUE through parsed log lines. */
export function traceLines(value: string, input: { line: LogLine; raw: string }[]): Omit<Trace, 'skipped'> {
  const index = new Map<string, number[]>();
  input.forEach(({ line }, i) => {
    for (const v of new Set(stringValues(line, 0))) {
      let list = index.get(v);
      if (!list) index.set(v, (list = []));
      list.push(i);
    }
  });

  const traced = new Set<string>();
  const queue: string[] = [];
  const included = new Set<number>();
  const links: [string, string, string][] = [];
  const linkKeys = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v !== 'string' || v === '' || traced.has(v)) return;
    traced.add(v);
    queue.push(v);
  };
  const link = (from: unknown, to: unknown, how: string) => {
    if (typeof from !== 'string' || typeof to !== 'string') return;
    const key = `${from} ${to}`;
    if (!linkKeys.has(key)) {
      linkKeys.add(key);
      links.push([from, to, how]);
    }
    add(to);
  };
  add(value);
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const i of index.get(v) ?? []) included.add(i);
    // Links are re-examined on every line in the trace: a value traced later can open a link on an earlier line.
    for (const i of included) {
      const line = input[i]!.line;
      add(line.session);
      // The tokens a traced line names are part of the trace: lines about them without a session (a failed
      // revocation) follow.
      for (const field of TOKEN_FIELDS) add(line[field]);
      const has = (field: string) => typeof line[field] === 'string' && traced.has(line[field] as string);
      if (line.event === 'token.refresh') {
        if (has('oldAccessToken')) link(line.oldAccessToken, line.accessToken, 'refresh (access token)');
        if (has('oldRefreshToken')) link(line.oldRefreshToken, line.refreshToken, 'refresh (refresh token)');
      } else if (line.event === 'token.exchange') {
        if (has('accessToken')) link(line.accessToken, line.altinnToken, 'altinn exchange');
      } else if (line.event === 'login.success') {
        if (has('replacedSession')) link(line.replacedSession, line.session, 'new login replaced session');
      }
    }
  }
  const order = [...included].sort((a, b) => {
    const ta = typeof input[a]!.line.time === 'string' ? (input[a]!.line.time as string) : '';
    const tb = typeof input[b]!.line.time === 'string' ? (input[b]!.line.time as string) : '';
    return ta === tb || ta === '' || tb === '' ? a - b : ta < tb ? -1 : 1;
  });
  const lines = order.map((i) => input[i]!.line);
  const sessions = [...new Set(lines.map((l) => l.session).filter((s): s is string => typeof s === 'string'))];
  return { lines, raw: order.map((i) => input[i]!.raw), sessions, links };
}

function stringValues(value: unknown, depth: number): string[] {
  if (typeof value === 'string') return [value];
  if (depth > 4 || value === null || typeof value !== 'object') return [];
  const values = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  return values.flatMap((v) => stringValues(v, depth + 1));
}

/** Reads JSON lines from a stream; anything else (a stack trace, a banner) is counted and skipped. */
export async function readLog(stream: Readable): Promise<{ input: { line: LogLine; raw: string }[]; skipped: number }> {
  const input: { line: LogLine; raw: string }[] = [];
  let skipped = 0;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  for await (const raw of rl) {
    const text = raw.trim();
    if (text === '') continue;
    if (!text.startsWith('{')) {
      skipped++;
      continue;
    }
    try {
      const line: unknown = JSON.parse(text);
      if (line !== null && typeof line === 'object' && !Array.isArray(line)) input.push({ line: line as LogLine, raw: text });
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { input, skipped };
}

const HIDDEN = new Set(['time', 'level', 'service', 'audit', 'event', 'msg', 'hostname', 'pid']);
const FIRST = ['tenant', 'session', 'sub'];

/** One line of the timeline: time, event (or level and message for a process log line), then the fields. */
export function formatLine(line: LogLine): string {
  const time = typeof line.time === 'string' ? line.time : typeof line.time === 'number' ? new Date(line.time).toISOString() : '-';
  const what = typeof line.event === 'string' ? line.event : `(${String(line.level ?? 'log')}) ${String(line.msg ?? '')}`;
  const keys = [...FIRST.filter((k) => k in line), ...Object.keys(line).filter((k) => !FIRST.includes(k) && !HIDDEN.has(k))];
  const fields = keys
    .filter((k) => line[k] !== undefined)
    .map((k) => `${k}=${typeof line[k] === 'string' ? (line[k] as string) : JSON.stringify(line[k])}`);
  return `${time}  ${what.padEnd(22)} ${fields.join(' ')}`.trimEnd();
}

export function formatTrace(value: string, trace: Trace): string {
  const out = [`# trace of ${value}: ${trace.lines.length} ${trace.lines.length === 1 ? 'line' : 'lines'}`];
  if (trace.sessions.length > 0) out.push(`# sessions: ${trace.sessions.join(', ')}`);
  for (const [from, to, how] of trace.links) out.push(`# ${from} → ${to}  (${how})`);
  if (trace.skipped > 0) out.push(`# ${trace.skipped} input lines were not JSON and were skipped`);
  for (const line of trace.lines) out.push(formatLine(line));
  return `${out.join('\n')}\n`;
}

/** The command: returns its exit status. */
export async function runAuditTrace(opts: { value: string; file: string | undefined; json: boolean }, io: { stdin: Readable; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  let stream: Readable = io.stdin;
  if (opts.file !== undefined) {
    stream = createReadStream(opts.file);
    const opened = await new Promise<Error | undefined>((resolve) => {
      stream.once('open', () => resolve(undefined));
      stream.once('error', (err) => resolve(err));
    });
    if (opened) {
      io.stderr.write(`idporten-bff: cannot read ${opts.file}: ${(opened as NodeJS.ErrnoException).code ?? opened.message}\n`);
      return 2;
    }
  }
  const { input, skipped } = await readLog(stream);
  const trace = { ...traceLines(opts.value, input), skipped };
  if (trace.lines.length === 0) {
    io.stderr.write(`idporten-bff: nothing in the log mentions ${opts.value} (${input.length} JSON lines read)\n`);
    return 1;
  }
  io.stdout.write(opts.json ? `${trace.raw.join('\n')}\n` : formatTrace(opts.value, trace));
  return 0;
}
