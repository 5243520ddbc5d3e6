import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, formatIssue } from '../src/config/errors.js';
import { createLogger } from '../src/logging.js';
import { CONFIG_BEGIN, CONFIG_END, DEMO_USAGE, parseDemoArgs, type DemoApp } from './args.js';
import { TEST_USERS } from './test-users.js';
import type { DemoLookalikes, DemoPorts } from './stack.js';

/**
 * `npm run demo`: the demo stack with no configuration and no network (see DEMO_USAGE for the options). Ports:
 * DEMO_PORT (gateway), DEMO_OP_PORT, DEMO_SKATTEETATEN_PORT, DEMO_ALTINN_PORT. Exit status 2 on a usage error or
 * an app the gateway cannot serve, 1 when the stack fails to start.
 */
async function main(): Promise<void> {
  // npm runs the script in the package's folder; a relative DIR means the folder the user typed the command in.
  const command = parseDemoArgs(process.argv.slice(2), process.env.INIT_CWD ?? process.cwd());
  if (command.kind === 'help') return void process.stdout.write(DEMO_USAGE);
  if (command.kind === 'usage-error') {
    process.stderr.write(`demo: ${command.message}\n\n${DEMO_USAGE}`);
    process.exitCode = 2;
    return;
  }
  // Loaded only now: the look-alike ID-porten's library prints a runtime warning as it loads, noise on a usage error.
  const { DEFAULT_DEMO_PORTS, DEFAULT_ONBOARDING_PORTS, startDemoLookalikes, startDemoStack } = await import('./stack.js');
  const badPorts: string[] = [];
  const port = (name: string, fallback: number) => {
    const text = process.env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < 1 || value > 65535) badPorts.push(`${name} must be a port number (1-65535), not ${JSON.stringify(text)}`);
    return value;
  };
  const ports: DemoPorts = {
    gateway: port('DEMO_PORT', DEFAULT_DEMO_PORTS.gateway),
    op: port('DEMO_OP_PORT', DEFAULT_DEMO_PORTS.op),
    skatteetaten: port('DEMO_SKATTEETATEN_PORT', DEFAULT_DEMO_PORTS.skatteetaten),
    altinn: port('DEMO_ALTINN_PORT', DEFAULT_DEMO_PORTS.altinn),
  };
  const onboarding = {
    customer: port('DEMO_CUSTOMER_PORT', DEFAULT_ONBOARDING_PORTS.customer),
    selfService: port('DEMO_SELF_SERVICE_PORT', DEFAULT_ONBOARDING_PORTS.selfService),
    maskinporten: port('DEMO_MASKINPORTEN_PORT', DEFAULT_ONBOARDING_PORTS.maskinporten),
  };
  if (badPorts.length > 0) {
    process.stderr.write(`demo: ${badPorts.join('\ndemo: ')}\n`);
    process.exitCode = 2;
    return;
  }
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  const { app, gateway } = command;
  const options = { ports, logger, onboarding, ...(app ? { app } : {}), ...(process.env.DEMO_CLIENT_SECRET ? { clientSecret: process.env.DEMO_CLIENT_SECRET } : {}) };
  let stack: DemoLookalikes;
  try {
    stack = gateway ? await startDemoStack(options) : await startDemoLookalikes(options);
  } catch (err) {
    const inUse = (err as NodeJS.ErrnoException & { port?: number }).code === 'EADDRINUSE' ? (err as { port?: number }).port : undefined;
    if (inUse !== undefined) {
      const variable = {
        [ports.gateway]: 'DEMO_PORT',
        [ports.op]: 'DEMO_OP_PORT',
        [ports.skatteetaten]: 'DEMO_SKATTEETATEN_PORT',
        [ports.altinn]: 'DEMO_ALTINN_PORT',
        [onboarding.customer]: 'DEMO_CUSTOMER_PORT',
        [onboarding.selfService]: 'DEMO_SELF_SERVICE_PORT',
        [onboarding.maskinporten]: 'DEMO_MASKINPORTEN_PORT',
      }[inUse];
      process.stderr.write(`demo: port ${inUse} is in use (another demo still running?)${variable ? `; set ${variable} to use another` : ''}\n`);
      process.exitCode = 1;
      return;
    }
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`demo: ${err.issues.map((issue) => formatIssue({ ...issue, path: optionFor(issue.path) })).join('\n')}\n`);
    process.exitCode = 2;
    return;
  }
  const user = TEST_USERS[0]!;
  const lines = [
    '',
    gateway ? 'idporten-bff demo is running (everything is local; no network needed)' : 'idporten-bff demo look-alikes are running (no gateway: run your own with the configuration below)',
    ...(gateway ? [`  open:              ${stack.publicUrl}/${app ? `   (${describeApp(app)})` : ''}`] : []),
    `  test user:         ${user.name}, fødselsnummer ${user.pid} (pick any user on the login page)`,
    `  ID-porten (demo):  ${stack.op.issuer}/.well-known/openid-configuration`,
    `  Skatteetaten:      ${stack.skatteetaten.validationUrl}`,
    `  Altinn:            ${stack.altinn.appUrl}`,
    ...(gateway ? [`  health:            ${stack.publicUrl}/healthz  ${stack.publicUrl}/readyz`] : []),
    ...(app && 'static' in app && !existsSync(join(app.static, 'index.html'))
      ? [`  note:              ${app.static} has no index.html; is it your build's output folder (dist/, build/)?`]
      : []),
    ...(Number(process.versions.node.split('.')[0]) < 22
      ? [`  note:              on Node ${process.versions.node} the look-alike ID-porten prints "Unsupported runtime"; that is expected here (production runs on Node 24 LTS)`]
      : []),
    ...(!app && gateway ? ['  your own app:      npm run demo -- --app-static DIR   or   npm run demo -- --app-upstream URL'] : []),
  ];
  if (stack.onboarding) lines.push('', ...onboardingSection(stack.onboarding));
  if (app || !gateway) lines.push('', ...configSection(stack));
  lines.push('Press Ctrl+C to stop.', '');
  process.stdout.write(lines.join('\n'));
  const stop = () => {
    stack.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** A customer onboarded with one command, through the self-service look-alike, then logging in. */
function onboardingSection(vendor: NonNullable<DemoLookalikes['onboarding']>): string[] {
  return [
    'Onboard a customer (Kunde AS, orgno 123456789) as a vendor does, through Digdir\'s self-service API (look-alike',
    `at ${vendor.selfService.url}, admin token from the Maskinporten look-alike at ${vendor.maskinporten.issuer}):`,
    `  1. ${vendor.applyCommand}`,
    '     makes the ID-porten integration (supplier model, client_orgno 123456789), registers a new key, and keeps the',
    `     client id and the sealed private key in the customer's tenant file; see ${vendor.configFile}`,
    `  2. ${vendor.serveCommand}`,
    `     and open ${vendor.customerUrl}/auth/login : the customer's users log in at the ID-porten look-alike`,
    '  check it any time with: ... integrations check --config <the same file>   (exit 0: nothing differs)',
    '',
  ];
}

/** The printed configuration, with what to do with it. */
function configSection(stack: DemoLookalikes): string[] {
  const { port } = stack.config.server;
  return [
    `The gateway configuration for these look-alikes (issuer, client id and secret, API routes, the app). The`,
    `client's secret is this run's: set DEMO_CLIENT_SECRET to keep it across runs. To run a gateway of your own with`,
    `it, save it as demo-gateway.yaml, start the demo with --no-gateway, and run (the look-alike accepts logins`,
    `for ${stack.publicUrl} only, so keep server.port ${port}):`,
    `  export BFF_SESSION_KEY=${randomBytes(32).toString('base64url')}`,
    `  npx idporten-bff --config demo-gateway.yaml        (in this repository: npm start -- --config demo-gateway.yaml)`,
    '',
    CONFIG_BEGIN,
    stringify(stack.copyableConfig, { lineWidth: 0 }).trimEnd(),
    CONFIG_END,
    '',
  ];
}

function describeApp(app: DemoApp): string {
  return 'static' in app ? `your app from ${app.static}` : `your app at ${app.upstream}`;
}

/** A configuration path the user set with an option is named by the option. */
function optionFor(path: string): string {
  if (path === 'tenants[0].app.static') return '--app-static';
  if (path === 'tenants[0].app.upstream') return '--app-upstream';
  return path;
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed to start: ${err.message}\n`);
  process.exit(1);
});
