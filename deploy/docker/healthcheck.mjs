// The image's HEALTHCHECK: GET /healthz on the port the gateway was configured with.
//
//   BFF_HEALTH_URL set   → that URL, as is;
//   otherwise            → http://<server.host>:<server.port>/healthz as the file in BFF_CONFIG
//                          (YAML or JSON) sets them: port 3000 when it sets none, and 127.0.0.1 for
//                          a wildcard host (0.0.0.0, ::) or none.
//
// Exit 0 when the gateway answers 2xx within 4 s, 1 otherwise. Uses only Node and the gateway's own
// `yaml` dependency (JSON is valid YAML), and never prints the configuration.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const DEFAULT_PORT = 3000;
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

function probeHost(host) {
  if (typeof host !== 'string' || host === '' || host.includes('${') || WILDCARD_HOSTS.has(host)) return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function healthUrl(env) {
  if (env.BFF_HEALTH_URL) return env.BFF_HEALTH_URL;
  let port = DEFAULT_PORT;
  let host;
  if (env.BFF_CONFIG) {
    const server = parse(readFileSync(env.BFF_CONFIG, 'utf8'))?.server;
    if (Number.isInteger(server?.port) && server.port > 0) port = server.port;
    host = server?.host;
  }
  return `http://${probeHost(host)}:${port}/healthz`;
}

try {
  const response = await fetch(healthUrl(process.env), { signal: AbortSignal.timeout(4000) });
  process.exit(response.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`healthcheck: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
