/**
 * Which process holds the other end of a loopback TCP connection: the kernel's socket table (/proc/net/tcp and
 * tcp6) gives the caller's socket inode for its port, and the process whose open files include that socket holds
 * it. Asked by a server the moment it accepts a connection, when the caller's end is surely still open; Linux only.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * The one of `pids` whose socket is bound to `callerPort` and connected to `serverPort` on this machine, or
 * undefined when none is (it is gone, or the connection is someone else's).
 */
export function processOfPeer(callerPort: number, serverPort: number, pids: Iterable<number>): number | undefined {
  const inode = socketInode(callerPort, serverPort);
  if (inode === undefined) return undefined;
  const wanted = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // the process is gone
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === wanted) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/** The inode of the socket whose local port is `localPort` and remote port `remotePort`, from tcp and tcp6. */
function socketInode(localPort: number, remotePort: number): string | undefined {
  const local = `:${hexPort(localPort)}`;
  const remote = `:${hexPort(remotePort)}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [, localAddress, remoteAddress, , , , , , , inode] = fields;
      if (localAddress?.endsWith(local) && remoteAddress?.endsWith(remote) && inode && inode !== '0') return inode;
    }
  }
  return undefined;
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}
