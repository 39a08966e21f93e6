/**
 * What the main thread and the webhook delivery worker (delivery-worker.ts) say to each other.
 * Everything here crosses a MessagePort, so it is plain data (structured clone): no functions,
 * no class instances.
 */
import type { DeadLetterReason } from './dead-letter.js'
import type { SerializedEvent } from '../events/serialize-event.js'
import type { WebhookSinkStats } from './delivery-queue.js'
import type { SpoolStats } from './spool.js'

/** The worker's `workerData`: every setting its DeliveryQueue, spool and dead-letter file need. */
export interface DeliveryWorkerInit {
  sink: {
    url: string
    secret: string | undefined
    timeoutMs: number
    maxAgeMs: number
    concurrency: number
    backoff: { initialMs: number; maxMs: number }
    headers: Record<string, string> | undefined
    ca: string | undefined
    version: string
    /**
     * WEBHOOK_FORMAT: the bodies are made on the main thread (worker-sink.ts); here it picks the
     * headers (Standard Webhooks signatures, or AVR's X-AVR-WEBHOOK-SECRET). Default standard.
     */
    format?: 'standard' | 'avr' | undefined
  }
  spool: { dir: string; maxBytes: number }
  deadLetterPath: string
  /** The main logger's level and bindings, so the worker's lines look like the main thread's. */
  log: { level: string; bindings: Record<string, unknown> }
}

/**
 * Events cross as JSON text with a few flat fields: the structured clone of a whole envelope cost
 * about 30 µs of the main thread per event at 500 calls (V8's serializer walks every property);
 * JSON.stringify, which the sink needs anyway, and a string copy cost a fraction of that.
 */
/** One published event on its way to the worker; `publishedAtMs` in epoch ms. */
export interface PublishedEvent {
  event: SerializedEvent
  publishedAtMs: number
}

/**
 * `publish` carries the events of one turn of the main thread's event loop (or, to a worker that
 * has just started, every event not yet secured), in publication order: one message, and one
 * wake-up of the worker, per turn rather than per event.
 */
export type ToWorker =
  | { type: 'publish'; events: PublishedEvent[] }
  | { type: 'close'; timeoutMs: number }

export type FromWorker =
  | { type: 'started' }
  | { type: 'start-failed'; code: string; message: string }
  /** One finished log line (JSON and its newline), written to the main logger's destination as is. */
  | { type: 'log'; line: string }
  | ({ type: 'report' } & WorkerReport)
  | { type: 'closed' }

/**
 * What happened since the previous report, sent at most once per turn of the worker's loop, and
 * the state after it. Counts are deltas; `stats` and `spool` are snapshots.
 */
export interface WorkerReport {
  /** Events whose main-thread copy may be dropped (see DeliveryQueueOptions.onEventSecured). */
  secured: string[]
  /** [event type, latency from publication in ms, or null for an event recovered from the spool]. */
  delivered: Array<[string, number | null]>
  attemptsFailed: number
  deadLettered: DeadLetterReason[]
  stats: WebhookSinkStats
  spool: SpoolStats | undefined
}
