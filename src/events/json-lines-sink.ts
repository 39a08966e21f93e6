import type { Writable } from 'node:stream'
import type { Logger } from 'pino'
import { systemClock, type Clock } from '../shared/clock.js'
import type { EventEnvelope, EventSink } from './envelope.js'
import { envelopeLogFields, serializeEvent } from './serialize-event.js'
import { AppError } from '../shared/errors.js'

export interface JsonLinesSinkOptions {
  /** Where lines go. Default process.stdout. The sink never ends it: the stream's owner does. */
  stream?: Writable
  /** Told once if the stream fails; without it, failures are silent (events are dropped). */
  logger?: Logger
  /** The close deadline's timer (any length: systemClock takes it). Default systemClock. */
  clock?: Clock
}

/** `open` writes; `failed` drops because the stream errored; `closed` drops because close() was called. */
type JsonLinesSinkState = 'open' | 'failed' | 'closed'

/**
 * For running with no webhook configured: one JSON object per line, the same envelope a webhook would
 * receive, so the output can be piped into jq or another process. Writes are not retried; a broken
 * stream (EPIPE when the reader goes away) is logged once and events are then dropped, because a
 * transcription server must not die with its output pipe.
 */
export class JsonLinesSink implements EventSink {
  private state: JsonLinesSinkState = 'open'
  private readonly stream: Writable
  private readonly logger: Logger | undefined
  private readonly clock: Clock
  /** Lines handed to the stream whose write callback has not run yet. */
  private unflushed = 0
  private onFlushed: (() => void) | undefined
  private closePromise: Promise<void> | undefined
  private failureLogged = false
  private readonly onStreamError = (err: Error): void => this.fail(err)

  constructor(options: JsonLinesSinkOptions = {}) {
    this.stream = options.stream ?? process.stdout
    this.logger = options.logger
    this.clock = options.clock ?? systemClock
    // Without a listener an 'error' on the stream would be an uncaught exception. The listener stays
    // after close(): a failed write reports through its callback first and the 'error' event after,
    // so there is no moment at which removing it is safe, and it only ever logs once.
    this.stream.on('error', this.onStreamError)
  }

  publish(event: EventEnvelope): void {
    if (this.state !== 'open') return
    let line: string
    try {
      line = `${serializeEvent(event).bodyText}\n`
    } catch (err) {
      this.logger?.error({ ...envelopeLogFields(event), err }, 'event cannot be serialised to JSON; dropped')
      return
    }
    if (this.stream.destroyed || this.stream.writableEnded) {
      this.fail(new AppError('ERR_EVENTS_OUTPUT', 'the event output stream is no longer writable'))
      return
    }
    // The return value (backpressure) is ignored on purpose: events are small and a few per second
    // per call, and close() waits for every line to be flushed.
    this.unflushed++
    this.stream.write(line, (err) => {
      this.unflushed--
      if (err) this.fail(err)
      if (this.unflushed === 0) this.onFlushed?.()
    })
  }

  /** Stops taking events and resolves once every line written so far is flushed, or after `timeoutMs`. */
  close(timeoutMs: number): Promise<void> {
    if (this.closePromise) return this.closePromise
    if (this.state === 'open') this.state = 'closed'
    this.closePromise = new Promise<void>((resolve) => {
      if (this.unflushed === 0) {
        resolve()
        return
      }
      // timeoutMs is a setting (FLUSH_TIMEOUT_MS): taken at any length.
      const timer = this.clock.setTimeout(() => {
        this.onFlushed = undefined
        this.logger?.error({ unflushedLines: this.unflushed, timeoutMs }, 'event output did not drain before close')
        resolve()
      }, timeoutMs)
      this.onFlushed = () => {
        this.onFlushed = undefined
        this.clock.clearTimeout(timer)
        resolve()
      }
    })
    return this.closePromise
  }

  private fail(err: Error): void {
    if (this.state === 'open') this.state = 'failed'
    // The same failure usually arrives twice (the write callback and the stream's 'error').
    if (this.failureLogged) return
    this.failureLogged = true
    this.logger?.error({ err }, 'event output stream failed; further events are dropped')
  }
}
