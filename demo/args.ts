/**
 * The demo's command line: `npm run demo [-- --app-static DIR | --app-upstream URL] [--no-gateway]`.
 * Parsing only; main.ts acts on the result, and the gateway's own configuration checks judge DIR and URL.
 */
import { resolve } from 'node:path';

/** Your own app in place of the demo SPA: a folder of built files, or a dev server / frontend URL. */
export type DemoApp = { static: string } | { upstream: string };

export type DemoCommand =
  | { kind: 'run'; app: DemoApp | undefined; gateway: boolean }
  | { kind: 'help' }
  | { kind: 'usage-error'; message: string };

/** Where the printed configuration starts and ends (tests and scripts cut it out between these lines). */
export const CONFIG_BEGIN = '# ---- gateway configuration: copy from here ----';
export const CONFIG_END = '# ---- end of the gateway configuration ----';

export const DEMO_USAGE = `Usage: npm run demo [-- OPTIONS]

Starts the ID-porten, Skatteetaten and Altinn look-alikes and the gateway in front of them, on this machine
with no network. Without options the gateway serves the demo SPA.

Options:
  --app-static DIR     serve your own built app (DIR, e.g. dist/) instead of the demo SPA
  --app-upstream URL   pass pages to your own dev server or frontend (e.g. http://localhost:5173, Vite),
                       WebSocket upgrades (hot reload) included
  --no-gateway         start only the look-alikes; run your own gateway (or library mode) with the
                       configuration the demo prints
  -h, --help           print this help and exit

With --app-static, --app-upstream or --no-gateway the demo prints the gateway configuration it runs with
(the look-alikes' issuer, client id and secret, the API routes): copy it for a gateway of your own.

Environment: DEMO_PORT (gateway, 3000), DEMO_OP_PORT (4100), DEMO_SKATTEETATEN_PORT (4101), DEMO_ALTINN_PORT
(4102), DEMO_CLIENT_SECRET (the look-alike client's secret; random for each run unless set), LOG_LEVEL.
`;

/** `cwd` is where relative paths are taken from: the directory the user ran `npm run demo` in (npm's INIT_CWD). */
export function parseDemoArgs(argv: readonly string[], cwd: string): DemoCommand {
  let app: DemoApp | undefined;
  let appFlag: string | undefined;
  let gateway = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--no-gateway') {
      gateway = false;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (flag !== '--app-static' && flag !== '--app-upstream') {
      return usageError(arg.startsWith('-') ? `unknown option ${JSON.stringify(arg)}` : `unexpected argument ${JSON.stringify(arg)}`);
    }
    const what = flag === '--app-static' ? 'DIR' : 'URL';
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '' || (eq === -1 && value.startsWith('-'))) return usageError(`${flag} needs a value: ${flag} ${what}`);
    if (appFlag !== undefined) return usageError(`${flag} cannot be combined with ${appFlag}: give one app`);
    appFlag = flag;
    app = flag === '--app-static' ? { static: resolve(cwd, value) } : { upstream: value };
  }
  return { kind: 'run', app, gateway };
}

function usageError(message: string): DemoCommand {
  return { kind: 'usage-error', message };
}
