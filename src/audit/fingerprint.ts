import { createHash } from 'node:crypto';

/** First 12 base64url chars of SHA-256: lets a reviewer follow one token through the log without seeing it. */
export function fingerprint(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return createHash('sha256').update(value).digest('base64url').slice(0, 12);
}
