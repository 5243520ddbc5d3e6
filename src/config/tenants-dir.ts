/**
 * `tenantsDir: DIR`: one tenant per file (YAML or JSON, same shape as an entry of `tenants`), so a vendor can
 * template one file per customer. Files are read in name order and appended to the main file's `tenants`.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from './errors.js';
import { parseConfigFile } from './parse-file.js';

const TENANT_FILE = /\.(ya?ml|json)$/i;

export interface MergedTenants {
  raw: unknown;
  /** The directory's absolute path, when the file names one. */
  dir?: string;
  /** Which file each appended tenant index came from, to name it in error messages. */
  sources: Map<number, string>;
  /** Tenant files that could not be read or parsed (the others are merged, so their problems are found too). */
  issues: ConfigIssue[];
}

/** The tenant files of a directory, in name order (YAML or JSON, no hidden files). */
export function tenantFileNames(dir: string): string[] {
  return readdirSync(dir).filter((name) => TENANT_FILE.test(name) && !name.startsWith('.')).sort();
}

export function mergeTenantsDir(raw: unknown, baseDir: string): MergedTenants {
  const sources = new Map<number, string>();
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { raw, sources, issues: [] };
  const { tenantsDir, ...rest } = raw as Record<string, unknown>;
  if (tenantsDir === undefined) return { raw, sources, issues: [] };
  if (typeof tenantsDir !== 'string' || tenantsDir === '') throw new ConfigError([{ path: 'tenantsDir', message: 'must be the path of a directory of tenant files' }]);
  const dir = resolve(baseDir, tenantsDir);
  let names: string[];
  try {
    names = tenantFileNames(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([{ path: 'tenantsDir', message: code === 'ENOENT' ? `directory not found: ${dir}` : `cannot read ${dir} (${code ?? 'unknown error'})` }]);
  }
  const tenants = Array.isArray(rest.tenants) ? [...(rest.tenants as unknown[])] : [];
  const issues: ConfigIssue[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      sources.set(tenants.length, file);
      tenants.push(parseConfigFile(file));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues.push(...err.issues);
    }
  }
  return { raw: { ...rest, tenants }, dir, sources, issues };
}

/** Rewrites `tenants[i]…` paths of tenants that came from files so the operator sees which file to fix. */
export function nameTenantFiles(err: ConfigError, sources: Map<number, string>): ConfigError {
  if (sources.size === 0) return err;
  return new ConfigError(
    err.issues.map((issue) => {
      const match = /^tenants\[(\d+)\](.*)$/.exec(issue.path);
      const file = match ? sources.get(Number(match[1])) : undefined;
      return file ? { ...issue, path: `${file}: ${match![2]!.replace(/^\./, '') || '(the tenant)'}` } : issue;
    }),
  );
}
