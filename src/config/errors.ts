/**
 * The one error type configuration loading throws. It carries every problem found, each with the
 * exact place it was found (`tenants[0].idporten.clientAuth.method`), so an operator can fix the
 * file in one pass instead of one error per restart.
 */

export interface ConfigIssue {
  /** Where the problem is: a config path, a `file:line:column`, or '' for the configuration as a whole. */
  path: string;
  /** What was expected. Never contains a secret value from the configuration. */
  message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`;
}

/** Collects issues while a stage runs, then throws them together. */
export class IssueList {
  readonly items: ConfigIssue[] = [];

  add(path: string, message: string): void {
    this.items.push({ path, message });
  }

  /** Runs `parse` and records its error message under `path`; returns undefined on failure. */
  attempt<T>(path: string, parse: () => T): T | undefined {
    try {
      return parse();
    } catch (err) {
      this.add(path, err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.items.length > 0) throw new ConfigError(this.items);
  }
}
