import type { AcrLevel } from '../config/types.js';

/** ID-porten's assurance levels, lowest first: a login at `high` satisfies a request for `substantial`. */
const ACR_RANK: Record<AcrLevel, number> = { 'idporten-loa-substantial': 1, 'idporten-loa-high': 2 };

export function isAcrLevel(value: unknown): value is AcrLevel {
  return typeof value === 'string' && Object.hasOwn(ACR_RANK, value);
}

/** True when `actual` is at least `required`; an unknown required level is satisfied by nothing. */
export function acrSatisfies(actual: unknown, required: string): actual is AcrLevel {
  return isAcrLevel(actual) && isAcrLevel(required) && ACR_RANK[actual] >= ACR_RANK[required];
}
