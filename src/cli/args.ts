/**
 * The command line: `idporten-bff [--config FILE] [--check]`, `--help`, `--version`, `idporten-bff audit trace
 * VALUE [FILE]` and `idporten-bff integrations check|apply|rotate-keys|remove`. Parsing only (Node's
 * `util.parseArgs`); main.ts acts on the result. Every command answers `--help` with its own usage.
 */

import { parseArgs } from 'node:util';

export type IntegrationsAction = 'check' | 'apply' | 'rotate-keys' | 'remove';

export interface IntegrationsCommand {
  kind: 'integrations';
  action: IntegrationsAction;
  configPath: string | undefined;
  tenant: string | undefined;
  json: boolean;
  dryRun: boolean;
  /** rotate-keys: how long the old key stays registered after signing switched (a duration, e.g. 1h). */
  overlap: string;
  /** rotate-keys: rotate again every DURATION, unattended, until stopped. */
  every: string | undefined;
}

export type Command =
  | { kind: 'serve'; configPath: string | undefined }
  | { kind: 'check'; configPath: string | undefined }
  | { kind: 'help' }
  | { kind: 'audit-help' }
  | { kind: 'integrations-help' }
  | { kind: 'version' }
  | { kind: 'audit-trace'; value: string; file: string | undefined; json: boolean }
  | IntegrationsCommand
  | { kind: 'usage-error'; message: string; usage: string };

export const USAGE = `Usage: idporten-bff [--config FILE] [--check]
       idporten-bff audit trace [--json] [--] <fingerprint|session-hash> [FILE]
       idporten-bff integrations check|apply|rotate-keys|remove [--config FILE] [--tenant ID] [--json] [--dry-run]
       idporten-bff --help | --version
       idporten-bff COMMAND --help

The ID-porten backend-for-frontend token gateway: keeps tokens on the server, gives the browser an
HttpOnly session cookie and calls the configured APIs with the user's bearer token.

Options:
  -c, --config FILE   the configuration file (JSON or YAML); takes precedence over BFF_CONFIG
      --check         validate the configuration, print it as JSON with secrets masked, and exit:
                      0 when it is valid, 2 when it is not (nothing is started or contacted)
  -h, --help          print this help and exit
  -V, --version       print the version and exit

Commands:
  audit trace VALUE [FILE]
                      print the timeline of one session or token from a JSON log (stdin by default);
                      see 'idporten-bff audit --help'
  integrations check|apply|rotate-keys|remove
                      the tenants' ID-porten integrations, through Digdir's self-service API (the
                      configuration's digdir block); see 'idporten-bff integrations --help'

Environment:
  BFF_CONFIG          the configuration file when --config is not given
  NAME                any variable the file references as \${NAME} (secrets: BFF_SESSION_KEY, client
                      secrets, private JWKs, REDIS_URL, …)

Signals: SIGTERM and SIGINT stop accepting connections, let in-flight requests finish and exit 0
within server.shutdownTimeout.

Exit status: 0 success, 1 failure while running, 2 invalid configuration or usage.
`;

export const AUDIT_USAGE = `Usage: idporten-bff audit trace [--json] [--] <fingerprint|session-hash> [FILE]

Reads the gateway's JSON log (FILE, or stdin when FILE is absent or '-') and prints, in time order, every
line that mentions VALUE in any field, then follows the links: every line of the sessions found, and the
tokens that replaced a token found (token.refresh: oldAccessToken → accessToken, oldRefreshToken →
refreshToken; token.exchange: accessToken → altinnToken; login.success: replacedSession → session).

VALUE is a token fingerprint (first 12 base64url characters of SHA-256 of the token), a session hash,
or any other value a log field carries (a sid fingerprint, a sub). A value may begin with '-' (base64url
has it): it is taken as a value unless it reads as a long option (--word); after '--' everything is.

Options:
  --json              print the matching log lines as they are (JSON lines) instead of a timeline
  --                  end of options: what follows is VALUE [FILE] even when it begins with '-'
  -h, --help          print this help and exit

Exit status: 0 lines found, 1 nothing matched, 2 usage error or unreadable input.
`;

export const INTEGRATIONS_USAGE = `Usage: idporten-bff integrations check       [--config FILE] [--tenant ID] [--json]
       idporten-bff integrations apply       [--config FILE] [--tenant ID] [--json] [--dry-run]
       idporten-bff integrations rotate-keys [--config FILE] [--tenant ID] [--overlap DURATION] [--every DURATION]
       idporten-bff integrations remove      [--config FILE]  --tenant ID  [--dry-run]

Each tenant with an orgno has one ID-porten integration (type api_klient, in the supplier model: the
customer's orgno as client_orgno), kept through Digdir's self-service API with the vendor's admin client
(the configuration's digdir block; its access token comes from Maskinporten by a JWT grant).

  check         compare each tenant's registered integration with what the gateway needs for it (URIs
                from publicUrl, grant types, one-time refresh tokens, private_key_jwt and the key,
                application type web, the scopes of its routes, lifetimes within 8 hours) and list
                every difference. Exit 0 when nothing differs (extra registered URIs are notes only),
                1 when something does, 2 when it could not check.
  apply         create the integration or update it to match; make an RS256 key pair, register the
                public key, and keep the client id and the sealed private key where the gateway reads
                them (the Redis store, else the tenant's file in tenantsDir). Running it again changes
                nothing. Exit 0 done, 1 the API refused, 2 could not apply.
  rotate-keys   register a new key beside the current one, switch signing to it, and remove the old one
                after the overlap (keys of an earlier run whose overlap has passed are removed first).
  remove        delete the tenant's integration and what apply kept for it (only with --tenant).

Options:
  -c, --config FILE   the gateway's configuration file (else BFF_CONFIG)
  -t, --tenant ID     only this tenant (default: every tenant with an orgno)
      --json          print the result as JSON: { "tenants": [ { "id", "differences": [ { "field",
                      "want", "have" } ], "notes": [ … ] } ] }
  -n, --dry-run       apply, remove: show the change without making it
      --overlap D     rotate-keys: how long the old key stays registered after signing switched (1h)
      --every D       rotate-keys: keep running and rotate every D (e.g. 30d), for unattended use
  -h, --help          print this help and exit

Environment: BFF_CONFIG and the variables the file references (the admin client's key among them).
`;

export function parseCommand(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === 'audit') return parseAudit(rest);
  if (first === 'integrations') return parseIntegrations(rest);
  const parsed = parse(argv, {
    config: { type: 'string', short: 'c' },
    check: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  }, USAGE);
  if ('kind' in parsed) return parsed;
  if (parsed.options.help) return { kind: 'help' };
  if (parsed.options.version) return { kind: 'version' };
  if (parsed.positionals.length > 0) return usageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  const configPath = parsed.options.config as string | undefined;
  return { kind: parsed.options.check ? 'check' : 'serve', configPath };
}

function parseAudit(argv: readonly string[]): Command {
  if (argv.length === 0) return usageError('audit needs a command: audit trace VALUE [FILE]', AUDIT_USAGE);
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') return { kind: 'audit-help' };
  if (sub !== 'trace') return usageError(`unknown audit command ${JSON.stringify(sub)}`, AUDIT_USAGE);
  // Only what reads as a long option is one: a fingerprint or session hash is base64url (RFC 4648 §5), whose
  // alphabet has '-', so '-6R895lWZJr8' is a value, not an unknown option.
  const parsed = parse(rest, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, AUDIT_USAGE, {
    dashValues: true,
    unknownHint: " (a value that begins with '-' may follow '--': audit trace -- VALUE)",
  });
  if ('kind' in parsed) return parsed;
  if (parsed.options.help) return { kind: 'audit-help' };
  const { positionals } = parsed;
  if (positionals.length === 0 || positionals[0] === '' || positionals[0] === '-') return usageError('audit trace needs a fingerprint or session hash', AUDIT_USAGE);
  if (positionals.length > 2) return usageError(`unexpected argument ${JSON.stringify(positionals[2])}`, AUDIT_USAGE);
  const file = positionals[1] === '-' ? undefined : positionals[1];
  return { kind: 'audit-trace', value: positionals[0]!, file, json: parsed.options.json === true };
}

const INTEGRATIONS_ACTIONS: readonly IntegrationsAction[] = ['check', 'apply', 'rotate-keys', 'remove'];

function parseIntegrations(argv: readonly string[]): Command {
  const [sub, ...rest] = argv;
  if (sub === undefined) return usageError('integrations needs a command: check, apply, rotate-keys or remove', INTEGRATIONS_USAGE);
  if (sub === '--help' || sub === '-h') return { kind: 'integrations-help' };
  const action = INTEGRATIONS_ACTIONS.find((a) => a === sub);
  if (action === undefined) return usageError(`unknown integrations command ${JSON.stringify(sub)}`, INTEGRATIONS_USAGE);
  const parsed = parse(rest, {
    config: { type: 'string', short: 'c' },
    tenant: { type: 'string', short: 't' },
    json: { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
    overlap: { type: 'string' },
    every: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, INTEGRATIONS_USAGE);
  if ('kind' in parsed) return parsed;
  const { options, positionals } = parsed;
  if (options.help) return { kind: 'integrations-help' };
  if (positionals.length > 0) return usageError(`unexpected argument ${JSON.stringify(positionals[0])}`, INTEGRATIONS_USAGE);
  const onlyFor = (name: string, actions: IntegrationsAction[]) =>
    options[name] !== undefined && !actions.includes(action) ? usageError(`--${name} is for integrations ${actions.join(' and ')}`, INTEGRATIONS_USAGE) : undefined;
  const misplaced = onlyFor('dry-run', ['apply', 'remove']) ?? onlyFor('overlap', ['rotate-keys']) ?? onlyFor('every', ['rotate-keys']);
  if (misplaced) return misplaced;
  const tenant = options.tenant as string | undefined;
  // Deleting every customer's integration is never what a missing option should mean.
  if (action === 'remove' && tenant === undefined) return usageError('integrations remove needs --tenant ID: it removes one integration at a time', INTEGRATIONS_USAGE);
  return {
    kind: 'integrations',
    action,
    configPath: options.config as string | undefined,
    tenant,
    json: options.json === true,
    dryRun: options['dry-run'] === true,
    overlap: (options.overlap as string | undefined) ?? '1h',
    every: options.every as string | undefined,
  };
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

interface Parsed {
  options: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * `util.parseArgs` with this command line's messages: an unknown option or a string option without a value is a
 * usage error naming it. With `dashValues`, an argument that begins with '-' but does not read as a long option
 * (--word) is a positional value.
 */
function parse(argv: readonly string[], spec: OptionSpec, usage: string, opts: { dashValues?: boolean; unknownHint?: string } = {}): Parsed | Command {
  const { tokens } = parseArgs({ args: [...argv], options: spec, strict: false, allowPositionals: true, tokens: true });
  const options: Parsed['options'] = {};
  const positionals: string[] = [];
  const taken = new Set<number>();
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option' || taken.has(token.index)) continue;
    const known = spec[token.name];
    if (known === undefined) {
      const raw = argv[token.index]!;
      if (opts.dashValues && !LONG_OPTION.test(raw)) {
        // A short group ('-6R8…') is several tokens of one argument: the argument is taken once.
        taken.add(token.index);
        positionals.push(raw);
        continue;
      }
      return usageError(`unknown option ${JSON.stringify(raw.split('=')[0])}${opts.unknownHint ?? ''}`, usage);
    }
    if (known.type === 'boolean') {
      if (token.value !== undefined) return usageError(`${token.rawName} takes no value`, usage);
      options[token.name] = true;
      continue;
    }
    const value = token.value;
    if (value === undefined || value === '' || (!token.inlineValue && value.startsWith('-'))) {
      const what = token.name === 'config' ? 'a file path' : 'a value';
      return usageError(`${token.rawName} needs ${what}: ${token.rawName}${token.inlineValue ? '=' : ' '}${token.name === 'config' ? 'FILE' : token.name.toUpperCase()}`, usage);
    }
    options[token.name] = value;
  }
  return { options, positionals };
}

/** `--json`, `--jsno`, `--output=x`: two dashes and a lowercase word. */
const LONG_OPTION = /^--[a-z][a-z-]*(=.*)?$/;

function usageError(message: string, usage = USAGE): Command {
  return { kind: 'usage-error', message, usage };
}
