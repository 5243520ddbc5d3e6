/**
 * `${NAME}` expansion inside every string of the parsed configuration. It runs after parsing, so a
 * variable's value is always plain text and can never add keys or change the file's structure.
 * `$${NAME}` stands for a literal `${NAME}`.
 */

import type { ConfigIssue } from './errors.js';
import { childPath } from './path.js';

const REFERENCE = /\$(\$?)\{([^}]*)\}/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface Expanded {
  value: unknown;
  /** One issue per missing or malformed reference, at the path where it was used. */
  issues: ConfigIssue[];
}

export function expandEnv(raw: unknown, env: NodeJS.ProcessEnv): Expanded {
  const issues: ConfigIssue[] = [];
  const value = expandValue(raw, '', env, issues);
  return { value, issues };
}

function expandValue(value: unknown, path: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): unknown {
  if (typeof value === 'string') return expandString(value, path, env, issues);
  if (Array.isArray(value)) return value.map((item, index) => expandValue(item, childPath(path, index), env, issues));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = expandValue(item, childPath(path, key), env, issues);
    return out;
  }
  return value;
}

function expandString(text: string, path: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): string {
  return text.replace(REFERENCE, (whole, escape: string, name: string) => {
    if (escape === '$') return whole.slice(1);
    if (!VARIABLE_NAME.test(name)) {
      issues.push({ path, message: `"\${${name}}" is not a valid environment variable reference (use \${NAME} with letters, digits and _)` });
      return whole;
    }
    const found = env[name];
    if (found === undefined) {
      issues.push({ path, message: `environment variable ${name} is not set` });
      return whole;
    }
    return found;
  });
}
