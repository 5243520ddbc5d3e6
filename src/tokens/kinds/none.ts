import type { TokenKind } from './kind.js';

const NO_BEARER = Object.freeze({ value: undefined });

/** A public pass-through route: no session needed, no bearer sent. */
export const noneKind: TokenKind = {
  name: 'none',
  needsSession: false,
  async bearer() {
    return undefined;
  },
  bearerNow: () => NO_BEARER,
};
