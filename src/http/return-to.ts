/** Nobody encodes a real path more often than this; anything deeper is an attempt to outlast the check. */
const MAX_DECODE_ROUNDS = 4;
/**
 * The longest `returnTo` accepted, in UTF-8 bytes (the contract's "Limits and hygiene"). `/auth/login` refuses a
 * longer one with 400; the resolved (percent-encoded) form is held to it too, since it is what the login
 * transaction cookie carries.
 */
export const MAX_RETURN_TO_BYTES = 2048;

/** True when a `returnTo` query value is over MAX_RETURN_TO_BYTES (counted in UTF-8 bytes, not characters). */
export function returnToTooLong(value: unknown): boolean {
  return typeof value === 'string' && Buffer.byteLength(value, 'utf8') > MAX_RETURN_TO_BYTES;
}

/**
 * `returnTo` must be a same-origin relative path. Anything else — protocol-relative (`//evil`), backslash
 * tricks (`/\evil`), schemes (`https:evil`, `javascript:`), encoded or mixed variants, control characters —
 * falls back to the tenant root. The check decodes repeatedly so `%2F%2Fevil` and `%252F%252F` lose too
 * (each layer is also resolved, so encoded dot segments like `/%252e//evil` lose), a value still encoded
 * after that many rounds loses, and the final answer is re-resolved against the origin to be sure it stays there.
 * A value, or a resolved form, over MAX_RETURN_TO_BYTES (characters percent-encoding triples them) loses too.
 */
export function safeReturnTo(value: unknown, publicUrl: string): string {
  return sameOriginPath(value, publicUrl) ?? '/';
}

/**
 * The path (and query) of a Referer on `publicUrl`'s origin, as a returnTo by the rules of safeReturnTo; the
 * tenant root for any other Referer or none. The page a call was made from, to come back to after a login.
 */
export function refererReturnTo(referer: unknown, publicUrl: string): string {
  if (typeof referer !== 'string') return '/';
  let url: URL;
  try {
    url = new URL(referer);
  } catch {
    return '/';
  }
  if (url.origin !== new URL(publicUrl).origin) return '/';
  return safeReturnTo(`${url.pathname}${url.search}`, publicUrl);
}

/**
 * `value` as a path on `publicUrl`'s origin (its resolved form: path, query and fragment), or undefined when it
 * is anything else, by the rules of safeReturnTo. What the gateway may put in a Location header or a page that
 * sends the browser on.
 */
export function sameOriginPath(value: unknown, publicUrl: string): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || returnToTooLong(value)) return undefined;
  if (!value.startsWith('/')) return undefined;
  let decoded = value;
  for (let round = 0; ; round++) {
    if (isUnsafe(decoded, publicUrl)) return undefined;
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
    if (next === decoded) break;
    if (round === MAX_DECODE_ROUNDS) return undefined;
    decoded = next;
  }
  let resolved: URL;
  try {
    resolved = new URL(value, publicUrl);
  } catch {
    return undefined;
  }
  const origin = new URL(publicUrl).origin;
  if (resolved.origin !== origin) return undefined;
  const path = `${resolved.pathname}${resolved.search}${resolved.hash}`;
  // The resolved form must itself be a plain path (URL parsing could have normalised something odd).
  if (Buffer.byteLength(path, 'utf8') > MAX_RETURN_TO_BYTES) return undefined;
  return path.startsWith('/') && !path.startsWith('//') && !path.startsWith('/\\') ? path : undefined;
}

function isUnsafe(path: string, publicUrl: string): boolean {
  if (!path.startsWith('/')) return true;
  if (path.startsWith('//') || path.startsWith('/\\')) return true;
  if (path.includes('\\')) return true;
  // Control characters, DEL and whitespace that browsers strip or fold.
  if (/[\u0000-\u001f\u007f\s]/.test(path)) return true;
  // Dot segments can collapse into a protocol-relative path (`/.//evil` resolves to `//evil`).
  try {
    return new URL(path, publicUrl).pathname.startsWith('//');
  } catch {
    return true;
  }
}
