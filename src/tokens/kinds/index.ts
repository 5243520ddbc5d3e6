import { altinnKind } from './altinn.js';
import { idportenKind } from './idporten.js';
import type { TokenKind } from './kind.js';
import { noneKind } from './none.js';

/** Every token kind a route may name; config validation checks `routes[].token` against these names. */
export const TOKEN_KINDS: ReadonlyMap<string, TokenKind> = new Map([idportenKind, altinnKind, noneKind].map((kind) => [kind.name, kind]));

export type { TokenKind, TokenSource } from './kind.js';
