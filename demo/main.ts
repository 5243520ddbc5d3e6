import { createLogger } from '../src/logging.js';
import { TEST_USERS } from './test-users.js';
import { DEFAULT_DEMO_PORTS, startDemoStack, type DemoPorts } from './stack.js';

/** `npm run demo`: the demo stack with no configuration and no network. Ports: DEMO_PORT (gateway), DEMO_OP_PORT, DEMO_SKATTEETATEN_PORT, DEMO_ALTINN_PORT. */
async function main(): Promise<void> {
  const port = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
  const ports: DemoPorts = {
    gateway: port('DEMO_PORT', DEFAULT_DEMO_PORTS.gateway),
    op: port('DEMO_OP_PORT', DEFAULT_DEMO_PORTS.op),
    skatteetaten: port('DEMO_SKATTEETATEN_PORT', DEFAULT_DEMO_PORTS.skatteetaten),
    altinn: port('DEMO_ALTINN_PORT', DEFAULT_DEMO_PORTS.altinn),
  };
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  const stack = await startDemoStack({ ports, logger });
  const user = TEST_USERS[0]!;
  process.stdout.write(
    [
      '',
      'idporten-bff demo is running (everything is local; no network needed)',
      `  open:              ${stack.publicUrl}/`,
      `  test user:         ${user.name}, fødselsnummer ${user.pid} (pick any user on the login page)`,
      `  ID-porten (demo):  ${stack.op.issuer}/.well-known/openid-configuration`,
      `  Skatteetaten:      ${stack.skatteetaten.validationUrl}`,
      `  Altinn:            ${stack.altinn.appUrl}`,
      `  health:            ${stack.publicUrl}/healthz  ${stack.publicUrl}/readyz`,
      ...(Number(process.versions.node.split('.')[0]) < 22
        ? [`  note:              on Node ${process.versions.node} the look-alike ID-porten prints "Unsupported runtime"; that is expected here (production runs on Node 24 LTS)`]
        : []),
      'Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  );
  const stop = () => {
    stack.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed to start: ${err.message}\n`);
  process.exit(1);
});
