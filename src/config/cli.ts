/**
 * The process entry's view of configuration: find the file, load it, or explain how to give one.
 * There is deliberately no fallback (least of all to the demo): a gateway without config must not start.
 */

import { ConfigError } from './errors.js';
import { loadConfigFile, resolveConfigPath } from './load.js';
import type { GatewayConfig } from './types.js';

export const NO_CONFIG_MESSAGE = 'no config: pass --config FILE or set BFF_CONFIG';

export function loadConfigFromProcess(argv: string[], env: NodeJS.ProcessEnv): GatewayConfig {
  const path = resolveConfigPath(argv, env);
  if (path === undefined) throw new ConfigError([{ path: '', message: NO_CONFIG_MESSAGE }]);
  return loadConfigFile(path, env);
}
