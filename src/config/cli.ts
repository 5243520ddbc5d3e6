/**
 * The process entry's view of configuration: find the file, load it, or explain how to give one.
 * There is deliberately no fallback (least of all to the demo): a gateway without config must not start.
 */

import { resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { loadConfigFile, resolveConfigPath } from './load.js';
import type { GatewayConfig } from './types.js';

export const NO_CONFIG_MESSAGE = 'no config: pass --config FILE or set BFF_CONFIG';

export function loadConfigFromProcess(argv: string[], env: NodeJS.ProcessEnv): GatewayConfig {
  return loadConfig(resolveConfigPath(argv, env), env).config;
}

/** The file given on the command line, else BFF_CONFIG; returns the config and the absolute path it came from. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv): { config: GatewayConfig; file: string } {
  const chosen = path ?? (env.BFF_CONFIG === '' ? undefined : env.BFF_CONFIG);
  if (chosen === undefined) throw new ConfigError([{ path: '', message: NO_CONFIG_MESSAGE }]);
  return { config: loadConfigFile(chosen, env), file: resolve(chosen) };
}
