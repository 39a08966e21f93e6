/**
 * Every metric the server exports (GET /metrics), and the small interfaces the counting places
 * receive: CallSession (CallMetrics), the Soniox sessions (SonioxMetrics), the webhook sink
 * (WebhookMetrics), the ARI client and its taps (AriTapMetrics) and the listener (connections). Labels come from fixed, small sets: no call ids.
 *
 * Per-frame counting resolves nothing at run time: each frame type's series is looked up once here,
 * and a frame costs two additions on a fixed-shape object.
 */
import type { AriTapMetrics } from '../ari/ari-metrics.js'
import type { CallEndReason, CallMetrics } from '../call/call-session.js'
import type { AppError } from '../shared/errors.js'
import type { SonioxMetrics } from '../soniox/soniox-session.js'
import { sonioxCodeOf } from '../soniox/soniox-error.js'
import type { DeadLetterReason } from '../webhook/dead-letter.js'
import type { WebhookMetrics } from '../webhook/delivery-queue.js'
import { HTTP_REFUSAL_REASONS, type HttpMetrics, type HttpRefusalReason } from './http-endpoint.js'
import { Registry, type CounterChild } from './metrics.js'
import { registerProcessMetrics, type ProcessMetricsOptions } from './process-metrics.js'

/** Why a connection or call was refused before it was served. */
export type RefusalReason = 'max_calls' | 'source' | 'unregistered' | 'duplicate_uuid'

export interface ServiceMetrics {
  readonly registry: Registry
  readonly call: CallMetrics
  readonly soniox: SonioxMetrics
  readonly webhook: WebhookMetrics
  readonly http: HttpMetrics
  readonly ari: AriTapMetrics
  connectionAccepted(): void
  connectionRefused(reason: RefusalReason): void
  /** Stops the event-loop delay sampler of the process metrics. */
  close(): void
}

export interface ServiceMetricsOptions {
  version: string
  /** Read at each scrape. */
  ready: () => boolean
  /** The webhook sink's queue and spool, read at each scrape; undefined without WEBHOOK_URL. */
  webhook?: () => { pending: number; spoolBytes: number } | undefined
  /** The call registrations waiting for their call, read at each scrape. */
  registrations?: () => { count: number; bytes: number }
  /** The process metrics' sources (process-metrics.ts); the real process's by default. */
  process?: ProcessMetricsOptions
}

const END_REASONS: readonly CallEndReason[] = ['hangup', 'server_hangup', 'error', 'shutdown', 'timeout']
const REFUSALS: readonly RefusalReason[] = ['max_calls', 'source', 'unregistered', 'duplicate_uuid']
const FRAME_TYPES = ['uuid', 'audio', 'dtmf', 'hangup', 'error', 'unknown'] as const
const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ['rejected', 'expired']

/** Seconds; Soniox connects in ~0.1-0.5 s from a well-connected host, and times out at 10 s by default. */
const CONNECT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Seconds from a transcript.final being published to its 2xx: milliseconds normally, minutes in an outage. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

export function createServiceMetrics(options: ServiceMetricsOptions): ServiceMetrics {
  const r = new Registry()

  r.gauge('audiosocket_build_info', 'Always 1; the version label says which build runs.', ['version']).child(options.version).set(1)
  const processMetrics = registerProcessMetrics(r, options.process)
  r.gauge('audiosocket_ready', '1 while GET /readyz answers 200; 0 while starting, draining, until Soniox has answered the start probe, or while it refuses the account.', [], () =>
    options.ready() ? 1 : 0,
  )

  const connections = r.counter('audiosocket_connections_total', 'TCP connections accepted on the AudioSocket port (refused ones included).')
  const refused = r.counter('audiosocket_connections_refused_total', 'Connections refused before being served, by reason: max_calls, source (ALLOWED_SOURCES), unregistered (REQUIRE_REGISTRATION), duplicate_uuid (a live call already has the UUID).', ['reason'])
  const refusedBy = Object.fromEntries(REFUSALS.map((reason) => [reason, refused.child(reason)])) as Record<RefusalReason, CounterChild>

  const active = r.gauge('audiosocket_calls_active', 'Calls in progress (UUID received, call.ended not yet published).')
  const started = r.counter('audiosocket_calls_started_total', 'Calls started (call.started published).')
  const ended = r.counter('audiosocket_calls_ended_total', 'Calls ended (call.ended published), by its reason. Calls started: audiosocket_calls_started_total.', ['reason'])
  // The name this counter had up to 0.1.x, kept with the same values for one more release (removed in 0.3.0).
  const endedOldName = r.counter(
    'audiosocket_calls_total',
    'DEPRECATED, removed in 0.3.0: the same counter as audiosocket_calls_ended_total (calls ENDED by reason, not calls started).',
    ['reason'],
  )
  const endedBy = Object.fromEntries(END_REASONS.map((reason) => [reason, [ended.child(reason), endedOldName.child(reason)] as const])) as Record<
    CallEndReason,
    readonly [CounterChild, CounterChild]
  >
  const failedConnections = r.counter(
    'audiosocket_connections_failed_total',
    'Connections that ended before a call started: not AudioSocket, a bad or missing UUID frame, a protocol violation, a socket error.',
  )
  const g711Suspected = r.counter(
    'audiosocket_calls_g711_suspected_total',
    'Calls whose 0x10 audio looks like G.711 labelled as slin (Dial(AudioSocket/...) without c(slin)): add c(slin), or set AUDIOSOCKET_SLIN_ENCODING.',
  )
  const faults = r.counter(
    'audiosocket_call_faults_total',
    "Exceptions inside one call's own handling (bugs, ERR_CALL_INTERNAL): each ended that call with reason error; the process and the other calls went on.",
  )

  const framesIn = r.counter('audiosocket_frames_received_total', 'AudioSocket frames received from Asterisk, by kind.', ['kind'])
  const bytesIn = r.counter('audiosocket_bytes_received_total', 'AudioSocket payload bytes received from Asterisk, by kind (headers not counted).', ['kind'])
  const framesOut = r.counter('audiosocket_frames_sent_total', 'AudioSocket frames sent to Asterisk, by kind: silence (keeping its inactivity timer alive), hangup.', ['kind'])
  type FrameType = (typeof FRAME_TYPES)[number]
  const inByType = Object.fromEntries(FRAME_TYPES.map((type) => [type, { frames: framesIn.child(type), bytes: bytesIn.child(type) }])) as Record<
    FrameType,
    { frames: CounterChild; bytes: CounterChild }
  >
  const silenceOut = framesOut.child('silence')
  const hangupOut = framesOut.child('hangup')

  const sessions = r.counter('audiosocket_soniox_sessions_total', 'Soniox real-time sessions opened (replacements and rotations included).')
  const sessionsActive = r.gauge('audiosocket_soniox_sessions_active', 'Soniox sessions open now.')
  const reconnects = r.counter('audiosocket_soniox_reconnects_total', 'Soniox sessions opened to replace a failed one.')
  const errors = r.counter(
    'audiosocket_soniox_errors_total',
    'Soniox session failures, by error code (ERR_SONIOX_*) and Soniox/HTTP status (soniox_code, empty when none).',
    ['code', 'soniox_code'],
  )
  const connectTime = r.histogram('audiosocket_soniox_connect_seconds', 'Time from opening a Soniox WebSocket to its upgrade completing.', CONNECT_BUCKETS)

  const deliveries = r.counter('audiosocket_webhook_deliveries_total', 'Events the webhook answered 2xx.')
  const failures = r.counter('audiosocket_webhook_failures_total', 'Webhook delivery attempts that failed (retried, or dead-lettered when not retriable).')
  const deadLetters = r.counter('audiosocket_webhook_dead_letters_total', 'Events moved to the dead-letter file, by reason: rejected, expired.', ['reason'])
  const deadLettersBy = Object.fromEntries(DEAD_LETTER_REASONS.map((reason) => [reason, deadLetters.child(reason)])) as Record<DeadLetterReason, CounterChild>
  r.gauge('audiosocket_webhook_pending_events', 'Events waiting for delivery (in the spool, retrying or in flight).', [], () => options.webhook?.()?.pending ?? 0)
  r.gauge('audiosocket_webhook_spool_bytes', 'Size of the webhook spool on disk, in bytes.', [], () => options.webhook?.()?.spoolBytes ?? 0)
  r.gauge('audiosocket_registrations_pending', 'Call registrations waiting for their call (bounded by REGISTRATION_MAX_COUNT).', [], () => options.registrations?.().count ?? 0)
  r.gauge('audiosocket_registrations_bytes', 'Bytes of JSON the waiting call registrations hold (bounded by REGISTRATION_MAX_BYTES).', [], () => options.registrations?.().bytes ?? 0)
  const httpRefused = r.counter(
    'audiosocket_http_requests_refused_total',
    `Requests the HTTP endpoint refused, each one counted (the log lines are throttled), by reason: ${HTTP_REFUSAL_REASONS.join(', ')}.`,
    ['reason'],
  )
  const httpRefusedBy = Object.fromEntries(HTTP_REFUSAL_REASONS.map((reason) => [reason, httpRefused.child(reason)])) as Record<HttpRefusalReason, CounterChild>
  const latency = r.histogram(
    'audiosocket_transcript_delivery_latency_seconds',
    'Time from a transcript.final event (with WEBHOOK_FORMAT=avr its transcription) being published to the webhook answering it 2xx (retries and outages included).',
    LATENCY_BUCKETS,
  )

  const ariRequests = r.counter('audiosocket_ari_requests_total', 'ARI REST requests, by outcome: ok (answered as the method expects, a 404 it maps to "gone" included), error.', ['outcome'])
  const ariRequestsOk = ariRequests.child('ok')
  const ariRequestsError = ariRequests.child('error')
  const ariConnected = r.gauge('audiosocket_ari_connected', '1 while the ARI events WebSocket is open, 0 otherwise (or ARI_URL unset).')
  const ariTaps = r.gauge('audiosocket_ari_taps_active', 'Taps (snoop + externalMedia stream on a bridged call) live now.')

  const call: CallMetrics = {
    callStarted() {
      started.inc()
      active.inc()
    },
    callEnded(reason) {
      const [series, oldName] = endedBy[reason]
      series.inc()
      oldName.inc()
      active.dec()
    },
    callFaulted() {
      faults.inc()
    },
    connectionFailed() {
      failedConnections.inc()
    },
    g711Suspected() {
      g711Suspected.inc()
    },
    frameReceived(type, payloadBytes) {
      const series = inByType[type]
      series.frames.value++
      series.bytes.value += payloadBytes
    },
    frameSent(kind) {
      ;(kind === 'silence' ? silenceOut : hangupOut).value++
    },
  }

  const soniox: SonioxMetrics = {
    sessionOpened() {
      sessions.inc()
      sessionsActive.inc()
    },
    sessionClosed() {
      sessionsActive.dec()
    },
    connected(ms) {
      connectTime.observe(ms / 1000)
    },
    reconnected() {
      reconnects.inc()
    },
    error(error: AppError) {
      errors.child(error.code, sonioxCodeLabel(sonioxCodeOf(error))).inc()
    },
  }

  const webhook: WebhookMetrics = {
    delivered(type, latencyMs) {
      deliveries.inc()
      // transcription: a transcript.final as WEBHOOK_FORMAT=avr delivers it.
      if ((type === 'transcript.final' || type === 'transcription') && latencyMs !== undefined) latency.observe(Math.max(0, latencyMs) / 1000)
    },
    attemptFailed() {
      failures.inc()
    },
    deadLettered(reason) {
      deadLettersBy[reason].inc()
    },
  }

  const ari: AriTapMetrics = {
    requestFinished(outcome) {
      ;(outcome === 'ok' ? ariRequestsOk : ariRequestsError).inc()
    },
    eventStreamConnected(connected) {
      ariConnected.set(connected ? 1 : 0)
    },
    tapStarted() {
      ariTaps.inc()
    },
    tapEnded() {
      ariTaps.dec()
    },
  }

  return {
    registry: r,
    call,
    soniox,
    webhook,
    ari,
    http: { requestRefused: (reason) => httpRefusedBy[reason].inc() },
    connectionAccepted: () => connections.inc(),
    connectionRefused: (reason) => refusedBy[reason].inc(),
    close: () => processMetrics.close(),
  }
}

/** Soniox codes are HTTP-like statuses; anything else is folded into "other" to keep the series few. */
function sonioxCodeLabel(code: number | undefined): string {
  if (code === undefined) return ''
  return Number.isInteger(code) && code >= 100 && code <= 599 ? String(code) : 'other'
}
