/**
 * Extra CA certificates named in the configuration, read once at start-up so a missing or
 * garbled file stops the gateway before it serves anything.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads a PEM bundle; a relative path is taken from the configuration file's folder. */
export function readCertificates(file: string, baseDir: string): string {
  const fullPath = resolve(baseDir, file);
  let pem: string;
  try {
    pem = readFileSync(fullPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new Error(`cannot read ${fullPath} (${code})`);
  }
  const blocks = pem.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error(`${fullPath} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((block, index) => {
    try {
      new X509Certificate(block);
    } catch {
      throw new Error(`${fullPath}: certificate ${index + 1} is not a valid X.509 certificate`);
    }
  });
  return pem;
}
