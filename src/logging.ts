import pino, { type Logger } from 'pino';

/**
 * The process logger. Redaction is a safety net: the code never logs tokens, codes, cookies or pid,
 * and these paths catch the obvious places one could slip in.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.code',
  '*.pid',
  '*.client_secret',
  '*.logout_token',
  'access_token',
  'refresh_token',
  'id_token',
  'pid',
  'code',
];

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'idporten-bff' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Buffered, asynchronous writes to stdout: one audit line per proxied request must not block the event
    // loop on a write(2). pino flushes the buffer synchronously when the process exits.
    opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }),
  );
}
