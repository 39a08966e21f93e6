import fs from 'node:fs'
import type { Logger } from 'pino'
import { AppError } from '../shared/errors.js'
import type { EventEnvelope, EventSink } from './envelope.js'
import { JsonLinesSink } from './stdout-sink.js'

export interface JsonLinesFileSinkOptions {
  /** The file (EVENTS_FILE): created if missing, always appended to, never truncated. */
  path: string
  logger: Logger
}

/**
 * EVENTS_FILE: every event as one JSON line appended to a file, for operators who tail it or ship
 * it with a log forwarder. The same lines as on stdout (JsonLinesSink does the writing); this class
 * owns the file: opened in append mode so several runs accumulate and logrotate's copytruncate works,
 * written asynchronously by a WriteStream (batched writes, never a synchronous call on the event
 * path), and flushed and closed by close().
 *
 * This is not the durable webhook path: a line still in the stream's buffer when the process is
 * killed is lost. Operators who need at-least-once delivery use WEBHOOK_URL, which is spooled.
 */
export class JsonLinesFileSink implements EventSink {
  private readonly stream: fs.WriteStream
  private readonly lines: JsonLinesSink
  private readonly opened: Promise<void>
  private closePromise: Promise<void> | undefined

  constructor(private readonly options: JsonLinesFileSinkOptions) {
    this.stream = fs.createWriteStream(options.path, { flags: 'a', mode: 0o600 })
    this.lines = new JsonLinesSink({ stream: this.stream, logger: options.logger })
    // Settled by whichever comes first; the sink's own 'error' listener reports later failures.
    this.opened = new Promise<void>((resolve, reject) => {
      this.stream.once('ready', () => resolve())
      this.stream.once('error', (cause) => reject(new AppError('ERR_EVENTS_FILE', `cannot open ${options.path} (EVENTS_FILE)`, { cause })))
    })
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

  /** Flushes every line written so far (bounded by timeoutMs) and closes the file. Idempotent. */
  close(timeoutMs: number): Promise<void> {
    this.closePromise ??= (async () => {
      const startedAt = Date.now()
      await this.lines.close(timeoutMs)
      if (this.stream.destroyed) return
      const remaining = Math.max(0, timeoutMs - (Date.now() - startedAt))
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.options.logger.error({ file: this.options.path, timeoutMs }, 'EVENTS_FILE did not close in time')
          this.stream.destroy()
          resolve()
        }, remaining)
        this.stream.end(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    })()
    return this.closePromise
  }
}
