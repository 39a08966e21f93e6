import fs from 'node:fs'
import type { Logger } from 'pino'
import { AppError } from '../shared/errors.js'
import { systemClock, type Clock } from '../shared/clock.js'
import type { EventEnvelope, EventSink } from './envelope.js'
import { JsonLinesSink } from './json-lines-sink.js'

/** How long a file given up by reopen() may take to flush what was written to it before it is closed. */
const ROTATED_FILE_CLOSE_MS = 10_000

export interface JsonLinesFileSinkOptions {
  /** The file (EVENTS_FILE): created if missing, always appended to, never truncated. */
  path: string
  logger: Logger
  /** Close deadlines (settings: any length) and the time they are measured on. Default systemClock. */
  clock?: Clock
}

/**
 * EVENTS_FILE: every event as one JSON line appended to a file, for operators who tail it or ship
 * it with a log forwarder. The same lines as on stdout (JsonLinesSink does the writing); this class
 * owns the file: opened in append mode so several runs accumulate and logrotate's copytruncate works,
 * written asynchronously by a WriteStream (batched writes, never a synchronous call on the event
 * path), reopened by reopen() after logrotate moved it (SIGHUP), and flushed and closed by close().
 *
 * This is not the durable webhook path: a line still in the stream's buffer when the process is
 * killed is lost. Operators who need at-least-once delivery use WEBHOOK_URL, which is spooled.
 */
export class JsonLinesFileSink implements EventSink {
  private stream: fs.WriteStream
  private lines: JsonLinesSink
  private readonly opened: Promise<void>
  private closePromise: Promise<void> | undefined
  private reopening: Promise<void> | undefined
  private readonly clock: Clock

  constructor(private readonly options: JsonLinesFileSinkOptions) {
    this.clock = options.clock ?? systemClock
    ;({ stream: this.stream, opened: this.opened } = this.open())
    // Lines published before the file is open wait in the stream; a failed open is logged by the lines sink.
    this.lines = new JsonLinesSink({ stream: this.stream, logger: options.logger, clock: this.clock })
    // A failed open is reported by start(); without this the rejection would be unhandled when nobody calls it.
    this.opened.catch(() => {})
  }

  /** Resolves once the file is open; rejects with ERR_EVENTS_FILE (missing directory, permissions). */
  start(): Promise<void> {
    return this.opened
  }

  publish(event: EventEnvelope): void {
    this.lines.publish(event)
  }

  /**
   * Opens EVENTS_FILE afresh (logrotate renamed it: the old descriptor still writes to the renamed
   * file) and moves to it once it is open; lines already handed to the old file are flushed there,
   * and none are lost in between. If it cannot be opened, the old file stays in use and the error
   * is logged. Concurrent calls share one reopening.
   */
  reopen(): Promise<void> {
    this.reopening ??= this.swapFile().finally(() => {
      this.reopening = undefined
    })
    return this.reopening
  }

  /** Flushes every line written so far (bounded by timeoutMs) and closes the file. Idempotent. */
  close(timeoutMs: number): Promise<void> {
    this.closePromise ??= (async () => {
      const startedAt = this.clock.now()
      // A reopen in flight settles first: its new file is then the one closed here. It may still be
      // flushing the rotated file (bounded by ROTATED_FILE_CLOSE_MS), which must not stretch this bound.
      if (this.reopening !== undefined) await settledWithin(this.clock, this.reopening, timeoutMs)
      await this.closeFile(this.lines, this.stream, Math.max(0, timeoutMs - (this.clock.now() - startedAt)))
    })()
    return this.closePromise
  }

  private open(): { stream: fs.WriteStream; opened: Promise<void> } {
    const path = this.options.path
    const stream = fs.createWriteStream(path, { flags: 'a', mode: 0o600 })
    // Settled by whichever comes first; the sink's own 'error' listener reports later failures.
    const opened = new Promise<void>((resolve, reject) => {
      stream.once('ready', () => resolve())
      stream.once('error', (cause) => reject(new AppError('ERR_EVENTS_FILE', `cannot open ${path} (EVENTS_FILE)`, { cause })))
    })
    return { stream, opened }
  }

  private async swapFile(): Promise<void> {
    if (this.closePromise !== undefined) return
    const next = this.open()
    try {
      await next.opened
    } catch (err) {
      this.options.logger.error({ err, file: this.options.path }, 'cannot reopen EVENTS_FILE; still appending to the file open before')
      next.stream.destroy()
      return
    }
    const lines = new JsonLinesSink({ stream: next.stream, logger: this.options.logger, clock: this.clock })
    if (this.closePromise !== undefined) {
      // close() began meanwhile; it flushes the current file, the new one is not needed.
      await this.closeFile(lines, next.stream, ROTATED_FILE_CLOSE_MS)
      return
    }
    const previous = { lines: this.lines, stream: this.stream }
    this.lines = lines
    this.stream = next.stream
    this.options.logger.info({ file: this.options.path }, 'EVENTS_FILE reopened')
    await this.closeFile(previous.lines, previous.stream, ROTATED_FILE_CLOSE_MS)
  }

  private async closeFile(lines: JsonLinesSink, stream: fs.WriteStream, timeoutMs: number): Promise<void> {
    const startedAt = this.clock.now()
    await lines.close(timeoutMs)
    if (stream.destroyed) return
    const remaining = Math.max(0, timeoutMs - (this.clock.now() - startedAt))
    await new Promise<void>((resolve) => {
      // timeoutMs is a setting (FLUSH_TIMEOUT_MS): taken at any length.
      const timer = this.clock.setTimeout(() => {
        this.options.logger.error({ file: this.options.path, timeoutMs }, 'EVENTS_FILE did not close in time')
        stream.destroy()
        resolve()
      }, remaining)
      stream.end(() => {
        this.clock.clearTimeout(timer)
        resolve()
      })
    })
  }
}

/** Waits for `promise` to settle, but no longer than `ms`. */
function settledWithin(clock: Clock, promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = clock.setTimeout(resolve, ms)
    const done = (): void => {
      clock.clearTimeout(timer)
      resolve()
    }
    promise.then(done, done)
  })
}
