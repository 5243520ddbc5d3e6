/**
 * The app's URL paths as files: what a request path names inside the app's folder, or why it names
 * nothing. Pure functions, no file system.
 */

/** What a request path is, for the app. */
export type AppPath =
  | { kind: 'file'; segments: string[] }
  | { kind: 'refused'; reason: string };

/**
 * The path's segments, decoded, or `refused` for anything that could leave the folder or be read two
 * ways: `.` and `..` segments (plain or percent-encoded), an encoded `/` or `\`, any backslash, NUL or
 * other control characters, empty segments (`//`), dotfiles, and malformed percent-encoding.
 */
export function appPath(rawUrl: string): AppPath {
  const rawPath = rawUrl.split('?', 1)[0]!.split('#', 1)[0]!;
  if (!rawPath.startsWith('/')) return { kind: 'refused', reason: 'not an absolute path' };
  if (rawPath.includes('\\')) return { kind: 'refused', reason: 'backslash' };
  const rawSegments = rawPath.slice(1).split('/');
  // A trailing slash names the folder: treated like the same path without it.
  if (rawSegments.length > 1 && rawSegments.at(-1) === '') rawSegments.pop();
  const segments: string[] = [];
  for (const raw of rawSegments) {
    if (raw === '' && rawSegments.length === 1) break; // "/"
    if (raw === '') return { kind: 'refused', reason: 'empty segment' };
    if (/%(2f|5c|00)/i.test(raw)) return { kind: 'refused', reason: 'encoded separator or NUL' };
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return { kind: 'refused', reason: 'malformed percent-encoding' };
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f/\\]/.test(segment)) return { kind: 'refused', reason: 'control character or separator' };
    if (segment.startsWith('.')) return { kind: 'refused', reason: 'dot segment or dotfile' };
    segments.push(segment);
  }
  return { kind: 'file', segments };
}

/**
 * Content-hashed asset names, as Vite, webpack and esbuild write them: a `-` or `.` followed by a hash of
 * at least 8 characters from `[A-Za-z0-9_-]` that holds a digit, right before the extension
 * (`assets/index-3f9a1c2b.js`, `main.5d41402a.css`, `index-BxY3_z9k.js`). A name like
 * `component-library.js` is not hashed (no digit), so it is never cached as immutable.
 */
const HASHED = /[-.](?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9]+$/;

export function isContentHashed(fileName: string): boolean {
  return HASHED.test(fileName);
}

/** Cache-Control for a file of the app: hashed assets for a year, everything else revalidated. */
export function cacheControlFor(fileName: string): string {
  return isContentHashed(fileName) ? 'public, max-age=31536000, immutable' : 'no-cache';
}
