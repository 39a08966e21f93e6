/**
 * pino logger factory. Logs go to stderr (fd 2): stdout is reserved for JSON-lines events when no
 * webhook is configured, and journald/docker capture both streams anyway.
 *
 * Rules (see README "Logs"): stable camelCase fields (`callId`, `kind`, `bytes`, `attempt`,
 * `delayMs`), errors under `err`, no audio and no transcript text above debug, secrets redacted.
 *
 * The default destination is log-destination.ts's (not pino.destination()): a stderr that is a
 * broken pipe or a reader that stopped reading can neither block the process nor keep it from exiting.
 */
import pino, { type DestinationStream, type Logger } from 'pino'
import { LogDestination } from './log-destination.js'

export type { Logger } from 'pino'

/** Paths pino blanks out wherever they appear in a log record. */
const REDACT_PATHS = [
  'apiKey',
  'secret',
  'headers.authorization',
  'headers.Authorization',
  '*.apiKey',
  '*.secret',
  '*.api_key',
  'config.soniox.apiKey',
  'config.webhook.secret',
  'token',
  '*.token',
  'config.http.token',
]

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? stderrDestination(),
  )
}

/** fd 2. process.stderr is touched first: for a pipe or a socket, that makes Node set the fd non-blocking. */
function stderrDestination(): LogDestination {
  void process.stderr.fd
  return new LogDestination({ fd: 2 })
}
