export type { EventEnvelope, EventSink, EventType } from './envelope.js'
export {
  decodeWebhookSecret,
  signPayload,
  webhookHeaders,
  SIGNATURE_VERSION,
  WEBHOOK_SECRET_PREFIX,
  type WebhookSignatureHeaders,
} from './signing.js'
export { HttpWebhookSink, parseRetryAfter, type HttpWebhookSinkOptions, type WebhookSinkStats } from './http-sink.js'
export {
  WebhookTransport,
  BODY_EXCERPT_BYTES,
  RESERVED_HEADERS,
  type PostOutcome,
  type PostHandle,
  type WebhookTransportOptions,
} from './http-transport.js'
export { Spool, acquireSpoolLock, parseSegment, SPOOL_FORMAT_VERSION, type SpoolOptions, type SpoolStats, type RecoveredEvent } from './spool.js'
export { DeadLetterFile, DEAD_LETTER_FILE, type DeadLetterEntry, type DeadLetterInfo } from './dead-letter.js'
export { JsonLinesSink, type JsonLinesSinkOptions } from './stdout-sink.js'
export { JsonLinesFileSink, type JsonLinesFileSinkOptions } from './file-sink.js'
export { FanOutSink } from './fan-out-sink.js'
