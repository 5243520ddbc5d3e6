/**
 * `tenants[].app`: the SPA served on the tenant's origin, from a folder of built files or from an
 * upstream (a dev server or a frontend container). Exactly one of the two.
 */

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { IssueList } from './errors.js';
import { normaliseAppHeaders } from './headers.js';
import { childPath } from './path.js';
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
