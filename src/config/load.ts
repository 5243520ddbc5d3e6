/**
 * Where the configuration comes from: `--config FILE` (wins) or the BFF_CONFIG environment variable.
 */

import { dirname, resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { normaliseConfig } from './normalise.js';
import { parseConfigFile } from './parse-file.js';
import type { GatewayConfig } from './types.js';

export { normaliseConfig } from './normalise.js';
export { ConfigError, type ConfigIssue } from './errors.js';

/** Accepts `--config FILE` and `--config=FILE` anywhere in `argv`; falls back to BFF_CONFIG. */
export function resolveConfigPath(argv: string[], env: NodeJS.ProcessEnv): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config') {
      const value = argv[i + 1];
      if (value === undefined || value === '' || value.startsWith('--')) {
        throw new ConfigError([{ path: '--config', message: 'needs a file path: --config FILE' }]);
      }
      return value;
    }
    if (arg?.startsWith('--config=')) {
      const value = arg.slice('--config='.length);
      if (value === '') throw new ConfigError([{ path: '--config', message: 'needs a file path: --config=FILE' }]);
      return value;
    }
  }
  const fromEnv = env.BFF_CONFIG;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/** Relative paths inside the file (CA bundles) are taken from the file's own folder. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv): GatewayConfig {
  const file = resolve(path);
  return normaliseConfig(parseConfigFile(file), env, dirname(file));
}
