import { BlockList, isIP } from 'node:net';

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
    const [address = '', prefix] = entry.trim().split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (isIP(address) === 0) throw new Error(`trustProxy entry is not an IP address or CIDR range: ${entry}`);
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }

  return (remoteAddress) => {
    if (remoteAddress === undefined) return false;
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d.
    const address = remoteAddress.startsWith('::ffff:') && isIP(remoteAddress.slice(7)) === 4 ? remoteAddress.slice(7) : remoteAddress;
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}
