import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { DEVIATING_MVA_MELDING, INVALID_MVA_MELDING, VALID_MVA_MELDING } from './samples.js';

/** The demo SPA's folder: config/demo.yaml serves it as the tenant's `app.static`, like any built SPA. */
export const DEMO_SPA_DIR = new URL('./spa/', import.meta.url);

/**
 * The sample returns the SPA validates and submits, written into its folder as `samples/*.xml` (from
 * samples.ts, which the tests use too). Files are rewritten only when they differ.
 */
export async function writeDemoSamples(): Promise<void> {
  const dir = new URL('samples/', DEMO_SPA_DIR);
  await mkdir(dir, { recursive: true });
  const samples = { 'valid.xml': VALID_MVA_MELDING, 'deviating.xml': DEVIATING_MVA_MELDING, 'invalid.xml': INVALID_MVA_MELDING };
  for (const [name, content] of Object.entries(samples)) {
    const file = new URL(name, dir);
    const current = await readFile(file, 'utf8').catch(() => undefined);
    if (current !== content) await writeFile(file, content);
  }
}
