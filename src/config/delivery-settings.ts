/** Settings of event delivery: the webhook (WEBHOOK_*), its spool (SPOOL_*), the events file and transcript.partial events. */
import { concurrency, directoryPath, headerMap, maxAge, optionalHttpUrl, optionalPath, optionalSecret, pemFile, positiveMs, spoolBytes, strictBoolean } from './formats.js'
import { setting } from './setting.js'

export const webhookSettings = {
  url: setting(optionalHttpUrl, { doc: 'Where events are POSTed; unset = JSON lines on stdout.', default: null, env: 'WEBHOOK_URL' }),
  secret: setting(optionalSecret, {
    doc: 'Standard Webhooks signing secret (whsec_<base64> or any string).',
    default: null,
    env: 'WEBHOOK_SECRET',
    sensitive: true,
  }),
  timeoutMs: setting(positiveMs, { doc: 'Per-request timeout.', default: 5000, env: 'WEBHOOK_TIMEOUT_MS' }),
  /** WEBHOOK_MAX_AGE in milliseconds: past it a failing event is dead-lettered. */
  maxAgeMs: setting(maxAge, {
    doc: 'Retry a failing event until it is this old (counted from its creation, across restarts), then move it to the dead-letter file: e.g. 24h, 90m, 3600s, or milliseconds.',
    default: '24h',
    env: 'WEBHOOK_MAX_AGE',
  }),
  retryInitialMs: setting(positiveMs, { doc: 'First retry delay; doubles per attempt with jitter.', default: 500, env: 'WEBHOOK_RETRY_INITIAL_MS' }),
  retryMaxMs: setting(positiveMs, { doc: 'Cap on the retry delay.', default: 30000, env: 'WEBHOOK_RETRY_MAX_MS' }),
  concurrency: setting(concurrency, {
    doc: 'Calls delivered in parallel (requests in flight at most; one per call, so each call stays in order). At 1,000 calls about 600 events/s leave; 8 was measured to fall behind by 26 s there.',
    default: 64,
    env: 'WEBHOOK_CONCURRENCY',
  }),
  headers: setting(headerMap, {
    doc: 'Extra request headers as a JSON object, e.g. {"Authorization": "Bearer ..."}; cannot override content-type, user-agent or the webhook-* headers.',
    default: {},
    env: 'WEBHOOK_HEADERS',
    sensitive: true,
  }),
  /** Checked at load to hold a PEM certificate; read again by the delivery wiring. */
  caFile: setting(pemFile, {
    doc: 'PEM file of CA certificate(s) trusted for an https: WEBHOOK_URL, in addition to the system ones (for a private CA).',
    default: null,
    env: 'WEBHOOK_CA_FILE',
  }),
}

export const spoolSettings = {
  /** As configured; relative paths are resolved against the working directory when the spool opens. */
  dir: setting(directoryPath, {
    doc: 'Directory of the webhook delivery spool and the dead-letter file (relative to the working directory). Use a persistent directory, e.g. systemd StateDirectory.',
    default: 'var/spool',
    env: 'SPOOL_DIR',
  }),
  maxBytes: setting(spoolBytes, {
    doc: 'Bound on the spool size on disk, e.g. 256M or 1G; past it new events are delivered from memory only and an error is logged.',
    default: '256M',
    env: 'SPOOL_MAX_BYTES',
  }),
}

export const eventsSettings = {
  file: setting(optionalPath, {
    doc: 'Also append every event as a JSON line to this file (with or without WEBHOOK_URL).',
    default: null,
    env: 'EVENTS_FILE',
  }),
}

export const transcriptSettings = {
  partialEvents: setting(strictBoolean, { doc: 'Publish throttled transcript.partial events.', default: false, env: 'TRANSCRIPT_PARTIAL_EVENTS' }),
  partialIntervalMs: setting(positiveMs, {
    doc: 'Minimum interval between transcript.partial events of one call.',
    default: 500,
    env: 'TRANSCRIPT_PARTIAL_INTERVAL_MS',
  }),
}
