/**
 * The file's shape once it has passed config/schema.json: every optional key may be missing,
 * durations and sizes are still as written. normalise.ts turns this into GatewayConfig.
 */

import type { RawClientAuth } from './client-auth.js';
import type { Environment } from './presets.js';
import type { AcrLevel, SameSite, ServerConfig, TokenKind } from './types.js';

export type RawDuration = number | string;

export interface RawConfig {
  server?: {
    host?: string;
    port?: number;
    trustProxy?: boolean | string[];
    shutdownTimeout?: RawDuration;
    metricsPort?: number;
    logLevel?: ServerConfig['logLevel'];
  };
  session: {
    store?: { type: 'memory'; maxSessions?: number } | { type: 'redis'; url: string; keyPrefix?: string };
    absoluteLifetime?: RawDuration;
    idleTimeout?: RawDuration;
    cookieName?: string;
    sameSite?: SameSite;
    refreshLeeway?: RawDuration;
    keys: Array<{ id: string; secret: string }>;
  };
  tenants: RawTenant[];
}

export interface RawTenant {
  id: string;
  publicUrl: string;
  upstreamCaFile?: string;
  idporten: RawIdporten;
  altinn?: { exchangeUrl?: string };
  routes?: RawRoute[];
}

export interface RawIdporten {
  environment?: Environment;
  issuer?: string;
  clientId: string;
  clientAuth: RawClientAuth;
  scopes?: string[];
  acrValues?: AcrLevel;
  allowedAcrValues?: AcrLevel[];
  uiLocales?: string;
  allowedLocales?: string[];
  postLogoutRedirectUri?: string;
  logoutHint?: 'id_token' | 'client_id';
  usePar?: boolean;
  httpTimeout?: RawDuration;
  caFile?: string;
}

export interface RawRoute {
  path: string;
  upstream: string;
  token: TokenKind;
  methods?: string[];
  timeout?: RawDuration;
  bodyLimit?: number | string;
}
