/**
 * One benchmark setup: the look-alikes in one process, the gateway (buildApp) in another, both on
 * loopback ports, and the runner driving them. Each benchmark starts its own and stops it afterwards.
 */
import { randomBytes } from 'node:crypto';
import type { SessionToken } from './gateway-child.js';
import type { MemoryPeaks, MemorySample } from './memory-tracker.js';
import { forkChild, type Child } from './ipc.js';
import { loginSession } from './login.js';
import type { LookalikeUrls } from './lookalikes-child.js';
import { freePort } from '../demo/free-port.js';
import { TEST_USERS } from '../demo/test-users.js';

export type BenchStore = { type: 'memory'; maxSessions?: number } | { type: 'redis'; url: string; keyPrefix?: string };

export interface BenchStackOptions {
  accessTokenTtlSeconds: number;
  store?: BenchStore;
  /** The echo route's body limit (default the gateway's own default, 30MB). */
  bodyLimit?: string;
  /** The echo route's upstream: the Skatteetaten look-alike's echo (default) or the light echo (light-echo.ts). */
  upstream?: 'echo' | 'light-echo';
  /** Extra Node options for the gateway process (e.g. `--cpu-prof`). */
  gatewayExecArgv?: string[];
  /** Also route RESOURCE_ECHO_ROUTE to the same upstream with this RFC 8707 `resource` (its own token). */
  resource?: string;
}

export interface OpStats {
  refreshGrants: number;
  codeGrants: number;
  refreshGrantErrors: number;
}

export interface CpuMicros {
  gateway: number;
  /** The look-alikes' process: the echo upstream and the OP. */
  lookalikes: number;
  /** This process: the load generator. */
  runner: number;
}

export interface BenchStack {
  /** The gateway's origin; also the Host its one tenant answers to. */
  publicUrl: string;
  /** The echo route's upstream, reached directly. */
  echoUrl: string;
  cookieName: string;
  /** Process ids, to pin them to a core and read their CPU time from /proc. */
  gatewayPid: number;
  lookalikesPid: number;
  /** Logs a test user in and returns the session cookie value. */
  login(): Promise<string>;
  /** The ID-porten access token a session holds now (to call the upstream directly, as the gateway does). */
  accessToken(cookieValue: string): Promise<SessionToken>;
  opStats(): Promise<OpStats>;
  /** CPU time (user + system, microseconds) each process has used so far. */
  cpuMicros(): Promise<CpuMicros>;
  trackGatewayMemory(opts?: { collectEveryMs?: number }): Promise<MemorySample>;
  stopTrackingGatewayMemory(): Promise<MemoryPeaks>;
  close(): Promise<void>;
}

const COOKIE_NAME = 'bff';
const CLIENT_ID = 'bench-bff';
export const ECHO_ROUTE = '/mva/echo';
export const RESOURCE_ECHO_ROUTE = '/mva/echo-resource';

export async function startBenchStack(opts: BenchStackOptions): Promise<BenchStack> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const clientSecret = randomBytes(32).toString('base64url');
  const children: Child[] = [];
  try {
    const lookalikes = await forkChild(new URL('./lookalikes-child.ts', import.meta.url));
    children.push(lookalikes);
    const urls = await lookalikes.call<LookalikeUrls>('start', {
      gatewayPublicUrl: publicUrl,
      clientId: CLIENT_ID,
      clientSecret,
      accessTokenTtlSeconds: opts.accessTokenTtlSeconds,
    });
    const gateway = await forkChild(new URL('./gateway-child.ts', import.meta.url), { execArgv: opts.gatewayExecArgv ?? [] });
    children.push(gateway);
    const echoUrl = opts.upstream === 'light-echo' ? urls.lightEchoUrl : urls.echoUrl;
    await gateway.call('start', gatewayConfig({ port, publicUrl, clientSecret, issuer: urls.issuer, echoUrl, store: opts.store ?? { type: 'memory' }, bodyLimit: opts.bodyLimit ?? '30MB', resource: opts.resource }));

    let nextUser = 0;
    return {
      publicUrl,
      echoUrl,
      cookieName: COOKIE_NAME,
      gatewayPid: gateway.pid,
      lookalikesPid: lookalikes.pid,
      login: () => loginSession(publicUrl, TEST_USERS[nextUser++ % TEST_USERS.length]!.pid, COOKIE_NAME),
      accessToken: (cookieValue) => gateway.call<SessionToken>('accessToken', cookieValue),
      opStats: () => lookalikes.call<OpStats>('opStats'),
      cpuMicros: async () => {
        const [gatewayCpu, lookalikesCpu] = await Promise.all([gateway.call<number>('cpuMicros'), lookalikes.call<number>('cpuMicros')]);
        const own = process.cpuUsage();
        return { gateway: gatewayCpu, lookalikes: lookalikesCpu, runner: own.user + own.system };
      },
      trackGatewayMemory: (trackOpts) => gateway.call<MemorySample>('trackMemory', trackOpts ?? {}),
      stopTrackingGatewayMemory: () => gateway.call<MemoryPeaks>('stopTracking'),
      close: () => stopAll(children),
    };
  } catch (err) {
    await stopAll(children);
    throw err;
  }
}

async function stopAll(children: Child[]): Promise<void> {
  for (const child of children.reverse()) await child.stop();
}

/** A production-shaped config: info logging (to a discarded stdout), one tenant, the echo route. */
function gatewayConfig(o: { port: number; publicUrl: string; clientSecret: string; issuer: string; echoUrl: string; store: BenchStore; bodyLimit: string; resource: string | undefined }): unknown {
  const echo = { upstream: o.echoUrl, token: 'idporten', bodyLimit: o.bodyLimit };
  return {
    server: { host: '127.0.0.1', port: o.port, logLevel: 'info' },
    session: {
      store: o.store,
      cookieName: COOKIE_NAME,
      absoluteLifetime: '8h',
      idleTimeout: '30m',
      keys: [{ id: 'bench-1', secret: randomBytes(32).toString('base64url') }],
    },
    tenants: [
      {
        id: 'bench',
        publicUrl: o.publicUrl,
        idporten: {
          issuer: o.issuer,
          clientId: CLIENT_ID,
          clientAuth: { method: 'client_secret_post', secret: o.clientSecret },
          scopes: ['openid', 'skatteetaten:mvameldingvalidering', 'skatteetaten:mvameldinginnsending'],
          acrValues: 'idporten-loa-substantial',
          httpTimeout: '10s',
        },
        routes: [{ path: ECHO_ROUTE, ...echo }, ...(o.resource ? [{ path: RESOURCE_ECHO_ROUTE, ...echo, resource: o.resource }] : [])],
      },
    ],
  };
}
