/** What a benchmark hands back: a Markdown section for the results and the targets it checked. */
export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

export interface Section {
  title: string;
  markdown: string;
  checks: Check[];
}

export function table(header: string[], rows: (string | number)[][]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export const fixed = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const ms = (n: number): string => fixed(n, n < 10 ? 2 : 1);
export const mib = (bytes: number): string => fixed(bytes / (1024 * 1024), 1);
export const ratio = (n: number): string => `${fixed(n, 2)}×`;
export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
export const mean = (xs: number[]): number => sum(xs) / xs.length;
export const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
/** The median ratio, and the range when there is more than one. */
export function spread(ratios: number[]): string {
  if (ratios.length === 1) return ratio(ratios[0]!);
  return `${ratio(median(ratios))} (${fixed(Math.min(...ratios), 2)}–${fixed(Math.max(...ratios), 2)})`;
}
export const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis));
export const percent = (share: number): string => `${fixed(share * 100)} %`;
