import { readFileSync } from 'node:fs';

/** The package version, from package.json next to src/ (development) or dist/ (the build and the image). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: string; version?: string };
  return pkg.version ?? '0.0.0';
}
