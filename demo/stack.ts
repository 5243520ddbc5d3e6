import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { buildApp, type Gateway } from '../src/app.js';
import { expandEnv } from '../src/config/env.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { parseConfigFile } from '../src/config/parse-file.js';
import type { GatewayConfig } from '../src/config/types.js';
import { startAltinnLookalike, type AltinnLookalike } from './altinn.js';
import type { DemoApp } from './args.js';
import { startIdportenLookalike, type IdportenLookalike, type IdportenLookalikeOptions } from './idporten-op.js';
import { startOnboarding, type Onboarding, type OnboardingPorts } from './onboarding.js';
import { startSkatteetatenLookalike, type SkatteetatenLookalike } from './skatteetaten.js';
import { writeDemoSamples } from './spa.js';

export const DEMO_CONFIG_FILE = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));
/** Its app section's headers (a CSP a dev server's pages work under) are what `--app-upstream` gets. */
const APP_VITE_CONFIG_FILE = fileURLToPath(new URL('../config/app-vite.yaml', import.meta.url));

export interface DemoPorts {
  gateway: number;
  op: number;
  skatteetaten: number;
  altinn: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { gateway: 3000, op: 4100, skatteetaten: 4101, altinn: 4102 };
export const DEFAULT_ONBOARDING_PORTS: OnboardingPorts = { customer: 3001, selfService: 4103, maskinporten: 4104 };

/** The look-alikes of a demo stack, and the gateway configuration that fits them. */
export interface DemoLookalikes {
  publicUrl: string;
  op: IdportenLookalike;
  skatteetaten: SkatteetatenLookalike;
  altinn: AltinnLookalike;
  /** The configuration the demo's gateway runs with, validated. */
  config: GatewayConfig;
  /** The vendor's side, when asked for (DemoOptions.onboarding). */
  onboarding?: Onboarding & ReturnType<Onboarding['writeVendorSetup']>;
  /**
   * The same configuration in the file's shape, with every value written out (the look-alikes' URLs, the
   * client's secret, the app's absolute path) except the session key, which stays `${BFF_SESSION_KEY}`: a file
   * a gateway of your own can run with against these look-alikes.
   */
  copyableConfig: Record<string, unknown>;
  close(): Promise<void>;
}

export interface DemoStack extends DemoLookalikes {
  gateway: Gateway;
}

export interface DemoOptions {
  ports?: Partial<DemoPorts>;
  logger?: Logger;
  op?: Partial<IdportenLookalikeOptions>;
  /** Your own app instead of the demo SPA (with the gateway's default security headers, or app-vite.yaml's for an upstream). */
  app?: DemoApp;
  /** The look-alike client's secret (default: random for each run). */
  clientSecret?: string;
  /** Also the vendor's side (Maskinporten and self-service look-alikes, a customer to onboard) on these ports. */
  onboarding?: OnboardingPorts;
}

/**
 * The whole demo on one machine: ID-porten look-alike, Skatteetaten and Altinn look-alikes on 127.0.0.1,
 * the gateway (from config/demo.yaml) on localhost with the demo SPA (`app.static: demo/spa`) at `/`, or your
 * own app. Different hosts keep the provider's cookies and ours apart and make the login a real cross-site
 * redirect, as in production.
 */
export async function startDemoStack(opts: DemoOptions = {}): Promise<DemoStack> {
  const lookalikes = await startDemoLookalikes(opts);
  try {
    const gateway = await buildApp(lookalikes.config, opts.logger ? { logger: opts.logger } : {});
    try {
      await gateway.app.listen({ host: lookalikes.config.server.host, port: lookalikes.config.server.port });
      await gateway.warmUp();
    } catch (err) {
      await gateway.close().catch(() => undefined);
      throw err;
    }
    return {
      ...lookalikes,
      gateway,
      close: async () => {
        await gateway.close();
        await lookalikes.close();
      },
    };
  } catch (err) {
    await lookalikes.close().catch(() => undefined);
    throw err;
  }
}

/**
 * The look-alikes alone, with the ID-porten look-alike's client registered for the gateway's public URL, and
 * the configuration a gateway needs to use them. The configuration is checked (your app's folder or URL
 * included) before anything starts: a ConfigError names what is wrong.
 */
export async function startDemoLookalikes(opts: DemoOptions = {}): Promise<DemoLookalikes> {
  const ports = { ...DEFAULT_DEMO_PORTS, ...opts.ports };
  const publicUrl = `http://localhost:${ports.gateway}`;
  const clientSecret = opts.clientSecret ?? randomBytes(32).toString('base64url');
  const raw = parseConfigFile(DEMO_CONFIG_FILE) as RawDemoConfig;
  raw.server.port = ports.gateway;
  const tenantRaw = raw.tenants[0]!;
  tenantRaw.app = opts.app ? appOf(opts.app) : { ...tenantRaw.app, static: resolve(dirname(DEMO_CONFIG_FILE), String(tenantRaw.app.static)) };
  const env = {
    ...process.env,
    BFF_SESSION_KEY: randomBytes(32).toString('base64url'),
    DEMO_CLIENT_SECRET: clientSecret,
    DEMO_PUBLIC_URL: publicUrl,
    DEMO_OP_URL: `http://127.0.0.1:${ports.op}`,
    DEMO_SKATTEETATEN_URL: `http://127.0.0.1:${ports.skatteetaten}`,
    DEMO_ALTINN_URL: `http://127.0.0.1:${ports.altinn}`,
  };
  const config = normaliseConfig(raw, env, dirname(DEMO_CONFIG_FILE));
  if (!opts.app) await writeDemoSamples();
  const tenant = config.tenants[0]!;
  const innsending = tenant.routes.find((r) => r.token === 'altinn');
  // The Skatteetaten look-alike takes only tokens for the resource its route names (RFC 8707), when it names one.
  const validationResource = tenant.routes.find((r) => r.upstream.startsWith(env.DEMO_SKATTEETATEN_URL) && r.resource !== undefined)?.resource;
  const copyable = expandEnv(raw, { ...env, BFF_SESSION_KEY: '${BFF_SESSION_KEY}' }).value as Record<string, unknown>;

  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
  };
  try {
    const onboarding = opts.onboarding ? await startOnboarding(opts.onboarding) : undefined;
    if (onboarding) closers.push(() => onboarding.close());
    const op = await startIdportenLookalike({
      port: ports.op,
      ...(onboarding ? { findClient: onboarding.findClient } : {}),
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
      // With DPoP on, the look-alike demands nonces at its token endpoint and Skatteetaten's demands them too, so
      // the demo goes through every step of RFC 9449 a real deployment may meet.
      ...(tenant.idporten.dpop ? { dpopNonce: true } : {}),
      ...opts.op,
    });
    closers.push(() => op.close());
    const skatteetaten = await startSkatteetatenLookalike({
      port: ports.skatteetaten,
      issuer: op.issuer,
      jwksUri: op.jwksUri,
      ...(validationResource ? { audience: validationResource } : {}),
      ...(tenant.idporten.dpop ? { dpop: { nonce: true } } : {}),
    });
    closers.push(() => skatteetaten.close());
    const altinn = await startAltinnLookalike({
      port: ports.altinn,
      issuer: op.issuer,
      jwksUri: op.jwksUri,
      ...(innsending ? { appPath: new URL(innsending.upstream).pathname } : {}),
    });
    closers.push(() => altinn.close());
    const vendor = onboarding ? { ...onboarding, ...onboarding.writeVendorSetup(op.issuer) } : undefined;
    return { publicUrl, op, skatteetaten, altinn, config, copyableConfig: copyable, close, ...(vendor ? { onboarding: vendor } : {}) };
  } catch (err) {
    await close();
    throw err;
  }
}

interface RawDemoConfig {
  server: { port: number };
  tenants: { app: Record<string, unknown> }[];
}

/** Your app as the tenant's `app`: a folder with the gateway's default headers, or an upstream as app-vite.yaml serves one. */
function appOf(app: DemoApp): Record<string, unknown> {
  if ('static' in app) return { static: app.static };
  const vite = parseConfigFile(APP_VITE_CONFIG_FILE) as { tenants?: { app?: { headers?: unknown } }[] };
  const headers = vite.tenants?.[0]?.app?.headers;
  return { upstream: app.upstream, ...(headers ? { headers } : {}) };
}
