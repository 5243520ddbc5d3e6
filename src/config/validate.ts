/**
 * Checks the raw (env-expanded) configuration against the TypeBox schema in schema.ts and turns ajv's
 * errors into issues an operator can act on: a config path, and what was expected there.
 * The schema is compiled from memory; config/schema.json is generated from the same object for tools
 * and is not read at run time.
 */

import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import type { ConfigIssue } from './errors.js';
import { childPath, parentPath, pointerToPath } from './path.js';
import { DURATION_FORM } from './duration.js';
import { ConfigSchema } from './schema.js';
import { SIZE_FORM } from './size.js';

type SchemaNode = { title?: string; expected?: string; properties?: Record<string, unknown> };

const ajv = new Ajv2020({
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  // verbose gives each error its parentSchema, which holds the allowed keys and the "expected" text.
  // It also attaches the offending data; that is never copied into a message, since it may be a secret.
  verbose: true,
});
// Annotation only: the sentence an operator reads when a `pattern` next to it fails.
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
const validator = ajv.compile(ConfigSchema);

/** Formats (by schema title) whose ajv errors are replaced by one message saying what form is expected. */
const FORM_MESSAGES: Record<string, string> = {
  duration: DURATION_FORM,
  size: SIZE_FORM,
};

/**
 * A schema problem, and the part of the configuration it makes unreliable for the rules checked after the
 * schema (`affects`): the value itself, or for a missing key or a wrong choice (`method`, `type`, `token`, whose
 * siblings are read according to it) the object holding it.
 */
export interface SchemaIssue extends ConfigIssue {
  affects: string;
}

export function validateAgainstSchema(value: unknown): SchemaIssue[] {
  if (validator(value)) return [];
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const error of validator.errors ?? []) {
    const issue = describe(error);
    if (!issue) continue;
    const key = `${issue.path}\n${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function describe(error: ErrorObject): SchemaIssue | undefined {
  const issue = describeIssue(error);
  if (!issue) return undefined;
  const at = pointerToPath(error.instancePath);
  // `required` is reported at the object missing the key; `enum` and `const` at the value, whose holder is meant.
  const affects = error.keyword === 'required' ? at : error.keyword === 'enum' || error.keyword === 'const' ? parentPath(at) : issue.path;
  return { ...issue, affects };
}

function describeIssue(error: ErrorObject): ConfigIssue | undefined {
  const path = pointerToPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  const parent = (error.parentSchema ?? {}) as SchemaNode;

  // "must match then schema" only repeats the errors already reported from inside the branch.
  if (error.keyword === 'if') return undefined;

  const form = parent.title === undefined ? undefined : FORM_MESSAGES[parent.title];
  if (form) return { path, message: form };

  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(parent.properties ?? {});
      const suggestion = closest(key, allowed);
      const hint = suggestion ? `did you mean "${suggestion}"?` : `allowed: ${allowed.join(', ')}`;
      return { path: childPath(path, key), message: `unknown key "${key}" (${hint})` };
    }
    case 'required':
      return { path: childPath(path, String(params.missingProperty)), message: 'is required' };
    case 'enum':
      return { path, message: `must be one of ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'const':
      return { path, message: `must be ${String(params.allowedValue)}` };
    case 'type':
      return { path, message: `must be ${describeType(params.type)}` };
    case 'minItems':
      return { path, message: `must list at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}` };
    case 'minLength':
      return { path, message: 'must not be empty' };
    case 'pattern':
      return { path, message: parent.expected ?? 'has the wrong form' };
    default:
      return { path, message: error.message ?? 'is invalid' };
  }
}

function describeType(type: unknown): string {
  const names: Record<string, string> = {
    object: 'an object',
    array: 'a list',
    string: 'a string',
    number: 'a number',
    integer: 'a whole number',
    boolean: 'true or false',
  };
  const types = String(type).split(',');
  return types.map((t) => names[t] ?? t).join(' or ');
}

/** The allowed key within two edits of a typo, so `tokn` suggests `token`. */
function closest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
