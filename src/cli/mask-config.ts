/**
 * The effective configuration as `--check` prints it: everything the gateway will run with, minus what
 * would let a reader act as the gateway. Masked: client secrets, session key secrets, the private members
 * of JWKs, passwords (also inside URLs such as a Redis URL), and any Buffer (key material). CA bundles are
 * summarised. The walk is by key and shape, so fields added later are covered by the same rules.
 */

export const MASK = '[masked]';

/** Private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1; OKP `d`). */
const PRIVATE_JWK_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);
const SECRET_KEY = /secret|password|passphrase|credential|apikey|privatekey(?!jwk)/i;
/** scheme://user:password@ → scheme://user:[masked]@ */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#@]*@/i;

export function maskConfig(value: unknown): unknown {
  return mask(value, '');
}

function mask(value: unknown, key: string): unknown {
  if (value === null || value === undefined) return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return MASK;
  if (typeof value === 'string') {
    // A JWK given as a string (not parsed yet) is masked whole.
    if (SECRET_KEY.test(key) || /jwk/i.test(key)) return MASK;
    if (/pem$/i.test(key)) return summarisePem(value);
    return value.replace(URL_PASSWORD, `$1${MASK}@`);
  }
  if (typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => mask(item, key));
  if (SECRET_KEY.test(key)) return MASK;
  const record = value as Record<string, unknown>;
  const isJwk = typeof record.kty === 'string';
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    out[k] = isJwk && PRIVATE_JWK_MEMBERS.has(k) ? MASK : mask(v, k);
  }
  return out;
}

function summarisePem(pem: string): string {
  const count = pem.match(/-----BEGIN [A-Z0-9 ]+-----/g)?.length ?? 0;
  return `[PEM: ${count} ${count === 1 ? 'certificate' : 'certificates'}, ${pem.length} bytes]`;
}
