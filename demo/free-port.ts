import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A port free right now on 127.0.0.1, for servers whose URL must be known before they start (tests, benchmarks).
 * Chosen below the kernel's ephemeral range where there is room: a port from that range can be handed to any
 * `listen(0)` or outgoing connection in the meantime (on a busy machine it is), one below it only to a caller
 * that names it.
 */
export async function freePort(): Promise<number> {
  const room = ephemeralLow() - RESERVED_BELOW;
  for (let attempt = 0; room >= 1024 && attempt < 20; attempt += 1) {
    const port = RESERVED_BELOW + Math.floor(Math.random() * room);
    if (await listenOn(port).then(() => true, () => false)) return port;
  }
  return listenOn(0);
}

/** Ports under this are left alone (well-known and registered services a machine may run). */
const RESERVED_BELOW = 10_000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 0;
  } catch {
    return 0;
  }
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}
