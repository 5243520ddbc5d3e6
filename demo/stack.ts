import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { buildApp, type Gateway } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { parseConfigFile } from '../src/config/parse-file.js';
import { startAltinnLookalike, type AltinnLookalike } from './altinn.js';
import { startIdportenLookalike, type IdportenLookalike, type IdportenLookalikeOptions } from './idporten-op.js';
import { startSkatteetatenLookalike, type SkatteetatenLookalike } from './skatteetaten.js';
import { writeDemoSamples } from './spa.js';

export const DEMO_CONFIG_FILE = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));

export interface DemoPorts {
  gateway: number;
  op: number;
  skatteetaten: number;
  altinn: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { gateway: 3000, op: 4100, skatteetaten: 4101, altinn: 4102 };

export interface DemoStack {
  publicUrl: string;
  op: IdportenLookalike;
  skatteetaten: SkatteetatenLookalike;
  altinn: AltinnLookalike;
  gateway: Gateway;
  close(): Promise<void>;
}

export interface DemoOptions {
  ports?: Partial<DemoPorts>;
  logger?: Logger;
  op?: Partial<IdportenLookalikeOptions>;
}

/**
 * The whole demo on one machine: ID-porten look-alike, Skatteetaten and Altinn look-alikes on 127.0.0.1,
 * the gateway (from config/demo.yaml) on localhost with the demo SPA (`app.static: demo/spa`) at `/`. Different hosts keep the
 * provider's cookies and ours apart and make the login a real cross-site redirect, as in production.
 */
export async function startDemoStack(opts: DemoOptions = {}): Promise<DemoStack> {
  const ports = { ...DEFAULT_DEMO_PORTS, ...opts.ports };
  const publicUrl = `http://localhost:${ports.gateway}`;
  const clientSecret = randomBytes(32).toString('base64url');
  const raw = parseConfigFile(DEMO_CONFIG_FILE) as { server: { port: number } };
  raw.server.port = ports.gateway;
  const env = {
    ...process.env,
    BFF_SESSION_KEY: randomBytes(32).toString('base64url'),
    DEMO_CLIENT_SECRET: clientSecret,
    DEMO_PUBLIC_URL: publicUrl,
    DEMO_OP_URL: `http://127.0.0.1:${ports.op}`,
    DEMO_SKATTEETATEN_URL: `http://127.0.0.1:${ports.skatteetaten}`,
    DEMO_ALTINN_URL: `http://127.0.0.1:${ports.altinn}`,
  };
  await writeDemoSamples();
  const config = normaliseConfig(raw, env, dirname(DEMO_CONFIG_FILE));
  const tenant = config.tenants[0]!;
  const innsending = tenant.routes.find((r) => r.token === 'altinn');

  const closers: (() => Promise<void>)[] = [];
  try {
    const op = await startIdportenLookalike({
      port: ports.op,
      clients: [
        {
          client_id: tenant.idporten.clientId,
          client_secret: clientSecret,
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [`${publicUrl}/auth/callback`],
          post_logout_redirect_uris: [tenant.idporten.postLogoutRedirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          frontchannel_logout_uri: `${publicUrl}/auth/logout/frontchannel`,
          backchannel_logout_uri: `${publicUrl}/auth/logout/backchannel`,
          backchannel_logout_session_required: true,
        } as never,
      ],
      ...opts.op,
    });
    closers.push(() => op.close());
    const skatteetaten = await startSkatteetatenLookalike({ port: ports.skatteetaten, issuer: op.issuer, jwksUri: op.jwksUri });
    closers.push(() => skatteetaten.close());
    const altinn = await startAltinnLookalike({
      port: ports.altinn,
      issuer: op.issuer,
      jwksUri: op.jwksUri,
      ...(innsending ? { appPath: new URL(innsending.upstream).pathname } : {}),
    });
    closers.push(() => altinn.close());

    const gateway = await buildApp(config, opts.logger ? { logger: opts.logger } : {});
    await gateway.app.listen({ host: config.server.host, port: config.server.port });
    closers.push(() => gateway.close());
    await gateway.warmUp();
    return {
      publicUrl,
      op,
      skatteetaten,
      altinn,
      gateway,
      close: async () => {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
