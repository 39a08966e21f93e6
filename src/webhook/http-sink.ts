import http from 'node:http'
import https from 'node:https'
import type { Logger } from 'pino'
import { createBackoff } from '../shared/backoff.js'
import { AppError, isAppError, isErrnoException } from '../shared/errors.js'
import type { EventEnvelope, EventSink } from './envelope.js'
import { decodeWebhookSecret, webhookHeaders } from './signing.js'

export interface HttpWebhookSinkOptions {
  /** Absolute http: or https: URL every event is POSTed to. */
  url: string
  /** Standard Webhooks secret (`whsec_<base64>` or any other string used as bytes). Unsigned without it. */
  secret?: string
  /** Deadline for one request, from sending it to the end of the response, in milliseconds. */
  timeoutMs: number
  /** Attempts per event, the first one included (1 = never retry). */
  maxAttempts: number
  /** Delay between attempts of one event; reset for every event. factor defaults to 2, jitter to 0.2. */
  backoff: { initialMs: number; maxMs: number; factor?: number; jitter?: number }
  logger: Logger
  /** Extra request headers (e.g. authorization). They cannot override the content or signature headers. */
  headers?: Record<string, string>
  /** Sent as `user-agent: audiosocket-soniox/<version>`. Default '0'. */
  version?: string
  /** Wall clock in epoch milliseconds, used for the signature timestamp and Retry-After dates. Default Date. */
  clock?: { now(): number }
  /** Uniform [0, 1) source for backoff jitter. Default Math.random. */
  random?: () => number
  /** Timer functions for backoff waits, request deadlines and the close deadline. Default setTimeout/clearTimeout. */
  setTimer?: (callback: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
}

export interface WebhookSinkStats {
  /** Events answered 2xx. */
  delivered: number
  /** Attempts made after an event's first one. */
  retried: number
  /** Events given up: out of attempts, a non-retriable answer, unserialisable, or left over at close. */
  failed: number
  /** Events published but not yet delivered or given up, the ones in flight included. */
  pending: number
}

/** `open` accepts and delivers; `closing` still does both while close() waits; `closed` drops. */
type SinkState = 'open' | 'closing' | 'closed'

/** One published event, serialised once: every attempt sends exactly these bytes. */
interface QueuedEvent {
  readonly event: EventEnvelope
  readonly bodyText: string
  readonly body: Buffer
}

/** A call's events in seq order. The head (index 0) is the one being delivered. */
interface CallQueue {
  readonly callId: string
  readonly items: QueuedEvent[]
}

type AttemptOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'failed'; retriable: boolean; status?: number; retryAfterMs?: number; err: AppError }
  | { kind: 'aborted' }

type FailedOutcome = Extract<AttemptOutcome, { kind: 'failed' }>

interface PendingSleep {
  handle: unknown
  resolve(completed: boolean): void
}

const RETRY_AFTER_STATUSES = new Set([429, 503])

/**
 * Delivers events to one webhook URL, at least once, in `seq` order per call.
 *
 * Ordering invariant: each call has its own FIFO queue and a single runner that awaits the head's
 * final outcome (delivered or given up) before it looks at the next event, so a receiver never has
 * two requests of the same call in flight. Calls do not share a runner, so a slow or failing event of
 * one call holds up that call only.
 *
 * Logging is per state change of an event, not per attempt: the first failed attempt that will be
 * retried logs at warn, a delivery after failures logs at info, giving up logs at error exactly once.
 */
export class HttpWebhookSink implements EventSink {
  private state: SinkState = 'open'
  private readonly queues = new Map<string, CallQueue>()
  private readonly counts = { delivered: 0, retried: 0, failed: 0, pending: 0 }
  private readonly sleeps = new Set<PendingSleep>()
  /** Requests on the wire, each with the function that cancels it at a close deadline. */
  private readonly inFlight = new Set<() => void>()
  private closePromise: Promise<void> | undefined
  private onIdle: (() => void) | undefined

  private readonly url: URL
  private readonly transport: typeof http | typeof https
  private readonly agent: http.Agent
  private readonly secretKey: Buffer | undefined
  private readonly fixedHeaders: Record<string, string>
  private readonly timeoutMs: number
  private readonly maxAttempts: number
  private readonly backoffOptions: HttpWebhookSinkOptions['backoff']
  private readonly logger: Logger
  private readonly clock: { now(): number }
  private readonly random: () => number
  private readonly setTimer: (callback: () => void, ms: number) => unknown
  private readonly clearTimer: (handle: unknown) => void

  /** Throws ERR_CONFIG_INVALID for a bad URL, secret or limits: configuration errors surface at startup. */
  constructor(options: HttpWebhookSinkOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch (cause) {
      throw new AppError('ERR_CONFIG_INVALID', 'the webhook URL is not a valid absolute URL', { cause })
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AppError('ERR_CONFIG_INVALID', `the webhook URL must be http: or https:, got ${url.protocol}`)
    }
    if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
      throw new AppError('ERR_CONFIG_INVALID', `webhook maxAttempts must be an integer >= 1, got ${options.maxAttempts}`)
    }
    if (!(options.timeoutMs > 0)) {
      throw new AppError('ERR_CONFIG_INVALID', `webhook timeoutMs must be > 0, got ${options.timeoutMs}`)
    }
    // Build one backoff now so bad backoff settings fail here rather than at the first retry.
    createBackoff(options.backoff)

    this.url = url
    this.transport = url.protocol === 'https:' ? https : http
    // Keep-alive: a call produces a burst of small POSTs; reusing connections saves a handshake each.
    this.agent = new this.transport.Agent({ keepAlive: true })
    this.secretKey = options.secret === undefined ? undefined : decodeWebhookSecret(options.secret)
    this.timeoutMs = options.timeoutMs
    this.maxAttempts = options.maxAttempts
    this.backoffOptions = options.backoff
    this.logger = options.logger
    this.clock = options.clock ?? Date
    this.random = options.random ?? Math.random
    this.setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms))
    this.clearTimer =
      options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>))

    const fixedHeaders: Record<string, string> = {}
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      try {
        http.validateHeaderName(name)
        http.validateHeaderValue(name, value)
      } catch (cause) {
        throw new AppError('ERR_CONFIG_INVALID', `the webhook header ${JSON.stringify(name)} is not valid`, { cause })
      }
      fixedHeaders[name.toLowerCase()] = value
    }
    fixedHeaders['user-agent'] = `audiosocket-soniox/${options.version ?? '0'}`
    fixedHeaders['content-type'] = 'application/json'
    this.fixedHeaders = fixedHeaders
  }

  /** Enqueues the event and returns at once; never throws. */
  publish(event: EventEnvelope): void {
    if (this.state === 'closed') {
      this.counts.failed++
      this.logger.error(eventFields(event), 'webhook event published after the sink closed; dropped')
      return
    }

    let bodyText: string
    try {
      // Serialised now, once: the bytes are fixed even if the caller later mutates `data`.
      bodyText = JSON.stringify(event)
    } catch (cause) {
      this.counts.failed++
      const err = new AppError('ERR_WEBHOOK_GAVE_UP', 'the event cannot be serialised to JSON', { cause })
      this.logger.error({ ...eventFields(event), attempts: 0, err }, 'webhook event given up')
      return
    }
    const item: QueuedEvent = { event, bodyText, body: Buffer.from(bodyText, 'utf8') }
    this.counts.pending++

    const existing = this.queues.get(event.call_id)
    if (existing) {
      insertBySeq(existing.items, item)
      return
    }
    const queue: CallQueue = { callId: event.call_id, items: [item] }
    this.queues.set(queue.callId, queue)
    this.runQueue(queue).catch((err: unknown) => {
      // deliver() handles every failure itself, so this is a bug; it must neither crash the process nor
      // leave close() waiting for events nobody will deliver.
      const eventIds = queue.items.map((queued) => queued.event.id)
      this.logger.error({ callId: queue.callId, eventIds, err }, 'webhook queue runner failed; events dropped')
      if (this.queues.get(queue.callId) === queue) this.queues.delete(queue.callId)
      if (this.state !== 'closed') {
        this.counts.failed += queue.items.length
        this.counts.pending -= queue.items.length
        if (this.counts.pending === 0) this.onIdle?.()
      }
      queue.items.length = 0
    })
  }

  stats(): WebhookSinkStats {
    return { ...this.counts }
  }

  /**
   * Keeps delivering what is queued (and what is published meanwhile) until every queue is empty,
   * or until `timeoutMs` passes: then the leftovers are logged once at error level, requests and
   * timers are cancelled, and the promise resolves. Either way the connection pool is destroyed, so
   * nothing of this sink keeps the process alive afterwards. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    if (this.closePromise) return this.closePromise
    if (this.state === 'open') this.state = 'closing'
    this.closePromise = new Promise<void>((resolve) => {
      if (this.counts.pending === 0) {
        this.shutDown()
        resolve()
        return
      }
      const deadline = this.setTimer(() => {
        this.onIdle = undefined
        this.abandonQueued(timeoutMs)
        this.shutDown()
        resolve()
      }, timeoutMs)
      this.onIdle = () => {
        this.onIdle = undefined
        this.clearTimer(deadline)
        this.shutDown()
        resolve()
      }
    })
    return this.closePromise
  }

  // One runner per call: the only place a call's events are taken off its queue.
  private async runQueue(queue: CallQueue): Promise<void> {
    for (let item = queue.items[0]; item !== undefined; item = queue.items[0]) {
      await this.deliver(item)
      // A close deadline already counted and reported everything left, the head included.
      if (this.state === 'closed') return
      queue.items.shift()
      this.counts.pending--
    }
    this.queues.delete(queue.callId)
    if (this.counts.pending === 0) this.onIdle?.()
  }

  /** Attempts one event until it is delivered, given up, or the sink is closed under it. */
  private async deliver(item: QueuedEvent): Promise<void> {
    const backoff = createBackoff({ ...this.backoffOptions, random: this.random })
    let lastFailure: FailedOutcome | undefined
    let attempts = 0
    for (;;) {
      attempts++
      const outcome = await this.attempt(item, false)
      if (outcome.kind === 'aborted') return
      if (outcome.kind === 'delivered') {
        this.counts.delivered++
        if (lastFailure) {
          this.logger.info(
            { ...eventFields(item.event), attempts, status: outcome.status },
            'webhook event delivered after retries',
          )
        }
        return
      }
      lastFailure = outcome
      if (!outcome.retriable || attempts >= this.maxAttempts) break

      // Retry-After replaces the computed delay but never exceeds our own cap: a downstream asking for
      // an hour must not stall a call's queue for an hour. The backoff still advances either way.
      const backoffMs = backoff.next()
      const delayMs =
        outcome.retryAfterMs === undefined ? backoffMs : Math.min(outcome.retryAfterMs, this.backoffOptions.maxMs)
      const fields = { ...eventFields(item.event), attempt: attempts, status: outcome.status, delayMs, err: outcome.err }
      if (attempts === 1) this.logger.warn(fields, 'webhook delivery failed; retrying')
      else this.logger.debug(fields, 'webhook delivery failed again; retrying')

      if (!(await this.sleep(delayMs))) return
      this.counts.retried++
    }

    // TODO(spool): a later issue adds a durable spool and a dead-letter file; until then a given-up
    // event exists only in this log line, and the call's queue moves on to its next event.
    this.counts.failed++
    const err = new AppError('ERR_WEBHOOK_GAVE_UP', `gave up after ${attempts} attempt(s)`, { cause: lastFailure.err })
    this.logger.error(
      { ...eventFields(item.event), attempts, status: lastFailure.status, err },
      'webhook event given up',
    )
  }

  /**
   * One POST. Resolves (never rejects) with the outcome as soon as the status line arrives or the
   * request fails; the deadline keeps running until the response body has been read so a stalled
   * body cannot pin a pooled socket.
   */
  private attempt(item: QueuedEvent, isStaleSocketRetry: boolean): Promise<AttemptOutcome> {
    return new Promise<AttemptOutcome>((resolve) => {
      let settled = false
      const settle = (outcome: AttemptOutcome): void => {
        if (settled) return
        settled = true
        this.inFlight.delete(abort)
        resolve(outcome)
      }
      const abort = (): void => {
        this.clearTimer(deadline)
        settle({ kind: 'aborted' })
        req.destroy()
      }

      let req: http.ClientRequest
      try {
        req = this.transport.request(this.url, { method: 'POST', agent: this.agent, headers: this.headersFor(item) })
      } catch (cause) {
        // Only reachable through a bug (headers are validated up front); retrying cannot help.
        const err = new AppError('ERR_WEBHOOK_NETWORK', 'the webhook request could not be created', { cause })
        resolve({ kind: 'failed', retriable: false, err })
        return
      }
      const deadline = this.setTimer(() => {
        req.destroy(new AppError('ERR_WEBHOOK_TIMEOUT', `no response within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      req.once('close', () => this.clearTimer(deadline))
      this.inFlight.add(abort)

      req.once('response', (res) => {
        // Drain and discard the body: the socket goes back to the pool only once it is consumed.
        res.on('error', () => {})
        res.resume()
        settle(classifyResponse(res, this.clock.now()))
      })

      req.on('error', (error: unknown) => {
        if (settled) return
        // A pooled keep-alive socket the server closed while idle fails at once with ECONNRESET; that
        // says nothing about the receiver, so resend once on a fresh socket without counting an attempt
        // (the pattern Node's http docs recommend around `request.reusedSocket`).
        const staleSocket = req.reusedSocket && isErrnoException(error) && error.code === 'ECONNRESET'
        if (staleSocket && !isStaleSocketRetry && this.state !== 'closed') {
          settled = true
          this.inFlight.delete(abort)
          resolve(this.attempt(item, true))
          return
        }
        if (isAppError(error) && error.code === 'ERR_WEBHOOK_TIMEOUT') {
          settle({ kind: 'failed', retriable: true, err: error })
          return
        }
        // The cause's message ("connect ECONNREFUSED ...") is appended by pino's err serializer.
        settle({ kind: 'failed', retriable: true, err: new AppError('ERR_WEBHOOK_NETWORK', undefined, { cause: error }) })
      })

      req.end(item.body)
    })
  }

  private headersFor(item: QueuedEvent): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = { ...this.fixedHeaders, 'content-length': item.body.length }
    if (this.secretKey) {
      // Refreshed per attempt: receivers reject timestamps older than a few minutes.
      const signed = webhookHeaders(this.secretKey, item.event.id, Math.floor(this.clock.now() / 1000), item.bodyText)
      Object.assign(headers, signed)
    }
    return headers
  }

  /** Resolves true after `ms`, or false if close() cancelled the wait. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const entry: PendingSleep = { handle: undefined, resolve }
      this.sleeps.add(entry)
      entry.handle = this.setTimer(() => {
        this.sleeps.delete(entry)
        resolve(true)
      }, ms)
    })
  }

  /** Close deadline passed: report and count what is left, then stop every request and timer. */
  private abandonQueued(timeoutMs: number): void {
    this.state = 'closed'
    const eventIds: string[] = []
    for (const queue of this.queues.values()) {
      for (const item of queue.items) eventIds.push(item.event.id)
    }
    this.queues.clear()
    this.counts.failed += eventIds.length
    this.counts.pending = 0
    this.logger.error(
      { undelivered: eventIds.length, eventIds, timeoutMs },
      'webhook sink closed with events left undelivered',
    )
    for (const abort of [...this.inFlight]) abort()
    for (const sleep of [...this.sleeps]) {
      this.clearTimer(sleep.handle)
      sleep.resolve(false)
    }
    this.sleeps.clear()
  }

  private shutDown(): void {
    this.state = 'closed'
    this.agent.destroy()
  }
}

function eventFields(event: EventEnvelope): { eventId: string; callId: string; seq: number; type: string } {
  return { eventId: event.id, callId: event.call_id, seq: event.seq, type: event.type }
}

/**
 * Keeps a call's waiting events in seq order. Index 0 is already on the wire and is never displaced;
 * publishers emit in seq order, so this almost always appends.
 */
function insertBySeq(items: QueuedEvent[], item: QueuedEvent): void {
  let index = items.length
  while (index > 1 && (items[index - 1]?.event.seq ?? -Infinity) > item.event.seq) index--
  items.splice(index, 0, item)
}

/** 2xx delivered; 408, 429 and 5xx worth retrying; anything else (3xx, other 4xx) final. */
function classifyResponse(res: http.IncomingMessage, nowMs: number): AttemptOutcome {
  const status = res.statusCode ?? 0
  if (status >= 200 && status < 300) return { kind: 'delivered', status }
  const retriable = status === 408 || status === 429 || status >= 500
  const err = new AppError('ERR_WEBHOOK_STATUS', `the webhook answered ${status}`)
  const outcome: FailedOutcome = { kind: 'failed', retriable, status, err }
  if (RETRY_AFTER_STATUSES.has(status)) {
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], nowMs)
    if (retryAfterMs !== undefined) outcome.retryAfterMs = retryAfterMs
  }
  return outcome
}

/** `Retry-After` as delay-seconds or an HTTP date, in milliseconds from now; undefined if unusable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  // Every HTTP-date form starts with a day name; without this check V8 would read "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}
