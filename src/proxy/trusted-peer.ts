import { BlockList, isIP } from 'node:net';
import { listValues } from './headers.js';

/** The names `server.trustProxy` accepts besides addresses and CIDRs (as Fastify's proxy-addr does). */
const NAMED_RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * Builds the test "is this TCP peer a proxy we trust?" from `server.trustProxy`:
 * true trusts every peer, false none, a list trusts addresses and CIDR ranges (IPv4 or IPv6).
 */
export function trustedPeer(trustProxy: boolean | string[]): (remoteAddress: string | undefined) => boolean {
  if (typeof trustProxy === 'boolean') return () => trustProxy;

  const list = new BlockList();
  for (const entry of trustProxy.flatMap((e) => NAMED_RANGES[e.trim()] ?? [e])) {
    const [address = '', prefix, ...rest] = entry.trim().split('/');
    const version = isIP(address);
    const family = version === 6 ? 'ipv6' : 'ipv4';
    // Number('') is 0: without the digit check "10.0.0.0/" would be 0.0.0.0/0 and trust every peer.
    const bits = prefix !== undefined && /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (version === 0 || rest.length > 0 || (prefix !== undefined && !(bits <= (version === 6 ? 128 : 32)))) {
      throw new Error(`trustProxy entry is not an IP address or CIDR range: ${entry}`);
    }
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, bits, family);
  }

  return (remoteAddress) => {
    if (remoteAddress === undefined) return false;
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d.
    const address = remoteAddress.startsWith('::ffff:') && isIP(remoteAddress.slice(7)) === 4 ? remoteAddress.slice(7) : remoteAddress;
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * The client's address as the trusted proxies report it: starting from the TCP peer, each address that is a
 * trusted proxy is replaced by the one it put on the right of X-Forwarded-For, until an address that is not
 * trusted (or the chain ends). What a client writes on the left counts only if every hop after it is trusted,
 * the rule Fastify's own `trustProxy` list follows (proxy-addr).
 */
export function forwardedClient(peer: string | undefined, forwardedFor: string | string[] | undefined, isTrusted: (address: string | undefined) => boolean): string | undefined {
  let address = peer;
  if (forwardedFor === undefined || !isTrusted(address)) return address;
  const hops = listValues(forwardedFor);
  for (let i = hops.length - 1; i >= 0 && isTrusted(address); i--) address = hops[i];
  return address;
}
