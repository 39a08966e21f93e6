/**
 * Writes one connection to a capture file while the call runs, without ever slowing it down.
 *
 * - The audio path only appends a record to an in-memory queue; the file is written by an
 *   asynchronous loop in batches (every FLUSH_INTERVAL_MS or FLUSH_BYTES), so a slow disk costs
 *   memory, never latency.
 * - The queue is bounded: a disk that falls `maxBacklogBytes` behind, a full disk, or any I/O
 *   error stops the recording of that call (one warn line, the partial file removed). The call
 *   itself never sees it: nothing here throws or rejects towards the caller.
 * - The file is written as `<name>.ascap.part` and renamed to `<time>-<uuid>.ascap` when complete,
 *   so a directory listing never shows a half-written capture under a final name. The UUID comes
 *   from whoever parsed the stream (`callIdentified`): the recorder does not parse frames.
 * - Files and the directory are created owner-only (0600/0700): captures hold call audio.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import { AppError, isErrnoException } from '../shared/errors.js'
import { CAPTURE_EXTENSION, encodeCapturePreamble, encodeRecord, type CaptureHeader, type Direction } from './format.js'

/** The little a recorder needs from a logger (pino's Logger fits). */
export interface RecorderLogger {
  warn(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

export interface CaptureFileHandle {
  writev(buffers: Buffer[]): Promise<{ bytesWritten: number }>
  close(): Promise<void>
}

/** File-system operations, injectable so tests can make the disk fail. */
export interface CaptureFileOps {
  mkdir(dir: string): Promise<unknown>
  open(path: string): Promise<CaptureFileHandle>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
}

const realFileOps: CaptureFileOps = {
  mkdir: (dir) => mkdir(dir, { recursive: true, mode: 0o700 }),
  // 'wx': never overwrite an existing capture.
  open: (path) => open(path, 'wx', 0o600),
  rename,
  unlink,
}

export interface CaptureRecorderOptions {
  /** Directory the capture is written to (created if missing). */
  dir: string
  /** Everything of the header but the capture time, which the recorder stamps. */
  header: Omit<CaptureHeader, 'capturedAt'>
  logger: RecorderLogger
  /** Monotonic clock in microseconds (default: performance.now()); offsets count from construction. */
  nowUs?: () => number
  /** Wall clock in ms for the header and the file name (default Date.now). */
  wallClockMs?: () => number
  fileOps?: Partial<CaptureFileOps>
  /** Unwritten bytes allowed before the recording is abandoned. Default 8 MiB (minutes of audio). */
  maxBacklogBytes?: number
  /** How long records may wait before a batch is written. Default 100 ms. */
  flushIntervalMs?: number
}

export type RecorderState = 'recording' | 'closing' | 'closed' | 'failed'

/** Queue size that triggers a write at once, whatever the interval. */
const FLUSH_BYTES = 64 * 1024
/** Buffers per writev call, well below IOV_MAX (1024 on Linux). */
const MAX_BUFFERS_PER_WRITE = 512

let fileCounter = 0

/** `2026-11-20T22-00-00.123Z`: sortable, and without the colons some file systems refuse. */
function fileStamp(ms: number): string {
  return new Date(ms).toISOString().replaceAll(':', '-')
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9.-]/g, '_')
}

export class CaptureRecorder {
  #state: RecorderState = 'recording'
  readonly #dir: string
  readonly #logger: RecorderLogger
  readonly #fs: CaptureFileOps
  readonly #nowUs: () => number
  readonly #startUs: number
  readonly #stamp: string
  readonly #tmpPath: string
  readonly #maxBacklog: number
  readonly #flushIntervalMs: number
  readonly #peer: string

  #queue: Buffer[] = []
  /** Queued plus being written. */
  #pendingBytes = 0
  #lastUs = 0
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> | undefined
  #handle: Promise<CaptureFileHandle>
  #closing: Promise<string | undefined> | undefined
  #opened = false
  /** After a failure: closing the file and removing the partial capture. */
  #cleanup: Promise<void> = Promise.resolve()
  #uuid: string | undefined
  #path: string | undefined
  readonly #bytes = { in: 0, out: 0 }

  constructor(options: CaptureRecorderOptions) {
    this.#dir = options.dir
    this.#logger = options.logger
    this.#fs = { ...realFileOps, ...options.fileOps }
    this.#nowUs = options.nowUs ?? (() => Math.round(performance.now() * 1000))
    this.#startUs = this.#nowUs()
    this.#maxBacklog = options.maxBacklogBytes ?? 8 * 1024 * 1024
    this.#flushIntervalMs = options.flushIntervalMs ?? 100
    const wallMs = (options.wallClockMs ?? Date.now)()
    this.#stamp = fileStamp(wallMs)
    const asterisk = options.header.asterisk
    this.#peer = asterisk ? safeName(`${asterisk.address}-${asterisk.port}`) : 'unknown-peer'
    this.#tmpPath = join(this.#dir, `${this.#stamp}-${this.#peer}-${process.pid}-${++fileCounter}${CAPTURE_EXTENSION}.part`)

    this.#enqueue(encodeCapturePreamble({ ...options.header, capturedAt: new Date(wallMs).toISOString() } as CaptureHeader))
    this.#handle = this.#fs.mkdir(this.#dir).then(() => this.#fs.open(this.#tmpPath))
    // A failed open is handled by the write loop; the rejection handler here keeps it from being
    // an unhandled rejection.
    this.#handle.then(
      () => (this.#opened = true),
      () => {},
    )
  }

  get state(): RecorderState {
    return this.#state
  }

  /** The call's UUID once `callIdentified` has given it, else undefined. */
  get uuid(): string | undefined {
    return this.#uuid
  }

  /** The final file, once `close()` has finished successfully. */
  get path(): string | undefined {
    return this.#path
  }

  get bytes(): Readonly<{ in: number; out: number }> {
    return this.#bytes
  }

  /**
   * The call's UUID, from the UUID frame its parser read: it names the file and the log lines. The
   * first one counts (a second UUID frame is a violation the call handles, not a new name).
   */
  callIdentified(uuid: string): void {
    this.#uuid ??= uuid
  }

  data(direction: Direction, bytes: Buffer): void {
    if (this.#state !== 'recording' || bytes.length === 0) return
    this.#bytes[direction] += bytes.length
    this.#enqueue(encodeRecord(this.#offsetUs(), 'data', direction, bytes))
  }

  fin(direction: Direction): void {
    if (this.#state !== 'recording') return
    this.#enqueue(encodeRecord(this.#offsetUs(), 'fin', direction))
  }

  reset(direction: Direction): void {
    if (this.#state !== 'recording') return
    this.#enqueue(encodeRecord(this.#offsetUs(), 'reset', direction))
  }

  /**
   * Writes the end record, finishes the file and gives it its final name. Resolves with the path,
   * or undefined if the recording failed. Never rejects; idempotent.
   */
  close(): Promise<string | undefined> {
    if (this.#closing) return this.#closing
    // A failed recording is "closed" once its partial file is gone, so nothing half-written outlives close().
    if (this.#state === 'failed') return (this.#closing = this.#cleanup.then(() => undefined))
    this.#enqueue(encodeRecord(this.#offsetUs(), 'end', null))
    this.#state = 'closing'
    this.#closing = this.#finish()
    return this.#closing
  }

  #offsetUs(): number {
    // performance.now() is monotonic, but clamp anyway: a file whose times go back is corrupt.
    const us = Math.max(this.#lastUs, this.#nowUs() - this.#startUs)
    this.#lastUs = us
    return us
  }

  #enqueue(record: Buffer): void {
    this.#queue.push(record)
    this.#pendingBytes += record.length
    if (this.#pendingBytes > this.#maxBacklog) {
      this.#fail(new AppError('ERR_CAPTURE_WRITE', `recording fell ${this.#pendingBytes} bytes behind (the disk is too slow)`))
      return
    }
    if (this.#pendingBytes >= FLUSH_BYTES) {
      this.#flush()
    } else if (this.#timer === undefined && this.#writing === undefined) {
      this.#timer = setTimeout(() => this.#flush(), this.#flushIntervalMs)
      this.#timer.unref()
    }
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#writing !== undefined || this.#state === 'failed') return
    this.#writing = this.#writeLoop().then(
      () => {
        this.#writing = undefined
      },
      (err: unknown) => {
        this.#writing = undefined
        this.#fail(err)
      },
    )
  }

  async #writeLoop(): Promise<void> {
    const handle = await this.#handle
    while (this.#queue.length > 0 && this.#state !== 'failed') {
      const batch = this.#queue.splice(0, MAX_BUFFERS_PER_WRITE)
      let size = 0
      for (const b of batch) size += b.length
      const { bytesWritten } = await handle.writev(batch)
      if (bytesWritten !== size) throw new AppError('ERR_CAPTURE_WRITE', `cannot write capture ${this.#tmpPath}: short write: ${bytesWritten} of ${size} bytes (disk full?)`)
      this.#pendingBytes -= size
    }
  }

  async #finish(): Promise<string | undefined> {
    this.#flush()
    while (this.#writing !== undefined) await this.#writing
    if (this.#state === 'failed') {
      await this.#cleanup
      return undefined
    }
    try {
      const handle = await this.#handle
      await handle.close()
      const name = this.#uuid ?? this.#peer
      const path = join(this.#dir, `${this.#stamp}-${safeName(name)}${CAPTURE_EXTENSION}`)
      await this.#fs.rename(this.#tmpPath, path)
      this.#path = path
      this.#state = 'closed'
      this.#logger.debug({ captureFile: path, callId: this.#uuid, bytesIn: this.#bytes.in, bytesOut: this.#bytes.out }, 'capture written')
      return path
    } catch (err) {
      this.#fail(err)
      await this.#cleanup
      return undefined
    }
  }

  /** Stops recording this connection for good: one warn line, the partial file removed. */
  #fail(err: unknown): void {
    if (this.#state === 'failed') return
    this.#state = 'failed'
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue = []
    this.#pendingBytes = 0
    const error =
      err instanceof AppError
        ? err
        : new AppError('ERR_CAPTURE_WRITE', `cannot write capture ${this.#tmpPath}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
    this.#logger.warn({ err: error, captureFile: this.#tmpPath, callId: this.#uuid }, 'call recording stopped; the call continues unrecorded')
    const removePartial = (): Promise<void> =>
      this.#handle
        .then((h) => h.close())
        .catch(() => {})
        .then(() => this.#fs.unlink(this.#tmpPath))
        .catch(() => {})
    // Awaited by close() when the file is open; a disk still hanging on open() must not hang
    // close(), so then the removal just happens whenever the open settles.
    if (this.#opened) this.#cleanup = removePartial()
    else void removePartial()
  }
}

// ---------------------------------------------------------------------------------------------
// The server's recorder: one capture per call, fed through CallSession's WireTap.

/**
 * One call's recording, fed by CallSession as its WireTap. call/ declares that interface and this
 * class fits it structurally (app.ts is where the two meet), so capture/ imports nothing above it,
 * as soniox/'s transcriber fits call/'s Transcriber.
 */
export class CaptureTap {
  readonly #recorder: CaptureRecorder
  readonly #onClose: () => void

  constructor(recorder: CaptureRecorder, onClose: () => void) {
    this.#recorder = recorder
    this.#onClose = onClose
  }

  inbound(chunk: Buffer): void {
    this.#recorder.data('in', chunk)
  }

  outbound(bytes: Buffer): void {
    this.#recorder.data('out', bytes)
  }

  callIdentified(uuid: string): void {
    this.#recorder.callIdentified(uuid)
  }

  /** The connection is gone: the file is finished in the background (the factory's drain awaits it). */
  close(): void {
    this.#onClose()
  }
}

export interface CaptureTapFactory {
  (socket: Socket): CaptureTap
  /**
   * Finishes every recording: those whose connection already closed, and (at shutdown, after the
   * calls have ended) those whose socket has not emitted 'close' yet. Resolves when all are on disk.
   */
  drain(): Promise<void>
}

export interface CaptureTapOptions {
  dir: string
  logger: RecorderLogger
  /** e.g. "audiosocket-soniox 0.1.0" */
  tool: string
  fileOps?: Partial<CaptureFileOps>
  maxBacklogBytes?: number
}

/**
 * Wraps a socket in a recorder. Data comes through the tap (CallSession calls it with exactly what
 * it read and wrote); FIN and reset come from the socket's own events, which the tap cannot see.
 */
export function createCaptureTaps(options: CaptureTapOptions): CaptureTapFactory {
  const live = new Set<CaptureRecorder>()
  const closing = new Set<Promise<unknown>>()
  const finish = (recorder: CaptureRecorder): void => {
    if (!live.delete(recorder)) return
    const done = recorder.close()
    closing.add(done)
    void done.then(() => closing.delete(done))
  }
  const factory = (socket: Socket): CaptureTap => {
    const recorder = new CaptureRecorder({
      dir: options.dir,
      logger: options.logger,
      fileOps: options.fileOps,
      maxBacklogBytes: options.maxBacklogBytes,
      header: {
        tool: options.tool,
        mode: 'server',
        asterisk: endpoint(socket.remoteAddress, socket.remotePort),
        server: endpoint(socket.localAddress, socket.localPort),
      },
    })
    live.add(recorder)
    socket.on('end', () => recorder.fin('in'))
    // 'finish': our side's end() has flushed, i.e. the server's FIN went out.
    socket.on('finish', () => recorder.fin('out'))
    socket.on('error', (err) => {
      if (isErrnoException(err) && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) recorder.reset('in')
    })
    return new CaptureTap(recorder, () => finish(recorder))
  }
  return Object.assign(factory, {
    drain: async () => {
      for (const recorder of [...live]) finish(recorder)
      while (closing.size > 0) await Promise.all([...closing])
    },
  })
}

export function endpoint(address: string | undefined, port: number | undefined): { address: string; port: number } | null {
  return address !== undefined && port !== undefined ? { address, port } : null
}
