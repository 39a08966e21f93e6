/**
 * The webhook delivery worker: a worker thread that runs the DeliveryQueue, its spool and its
 * dead-letter file, started by WebhookWorkerSink (worker-sink.ts). Why a thread of its own:
 *
 * - An event must be in the spool before its first POST. On the main thread that write goes to
 *   libuv's pool and the POST waits for the main loop to come back to the completion, behind every
 *   call's audio frames. Here the write is
 *   synchronous, which blocks nobody but this thread, and the POST follows in the same turn.
 * - Signing, HTTP and retry timers no longer share a loop with the audio path.
 *
 * The worker exits by itself after `close` (nothing keeps its loop alive once the queue is closed).
 *
 * WHERE AN EVENT LIVES, one place per thread at any moment:
 * - Main thread: WebhookWorkerSink.unsecured (its JSON and a few fields), from publish() until this
 *   worker reports it secured (its spool record written, or, if the spool refused it, settled), so
 *   that a replacement worker can be handed it if this one dies. Then nowhere.
 * - On its way: the `publish` message on the MessagePort (a copy made by postMessage).
 * - This thread: its call's queue in DeliveryQueue (one Delivery: the body and the fields the queue
 *   and logs need), from the message until it is delivered or dead-lettered. The spool keeps no copy
 *   in memory: append() writes the record before it returns; the segment only counts it.
 * - Disk: its spool record, from before its first attempt until its ack (after a 2xx, or once its
 *   dead letter is written).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { createLogger } from '../shared/logger.js'
import { AppError, isAppError } from '../shared/errors.js'
import { DeadLetterFile } from './dead-letter.js'
import { DeliveryQueue, type WebhookMetrics } from './delivery-queue.js'
import { Spool } from './spool.js'
import type { DeliveryWorkerInit, FromWorker, ToWorker, WorkerReport } from './worker-messages.js'

const port = parentPort
if (port === null) throw new AppError('ERR_WEBHOOK_WORKER', 'delivery-worker.ts runs as a worker thread (see worker-sink.ts)')
const init = workerData as DeliveryWorkerInit
const send = (message: FromWorker): void => port.postMessage(message)

const logger = createLogger({ level: init.log.level, destination: { write: (line: string) => send({ type: 'log', line }) } }).child(init.log.bindings)

/**
 * How often the main thread hears what happened. Nothing there is urgent (metrics, stats, and the
 * events it may stop keeping), and a report per event would wake both threads once more per event.
 */
const REPORT_INTERVAL_MS = 100

/** Collects what the main thread must hear about and sends it every REPORT_INTERVAL_MS. */
class Reporter implements WebhookMetrics {
  private report: Omit<WorkerReport, 'stats' | 'spool'> = emptyReport()
  private timer: NodeJS.Timeout | undefined
  queue: DeliveryQueue | undefined

  delivered(type: string, latencyMs: number | undefined): void {
    this.report.delivered.push([type, latencyMs ?? null])
    this.schedule()
  }

  attemptFailed(): void {
    this.report.attemptsFailed++
    this.schedule()
  }

  deadLettered(reason: 'rejected' | 'expired'): void {
    this.report.deadLettered.push(reason)
    this.schedule()
  }

  secured(eventId: string): void {
    this.report.secured.push(eventId)
    this.schedule()
  }

  /** Sends now (with fresh stats) even if nothing changed. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const queue = this.queue
    if (queue === undefined) return
    send({ type: 'report', ...this.report, stats: queue.stats(), spool: queue.spoolStats() })
    this.report = emptyReport()
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => this.flush(), REPORT_INTERVAL_MS)
  }
}

function emptyReport(): Omit<WorkerReport, 'stats' | 'spool'> {
  return { secured: [], delivered: [], attemptsFailed: 0, deadLettered: [] }
}

const reporter = new Reporter()
const queue = new DeliveryQueue({
  ...init.sink,
  logger,
  spool: new Spool({ dir: init.spool.dir, maxBytes: init.spool.maxBytes, logger }),
  deadLetters: new DeadLetterFile(init.deadLetterPath),
  metrics: reporter,
  onEventSecured: (eventId) => reporter.secured(eventId),
})
reporter.queue = queue

port.on('message', (message: ToWorker) => {
  if (message.type === 'publish') {
    for (const { event, publishedAtMs } of message.events) queue.publish(event, publishedAtMs)
  } else {
    void queue.close(message.timeoutMs).then(() => {
      reporter.flush()
      send({ type: 'closed' })
      port.close()
    })
  }
})

queue.start().then(
  () => {
    send({ type: 'started' })
    reporter.flush()
  },
  (err: unknown) => {
    const code = isAppError(err) ? err.code : 'ERR_SPOOL_OPEN'
    send({ type: 'start-failed', code, message: err instanceof Error ? err.message : String(err) })
    port.close()
  },
)
