/**
 * WEBHOOK_URL delivery from a worker thread: the main-thread face of delivery-worker.ts. It is an
 * EventSink like the others; behind it the worker runs the DeliveryQueue with its spool, retries,
 * ordering and dead letters (see delivery-worker.ts for why a thread, and where each event lives).
 *
 * Nothing is lost to the thread boundary. Every published event is kept here until the worker
 * reports it secured (its spool record written, or settled). If the worker dies (a bug, an
 * out-of-memory in its heap), the error is logged, a new worker is started after a short pause, it
 * recovers the spool like a restarted server would, and it is handed every event not yet secured,
 * in publication order. An event can then arrive twice, always with the same id (at least once).
 */
import { Worker } from 'node:worker_threads'
import pino, { type DestinationStream, type Logger } from 'pino'
import { AppError, ErrorCodes, type ErrorCode } from '../shared/errors.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import type { EventEnvelope, EventSink } from '../events/envelope.js'
import { envelopeLogFields, serializeEvent, type SerializedEvent } from '../events/serialize-event.js'
import { serializeAvrEvent } from '../events/avr-format.js'
import type { WebhookMetrics, WebhookSinkStats } from './delivery-queue.js'
import type { SpoolStats } from './spool.js'
import type { DeliveryWorkerInit, FromWorker, PublishedEvent, ToWorker, WorkerReport } from './worker-messages.js'

export interface WebhookWorkerSinkOptions {
  init: DeliveryWorkerInit
  /** The worker's log lines are written, as they are, to this logger's destination. */
  logger: Logger
  metrics?: WebhookMetrics | undefined
  /** Pause before a new worker replaces one that died. Default 1 s. */
  restartDelayMs?: number | undefined
  /** The worker's entry module. Default delivery-worker.js next to this file. */
  workerUrl?: URL | undefined
  /**
   * Publication times (epoch ms), the restart pause and the close deadline (a setting: any length).
   * Default systemClock. The worker's own DeliveryQueue keeps systemClock: a Clock cannot cross threads.
   */
  clock?: Clock | undefined
}

/**
 * The worker's young generation. V8 sizes it like the main thread's (up to 16 MB per semi-space)
 * and lets it grow under load, which at 500 calls cost about 30 KB of RSS per call for a thread that
 * handles a few hundred small events a second. A few MB hold that traffic between scavenges; the
 * old generation (a backlog during a receiver outage) keeps V8's default limit.
 */
const WORKER_YOUNG_GENERATION_MB = 4

/** Longer than any close() deadline is given to the worker for starting its own shutdown. */
const CLOSE_GRACE_MS = 5000

type State = 'new' | 'starting' | 'open' | 'closing' | 'closed'

/** An event not yet secured, kept as it is handed to a worker (again, if need be). */
type Unsecured = PublishedEvent

export class WebhookWorkerSink implements EventSink {
  private state: State = 'new'
  private worker: Worker | undefined
  /** Published, not yet reported secured by the worker, in publication order (a Map keeps it). */
  private readonly unsecured = new Map<string, Unsecured>()
  /**
   * Events published in the current turn of the event loop, posted together after it (setImmediate)
   * to the worker that was running when they were published: a burst of arriving calls costs one
   * message and one wake-up of the worker per turn, not per event.
   */
  private outbox: { worker: Worker; events: Unsecured[] } | undefined
  private latest: { stats: WebhookSinkStats; spool: SpoolStats | undefined } | undefined
  /** Cumulative counts of workers that died, so stats() stays monotonic across a restart. */
  private readonly earlier = { delivered: 0, retried: 0, deadLettered: 0, failed: 0, unspooled: 0 }
  private droppedHere = 0
  private startPromise: Promise<void> | undefined
  /** The latest spawn (the first, or a replacement), until its worker has started or failed. */
  private spawning: Promise<void> | undefined
  private closePromise: Promise<void> | undefined
  private restartTimer: ClockTimer | undefined
  private readonly logDestination: DestinationStream
  private readonly logger: Logger
  private readonly metrics: WebhookMetrics | undefined
  private readonly restartDelayMs: number
  private readonly workerUrl: URL
  private readonly clock: Clock
  /** WEBHOOK_FORMAT=avr: each event becomes AVR's bodies (events/avr-format.ts), here, once. */
  private readonly avr: boolean

  constructor(private readonly options: WebhookWorkerSinkOptions) {
    this.logger = options.logger
    this.logDestination = (options.logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym] ?? {
      write: (line: string) => process.stderr.write(line),
    }
    this.metrics = options.metrics
    this.restartDelayMs = options.restartDelayMs ?? 1000
    this.clock = options.clock ?? systemClock
    this.workerUrl = options.workerUrl ?? new URL('./delivery-worker.js', import.meta.url)
    this.avr = options.init.sink.format === 'avr'
  }

  /** Starts the worker; resolves once it has recovered the spool. Rejects as DeliveryQueue.start does. */
  start(): Promise<void> {
    this.startPromise ??= this.spawn()
    return this.startPromise
  }

  /** Hands the event to the worker, also while close() waits for it (it delivers what comes meanwhile). */
  publish(event: EventEnvelope): void {
    if (this.state === 'closed') {
      this.droppedHere++
      this.logger.error(envelopeLogFields(event), 'webhook event published after the sink closed; dropped')
      return
    }
    if (this.avr) {
      this.publishAvr(event)
      return
    }
    let serialized: SerializedEvent
    try {
      serialized = serializeEvent(event)
    } catch (err) {
      this.droppedHere++
      this.logger.error({ ...envelopeLogFields(event), attempts: 0, err }, 'webhook event dropped')
      return
    }
    this.handOver(serialized)
  }

  /**
   * Asks the worker to deliver what it holds within `timeoutMs` (the spool keeps the rest) and
   * waits for it to finish. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.closePromise ??= this.shutDown(timeoutMs)
    return this.closePromise
  }

  /** The worker's latest counts (reported within 100 ms of a change), plus those of any worker that died. */
  stats(): WebhookSinkStats {
    const current = this.latest?.stats
    return {
      delivered: this.earlier.delivered + (current?.delivered ?? 0),
      retried: this.earlier.retried + (current?.retried ?? 0),
      deadLettered: this.earlier.deadLettered + (current?.deadLettered ?? 0),
      failed: this.earlier.failed + this.droppedHere + (current?.failed ?? 0),
      leftInSpool: current?.leftInSpool ?? 0,
      unspooled: this.earlier.unspooled + (current?.unspooled ?? 0),
      // Events still on their way to the worker count as pending too.
      pending: Math.max(current?.pending ?? 0, this.unsecured.size),
    }
  }

  spoolStats(): SpoolStats | undefined {
    return this.latest?.spool
  }

  // -------------------------------------------------------------------------------------------

  /** WEBHOOK_FORMAT=avr: the event's AVR bodies (none, one, or an error and call_ended), each delivered as an event of its own. */
  private publishAvr(event: EventEnvelope): void {
    let bodies: SerializedEvent[]
    try {
      bodies = serializeAvrEvent(event)
    } catch (err) {
      this.droppedHere++
      this.logger.error({ ...envelopeLogFields(event), attempts: 0, err }, 'webhook event dropped')
      return
    }
    for (const serialized of bodies) this.handOver(serialized)
  }

  private handOver(serialized: SerializedEvent): void {
    const entry: Unsecured = { event: serialized, publishedAtMs: this.clock.now() }
    this.unsecured.set(serialized.id, entry)
    // Before start() or while a replacement worker is pending, the event waits here and is handed over then.
    const worker = this.worker
    if (worker === undefined) return
    if (this.outbox === undefined) {
      this.outbox = { worker, events: [] }
      setImmediate(() => this.postOutbox())
    }
    this.outbox.events.push(entry)
  }

  /**
   * Posts this turn's events. A worker that died meanwhile gets nothing: its replacement is handed
   * every event not yet secured when it starts, these included.
   */
  private postOutbox(): void {
    const outbox = this.outbox
    this.outbox = undefined
    if (outbox === undefined || outbox.worker !== this.worker) return
    outbox.worker.postMessage({ type: 'publish', events: outbox.events } satisfies ToWorker)
  }

  /** Starts a worker and resolves when it is ready; a worker that dies later is replaced (see replace). */
  private spawn(): Promise<void> {
    if (this.state === 'new') this.state = 'starting'
    const spawning = new Promise<void>((resolve, reject) => {
      const worker = new Worker(this.workerUrl, {
        workerData: this.options.init,
        name: 'webhook-delivery',
        resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      })
      /** This worker's own lifecycle: `closed` once it has finished close() itself. */
      let phase: 'starting' | 'running' | 'closed' = 'starting'
      let failure: Error | undefined
      worker.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'log':
            this.logDestination.write(message.line)
            break
          case 'report':
            this.applyReport(message)
            break
          case 'started':
            phase = 'running'
            this.worker = worker
            this.spawning = undefined
            if (this.state === 'starting') this.state = 'open'
            // Everything published before (or while replacing a dead worker) goes now, in order.
            if (this.unsecured.size > 0) worker.postMessage({ type: 'publish', events: [...this.unsecured.values()] } satisfies ToWorker)
            resolve()
            break
          case 'start-failed':
            failure = new AppError(knownCode(message.code), message.message)
            break
          case 'closed':
            phase = 'closed'
            // The worker's close() has logged and counted whatever it could not deliver or spool:
            // nothing is left for this side to report.
            this.unsecured.clear()
            break
        }
      })
      worker.on('error', (err) => {
        failure = err
      })
      worker.on('exit', (exitCode) => {
        if (this.worker === worker) this.worker = undefined
        if (phase === 'starting') {
          this.spawning = undefined
          reject(failure ?? new AppError('ERR_WEBHOOK_WORKER', `the webhook delivery worker exited (code ${exitCode}) before it started`))
          return
        }
        if (phase === 'closed' || this.state === 'closed') return
        this.replace(exitCode, failure)
      })
    })
    this.spawning = spawning
    return spawning
  }

  private replace(exitCode: number, cause: Error | undefined): void {
    const err = new AppError('ERR_WEBHOOK_WORKER', `the webhook delivery worker stopped (exit code ${exitCode})`, { cause })
    this.retire()
    if (this.state === 'closing') {
      // close() is waiting for this worker; it reports what is left (see shutDown).
      this.logger.error({ err, unsecured: this.unsecured.size }, 'webhook delivery worker stopped during shutdown')
      return
    }
    this.logger.error(
      { err, unsecured: this.unsecured.size, restartInMs: this.restartDelayMs },
      'webhook delivery worker stopped; a new one takes over the spool and the events not yet spooled',
    )
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined
      if (this.state === 'closing' || this.state === 'closed') return
      // One that cannot even start (spool unreadable?) is retried the same way; events wait here.
      this.spawn().catch((startErr: unknown) => this.replace(-1, startErr instanceof Error ? startErr : undefined))
    }, this.restartDelayMs)
  }

  /** The dead worker's cumulative counts move to `earlier`; its pending and spool figures are stale. */
  private retire(): void {
    const last = this.latest?.stats
    if (last !== undefined) {
      this.earlier.delivered += last.delivered
      this.earlier.retried += last.retried
      this.earlier.deadLettered += last.deadLettered
      this.earlier.failed += last.failed
      this.earlier.unspooled += last.unspooled
    }
    this.latest = undefined
  }

  private async shutDown(timeoutMs: number): Promise<void> {
    this.state = 'closing'
    this.clock.clearTimeout(this.restartTimer)
    // A worker on its way up (the first, or a replacement) is let finish starting, then closed.
    await this.spawning?.catch(() => {})
    const worker = this.worker
    if (worker !== undefined) {
      const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
      // This turn's events before the close, which they must not follow.
      this.postOutbox()
      worker.postMessage({ type: 'close', timeoutMs } satisfies ToWorker)
      // timeoutMs is a setting (FLUSH_TIMEOUT_MS): taken at any length.
      const deadline = this.clock.setTimeout(() => {
        this.logger.error({ timeoutMs }, 'webhook delivery worker did not finish closing; stopping it')
        void worker.terminate()
      }, timeoutMs + CLOSE_GRACE_MS)
      await gone
      this.clock.clearTimeout(deadline)
    }
    this.state = 'closed'
    if (this.unsecured.size > 0) {
      // Handed to no worker (none was running) or to one that died before writing them.
      const err = new AppError('ERR_WEBHOOK_GAVE_UP', `${this.unsecured.size} event(s) were neither delivered nor spooled`)
      this.logger.error({ undelivered: this.unsecured.size, eventIds: [...this.unsecured.keys()], err }, 'webhook sink closed with events left undelivered')
      this.droppedHere += this.unsecured.size
      this.unsecured.clear()
    }
  }

  private applyReport(report: WorkerReport): void {
    for (const id of report.secured) this.unsecured.delete(id)
    const metrics = this.metrics
    if (metrics !== undefined) {
      for (const [type, latencyMs] of report.delivered) metrics.delivered(type, latencyMs ?? undefined)
      for (let i = 0; i < report.attemptsFailed; i++) metrics.attemptFailed()
      for (const reason of report.deadLettered) metrics.deadLettered(reason)
    }
    this.latest = { stats: report.stats, spool: report.spool }
  }
}

function knownCode(code: string): ErrorCode {
  return code in ErrorCodes ? (code as ErrorCode) : 'ERR_SPOOL_OPEN'
}
