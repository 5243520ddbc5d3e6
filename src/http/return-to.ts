/** Nobody encodes a real path more often than this; anything deeper is an attempt to outlast the check. */
const MAX_DECODE_ROUNDS = 4;

/**
 * `returnTo` must be a same-origin relative path. Anything else — protocol-relative (`//evil`), backslash
 * tricks (`/\evil`), schemes (`https:evil`, `javascript:`), encoded or mixed variants, control characters —
 * falls back to the tenant root. The check decodes repeatedly so `%2F%2Fevil` and `%252F%252F` lose too
 * (each layer is also resolved, so encoded dot segments like `/%252e//evil` lose), a value still encoded
 * after that many rounds loses, and the final answer is re-resolved against the origin to be sure it stays there.
 */
export function safeReturnTo(value: unknown, publicUrl: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return '/';
  if (!value.startsWith('/')) return '/';
  let decoded = value;
  for (let round = 0; ; round++) {
    if (isUnsafe(decoded, publicUrl)) return '/';
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return '/';
    }
    if (next === decoded) break;
    if (round === MAX_DECODE_ROUNDS) return '/';
    decoded = next;
  }
  let resolved: URL;
  try {
    resolved = new URL(value, publicUrl);
  } catch {
    return '/';
  }
  const origin = new URL(publicUrl).origin;
  if (resolved.origin !== origin) return '/';
  const path = `${resolved.pathname}${resolved.search}${resolved.hash}`;
  // The resolved form must itself be a plain path (URL parsing could have normalised something odd).
  return path.startsWith('/') && !path.startsWith('//') && !path.startsWith('/\\') ? path : '/';
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
