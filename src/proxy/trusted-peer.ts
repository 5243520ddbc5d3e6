import { BlockList, isIP } from 'node:net';

/**
 * Builds the test "is this TCP peer a proxy we trust?" from `server.trustProxy`:
 * true trusts every peer, false none, a list trusts addresses and CIDR ranges (IPv4 or IPv6).
 */
export function trustedPeer(trustProxy: boolean | string[]): (remoteAddress: string | undefined) => boolean {
  if (typeof trustProxy === 'boolean') return () => trustProxy;

  const list = new BlockList();
  for (const entry of trustProxy) {
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
