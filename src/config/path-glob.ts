/**
 * Path globs (`app.publicPaths`): a URL path written with two wildcards, `*` (any characters within one
 * segment, none of them `/`) and `**` (a whole segment: any number of segments, none included). They match
 * the request's path, percent-decoded segment by segment, without its query; a trailing slash does not
 * count (`/info` and `/info/` are one page). Pure functions, no HTTP.
 */

/** A checked glob: its segments, each a literal, `**`, or a pattern with `*`. */
export interface PathGlob {
  /** As written, less a trailing slash. */
  readonly text: string;
  readonly segments: readonly (string | RegExp)[];
}

/** Marks `**` among a glob's segments. */
const ANY_SEGMENTS = '**';

/** Characters a glob may not hold, with the reason given for each. */
const REFUSED: Array<[RegExp, string]> = [
  // eslint-disable-next-line no-control-regex
  [/[\u0000-\u0020\u007f]/, 'must not contain spaces or control characters'],
  [/[?#]/, 'is a path only: no query (?) or fragment (#); the query is never matched'],
  [/\\/, 'must not contain a backslash'],
  [/%/, 'is matched against the decoded path: write characters as they are (/kvittering/æ), not percent-encoded'],
  [/[[\]{}!]/, 'has only two wildcards, * (within a segment) and ** (any number of segments); [ ] { } ! are not special and not allowed'],
];

/** Parses a glob, or throws an Error whose message says what is wrong with it. */
export function parsePathGlob(text: string): PathGlob {
  if (!text.startsWith('/')) throw new Error('must be a path starting with /');
  for (const [pattern, reason] of REFUSED) if (pattern.test(text)) throw new Error(reason);
  const trimmed = text.length > 1 && text.endsWith('/') ? text.slice(0, -1) : text;
  const written = trimmed === '/' ? [] : trimmed.slice(1).split('/');
  const segments = written.map((segment) => {
    if (segment === '') throw new Error('has an empty segment (//)');
    if (segment === '.' || segment === '..') throw new Error('must not contain . or .. segments');
    if (segment === ANY_SEGMENTS) return ANY_SEGMENTS;
    if (segment.includes('**')) throw new Error('** stands for whole segments only (/info/**), never inside one; use * within a segment');
    if (!segment.includes('*')) return segment;
    const source = segment.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
    return new RegExp(`^${source}$`, 'u');
  });
  return { text: trimmed, segments };
}

/** Whether the decoded path segments (`/a/b` → ['a', 'b']; `/` → []) match the glob. */
export function matchesPathGlob(glob: PathGlob, path: readonly string[]): boolean {
  // (glob segment, path segment) pairs already known not to match: each is tried once, however many ** there are.
  const failed = new Set<number>();
  const width = path.length + 1;
  const from = (g: number, p: number): boolean => {
    if (g === glob.segments.length) return p === path.length;
    if (failed.has(g * width + p)) return false;
    const segment = glob.segments[g]!;
    let matched: boolean;
    if (segment === ANY_SEGMENTS) {
      matched = false;
      for (let next = p; next <= path.length && !matched; next++) matched = from(g + 1, next);
    } else {
      matched = p < path.length && (typeof segment === 'string' ? segment === path[p] : segment.test(path[p]!)) && from(g + 1, p + 1);
    }
    if (!matched) failed.add(g * width + p);
    return matched;
  };
  return from(0, 0);
}
