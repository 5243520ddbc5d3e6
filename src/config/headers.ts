/**
 * Header names and values written in the configuration: the extra request headers a route forwards
 * upstream, and the response headers an app adds. Names come out lower-cased, as Node presents them.
 */

import type { IssueList } from './errors.js';
import { childPath } from './path.js';

/** RFC 9110 section 5.1: a field name is a token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 section 5.5: visible characters, spaces and tabs; no CR, LF or other control characters. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Connection-specific headers (RFC 9110 section 7.6.1), meaningless beyond one hop. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

/** Why a browser's header may never be forwarded upstream; undefined when it may. */
function notForwardable(name: string): string | undefined {
  if (name === 'authorization') return 'is never forwarded: the gateway sets the upstream\'s Authorization itself';
  if (name === 'cookie') return 'is never forwarded: the browser\'s cookies carry its session and stay with the gateway';
  if (name === 'host') return 'is never forwarded: the gateway sets Host for the upstream';
  if (name === 'forwarded' || name.startsWith('x-forwarded-')) {
    return 'is never forwarded from the browser: the gateway sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself';
  }
  if (HOP_BY_HOP.has(name)) return 'is a hop-by-hop header (RFC 9110 section 7.6.1) and applies to one connection only';
  return undefined;
}

/** `routes[].forwardHeaders`: lower-cased, repeats dropped, the refused names reported. */
export function normaliseForwardHeaders(names: readonly string[], path: string, issues: IssueList): string[] {
  const out: string[] = [];
  names.forEach((written, index) => {
    const name = written.toLowerCase();
    const reason = notForwardable(name);
    if (reason) issues.add(childPath(path, index), `${name} ${reason}`);
    else if (!out.includes(name)) out.push(name);
  });
  return out;
}

/** Response headers the app side must not set from configuration. */
function notSettable(name: string): string | undefined {
  if (name === 'set-cookie') return 'cannot be set: the app side never sets cookies on the gateway\'s origin';
  if (name === 'strict-transport-security') return 'is set for the whole origin by the tenant\'s hsts setting, not per app answer';
  if (name === 'content-length' || HOP_BY_HOP.has(name)) return 'cannot be set: it describes one message or one connection, and the server writes it';
  return undefined;
}

/** `app.headers`: names checked and lower-cased (one spelling per name), values free of line breaks. */
export function normaliseAppHeaders(headers: Readonly<Record<string, string>>, path: string, issues: IssueList): Record<string, string> {
  const out: Record<string, string> = {};
  const writtenAs = new Map<string, string>();
  for (const [written, value] of Object.entries(headers)) {
    const at = childPath(path, written);
    if (!HEADER_NAME.test(written)) {
      issues.add(at, "is not an HTTP header name: letters, digits and !#$%&'*+.^_`|~- (RFC 9110 section 5.1)");
      continue;
    }
    const name = written.toLowerCase();
    const earlier = writtenAs.get(name);
    if (earlier !== undefined) {
      issues.add(at, `repeats ${childPath(path, earlier)}; header names are case-insensitive`);
      continue;
    }
    writtenAs.set(name, written);
    const reason = notSettable(name);
    if (reason) issues.add(at, reason);
    else if (!HEADER_VALUE.test(value)) issues.add(at, 'must not contain line breaks or other control characters');
    else out[name] = value.trim();
  }
  return out;
}
