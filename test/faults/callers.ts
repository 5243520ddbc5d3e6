/**
 * Who made each request the ID-porten look-alike saw: every connection it accepts is traced to the process
 * holding the caller's end (peer-process.ts), among the candidates named (the gateway instances, this process).
 */
import type { IdportenLookalike } from '../../demo/idporten-op.js';
import { processOfPeer } from './peer-process.js';

export interface Callers {
  /** The pid that made the connection, or undefined when it could not be told (the caller was gone). */
  pidOf(connection: number): number | undefined;
}

export function traceCallers(op: IdportenLookalike, candidates: () => Iterable<number>): Callers {
  const opPort = Number(new URL(op.issuer).port);
  const ports = new Map<number, number>();
  const pids = new Map<number, number>();
  const resolve = (connection: number): number | undefined => {
    const port = ports.get(connection);
    const pid = port === undefined ? undefined : processOfPeer(port, opPort, candidates());
    if (pid !== undefined) pids.set(connection, pid);
    return pid;
  };
  op.observed.onConnection(({ id, remotePort }) => {
    ports.set(id, remotePort);
    resolve(id);
  });
  // A connection accepted while its caller was not yet a candidate is traced at its first grant, while the caller
  // still waits for the answer on it.
  op.observed.onGrant((record) => {
    if (!pids.has(record.connection)) resolve(record.connection);
  });
  return { pidOf: (connection) => pids.get(connection) };
}
