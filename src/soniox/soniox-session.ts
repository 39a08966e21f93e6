/**
 * One Soniox real-time session over one WebSocket: connect, start message, audio, end of audio,
 * results. Knows nothing of AudioSocket or webhooks.
 *
 * Lifecycle (one `state` field):
 *
 *   connecting --open--> open --start(format)--> streaming --finish()--> finishing --finished--> finished
 *        \                 \                        \                       \
 *         +-----------------+------------------------+-----------------------+--> failed (error, once)
 *   close() from any state --> closed (no further callbacks)
 *
 * The socket is opened as soon as the call is known (UUID) so the TLS handshake overlaps the
 * first ~500 ms before Asterisk sends audio; the start message waits for the first audio frame,
 * which fixes the sample rate. Audio that arrives before the start message is sent is queued as
 * copies (the caller's buffers may be views of socket chunks).
 *
 * Over 400 lines because every step of the socket's life (queue, batching, heartbeat, finish,
 * failure) reads and moves the one state field; the start message, message parsing and errors are
 * in start-message.ts, messages.ts and soniox-error.ts.
 */
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { AppError } from '../shared/errors.js'
import { guardedClock, systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { UNGUARDED, type Guard } from '../shared/guard.js'
import { buildStartMessage, bytesPerSample, type AudioFormat, type RecognitionOptions } from './start-message.js'
import { parseSonioxMessage, type SonioxResult, type SonioxServerError } from './messages.js'
import { SonioxError } from './soniox-error.js'
import { sonioxTls, type TlsReuse } from './tls-reuse.js'

/**
 * How long past audioBatchMs a partial batch may wait for more audio: one 20 ms frame period, so
 * the deadline never fires while frames flow, yet a pause delays the audio before it by at most
 * audioBatchMs + this.
 */
export const BATCH_DEADLINE_SLACK_MS = 20

export type SonioxSessionState = 'connecting' | 'open' | 'streaming' | 'finishing' | 'finished' | 'failed' | 'closed'

export interface SonioxSessionOptions {
  url: string
  apiKey: string
  recognition: RecognitionOptions
  /** Sent as client_reference_id: the call UUID, so Soniox usage logs can be matched to calls. */
  clientReferenceId: string
  connectTimeoutMs: number
  finishTimeoutMs: number
  /**
   * 0 forwards each chunk as one message; otherwise chunks are joined until a message holds at
   * least this much audio, and a partial one goes out BATCH_DEADLINE_SLACK_MS after that at the
   * latest (a pause).
   */
  audioBatchMs: number
  /** Audio allowed to wait (before the start message, or in the WebSocket send buffer). */
  maxBufferedAudioMs: number
  /** Send {"type":"keepalive"} when no audio was sent for this long (Soniox closes after 20 s). */
  keepaliveMs: number
  /** Ping the WebSocket this often; no pong within pongTimeoutMs fails the session (half-open link). */
  pingIntervalMs: number
  pongTimeoutMs: number
  /** Default systemClock; its timers take any delay (the finish wait comes from a setting). */
  clock?: Clock
  /** Replaced in tests; the default opens a real `ws` client. */
  createSocket?: (url: string, headers: Record<string, string>, handshakeTimeoutMs: number) => WebSocket
  /** The call's fault boundary: every WebSocket event and timer of the session runs inside it. */
  guard?: Guard
  metrics?: SonioxMetrics
}

/**
 * Counts Soniox sessions (Prometheus in production). SonioxSession reports its own lifetime and
 * connect time; ResilientTranscriber reports replacements and errors.
 */
export interface SonioxMetrics {
  /** A session was created (its WebSocket is opening). */
  sessionOpened(): void
  /** ... and is over (finished, failed or closed); called once per session. */
  sessionClosed(): void
  /** Its WebSocket opened this many milliseconds after the session was created. */
  connected(ms: number): void
  /** A session was opened to replace a failed one. */
  reconnected(): void
  /** A session failed, or the transcriber gave up (ERR_SONIOX_GAVE_UP). */
  error(error: AppError): void
}

export interface SonioxSessionHandlers {
  onResult(result: SonioxResult): void
  /** Called at most once; the session is dead afterwards. */
  onError(error: AppError): void
  /** Soniox sent `finished`: every final token has been delivered through onResult. */
  onFinished(): void
}

/** The default socket: over wss://, the process's shared TLS context and session tickets (tls-reuse.ts). */
export function createSonioxSocket(url: string, headers: Record<string, string>, handshakeTimeoutMs: number, tlsReuse: TlsReuse = sonioxTls): WebSocket {
  const secure = url.startsWith('wss:') || url.startsWith('https:')
  // ws calls createConnection with one options object (its own tlsConnect has that signature); the
  // typings borrow net.createConnection's overloads.
  const createConnection = tlsReuse.connect as unknown as WebSocket.ClientOptions['createConnection']
  return new WebSocket(url, { headers, handshakeTimeout: handshakeTimeoutMs, perMessageDeflate: false, ...(secure ? { createConnection } : {}) })
}

export class SonioxSession {
  private stateValue: SonioxSessionState = 'connecting'
  private readonly socket: WebSocket
  private format: AudioFormat | undefined
  /**
   * finish() was called. Not a state of its own: it is the caller's intent, which can come in any
   * live state, even before the socket opens (the end then follows the start message).
   */
  private endRequested = false
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** The message being filled (audioBatchMs > 0): allocated at its first chunk, sent, never reused. */
  private batch: Buffer | undefined
  private batchBytes = 0
  /** Bytes in a full batch; fixed at the start message, which fixes the format. */
  private batchCapacity = 0
  /** Sends a partial batch when the audio pauses; one Timeout per session, re-armed per batch. */
  private batchTimer: ClockTimer | undefined
  private finishTimer: ClockTimer | undefined
  private heartbeatTimer: ClockTimer | undefined
  private lastSentAt = 0
  /** Audio went out since the last heartbeat: cheaper than reading the clock per frame. */
  private sentSinceTick = false
  private readonly createdAt: number
  private lastPingAt = 0
  private pongDueSince: number | undefined
  private finishWaiters: Array<() => void> = []
  private readonly clock: Clock

  /** Audio bytes handed to the WebSocket. */
  bytesSent = 0
  /** Audio bytes offered after the session stopped accepting (ended, failed or closed). */
  bytesDropped = 0

  constructor(
    private readonly options: SonioxSessionOptions,
    private readonly handlers: SonioxSessionHandlers,
  ) {
    const guard = options.guard ?? UNGUARDED
    this.clock = guardedClock(options.clock ?? systemClock, guard)
    this.createdAt = this.clock.now()
    options.metrics?.sessionOpened()
    const create = options.createSocket ?? createSonioxSocket
    this.socket = create(options.url, { Authorization: `Bearer ${options.apiKey}` }, options.connectTimeoutMs)
    this.socket.binaryType = 'nodebuffer'
    this.socket.on('open', guard(() => this.onOpen()))
    this.socket.on('message', guard((data: WebSocket.RawData, isBinary: boolean) => this.onMessage(data, isBinary)))
    this.socket.on('close', guard((code: number, reason: Buffer) => this.onClose(code, reason.toString())))
    this.socket.on('error', guard((err: Error) => this.onSocketError(err)))
    this.socket.on('pong', () => (this.pongDueSince = undefined))
    this.socket.on('unexpected-response', guard((_req: unknown, res: IncomingMessage) => {
      // Soniox accepts every upgrade and reports problems in JSON; a proxy or a wrong URL does not.
      const error = new SonioxError('ERR_SONIOX_CONNECT', `the Soniox upgrade was answered HTTP ${res.statusCode} (check SONIOX_WEBSOCKET_URL)`, { sonioxCode: res.statusCode })
      res.resume()
      this.fail(error)
    }))
  }

  get state(): SonioxSessionState {
    return this.stateValue
  }

  /** Fixes the audio format; the start message goes out as soon as the socket is open. */
  start(format: AudioFormat): void {
    if (this.format !== undefined) return
    this.format = format
    if (this.stateValue === 'open') this.sendStart()
  }

  /**
   * Forwards call audio. Never throws. Past the bound of audio waiting for the socket, the session
   * fails (ERR_SONIOX_BACKPRESSURE) rather than dropping audio: a hole in the middle of a session
   * would shift every later timestamp, whereas a failed session is resumed by the caller from the
   * audio it holds, where any loss is bounded and counted.
   */
  sendAudio(chunk: Buffer): void {
    if (chunk.length === 0) return
    if (!this.isAccepting()) {
      this.bytesDropped += chunk.length
      return
    }
    if (this.stateValue !== 'streaming') {
      // connecting / open: the start message has not gone out yet.
      if (this.pendingBytes + chunk.length > this.maxBufferedBytes()) {
        this.fail(new AppError('ERR_SONIOX_BACKPRESSURE', `${this.pendingBytes} bytes of audio are waiting for the Soniox connection`))
        return
      }
      // Copy: the chunk may be a view of a socket buffer that is gone by the time we send.
      this.pending.push(Buffer.from(chunk))
      this.pendingBytes += chunk.length
      return
    }
    if (this.batchCapacity > 0) {
      this.appendToBatch(chunk)
      return
    }
    this.sendBinary(chunk)
  }

  /**
   * Ends the audio (empty frame) and resolves once Soniox has sent `finished` and so every last
   * final word, or when the session fails or the finish timeout passes (onError then reports it).
   */
  finish(): Promise<void> {
    if (this.stateValue === 'finished' || this.stateValue === 'failed' || this.stateValue === 'closed') {
      return Promise.resolve()
    }
    const done = new Promise<void>((resolve) => this.finishWaiters.push(resolve))
    if (this.endRequested) return done
    this.endRequested = true
    if (this.format === undefined) {
      // No audio ever arrived, so no session was started: there is nothing to finish.
      this.close()
      return done
    }
    this.finishTimer = this.clock.setTimeout(() => {
      this.fail(new AppError('ERR_SONIOX_FINISH_TIMEOUT', `Soniox sent no "finished" within ${this.options.finishTimeoutMs} ms`))
    }, this.options.finishTimeoutMs)
    if (this.stateValue === 'streaming') this.sendEnd()
    return done
  }

  /** Immediate teardown without waiting for Soniox; idempotent. No callbacks follow. */
  close(): void {
    if (this.stateValue === 'closed') return
    // A session that already finished or failed was counted closed then.
    const wasLive = this.stateValue !== 'finished' && this.stateValue !== 'failed'
    this.stateValue = 'closed'
    this.cleanup()
    if (wasLive) this.options.metrics?.sessionClosed()
    this.socket.removeAllListeners('open')
    this.socket.removeAllListeners('message')
    // Keep an error listener: a late socket error must not become an unhandled 'error' event.
    this.socket.on('error', () => {})
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000)
    else this.socket.terminate()
    this.resolveFinishWaiters()
  }

  // -------------------------------------------------------------------------------------------

  private isAccepting(): boolean {
    return (this.stateValue === 'connecting' || this.stateValue === 'open' || this.stateValue === 'streaming') && !this.endRequested
  }

  private bytesForMs(ms: number): number {
    if (this.format === undefined) return Math.ceil((8000 * ms) / 1000) * 2
    return Math.ceil((this.format.sampleRate * ms) / 1000) * bytesPerSample(this.format)
  }

  /**
   * A replacement session is handed up to maxBufferedAudioMs of held audio at once, and live audio
   * keeps coming while its socket connects (at most connectTimeoutMs of it, then the connect fails).
   * The bound leaves room for both, so only a truly stalled link reaches it.
   */
  private maxBufferedBytes(): number {
    return this.bytesForMs(this.options.maxBufferedAudioMs + this.options.connectTimeoutMs)
  }

  private onOpen(): void {
    if (this.stateValue !== 'connecting') return
    this.stateValue = 'open'
    const now = this.clock.now()
    this.options.metrics?.connected(now - this.createdAt)
    this.lastSentAt = now
    this.lastPingAt = now
    this.scheduleHeartbeat()
    if (this.format !== undefined) this.sendStart()
  }

  /**
   * One timer per session does both liveness jobs, so a call costs one wake-up per tick rather
   * than a timer reset per audio frame: a keepalive when the caller is silent (hold, DTX) and
   * a ping whose missing pong reveals a half-open connection that would otherwise hang forever.
   */
  private scheduleHeartbeat(): void {
    // One Timeout for the session's life, re-armed with refresh(): a new one per tick would be
    // hundreds of objects a second at 500 calls, each living a second, long enough to be promoted.
    if (this.heartbeatTimer !== undefined) {
      this.heartbeatTimer.refresh()
      return
    }
    const tick = Math.max(50, Math.min(1000, this.options.keepaliveMs / 2, this.options.pingIntervalMs / 2, this.options.pongTimeoutMs / 2))
    this.heartbeatTimer = this.clock.setTimeout(() => this.onHeartbeat(), tick)
  }

  private onHeartbeat(): void {
    if (this.stateValue !== 'open' && this.stateValue !== 'streaming' && this.stateValue !== 'finishing') return
    const now = this.clock.now()
    if (this.sentSinceTick) {
      this.sentSinceTick = false
      this.lastSentAt = now
    }
    if (this.pongDueSince !== undefined && now - this.pongDueSince >= this.options.pongTimeoutMs) {
      this.fail(new AppError('ERR_SONIOX_UNRESPONSIVE', `no pong from Soniox within ${this.options.pongTimeoutMs} ms`))
      return
    }
    if (this.pongDueSince === undefined && now - this.lastPingAt >= this.options.pingIntervalMs) {
      this.lastPingAt = now
      this.pongDueSince = now
      this.socket.ping()
    }
    // Only while streaming: after the end-of-audio frame Soniox accepts nothing more.
    if (this.stateValue === 'streaming' && now - this.lastSentAt >= this.options.keepaliveMs) {
      this.socket.send('{"type":"keepalive"}')
      this.lastSentAt = now
    }
    this.scheduleHeartbeat()
  }

  private sendStart(): void {
    if (this.format === undefined || this.stateValue !== 'open') return
    const message = buildStartMessage(this.options.recognition, this.format, this.options.clientReferenceId)
    this.socket.send(JSON.stringify(message))
    this.stateValue = 'streaming'
    const queued = this.pending
    const queuedBytes = this.pendingBytes
    this.pending = []
    this.pendingBytes = 0
    if (this.options.audioBatchMs > 0) this.batchCapacity = this.bytesForMs(this.options.audioBatchMs)
    if (queued.length > 0) {
      // What arrived while connecting goes as one message, batching or not: it is late already,
      // and with a burst of calls connecting at once a message per held frame was a system call
      // each, all in the same turn.
      this.sendBinary(queued.length === 1 ? (queued[0] as Buffer) : Buffer.concat(queued, queuedBytes))
    }
    if (this.endRequested) this.sendEnd()
  }

  private sendBinary(chunk: Buffer): void {
    // Backpressure is a decision: real-time audio cannot wait and the Asterisk socket is never
    // paused. A send buffer this deep means the link is stalled, so the session fails and the
    // caller (ResilientTranscriber) resumes in a new one from audio it still holds, rather than
    // leaving a silent gap in the middle of this session's timeline.
    if (this.socket.bufferedAmount + chunk.length > this.maxBufferedBytes()) {
      this.fail(new AppError('ERR_SONIOX_BACKPRESSURE', `${this.socket.bufferedAmount} bytes are waiting to be sent to Soniox`))
      return
    }
    // A Buffer goes out as a binary frame by default; no options object per frame.
    this.socket.send(chunk)
    this.sentSinceTick = true
    this.bytesSent += chunk.length
  }

  /**
   * Batches hold whole chunks: a batch is sent at the chunk that brings it to audioBatchMs. Split
   * chunks would keep every later batch straddling one frame more after an odd-sized frame (Asterisk
   * sends some between playbacks), each waiting a frame period longer for the chunk that fills it.
   * Every chunk is copied once, into a buffer with room for one more chunk than a full batch.
   */
  private appendToBatch(chunk: Buffer): void {
    if (chunk.length >= this.batchCapacity) {
      // A batch by itself: whatever is held goes first, in order.
      this.flushBatch()
      this.sendBinary(chunk)
      return
    }
    if (this.batch === undefined) this.openBatch()
    // Fits: batchBytes < batchCapacity before, and so is the chunk; the buffer holds twice that.
    ;(this.batch as Buffer).set(chunk, this.batchBytes)
    this.batchBytes += chunk.length
    if (this.batchBytes >= this.batchCapacity) this.flushBatch()
  }

  private openBatch(): void {
    // A new buffer per message: ws may still hold the last one in its send queue.
    this.batch = Buffer.allocUnsafe(2 * this.batchCapacity)
    this.batchBytes = 0
    // Without a deadline, audio before a pause (hold, a prompt, the gaps Asterisk leaves between
    // playbacks) would wait for the next frame, a second or more. The slack keeps the timer from
    // firing while frames flow: each new batch pushes it on before it is due.
    if (this.batchTimer === undefined) {
      this.batchTimer = this.clock.setTimeout(() => this.flushBatch(), this.options.audioBatchMs + BATCH_DEADLINE_SLACK_MS)
    } else {
      this.batchTimer.refresh()
    }
  }

  private flushBatch(): void {
    const batch = this.batch
    if (batch === undefined || this.stateValue !== 'streaming') return
    const bytes = this.batchBytes
    this.batch = undefined
    this.batchBytes = 0
    this.sendBinary(batch.subarray(0, bytes))
  }

  private sendEnd(): void {
    this.flushBatch()
    this.clock.clearTimeout(this.batchTimer)
    this.batchTimer = undefined
    // An empty binary frame is Soniox's end-of-audio signal; it answers with the remaining final
    // tokens, then {"finished": true}, then closes. Closing before that loses the last words.
    this.socket.send(Buffer.alloc(0), { binary: true })
    this.stateValue = 'finishing'
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.stateValue === 'failed' || this.stateValue === 'closed') return
    this.pongDueSince = undefined
    if (isBinary) {
      this.fail(new AppError('ERR_SONIOX_BAD_MESSAGE', 'Soniox sent a binary frame; only JSON text is expected'))
      return
    }
    const parsed = parseSonioxMessage(data.toString())
    if (parsed instanceof AppError) {
      this.fail(parsed)
      return
    }
    if (parsed.kind === 'error') {
      this.fail(sonioxServerError(parsed))
      return
    }
    this.handlers.onResult(parsed)
    if (parsed.finished) {
      this.stateValue = 'finished'
      this.cleanup()
      this.options.metrics?.sessionClosed()
      this.handlers.onFinished()
      this.resolveFinishWaiters()
    }
  }

  private onClose(code: number, reason: string): void {
    if (this.stateValue === 'finished' || this.stateValue === 'failed' || this.stateValue === 'closed') return
    this.fail(new AppError('ERR_SONIOX_CLOSED', `Soniox closed the WebSocket before "finished" (code ${code}${reason ? `, ${reason}` : ''})`))
  }

  private onSocketError(err: Error): void {
    if (this.stateValue === 'finished' || this.stateValue === 'failed' || this.stateValue === 'closed') return
    const code = this.stateValue === 'connecting' ? 'ERR_SONIOX_CONNECT' : 'ERR_SONIOX_CLOSED'
    this.fail(new AppError(code, `${code === 'ERR_SONIOX_CONNECT' ? 'cannot connect to' : 'lost the connection to'} Soniox: ${err.message}`, { cause: err }))
  }

  private fail(error: AppError): void {
    if (this.stateValue === 'failed' || this.stateValue === 'closed' || this.stateValue === 'finished') return
    this.stateValue = 'failed'
    this.cleanup()
    this.options.metrics?.sessionClosed()
    this.socket.removeAllListeners('message')
    this.socket.on('error', () => {})
    // Terminate, not close: a closing handshake cannot complete on a half-open or stalled link
    // and would hold the connection for ws's 30 s close timeout; after an error there is
    // nothing left to say to Soniox anyway.
    this.socket.terminate()
    this.handlers.onError(error)
    this.resolveFinishWaiters()
  }

  /** Stops the timers and drops queued audio; the state says whether the session was counted closed. */
  private cleanup(): void {
    this.clock.clearTimeout(this.finishTimer)
    this.clock.clearTimeout(this.heartbeatTimer)
    this.clock.clearTimeout(this.batchTimer)
    this.finishTimer = undefined
    this.heartbeatTimer = undefined
    this.batchTimer = undefined
    this.pending = []
    this.pendingBytes = 0
    this.batch = undefined
    this.batchBytes = 0
  }

  private resolveFinishWaiters(): void {
    const waiters = this.finishWaiters
    this.finishWaiters = []
    for (const resolve of waiters) resolve()
  }
}

function sonioxServerError(message: SonioxServerError): SonioxError {
  return new SonioxError('ERR_SONIOX_SERVER_ERROR', `Soniox error ${message.code}${message.type ? ` ${message.type}` : ''}: ${message.message}`, {
    sonioxCode: message.code,
    sonioxType: message.type,
    requestId: message.requestId,
  })
}
