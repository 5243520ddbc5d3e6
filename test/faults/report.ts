/** The figures of fault-injection runs as a Markdown table, and their violations as lines a person can follow. */
import { table } from '../../bench/report.js';
import { clock, type Excused, type Violation } from './invariants.js';
import type { ScenarioResult } from './scenario.js';

export function figuresTable(results: ScenarioResult[]): string {
  return table(
    ['fault', 'seed', 's', 'requests', 'refreshes', 'lost (unavoidable)', 'presented twice (unavoidable)', '503 with / without Retry-After', 'other 5xx', 'no answer', 'longest unusable'],
    results.map(({ options, figures: f }) => [
      options.fault,
      options.seed,
      options.seconds,
      f.requests,
      f.refreshes,
      `${f.lost} (${f.lostUnavoidable})`,
      `${f.presentedTwice} (${f.presentedTwiceUnavoidable})`,
      `${f.with503RetryAfter} / ${f.without503RetryAfter}`,
      f.other5xx,
      f.noAnswer,
      `${(f.longestUnusableMs / 1000).toFixed(1)} s`,
    ]),
  );
}

/** Each violation as a line (at most `limit` per invariant, then how many more). */
export function violationLines(result: ScenarioResult, limit = 8): string[] {
  return grouped(result, result.violations, (v) => v.invariant, limit);
}

/** Each excused loss or double presentation as a line. */
export function excusedLines(result: ScenarioResult, limit = 8): string[] {
  return grouped(result, result.excused, (e) => `${e.what} (unavoidable)`, limit);
}

function grouped<T extends Violation | Excused>(result: ScenarioResult, items: T[], group: (item: T) => string, limit: number): string[] {
  const lines: string[] = [];
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(group(item), [...(groups.get(group(item)) ?? []), item]);
  for (const [name, list] of groups) {
    lines.push(`${result.options.fault} (seed ${result.options.seed}): ${name}: ${list.length}`);
    for (const item of list.slice(0, limit)) lines.push(`  ${describe(result, item)}`);
    if (list.length > limit) lines.push(`  … and ${list.length - limit} more`);
  }
  return lines;
}

export function describe(result: ScenarioResult, item: Violation | Excused): string {
  const who = [item.session ? `session ${item.session}` : undefined, item.token ? `refresh token ${item.token}` : undefined].filter(Boolean).join(', ');
  return `${clock(result.data, item.at)} ${who}${who ? ': ' : ''}${item.detail}`;
}

/** The faults that struck, counted by kind. */
export function faultSummary(result: ScenarioResult): string {
  const counts = new Map<string, number>();
  for (const event of result.events) counts.set(event.kind, (counts.get(event.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ') || 'no faults';
}
