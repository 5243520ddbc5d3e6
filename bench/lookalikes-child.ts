/**
 * The ID-porten and Skatteetaten look-alikes in their own process, so that neither the load generator
 * nor the gateway shares their event loop.
 */
import { startIdportenLookalike, type IdportenLookalike } from '../demo/idporten-op.js';
import type { RunningServer } from '../demo/http-server.js';
import { startSkatteetatenLookalike, type SkatteetatenLookalike } from '../demo/skatteetaten.js';
import { serveCalls } from './ipc.js';
import { startLightEcho } from './light-echo.js';

export interface LookalikeStart {
  gatewayPublicUrl: string;
  clientId: string;
  clientSecret: string;
  accessTokenTtlSeconds: number;
  /** The echo checks DPoP proofs, and a DPoP-unaware twin serves Bearer (bearerEchoUrl). */
  dpop: boolean;
}

export interface LookalikeUrls {
  issuer: string;
  /** The Skatteetaten look-alike's echo endpoint (verifies the bearer, digests the body). */
  echoUrl: string;
  /** The peers benchmark's cheaper echo (light-echo.ts: verifies each distinct bearer once). */
  lightEchoUrl: string;
  /** With dpop: the echo's twin that knows no DPoP. */
  bearerEchoUrl?: string;
}

// The echo look-alike records every request for tests; under load that list would grow without end.
const FORGET_REQUESTS_EVERY_MS = 1_000;

let op: IdportenLookalike | undefined;
let skatteetaten: SkatteetatenLookalike | undefined;
let bearerTwin: SkatteetatenLookalike | undefined;
let lightEcho: RunningServer | undefined;
let forgetTimer: NodeJS.Timeout | undefined;

serveCalls({
  async start(opts: LookalikeStart): Promise<LookalikeUrls> {
    const publicUrl = opts.gatewayPublicUrl;
    op = await startIdportenLookalike({
      accessTokenTtlSeconds: opts.accessTokenTtlSeconds,
      clients: [
        {
          client_id: opts.clientId,
          client_secret: opts.clientSecret,
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [`${publicUrl}/auth/callback`],
          post_logout_redirect_uris: [`${publicUrl}/`],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        } as never,
      ],
    });
    skatteetaten = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri, ...(opts.dpop ? { dpop: {} } : {}) });
    if (opts.dpop) bearerTwin = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
    lightEcho = await startLightEcho({ issuer: op.issuer, jwksUri: op.jwksUri });
    const echoes = [skatteetaten, bearerTwin];
    forgetTimer = setInterval(() => {
      for (const echo of echoes) if (echo) echo.requests.length = 0;
    }, FORGET_REQUESTS_EVERY_MS);
    return {
      issuer: op.issuer,
      echoUrl: `${skatteetaten.url}/echo`,
      lightEchoUrl: `${lightEcho.url}/echo`,
      ...(bearerTwin ? { bearerEchoUrl: `${bearerTwin.url}/echo` } : {}),
    };
  },

  async opStats() {
    if (!op) throw new Error('not started');
    return { ...op.stats };
  },

  async cpuMicros() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },

  async close() {
    clearInterval(forgetTimer);
    await lightEcho?.close();
    await skatteetaten?.close();
    await bearerTwin?.close();
    await op?.close();
  },
});
