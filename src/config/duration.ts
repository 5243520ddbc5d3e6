/**
 * Durations as users write them: a number of seconds, or a string with a unit.
 * The result is milliseconds, which is what timers and the rest of the gateway use.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
/** setTimeout silently fires at once for delays above 2^31-1 ms, so longer durations cannot work. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const DURATION_FORM =
  'must be a positive duration: a number of seconds, or a string like "500ms", "120s", "30m", "8h" or "1d"';

export function parseDurationMs(value: unknown): number {
  const ms = parseUnboundedDurationMs(value);
  if (ms > MAX_TIMER_MS) throw new Error('must be at most 24 days (the longest delay a timer supports)');
  return ms;
}

/** A duration with no upper bound, for one that is never a timer's delay (a header's max-age). */
export function parseUnboundedDurationMs(value: unknown): number {
  let ms: number;
  if (typeof value === 'number' && Number.isFinite(value)) {
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const match = DURATION.exec(value.trim());
    if (!match) throw new Error(DURATION_FORM);
    const unit = (match[2] ?? 's') as keyof typeof UNIT_MS;
    ms = Number(match[1]) * UNIT_MS[unit];
  } else {
    throw new Error(DURATION_FORM);
  }
  ms = Math.round(ms);
  if (ms <= 0) throw new Error(DURATION_FORM);
  return ms;
}

export function formatDuration(ms: number): string {
  if (ms % UNIT_MS.h === 0) return `${ms / UNIT_MS.h}h`;
  if (ms % UNIT_MS.m === 0) return `${ms / UNIT_MS.m}m`;
  if (ms % UNIT_MS.s === 0) return `${ms / UNIT_MS.s}s`;
  return `${ms}ms`;
}
