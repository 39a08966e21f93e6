/**
 * The ARI client (Asterisk REST Interface): REST requests (AriRest) and the events WebSocket
 * (AriEventStream). Knows nothing of calls, Soniox or webhooks: it speaks channels, bridges and
 * events to whoever built it; every failure is an AppError (AriError with the HTTP status where
 * Asterisk answered one).
 */
export type { AriBridge, AriCallerId, AriChannel, AriEvent } from './ari-types.js'
export type { AriConnection } from './ari-connection.js'
export type { AriMetrics, AriTapMetrics } from './ari-metrics.js'
export { AriRest, DEFAULT_REQUEST_TIMEOUT_MS, type AriRestOptions } from './ari-rest.js'
export { AriEventStream, type AriEventStreamOptions, type AriEventStreamState } from './ari-events.js'
export { AriError, ariStatusOf, ARI_AUTH_HINT, type AriErrorDetails } from './ari-error.js'
