/**
 * DeliveryQueue: the delivery worker's per-call queues, retries, dead-lettering and close (see the
 * class comment for its invariants). Over 400 lines because ordering, retry, spool ack and close
 * share the per-call queue state; the wire (http-transport.ts) and the disk (spool.ts) are apart.
 */
import type { Logger } from 'pino'
import { createBackoff, type Backoff } from '../shared/backoff.js'
import { AppError } from '../shared/errors.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import type { DeadLetterFile, DeadLetterReason } from './dead-letter.js'
import { eventLogFields, type SerializedEvent } from '../events/serialize-event.js'
import { WebhookTransport, type FailedPost, type PostOutcome } from './http-transport.js'
import type { Spool, SpoolRef, SpoolStats } from './spool.js'

export { parseRetryAfter } from './http-transport.js'

export interface DeliveryQueueOptions {
  /** Absolute http: or https: URL every event is POSTed to. */
  url: string
  /** Standard Webhooks secret (`whsec_<base64>` or any other string used as bytes). Unsigned without it. */
  secret?: string | undefined
  /** Deadline for one request, from sending it to the end of the response, in milliseconds. */
  timeoutMs: number
  /**
   * An event whose latest attempt failed when it is this old (from its first publication, across
   * restarts) is dead-lettered instead of retried (WEBHOOK_MAX_AGE). Every event gets at least one attempt.
   */
  maxAgeMs: number
  /** Calls delivered in parallel: at most this many requests in flight, never two of one call. Default 8. */
  concurrency?: number | undefined
  /** Delay between attempts of one event. factor defaults to 2, jitter to 0.2. */
  backoff: { initialMs: number; maxMs: number; factor?: number; jitter?: number }
  logger: Logger
  /** Extra request headers (e.g. authorization). They cannot override the content or signature headers. */
  headers?: Record<string, string> | undefined
  /** PEM CA certificate(s) trusted for https: in addition to Node's bundled ones. */
  ca?: string | Buffer | undefined
  /** Sent as `user-agent: audiosocket-soniox/<version>`. Default '0'. */
  version?: string | undefined
  /** WEBHOOK_FORMAT: which headers carry the secret (see WebhookTransportOptions.format). Default standard. */
  format?: 'standard' | 'avr' | undefined
  /**
   * Durable store: each event is written here before its first attempt and acknowledged after it is
   * settled; start() delivers what a previous run left.
   */
  spool: Spool
  /** Where rejected and expired events go. */
  deadLetters: DeadLetterFile
  /**
   * Wall clock (epoch ms: signature timestamps, Retry-After dates, event age) and the timers for
   * retry waits and the close deadline, so tests can run hours of backoff on a virtual clock. A wait
   * can be longer than a Node timer holds (a Retry-After of weeks, within a WEBHOOK_MAX_AGE of up to
   * 30 d): a Clock takes any delay (systemClock waits long ones out in legs). Request deadlines use
   * real timers whatever is injected (they measure a real socket). Default systemClock.
   */
  clock?: Clock | undefined
  /** Uniform [0, 1) source for backoff jitter. Default Math.random. */
  random?: (() => number) | undefined
  metrics?: WebhookMetrics | undefined
  /**
   * Called once for each event published to this sink when the publisher's copy is no longer
   * needed: its spool record is written, or (not spooled) it is settled. The delivery worker reports
   * it to the main thread, which keeps every event until then in case the worker dies.
   */
  onEventSecured?: ((eventId: string) => void) | undefined
}

/** Counts deliveries (Prometheus in production); each call is one event's outcome, never per byte. */
export interface WebhookMetrics {
  /**
   * An event was answered 2xx. `latencyMs`: from its publication by this process to that answer
   * (undefined for an event recovered from the spool: it was published by an earlier run).
   */
  delivered(type: string, latencyMs: number | undefined): void
  /** An attempt failed (retriable or not). */
  attemptFailed(): void
  deadLettered(reason: DeadLetterReason): void
}

export interface WebhookSinkStats {
  /** Events answered 2xx. */
  delivered: number
  /** Attempts made after an event's first one. */
  retried: number
  /** Events rejected (non-retriable status) or expired (WEBHOOK_MAX_AGE), handed to the dead-letter file. */
  deadLettered: number
  /** Events lost: not serialisable, published after close, or left at close without a spool record. */
  failed: number
  /** Events left undelivered at close that are safe in the spool for the next start. */
  leftInSpool: number
  /** Events the spool refused (full) or failed to write: attempted from memory only. */
  unspooled: number
  /** Events published (or recovered) and not yet settled, the ones in flight included. */
  pending: number
}

/** `starting`: recovering the spool, holding new events; `closing`: still delivering while close() waits. */
type SinkState = 'starting' | 'open' | 'closing' | 'closed'

/**
 * One event on its way. The envelope object is not kept: only the bytes to send and the fields the
 * queue and the logs need, so a long backlog costs little more memory than its JSON.
 */
interface Delivery {
  readonly id: string
  readonly callId: string
  readonly seq: number
  readonly type: string
  readonly bodyText: string
  /**
   * 'avr': the body does not carry its id, call_id and seq, so its spool record keeps them beside it.
   * Only read when the event is spooled (an event recovered from the spool has its record already).
   */
  readonly format: 'avr' | undefined
  /** When the event was first published (epoch ms; from the spool after a restart). Max age counts from here. */
  readonly firstAtMs: number
  /** Published by this process (not recovered from the spool): its delivery latency is measured. */
  readonly publishedHere: boolean
  spoolRef: SpoolRef | undefined
  attempts: number
  firstAttemptAtMs: number
  lastAttemptAtMs: number
  /** Created at the first failure: most events never need one. */
  backoff: Backoff | undefined
}

/**
 * A call's events in seq order; index 0 is the head, the only one that may be on the wire.
 * `idle`: nothing to send (or the sink is still starting); `runnable`: waiting for a concurrency slot;
 * `sending`: its head is in flight; `waiting`: its head failed and a backoff timer runs.
 */
interface CallQueue {
  readonly callId: string
  readonly items: Delivery[]
  state: 'idle' | 'runnable' | 'sending' | 'waiting'
  timer: ClockTimer | undefined
  abort: (() => void) | undefined
}

const DEFAULT_CONCURRENCY = 8

/**
 * Delivers events to one webhook URL, at least once, in `seq` order per call, surviving receiver
 * outages (retries until WEBHOOK_MAX_AGE) and process crashes (the spool).
 *
 * Ordering invariant: each call has one FIFO queue, and only its head is ever sent; the next event
 * is looked at only once the head is settled (delivered, or dead-lettered). So a receiver never has
 * two requests of one call in flight, and sees a call's events in seq order. Calls do not wait for
 * each other: up to `concurrency` heads are in flight at once, and a call in backoff holds no slot,
 * so one failing call cannot starve the others.
 *
 * Durability invariant: an event is sent only after its spool write completed (or failed: then it
 * is attempted from memory, and counted in `unspooled`); it is acknowledged in the spool only after
 * a 2xx, or after its dead letter has been written. A crash in between means one more delivery of
 * the same bytes with the same id after the restart, never a loss.
 *
 * Logging is per change of state, not per attempt: the first retriable failure after a success logs
 * "webhook delivery failing" at warn, the first success after failures logs "webhook delivery
 * recovered" at info, a dead-lettered event logs once at error. Single attempts log at debug.
 */
export class DeliveryQueue {
  /** With a spool, start() must recover what a previous run left before new events may go out. */
  private state: SinkState = 'starting'
  private readonly queues = new Map<string, CallQueue>()
  /** Queues whose head may go out, in the order they became so (a Set keeps insertion order). */
  private readonly runnable = new Set<CallQueue>()
  private sending = 0
  private readonly counts = { delivered: 0, retried: 0, deadLettered: 0, failed: 0, leftInSpool: 0, unspooled: 0, pending: 0 }
  /** Dead-letter writes (each followed by its spool ack) still running; close() waits for them. */
  private readonly fileOps = new Set<Promise<void>>()
  private health: 'ok' | 'failing' = 'ok'
  private failingSinceMs = 0
  private failedAttempts = 0
  private startPromise: Promise<void> | undefined
  private closePromise: Promise<void> | undefined
  private onIdle: (() => void) | undefined

  private readonly transport: WebhookTransport
  private readonly spool: Spool
  private readonly deadLetters: DeadLetterFile
  private readonly maxAgeMs: number
  private readonly concurrency: number
  private readonly backoffOptions: DeliveryQueueOptions['backoff']
  private readonly logger: Logger
  private readonly clock: Clock
  private readonly random: () => number
  private readonly metrics: WebhookMetrics | undefined
  private readonly onEventSecured: (eventId: string) => void

  /** Throws ERR_CONFIG_INVALID for a bad URL, secret, header, CA or limits: configuration errors surface at startup. */
  constructor(options: DeliveryQueueOptions) {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new AppError('ERR_CONFIG_INVALID', `webhook concurrency must be an integer >= 1, got ${concurrency}`)
    }
    if (!(options.maxAgeMs > 0)) {
      throw new AppError('ERR_CONFIG_INVALID', `webhook maxAgeMs must be > 0, got ${options.maxAgeMs}`)
    }
    // Build one backoff now so bad backoff settings fail here rather than at the first retry.
    createBackoff(options.backoff)

    const clock = options.clock ?? systemClock
    this.clock = clock
    this.transport = new WebhookTransport({
      url: options.url,
      secret: options.secret,
      timeoutMs: options.timeoutMs,
      headers: options.headers,
      ca: options.ca,
      maxSockets: concurrency,
      version: options.version,
      format: options.format,
      // The signature's time is this clock's; the deadline measures a real socket: real timers.
      clock: { now: () => clock.now(), setTimeout: systemClock.setTimeout, clearTimeout: systemClock.clearTimeout },
    })
    this.spool = options.spool
    this.deadLetters = options.deadLetters
    this.maxAgeMs = options.maxAgeMs
    this.concurrency = concurrency
    this.backoffOptions = options.backoff
    this.logger = options.logger
    this.random = options.random ?? Math.random
    this.metrics = options.metrics
    this.onEventSecured = options.onEventSecured ?? (() => {})
  }

  /**
   * Opens the spool and queues the events a previous run left (per call in seq order), ahead of
   * anything published meanwhile; then delivery starts. Rejects with ERR_SPOOL_OPEN or
   * ERR_SPOOL_LOCKED. Idempotent.
   */
  start(): Promise<void> {
    this.startPromise ??= this.recover()
    return this.startPromise
  }

  /**
   * Spools the event (serialised on the main thread, see worker-sink.ts) and queues it; never throws,
   * never waits for the network. `publishedAtMs` (epoch ms, default now): when it was published;
   * latency and WEBHOOK_MAX_AGE count from it.
   */
  publish(event: SerializedEvent, publishedAtMs: number = this.clock.now()): void {
    if (this.state === 'closed') {
      this.counts.failed++
      this.logger.error(eventLogFields(event), 'webhook event published after the sink closed; dropped')
      this.onEventSecured(event.id)
      return
    }
    const item: Delivery = {
      id: event.id,
      callId: event.callId,
      seq: event.seq,
      type: event.type,
      bodyText: event.bodyText,
      format: event.format,
      firstAtMs: publishedAtMs,
      publishedHere: true,
      spoolRef: undefined,
      attempts: 0,
      firstAttemptAtMs: 0,
      lastAttemptAtMs: 0,
      backoff: undefined,
    }
    this.counts.pending++
    const queue = this.enqueue(item, true)
    // While the spool is being opened and read, new events wait in their queue, unspooled, behind
    // what it holds; recover() spools them once it is open.
    if (this.state === 'starting') return
    this.spoolItem(item)
    this.consider(queue)
  }

  stats(): WebhookSinkStats {
    return { ...this.counts }
  }

  /** The spool's size and counts. */
  spoolStats(): SpoolStats {
    return this.spool.stats()
  }

  /**
   * Keeps delivering what is queued (and what is published meanwhile) until every queue is empty or
   * `timeoutMs` passes. At the deadline requests and timers are cancelled; events safe in the spool
   * stay there for the next start (logged at warn), the others are reported lost (at error). Then the
   * spool is closed and the connection pool destroyed, so nothing of this sink keeps the process
   * alive. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.closePromise ??= this.shutDown(timeoutMs)
    return this.closePromise
  }

  // -------------------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    const recovered = await this.spool.open()
    // We hold the spool lock now: the one moment tombstones can be compacted safely.
    await this.deadLetters.compact().catch((err: unknown) => {
      this.logger.warn({ err, file: this.deadLetters.path }, 'could not compact the dead-letter file')
    })
    // Everything queued so far was published while starting, unspooled; it goes behind what the spool holds.
    const publishedMeanwhile = [...this.queues.values()].flatMap((queue) => queue.items)
    const calls = new Set<string>()
    for (const r of recovered) {
      calls.add(r.callId)
      this.counts.pending++
      this.enqueue(
        {
          id: r.id,
          callId: r.callId,
          seq: r.seq,
          type: r.type,
          bodyText: r.bodyText,
          format: undefined,
          firstAtMs: r.enqueuedAtMs,
          publishedHere: false,
          spoolRef: r.ref,
          attempts: 0,
          firstAttemptAtMs: 0,
          lastAttemptAtMs: 0,
          backoff: undefined,
        },
        false,
      )
    }
    if (recovered.length > 0) {
      this.logger.info({ events: recovered.length, calls: calls.size, dir: this.spool.directory }, 'delivering events spooled by a previous run first')
    } else {
      // Says where undelivered events will be kept: the first thing to check after an outage.
      this.logger.info({ dir: this.spool.directory }, 'webhook spool ready')
    }
    for (const item of publishedMeanwhile) this.spoolItem(item)
    if (this.state === 'starting') this.state = 'open'
    for (const queue of this.queues.values()) this.consider(queue)
  }

  /** Adds the item to its call's queue in seq order. `protectHead`: never displace a head that may be in flight. */
  private enqueue(item: Delivery, protectHead: boolean): CallQueue {
    let queue = this.queues.get(item.callId)
    if (!queue) {
      queue = { callId: item.callId, items: [item], state: 'idle', timer: undefined, abort: undefined }
      this.queues.set(item.callId, queue)
      return queue
    }
    // Publishers emit in seq order, so this almost always appends.
    const items = queue.items
    const floor = protectHead ? 1 : 0
    let index = items.length
    while (index > floor && (items[index - 1]?.seq ?? -Infinity) > item.seq) index--
    items.splice(index, 0, item)
    return queue
  }

  /**
   * Writes the event to the spool (synchronously: see spool.ts), so that it is there before its first
   * attempt. If the write fails the event goes out from memory.
   */
  private spoolItem(item: Delivery): void {
    try {
      item.spoolRef = this.spool.append(item.id, item.firstAtMs, item.bodyText, item.format === 'avr' ? item : undefined)
      this.onEventSecured(item.id)
    } catch {
      // The spool has logged why (once per state change).
      this.counts.unspooled++
    }
  }

  /** Makes the queue runnable if its head can go out now. */
  private consider(queue: CallQueue): void {
    if (queue.state !== 'idle' || this.state === 'starting' || this.state === 'closed') return
    if (queue.items.length === 0) return
    queue.state = 'runnable'
    this.runnable.add(queue)
    this.pump()
  }

  /** Fills free concurrency slots with runnable queues, oldest first. */
  private pump(): void {
    while (this.sending < this.concurrency && this.state !== 'closed') {
      const next = this.runnable.values().next()
      if (next.done) return
      this.runnable.delete(next.value)
      this.send(next.value)
    }
  }

  private send(queue: CallQueue): void {
    const item = queue.items[0]
    if (!item) {
      queue.state = 'idle'
      return
    }
    queue.state = 'sending'
    this.sending++
    const now = this.clock.now()
    item.attempts++
    if (item.attempts === 1) item.firstAttemptAtMs = now
    item.lastAttemptAtMs = now
    const handle = this.transport.post(item.id, item.bodyText)
    queue.abort = handle.abort
    handle.done
      .then((outcome) => this.settle(queue, item, outcome))
      .catch((err: unknown) => {
        // settle() handles every outcome itself, so this is a bug; it must neither crash the process
        // nor leave close() waiting for an event nobody will settle.
        this.logger.error({ ...eventLogFields(item), err }, 'webhook delivery bug; event dropped from this run')
        this.finish(queue)
      })
  }

  private settle(queue: CallQueue, item: Delivery, outcome: PostOutcome): void {
    this.sending--
    queue.abort = undefined
    // Aborted by close() at its deadline: the event stays where it is (spool) and is reported there.
    if (outcome.kind === 'aborted') return

    if (outcome.kind === 'delivered') {
      this.counts.delivered++
      this.metrics?.delivered(item.type, item.publishedHere ? this.clock.now() - item.firstAtMs : undefined)
      this.noteHealthy()
      if (item.attempts > 1) this.logger.debug({ ...eventLogFields(item), attempts: item.attempts, status: outcome.status }, 'webhook event delivered after retries')
      if (item.spoolRef) this.spool.ack(item.spoolRef, item.id)
      this.finish(queue)
    } else if (!outcome.retriable) {
      this.metrics?.attemptFailed()
      this.deadLetter(item, 'rejected', outcome)
      this.finish(queue)
    } else {
      this.metrics?.attemptFailed()
      this.noteFailing(item, outcome)
      const now = this.clock.now()
      const expiresAt = item.firstAtMs + this.maxAgeMs
      if (now >= expiresAt) {
        this.deadLetter(item, 'expired', outcome)
        this.finish(queue)
      } else {
        item.backoff ??= createBackoff({ ...this.backoffOptions, random: this.random })
        const backoffMs = item.backoff.next()
        // Retry-After is the receiver telling us when it can take more; it replaces the backoff
        // (sooner or later). The wait never runs past the event's expiry, where one last attempt is made.
        const delayMs = Math.max(0, Math.min(outcome.retryAfterMs ?? backoffMs, expiresAt - now))
        this.logger.debug(
          { ...eventLogFields(item), attempt: item.attempts, status: outcome.status, delayMs, err: outcome.err },
          'webhook attempt failed; retrying',
        )
        queue.state = 'waiting'
        // Up to WEBHOOK_MAX_AGE (30 d), past the 24.8 days a Node timer holds: the Clock takes it.
        queue.timer = this.clock.setTimeout(() => {
          queue.timer = undefined
          queue.state = 'idle'
          this.counts.retried++
          this.consider(queue)
        }, delayMs)
      }
    }
    this.pump()
  }

  /** The head is settled: take it off and move the queue on. */
  private finish(queue: CallQueue): void {
    const settled = queue.items.shift()
    if (settled?.publishedHere && settled.spoolRef === undefined) this.onEventSecured(settled.id)
    this.counts.pending--
    queue.state = 'idle'
    if (queue.items.length === 0) {
      if (this.queues.get(queue.callId) === queue) this.queues.delete(queue.callId)
    } else {
      this.consider(queue)
    }
    if (this.counts.pending === 0) this.onIdle?.()
  }

  private deadLetter(item: Delivery, reason: DeadLetterReason, outcome: FailedPost): void {
    this.counts.deadLettered++
    this.metrics?.deadLettered(reason)
    const now = this.clock.now()
    const err =
      reason === 'rejected'
        ? new AppError('ERR_WEBHOOK_REJECTED', `the webhook answered ${outcome.status ?? 'no status'}, which is not retried`, { cause: outcome.err })
        : new AppError('ERR_WEBHOOK_EXPIRED', `still undelivered ${Math.round((now - item.firstAtMs) / 1000)} s after it was published (WEBHOOK_MAX_AGE is ${Math.round(this.maxAgeMs / 1000)} s)`, {
            cause: outcome.err,
          })
    // An outcome, not a bug: one line with what the receiver said (status, the start of its answer)
    // and why it stops here; no `err`, whose serializer would add stack traces of the error and its
    // cause: errorCode and one message, the cause folded in.
    const lastFailure = reason === 'expired' && outcome.status === undefined ? `; last attempt: ${messageWithCauses(outcome.err)}` : ''
    this.logger.error(
      {
        ...eventLogFields(item),
        reason,
        attempts: item.attempts,
        status: outcome.status,
        bodyExcerpt: outcome.bodyExcerpt === undefined ? undefined : logExcerpt(outcome.bodyExcerpt),
        errorCode: err.code,
        error: `${err.message}${lastFailure}`,
        deadLetterFile: this.deadLetters.path,
      },
      'webhook event dead-lettered',
    )
    const op = this.deadLetters
      .append({
        id: item.id,
        callId: item.callId,
        seq: item.seq,
        type: item.type,
        bodyText: item.bodyText,
        reason,
        status: outcome.status ?? null,
        bodyExcerpt: outcome.bodyExcerpt ?? null,
        error: { code: err.code, message: `${err.message}: ${outcome.err.message}` },
        attempts: item.attempts,
        firstAttemptAtMs: item.firstAttemptAtMs,
        lastAttemptAtMs: item.lastAttemptAtMs,
        deadLetteredAtMs: now,
      })
      .then(
        // Only now may the spool forget it: until the dead letter exists, the spool is its only copy.
        () => {
          if (item.spoolRef) this.spool.ack(item.spoolRef, item.id)
        },
        (cause: unknown) => {
          const writeErr = new AppError('ERR_DEAD_LETTER_WRITE', `cannot append to ${this.deadLetters.path}`, { cause })
          this.logger.error({ ...eventLogFields(item), err: writeErr }, 'dead-letter write failed; the event stays in the spool and is retried at the next start')
        },
      )
    this.fileOps.add(op)
    void op.finally(() => this.fileOps.delete(op))
  }

  private noteFailing(item: Delivery, outcome: FailedPost): void {
    this.failedAttempts++
    if (this.health === 'failing') return
    this.health = 'failing'
    this.failingSinceMs = this.clock.now()
    this.logger.warn(
      { ...eventLogFields(item), status: outcome.status, err: outcome.err, pending: this.counts.pending },
      'webhook delivery failing; events are kept and retried',
    )
  }

  private noteHealthy(): void {
    if (this.health === 'ok') {
      this.failedAttempts = 0
      return
    }
    this.health = 'ok'
    this.logger.info(
      { failedAttempts: this.failedAttempts, outageMs: this.clock.now() - this.failingSinceMs, pending: this.counts.pending },
      'webhook delivery recovered',
    )
    this.failedAttempts = 0
  }

  private async shutDown(timeoutMs: number): Promise<void> {
    const startedAt = this.clock.now()
    this.beginClosing()
    // A recovery in progress must finish first: it holds the lock and is about to queue events.
    // (Still 'starting' afterwards means start() failed or was never called: nothing can be sent.)
    if (this.startPromise) await this.startPromise.catch(() => {})
    this.beginClosing()

    const remainingMs = Math.max(0, timeoutMs - (this.clock.now() - startedAt))
    const drained = this.counts.pending === 0 || (this.state === 'closing' && (await this.idleWithin(remainingMs)))

    this.state = 'closed'
    const abandoned = drained ? [] : this.abandon()
    // Dead letters being written still have to reach the file before their spool acks are queued.
    while (this.fileOps.size > 0) await Promise.allSettled([...this.fileOps])
    await this.spool.close().catch((err: unknown) => this.logger.error({ err }, 'closing the spool failed'))
    this.transport.close()

    // Abandoned events with a spool record go first at the next start; the others are lost.
    const kept = abandoned.filter((item) => item.spoolRef !== undefined)
    const lost = abandoned.filter((item) => item.spoolRef === undefined)
    this.counts.leftInSpool += kept.length
    this.counts.failed += lost.length
    this.counts.pending = 0
    if (kept.length > 0) {
      this.logger.warn(
        { undelivered: kept.length, calls: new Set(kept.map((i) => i.callId)).size, timeoutMs, dir: this.spool.directory },
        'webhook sink closed with events undelivered; they stay in the spool and go first at the next start',
      )
    }
    if (lost.length > 0) {
      const err = new AppError('ERR_WEBHOOK_GAVE_UP', `${lost.length} event(s) were neither delivered nor spooled`)
      this.logger.error({ undelivered: lost.length, eventIds: lost.map((i) => i.id), timeoutMs, err }, 'webhook sink closed with events left undelivered')
    }
  }

  private beginClosing(): void {
    if (this.state === 'open') this.state = 'closing'
  }

  /** Resolves true once nothing is pending, or false after `ms`. */
  private idleWithin(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const deadline = this.clock.setTimeout(() => {
        this.onIdle = undefined
        resolve(false)
      }, ms)
      this.onIdle = () => {
        this.onIdle = undefined
        this.clock.clearTimeout(deadline)
        resolve(true)
      }
    })
  }

  /** Close deadline passed: stop every request and timer, and hand back what was still queued. */
  private abandon(): Delivery[] {
    const left: Delivery[] = []
    for (const queue of this.queues.values()) {
      left.push(...queue.items)
      this.clock.clearTimeout(queue.timer)
      queue.timer = undefined
      queue.abort?.()
    }
    this.queues.clear()
    this.runnable.clear()
    return left
  }
}

/** At most this much of a receiver's answer goes into a log line (the dead-letter file keeps 512 bytes). */
const LOG_EXCERPT_CHARS = 200

function logExcerpt(text: string): string {
  return text.length <= LOG_EXCERPT_CHARS ? text : `${text.slice(0, LOG_EXCERPT_CHARS)}...`
}

/** "the webhook request failed before a response arrived: connect ECONNREFUSED 127.0.0.1:9": an error and its causes, one line. */
function messageWithCauses(err: Error): string {
  const parts: string[] = []
  for (let e: unknown = err; e instanceof Error && parts.length < 3; e = e.cause) parts.push(e.message)
  return parts.join(': ')
}
