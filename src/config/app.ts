/**
 * `tenants[].app`: the SPA served on the tenant's origin, from a folder of built files or from an
 * upstream (a dev server or a frontend container). Exactly one of the two.
 */

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { IssueList } from './errors.js';
import { normaliseAppHeaders } from './headers.js';
import { childPath } from './path.js';
import { parsePathGlob } from './path-glob.js';
import type { RawTenant } from './schema.js';
import type { AppConfig } from './types.js';
import { parseBaseUrl } from './urls.js';

type RawApp = NonNullable<RawTenant['app']>;

/** Returns undefined when the app has errors (they are in `issues`). */
export function normaliseApp(raw: RawApp, path: string, baseDir: string, issues: IssueList): AppConfig | undefined {
  const before = issues.items.length;
  if (raw.static !== undefined && raw.upstream !== undefined) {
    issues.add(childPath(path, 'upstream'), `cannot be combined with ${childPath(path, 'static')}; give exactly one of static or upstream`);
  } else if (raw.static === undefined && raw.upstream === undefined) {
    issues.add(path, 'needs exactly one of static (a folder of built files) or upstream (a URL)');
  }
  const options = {
    requireLogin: raw.requireLogin ?? false,
    publicPaths: publicPaths(raw.publicPaths ?? [], childPath(path, 'publicPaths'), issues),
    headers: normaliseAppHeaders(raw.headers ?? {}, childPath(path, 'headers'), issues),
  };
  const staticDir = raw.static;
  const dir = staticDir === undefined ? undefined : issues.attempt(childPath(path, 'static'), () => directory(staticDir, baseDir));
  const upstreamUrl = raw.upstream;
  const url = upstreamUrl === undefined ? undefined : issues.attempt(childPath(path, 'upstream'), () => parseBaseUrl(upstreamUrl));

  if (issues.items.length > before) return undefined;
  if (dir !== undefined) return { kind: 'static', dir, ...options };
  if (url !== undefined) return { kind: 'upstream', url, ...options };
  return undefined;
}

/** The paths the gateway itself answers: a glob under them would never reach the app. */
const GATEWAY_PATHS = new Set(['auth', 'healthz', 'readyz', 'metrics']);

/** `app.publicPaths`: each glob checked (path-glob.ts), written once, none under the gateway's own paths. */
function publicPaths(globs: readonly string[], path: string, issues: IssueList): string[] {
  const out: string[] = [];
  globs.forEach((written, index) => {
    const glob = issues.attempt(childPath(path, index), () => parsePathGlob(written));
    if (!glob) return;
    const first = glob.segments[0];
    if (typeof first === 'string' && GATEWAY_PATHS.has(first)) {
      issues.add(childPath(path, index), `/${first} belongs to the gateway, never the app: requireLogin does not apply there`);
    } else if (!out.includes(glob.text)) {
      out.push(glob.text);
    }
  });
  return out;
}

/** An existing directory; a relative path is taken from the configuration file's folder. */
function directory(dir: string, baseDir: string): string {
  const fullPath = resolve(baseDir, dir);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(fullPath).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new Error(`cannot read ${fullPath} (${code})`);
  }
  if (!isDirectory) throw new Error(`${fullPath} is not a directory`);
  return fullPath;
}
