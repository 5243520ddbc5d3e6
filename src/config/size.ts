/**
 * Sizes as users write them: a number of bytes, or a string with a decimal (KB, MB, GB = powers
 * of 1000) or binary (KiB, MiB, GiB = powers of 1024) unit. The result is bytes.
 */

const UNIT_BYTES = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
} as const;
const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/;

export const SIZE_FORM =
  'must be a positive size: a number of bytes, or a string like "512KB", "30MB" or "25MiB"';

export function parseSizeBytes(value: unknown): number {
  let bytes: number;
  if (typeof value === 'number' && Number.isFinite(value)) {
    bytes = value;
  } else if (typeof value === 'string') {
    const match = SIZE.exec(value.trim());
    if (!match) throw new Error(SIZE_FORM);
    const unit = (match[2] ?? 'B') as keyof typeof UNIT_BYTES;
    bytes = Number(match[1]) * UNIT_BYTES[unit];
  } else {
    throw new Error(SIZE_FORM);
  }
  bytes = Math.floor(bytes);
  if (bytes < 1 || !Number.isSafeInteger(bytes)) throw new Error(SIZE_FORM);
  return bytes;
}
