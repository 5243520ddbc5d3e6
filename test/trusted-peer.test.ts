/**
 * server.trustProxy matching (src/proxy/trusted-peer.ts): IPv4 and IPv6 CIDRs, IPv4-mapped IPv6 peers
 * of dual-stack sockets, and entries that must be refused. End to end with real sockets on 127.0.0.1
 * and ::1 against a gateway listening dual-stack, and an upstream that records X-Forwarded-For.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import t from 'tap';
import { createAuditLog } from '../src/audit/audit-log.js';
import type { TenantConfig } from '../src/config/types.js';
import { registerProxyRoutes, type ProxyDeps } from '../src/proxy/register.js';
import { forwardedClient, trustedPeer } from '../src/proxy/trusted-peer.js';
import { startEchoUpstream } from './helpers/echo-upstream.js';

t.test('CIDR matching of IPv4, IPv6 and IPv4-mapped IPv6 peers', async (t) => {
  const cases: Array<[string[], string, boolean]> = [
    [['10.0.0.0/8'], '10.255.1.2', true],
    [['10.0.0.0/8'], '11.0.0.1', false],
    [['10.0.0.0/8'], '::ffff:10.1.2.3', true],
    [['10.0.0.0/8'], '::ffff:11.1.2.3', false],
    [['10.0.0.0/8'], '::ffff:a01:203', true],
    [['127.0.0.1'], '::ffff:127.0.0.1', true],
    [['127.0.0.1'], '127.0.0.2', false],
    [['::ffff:127.0.0.1'], '127.0.0.1', true],
    [['::ffff:10.0.0.0/104'], '10.9.9.9', true],
    [['2001:db8::/32'], '2001:db8:ffff::1', true],
    [['2001:db8::/32'], '2001:db9::1', false],
    [['2001:db8::/32'], '10.0.0.1', false],
    [['::1'], '::1', true],
    [['::1'], '127.0.0.1', false],
    [['loopback'], '127.8.8.8', true],
    [['loopback'], '::1', true],
    [['loopback'], '::ffff:127.0.0.1', true],
    [['uniquelocal'], '172.31.255.255', true],
    [['uniquelocal'], '172.32.0.0', false],
    [['uniquelocal'], 'fd12::1', true],
    [['linklocal'], 'fe80::1%eth0', true],
    [[' 192.168.1.0/24 '], '192.168.1.77', true],
    [['192.168.1.0/24'], undefined as unknown as string, false],
    [['192.168.1.0/24'], 'not-an-ip', false],
  ];
  for (const [list, peer, expected] of cases) t.equal(trustedPeer(list)(peer), expected, `${list.join(',')} ∋ ${peer}: ${expected}`);
  t.equal(trustedPeer(true)('203.0.113.1'), true);
  t.equal(trustedPeer(false)('127.0.0.1'), false);
});

t.test('the client behind trusted proxies: the right-most X-Forwarded-For entry that is not a trusted proxy', async (t) => {
  const proxies = trustedPeer(['10.0.0.0/8', 'loopback']);
  const cases: Array<[string | undefined, string | string[] | undefined, string | undefined, string]> = [
    ['203.0.113.7', '198.51.100.1', '203.0.113.7', 'an untrusted peer is the client, whatever it sends'],
    ['127.0.0.1', undefined, '127.0.0.1', 'a trusted peer that forwards nothing is the client'],
    ['127.0.0.1', '203.0.113.7', '203.0.113.7', 'one proxy: the address it saw'],
    ['127.0.0.1', '198.51.100.1, 203.0.113.7', '203.0.113.7', 'a client-written entry on the left does not count'],
    ['::ffff:10.0.0.5', '198.51.100.1, 203.0.113.7, 10.1.1.1', '203.0.113.7', 'two trusted proxies: the address the outer one saw'],
    ['127.0.0.1', ['198.51.100.1', '203.0.113.7, 10.1.1.1'], '203.0.113.7', 'the header on several lines'],
    ['127.0.0.1', '10.1.1.1, 10.2.2.2', '10.1.1.1', 'every hop trusted: the left-most'],
    ['127.0.0.1', ' , ', '127.0.0.1', 'an empty chain leaves the peer'],
    ['127.0.0.1', 'not-an-ip, 203.0.113.7', '203.0.113.7', 'garbage on the left is never reached'],
    [undefined, '203.0.113.7', undefined, 'no peer (a closed socket): nothing to trust'],
  ];
  for (const [peer, chain, expected, what] of cases) t.equal(forwardedClient(peer, chain, proxies), expected, what);
});

t.test('finding "a malformed trustProxy CIDR trusts every peer": malformed entries are refused', async (t) => {
  // Number('') is 0, so "10.0.0.0/" used to become 10.0.0.0/0: every address on the internet.
  for (const entry of ['10.0.0.0/', '::/', '10.0.0.0/33', '2001:db8::/129', '10.0.0.0/8/16', '10.0.0.0/0x8', '10.0.0.0/ 8', '10.0.0.0/-1', '10.0.0.0/8.5', 'example.com', '']) {
    t.throws(() => trustedPeer([entry]), /trustProxy entry is not an IP address or CIDR range/, JSON.stringify(entry));
  }
  t.equal(trustedPeer(['0.0.0.0/0'])('203.0.113.1'), true, 'trusting every IPv4 peer takes an explicit /0');
});

// --- end to end: which X-Forwarded-For the upstream gets ---------------------------------------------

const signingKey = await generateKeyPair('ES256');
const upstream = await startEchoUpstream({ verificationKey: signingKey.publicKey });
t.teardown(() => upstream.close());

const tenant: TenantConfig = {
  id: 'peer',
  publicUrl: 'https://peer.example.test',
  idporten: {
    issuer: 'https://op.invalid', clientId: 'peer-client', clientAuth: { method: 'client_secret_post', secret: 'unused' },
    scopes: ['openid'], acrValues: 'idporten-loa-substantial', allowedAcrValues: ['idporten-loa-substantial'],
    uiLocales: 'nb', allowedLocales: ['nb'], postLogoutRedirectUri: 'https://peer.example.test/', logoutHint: 'id_token', usePar: false, httpTimeoutMs: 5000,
  },
  routes: [{ path: '/api', upstream: `${upstream.origin}/base`, token: 'idporten', methods: ['GET'], timeoutMs: 5000, bodyLimitBytes: 1024 }],
};

async function startGateway(trustProxy: ProxyDeps['trustProxy']): Promise<number> {
  const logger = pino({ level: 'silent' });
  const app = Fastify({ loggerInstance: logger });
  t.teardown(() => app.close());
  await registerProxyRoutes(app, {
    tenants: [tenant],
    loginUrl: () => '/auth/login',
    bearerFor: () => new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(signingKey.privateKey),
    hasSession: async () => true,
    auditContext: () => ({}),
    audit: createAuditLog(logger),
    trustProxy,
  });
  // Dual stack: IPv4 clients appear as ::ffff:a.b.c.d on this socket.
  await app.listen({ host: '::', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

async function forwardedFor(port: number, from: '127.0.0.1' | '::1'): Promise<string | undefined> {
  const req = httpRequest({ host: from, port, path: '/api/x', agent: false, headers: { host: 'peer.example.test', 'x-csrf': '1', 'x-forwarded-for': '198.51.100.9' } });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.resume();
  await once(res, 'end');
  if (res.statusCode !== 200) throw new Error(`gateway answered ${res.statusCode}`);
  const value = upstream.requests.at(-1)?.headers['x-forwarded-for'];
  return Array.isArray(value) ? value.join(', ') : value;
}

t.test('a dual-stack gateway matches IPv4 peers (seen as ::ffff:127.0.0.1) against IPv4 rules, and IPv6 peers against IPv6 rules', async (t) => {
  const v4Trusted = await startGateway(['127.0.0.0/8']);
  t.equal(await forwardedFor(v4Trusted, '127.0.0.1'), '198.51.100.9, 127.0.0.1', 'IPv4 peer over a dual-stack socket is trusted; its address is given in IPv4 form');
  t.equal(await forwardedFor(v4Trusted, '::1'), '::1', 'an IPv6 peer does not match an IPv4 rule');

  const v6Trusted = await startGateway(['::1/128']);
  t.equal(await forwardedFor(v6Trusted, '::1'), '198.51.100.9, ::1', 'IPv6 peer matches an IPv6 rule');
  t.equal(await forwardedFor(v6Trusted, '127.0.0.1'), '127.0.0.1', 'an IPv4 peer does not match ::1');
});

t.test('finding "a malformed trustProxy CIDR trusts every peer": the proxy refuses to start with one', async (t) => {
  await t.rejects(startGateway(['10.0.0.0/']), /trustProxy entry is not an IP address or CIDR range/);
});
