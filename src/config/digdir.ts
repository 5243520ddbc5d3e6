/**
 * The top-level `digdir` block: the vendor's admin client for Digdir's self-service API. Its key is checked here,
 * at load, so a wrong key fails `--check` rather than the first `integrations` run.
 */

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { parsePrivateJwk } from './client-auth.js';
import type { IssueList } from './errors.js';
import { childPath } from './path.js';
import type { RawDigdir } from './schema.js';
import type { DigdirConfig } from './types.js';
import { parseBaseUrl, parseIssuer } from './urls.js';

/** Where the admin API and Maskinporten are in each environment (Digdir's documentation, 2024-10). */
export const DIGDIR_ENVIRONMENTS = {
  test: { adminApiUrl: 'https://api.test.samarbeid.digdir.no/', maskinportenIssuer: 'https://test.maskinporten.no/' },
  prod: { adminApiUrl: 'https://api.samarbeid.digdir.no/', maskinportenIssuer: 'https://maskinporten.no/' },
} as const;

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/g;

export function normaliseDigdir(raw: RawDigdir, path: string, issues: IssueList): DigdirConfig | undefined {
  const at = (key: string) => childPath(path, key);
  const preset = DIGDIR_ENVIRONMENTS[raw.environment];
  const adminApiUrl = issues.attempt(at('adminApiUrl'), () => `${parseBaseUrl(raw.adminApiUrl ?? preset.adminApiUrl)}/`);
  // The grant's aud is the issuer verbatim, trailing slash and all.
  const maskinportenIssuer = issues.attempt(at('maskinportenIssuer'), () => parseIssuer(raw.maskinportenIssuer ?? preset.maskinportenIssuer));
  const key = issues.attempt(at('key'), () => normaliseKey(raw.key));
  if (adminApiUrl === undefined || maskinportenIssuer === undefined || key === undefined) return undefined;
  return { environment: raw.environment, clientId: raw.clientId, key, adminApiUrl, maskinportenIssuer };
}

function normaliseKey(raw: RawDigdir['key']): DigdirConfig['key'] {
  const hasCertificate = raw.certificateChain !== undefined || raw.privateKey !== undefined;
  if ((raw.jwk !== undefined) === hasCertificate) throw new Error('give either jwk, or certificateChain and privateKey');
  if (raw.jwk !== undefined) {
    const jwk = parsePrivateJwk(raw.jwk);
    if (jwk.kty !== 'RSA') throw new Error('jwk must be an RSA key: Maskinporten takes RS256, RS384 or RS512');
    if (typeof jwk.kid !== 'string') throw new Error("jwk needs the kid it is registered under on the admin client");
    return { kind: 'jwk', jwk };
  }
  if (raw.certificateChain === undefined || raw.privateKey === undefined) throw new Error('certificateChain and privateKey go together');
  const x5c = [...raw.certificateChain.matchAll(CERTIFICATE_BLOCK)].map((m) => m[1]!.replace(/\s+/g, ''));
  if (x5c.length === 0) throw new Error('certificateChain holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(Buffer.from(x5c[0]!, 'base64'));
  } catch {
    throw new Error('certificateChain: the first certificate is not a valid X.509 certificate');
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(raw.privateKey);
  } catch {
    // The parser's message may quote key material.
    throw new Error('privateKey is not a usable PEM private key');
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new Error("privateKey does not belong to certificateChain's first certificate");
  return { kind: 'certificate', x5c, privateKeyPem: raw.privateKey };
}
