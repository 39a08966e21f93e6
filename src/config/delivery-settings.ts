/** Settings of event delivery: the webhook (WEBHOOK_*), its spool (SPOOL_*), the events file and transcript.partial events. */
import { webhookHeaderProblem } from '../shared/validate.js'
import { concurrency, directoryPath, headerMap, maxAge, optionalHttpUrl, optionalPath, optionalSecret, pemFile, positiveMs, spoolBytes, strictBoolean, webhookFormat } from './formats.js'
import type { Settings } from './schema.js'
import { setting } from './setting.js'

export const webhookSettings = {
  url: setting(optionalHttpUrl, { doc: 'Where events are POSTed; unset = JSON lines on stdout.', default: null, env: 'WEBHOOK_URL' }),
  secret: setting(optionalSecret, {
    doc: 'Standard Webhooks signing secret (whsec_<base64> or any string); with WEBHOOK_FORMAT=avr sent as it is in the X-AVR-WEBHOOK-SECRET header instead, as AVR Core sends it.',
    default: null,
    env: 'WEBHOOK_SECRET',
    sensitive: true,
  }),
  format: setting(webhookFormat, {
    doc: 'Shape of what is POSTed: standard (the events below, Standard Webhooks signatures) or avr (AVR Core\'s webhook events: call_started, transcription, dtmf_digit, error, call_ended; see "Switching from AVR"). Spooled, retried and dead-lettered alike; EVENTS_FILE keeps the standard events.',
    default: 'standard',
    env: 'WEBHOOK_FORMAT',
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

/** The header AVR Core sends its WEBHOOK_SECRET in (webhook/http-transport.ts sends it; named here for the messages). */
const AVR_SECRET_HEADER = 'X-AVR-WEBHOOK-SECRET'

/**
 * The rules of WEBHOOK_FORMAT=avr: it shapes what goes to WEBHOOK_URL (so it needs one), AVR has no
 * partial transcripts (and its sample receiver allows 100 requests per 15 minutes per IP), and the
 * secret travels as a header value, so it must be one (and is not also set by WEBHOOK_HEADERS).
 */
export function webhookFormatProblems(settings: Settings): string[] {
  const webhook = settings.webhook
  if (webhook.format !== 'avr') return []
  const problems: string[] = []
  if (webhook.url === null) {
    problems.push('WEBHOOK_FORMAT (webhook.format): avr shapes the requests to WEBHOOK_URL, which is not set (EVENTS_FILE and stdout always carry the standard events); set WEBHOOK_URL or unset WEBHOOK_FORMAT')
  }
  if (settings.transcript.partialEvents) {
    problems.push(
      'TRANSCRIPT_PARTIAL_EVENTS (transcript.partialEvents): WEBHOOK_FORMAT=avr sends no partial transcripts (AVR has no such event, and its receivers are rate-limited); unset TRANSCRIPT_PARTIAL_EVENTS or set it to false',
    )
  }
  if (webhook.secret !== null) {
    if (webhookHeaderProblem(AVR_SECRET_HEADER, webhook.secret) !== undefined) {
      problems.push(`WEBHOOK_SECRET (webhook.secret): with WEBHOOK_FORMAT=avr it is sent as the ${AVR_SECRET_HEADER} header, and a header value cannot hold control characters or line breaks`)
    }
    if (Object.keys(webhook.headers).some((name) => name.toLowerCase() === AVR_SECRET_HEADER.toLowerCase())) {
      problems.push(`WEBHOOK_HEADERS (webhook.headers): names ${AVR_SECRET_HEADER}, which WEBHOOK_FORMAT=avr sends from WEBHOOK_SECRET; set the secret in one of them only`)
    }
  }
  return problems
}
