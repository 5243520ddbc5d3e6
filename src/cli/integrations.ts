import type { IntegrationsCommand } from './args.js';
import type { GatewayConfig } from '../config/types.js';

export async function runIntegrations(_command: IntegrationsCommand, _config: GatewayConfig, io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  io.stderr.write('idporten-bff: integrations: not available yet\n');
  return 2;
}
