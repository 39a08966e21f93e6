/**
 * Settings of running the service: the HTTP endpoint (/healthz, /readyz, /metrics, POST /calls/{uuid}),
 * admission of calls, shutdown, logging and call capture.
 */
import { cidrList, listenHost, logLevel, maxCalls, nonNegativeMs, optionalPath, optionalToken, positiveMs, registrationBytes, registrationCount, strictBoolean, tcpPort } from './formats.js'
import { setting } from './setting.js'

export const logLevelSetting = setting(logLevel, { doc: 'pino log level.', default: 'info', env: 'LOG_LEVEL' })

export const captureSettings = {
  /** Record every call to a capture file in this directory; null = off. */
  dir: setting(optionalPath, {
    doc: 'Record every call to a capture file (raw bytes both ways, replayable) in this directory; unset = off. Captures hold call audio.',
    default: null,
    env: 'CAPTURE_DIR',
  }),
}

export const httpSettings = {
  host: setting(listenHost, { doc: 'Address of the HTTP endpoint (/healthz, /readyz, /metrics, POST /calls/{uuid}): an IPv4 or IPv6 address or a host name.', default: '127.0.0.1', env: 'HTTP_HOST' }),
  /** 0 = no HTTP endpoint. */
  port: setting(tcpPort, { doc: 'Port of the HTTP endpoint; 0 turns it off.', default: 9093, env: 'HTTP_PORT' }),
  /** Bearer token of /calls; null = registration off. */
  token: setting(optionalToken, {
    doc: 'Bearer token that POST and DELETE /calls/{uuid} require (at least 16 characters, e.g. openssl rand -hex 32); unset = call registration off.',
    default: null,
    env: 'HTTP_TOKEN',
    sensitive: true,
  }),
}

export const admissionSettings = {
  /** 0 = no limit. */
  maxCalls: setting(maxCalls, {
    doc: 'Live calls at most; a connection beyond it gets a hangup frame and is closed, logged and counted. 0 = no limit.',
    default: 0,
    env: 'MAX_CALLS',
  }),
  /** CIDR blocks (canonical text); empty = any source. */
  allowedSources: setting(cidrList, {
    doc: 'Comma-separated addresses or CIDR blocks, IPv4 or IPv6, allowed to connect to the AudioSocket port (e.g. "127.0.0.1, 10.1.0.0/16"); others are reset before a byte is read. Unset = any.',
    default: [],
    env: 'ALLOWED_SOURCES',
  }),
  requireRegistration: setting(strictBoolean, {
    doc: 'Refuse calls whose UUID was not registered with POST /calls/{uuid} (needs HTTP_PORT and HTTP_TOKEN).',
    default: false,
    env: 'REQUIRE_REGISTRATION',
  }),
  registrationTtlMs: setting(positiveMs, { doc: 'How long a registration waits for its call.', default: 300000, env: 'REGISTRATION_TTL_MS' }),
  // Heap per waiting registration (bench/registration-heap.ts, Node 20): ~390 B for a typical body,
  // its JSON size + ~210 B otherwise, twice the JSON if it holds a character beyond Latin-1 (a
  // 60 KB body: 60 KB, or 120 KB). So the defaults hold the store to at most ~36 MB of heap
  // (2 x 16 MiB + 10,000 x 210 B); without them 10,000 large bodies took 1.85 GB.
  /** Registrations waiting for their call at most (POST /calls answers 429 past it). */
  registrationMaxCount: setting(registrationCount, {
    doc: 'Registrations waiting for their call at most; past it POST /calls/{uuid} answers 429 with Retry-After (seconds until the oldest expires).',
    default: 10000,
    env: 'REGISTRATION_MAX_COUNT',
  }),
  /** Bytes of those registrations' JSON at most (429 past it). */
  registrationMaxBytes: setting(registrationBytes, {
    doc: 'Bound on the registrations waiting for their call, in bytes of their JSON, e.g. 16M; past it POST /calls/{uuid} answers 429 with Retry-After. The heap they take is up to twice this.',
    default: '16M',
    env: 'REGISTRATION_MAX_BYTES',
  }),
}

export const shutdownSettings = {
  /** How long live calls may go on after SIGTERM/SIGINT before they are ended. */
  drainTimeoutMs: setting(nonNegativeMs, {
    doc: 'On SIGTERM/SIGINT, how long live calls may go on (not ready, new connections refused) before each is ended with reason shutdown. 0 = end them at once.',
    default: 30000,
    env: 'DRAIN_TIMEOUT_MS',
  }),
  /** Bound on delivering pending events once every call has ended. */
  flushTimeoutMs: setting(positiveMs, {
    doc: 'Once every call has ended, bound on delivering pending events before exit; the spool keeps what is left. SHUTDOWN_TIMEOUT_MS is accepted as an older name.',
    default: 10000,
    env: 'FLUSH_TIMEOUT_MS',
  }),
}
