import { hash } from 'node:crypto';

/** First 12 base64url chars of SHA-256: lets a reviewer follow one token through the log without seeing it. */
export function fingerprint(value: string | undefined): string | undefined {
  if (!value) return undefined;
  // One-shot crypto.hash: no Hash object per call.
  return hash('sha256', value, 'base64url').slice(0, 12);
}
