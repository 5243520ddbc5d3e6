import type { TokenKind } from './kind.js';

/** A public pass-through route: no session needed, no bearer sent. */
export const noneKind: TokenKind = {
  name: 'none',
  needsSession: false,
  async bearer() {
    return undefined;
  },
};
