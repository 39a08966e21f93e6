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
export { JsonLinesSink, type JsonLinesSinkOptions } from './stdout-sink.js'
