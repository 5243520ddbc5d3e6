/**
 * The command line: `idporten-bff [--config FILE] [--check]`, `--help`, `--version`, and
 * `idporten-bff audit trace VALUE [FILE]`. Parsing only; main.ts acts on the result.
 */

export type Command =
  | { kind: 'serve'; configPath: string | undefined }
  | { kind: 'check'; configPath: string | undefined }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'audit-trace'; value: string; file: string | undefined; json: boolean }
  | { kind: 'audit-help' }
  | { kind: 'usage-error'; message: string; usage: string };

export const USAGE = `Usage: idporten-bff [--config FILE] [--check]
       idporten-bff audit trace [--json] [--] <fingerprint|session-hash> [FILE]
       idporten-bff --help | --version

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

export function parseCommand(argv: readonly string[]): Command {
  if (argv[0] === 'audit') return parseAudit(argv.slice(1));
  let configPath: string | undefined;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--version' || arg === '-V') return { kind: 'version' };
    if (arg === '--check') check = true;
    else if (arg === '--config' || arg === '-c') {
      const value = argv[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return usageError(`${arg} needs a file path: ${arg} FILE`);
      configPath = value;
    } else if (arg.startsWith('--config=')) {
      const value = arg.slice('--config='.length);
      if (value === '') return usageError('--config needs a file path: --config=FILE');
      configPath = value;
    } else if (arg.startsWith('-')) return usageError(`unknown option ${JSON.stringify(arg)}`);
    else return usageError(`unexpected argument ${JSON.stringify(arg)}`);
  }
  return { kind: check ? 'check' : 'serve', configPath };
}

function parseAudit(argv: readonly string[]): Command {
  if (argv.length === 0) return usageError('audit needs a command: audit trace VALUE [FILE]', AUDIT_USAGE);
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') return { kind: 'audit-help' };
  if (sub !== 'trace') return usageError(`unknown audit command ${JSON.stringify(sub)}`, AUDIT_USAGE);
  let json = false;
  let optionsEnded = false;
  const positional: string[] = [];
  for (const arg of rest) {
    if (optionsEnded) positional.push(arg);
    else if (arg === '--') optionsEnded = true;
    else if (arg === '--help' || arg === '-h') return { kind: 'audit-help' };
    else if (arg === '--json') json = true;
    // Only what reads as a long option is one: a fingerprint or session hash is base64url (RFC 4648 §5),
    // whose alphabet has '-', so '-6R895lWZJr8' is a value, not an unknown option.
    else if (LONG_OPTION.test(arg)) return usageError(`unknown option ${JSON.stringify(arg)} (a value that begins with '-' may follow '--': audit trace -- VALUE)`, AUDIT_USAGE);
    else positional.push(arg);
  }
  if (positional.length === 0 || positional[0] === '' || positional[0] === '-') return usageError('audit trace needs a fingerprint or session hash', AUDIT_USAGE);
  if (positional.length > 2) return usageError(`unexpected argument ${JSON.stringify(positional[2])}`, AUDIT_USAGE);
  const file = positional[1] === '-' ? undefined : positional[1];
  return { kind: 'audit-trace', value: positional[0]!, file, json };
}

/** `--json`, `--jsno`, `--output=x`: two dashes and a lowercase word. */
const LONG_OPTION = /^--[a-z][a-z-]*(=.*)?$/;

function usageError(message: string, usage = USAGE): Command {
  return { kind: 'usage-error', message, usage };
}
