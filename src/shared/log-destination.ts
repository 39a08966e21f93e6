/**
 * Where the log goes: a file descriptor (stderr), written so that the log can never keep the
 * process alive or stop it from exiting.
 *
 * Why not pino.destination() (sonic-boom): at exit it flushes synchronously and retries every
 * failed write every 100 ms with no bound, EPIPE included. With stderr a pipe whose reader has gone
 * (`serve 2>&1 | head -2`) and a line still buffered at exit, `process.exit()` never returned, and a
 * second SIGTERM could not help: the loop blocks the event loop, so no signal handler ever ran.
 *
 * How this one writes: the lines of one turn of the event loop with one `writeSync`, right after
 * that turn's I/O callbacks (setImmediate), which never blocks on a pipe or a socket (once
 * process.stderr exists, Node has made such an fd non-blocking; journald's and docker's are sockets
 * or pipes), and on a file or terminal costs what console.error costs. One write per line cost a
 * burst of 300 arriving calls 0.3 ms of the main thread per call (a system call and a wake-up of the
 * reader per line); a line now waits at most for the rest of its turn.
 *   - Partly written or EAGAIN (the reader is slow): the rest is queued, bounded by
 *     `maxBufferedBytes` (lines beyond it are dropped and counted; a warn line where the gap is says
 *     how many), and retried on an unref()ed timer, 10 ms doubling to 100 ms.
 *   - Any other error (EPIPE: the reader has gone; EBADF): the output is broken for good; every line
 *     from then on is dropped without a syscall.
 *   - flush(cb) calls back once the queue is empty, the output broken, or `stallWaitMs` has passed.
 *   - At process exit (one 'exit' hook for every destination), flushSync() writes what is queued,
 *     waiting for a full pipe at most `stallWaitMs` in all, then drops the rest. It never loops
 *     on an error, so exit always ends.
 */
import { writeSync } from 'node:fs'
import { systemClock, type Clock, type ClockTimer } from './clock.js'

export interface LogDestinationOptions {
  fd: number
  /** Bytes queued while the output is slow; lines beyond are dropped and counted. Default 4 MiB. */
  maxBufferedBytes?: number
  /** How long flush(cb) and the flush at exit wait for a full pipe, in all. Default 1000 ms. */
  stallWaitMs?: number
  /** Flush what is queued at process exit. Default true. */
  flushAtExit?: boolean
  /** For tests: the write system call (default fs.writeSync), the timers, and a blocking sleep. */
  write?: (fd: number, buffer: Buffer) => number
  /** Runs the write of the lines queued so far, after the current turn (default setImmediate). */
  defer?: (write: () => void) => void
  clock?: Clock
  sleep?: (ms: number) => void
}

const RETRY_FIRST_MS = 10
const RETRY_MAX_MS = 100

/** Blocks the thread for `ms` (only flushSync, bounded, at exit). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Errors that mean "try again later": the pipe or socket is full. */
function isFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR'
}

/** Destinations that flush at exit; one 'exit' listener serves them all. */
const flushedAtExit = new Set<LogDestination>()
let exitHookInstalled = false

export class LogDestination {
  private readonly fd: number
  private readonly maxBufferedBytes: number
  private readonly stallWaitMs: number
  private readonly writeFd: (fd: number, buffer: Buffer) => number
  private readonly clock: Clock
  private readonly sleep: (ms: number) => void
  private state: 'open' | 'broken' = 'open'
  /** Bytes not written yet, oldest first; the first may be the rest of a partly written line. */
  private queue: Buffer[] = []
  private queuedBytes = 0
  private retryTimer: ClockTimer | undefined
  private readonly defer: (write: () => void) => void
  private writeDeferred = false
  private retryMs = RETRY_FIRST_MS
  /** Lines dropped since the last notice (queue full, or given up at a stall). */
  private droppedSinceNotice = 0
  private droppedTotal = 0
  private readonly flushWaiters = new Set<{ cb: (err?: Error) => void; timer: ClockTimer }>()

  constructor(options: LogDestinationOptions) {
    this.fd = options.fd
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024
    this.stallWaitMs = options.stallWaitMs ?? 1000
    this.writeFd = options.write ?? writeSync
    this.clock = options.clock ?? systemClock
    this.sleep = options.sleep ?? sleepSync
    this.defer = options.defer ?? setImmediate
    if (options.flushAtExit ?? true) {
      flushedAtExit.add(this)
      if (!exitHookInstalled) {
        exitHookInstalled = true
        process.on('exit', () => {
          for (const destination of flushedAtExit) destination.flushSync()
        })
      }
    }
  }

  /** The reader has gone (EPIPE or another write error): every line is dropped from then on. */
  get broken(): boolean {
    return this.state === 'broken'
  }

  /** Lines dropped because the output was slow (queue full, or a stall at exit), not counting a broken output. */
  get droppedLines(): number {
    return this.droppedTotal
  }

  /** Bytes waiting for a slow reader. */
  get bufferedBytes(): number {
    return this.queuedBytes
  }

  /** pino's destination interface: one serialized line (with its newline). */
  write(line: string): boolean {
    if (this.state === 'broken') return true
    const bytes = Buffer.from(line, 'utf8')
    if (this.queuedBytes + bytes.length > this.maxBufferedBytes) {
      this.drop(1)
      return true
    }
    if (this.droppedSinceNotice > 0) {
      // Where the gap is: after the lines queued before it, before this one.
      const notice = Buffer.from(
        `${JSON.stringify({ level: 40, time: this.clock.now(), pid: process.pid, droppedLines: this.droppedSinceNotice, msg: 'log lines dropped: the log output was not being read' })}\n`,
      )
      this.droppedSinceNotice = 0
      this.queue.push(notice)
      this.queuedBytes += notice.length
    }
    this.queue.push(bytes)
    this.queuedBytes += bytes.length
    // A line behind a queue waits for the retry: writing it first would reorder the log.
    if (this.retryTimer === undefined && !this.writeDeferred) {
      this.writeDeferred = true
      this.defer(() => {
        this.writeDeferred = false
        if (this.retryTimer === undefined) this.drain()
      })
    }
    return true
  }

  /** Calls back once everything queued is written, the output is broken, or stallWaitMs has passed. */
  flush(cb?: (err?: Error) => void): void {
    if (cb === undefined) return
    if (this.queuedBytes === 0 || this.state === 'broken') {
      process.nextTick(cb)
      return
    }
    const waiter = {
      cb,
      timer: this.clock.setTimeout(() => {
        this.flushWaiters.delete(waiter)
        cb(new Error(`the log output is not being read: ${this.queuedBytes} bytes still queued`))
      }, this.stallWaitMs),
    }
    this.flushWaiters.add(waiter)
  }

  /**
   * Writes what is queued now, waiting for a full pipe at most `maxWaitMs` in all, then drops the
   * rest. Returns at once on a broken output. Never throws.
   */
  flushSync(maxWaitMs = this.stallWaitMs): void {
    this.clock.clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const deadline = this.clock.now() + maxWaitMs
    for (;;) {
      const outcome = this.writeQueued()
      if (outcome !== 'full') return
      const left = deadline - this.clock.now()
      if (left <= 0) {
        this.drop(this.queue.length)
        this.clearQueue()
        return
      }
      this.sleep(Math.min(RETRY_FIRST_MS, left))
    }
  }

  /** Stops flushing at exit (a destination a test is done with). Idempotent. */
  close(): void {
    flushedAtExit.delete(this)
    this.clock.clearTimeout(this.retryTimer)
    this.retryTimer = undefined
  }

  /** Writes as much as the fd takes now; on a full pipe, retries later on an unref()ed timer. */
  private drain(): void {
    this.retryTimer = undefined
    if (this.writeQueued() !== 'full') {
      this.retryMs = RETRY_FIRST_MS
      return
    }
    this.retryTimer = this.clock.setTimeout(() => this.drain(), this.retryMs)
    // A reader that never reads must not keep the process alive.
    this.retryTimer.unref()
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
  }

  /** 'done' (queue empty), 'full' (the fd takes no more now) or 'broken'. */
  private writeQueued(): 'done' | 'full' | 'broken' {
    if (this.state === 'broken') return 'broken'
    // One system call for everything queued.
    if (this.queue.length > 1) this.queue = [Buffer.concat(this.queue, this.queuedBytes)]
    while (this.queue.length > 0) {
      const head = this.queue[0] as Buffer
      let written: number
      try {
        written = this.writeFd(this.fd, head)
      } catch (err) {
        if (isFull(err)) return 'full'
        this.state = 'broken'
        this.clearQueue()
        this.settleFlushWaiters()
        return 'broken'
      }
      this.queuedBytes -= written
      if (written >= head.length) this.queue.shift()
      else this.queue[0] = head.subarray(written)
    }
    this.settleFlushWaiters()
    return 'done'
  }

  private drop(lines: number): void {
    this.droppedSinceNotice += lines
    this.droppedTotal += lines
  }

  private clearQueue(): void {
    this.queue = []
    this.queuedBytes = 0
  }

  private settleFlushWaiters(): void {
    for (const waiter of this.flushWaiters) {
      this.clock.clearTimeout(waiter.timer)
      waiter.cb()
    }
    this.flushWaiters.clear()
  }
}
