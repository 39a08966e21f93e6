/**
 * The events half of the ARI client: one WebSocket, `GET /ari/events?app=APP&subscribeAll=true`,
 * kept open for the life of the service. `subscribeAll` is what shows channels that are not in
 * Stasis (a bridged call's legs: ChannelEnteredBridge, ChannelDtmfReceived, ChannelDestroyed), and
 * the socket being open is what keeps the Stasis application APP registered: a snoop or
 * externalMedia channel created for APP while no socket is connected dies at once.
 *
 * Lifecycle (one `state` field):
 *
 *   idle --start()--> connecting --open--> connected --lost--> waiting --backoff--> connecting ...
 *                         \                                       ^
 *                          +------- refused / failed -------------+
 *   close() from any state --> closed (idempotent; no callback, no reconnect afterwards)
 *
 * Invariants:
 * - Every failure (refused upgrade, network error, the socket lost, no pong) is one AppError
 *   (ERR_ARI_EVENTS) given to onDisconnected once per attempt, logged once here, then retried after a
 *   jittered backoff (default 0.5 s doubling to 30 s). The backoff starts over only after a
 *   connection stayed up `stableMs`, so a server that accepts and drops at once is not hammered.
 *   A 401 is retried too (the admin may be fixing ari.conf), with words that say what to fix.
 * - Nothing a peer sends can throw out of here: a message that is not a JSON object with a string
 *   `type` is skipped and logged (throttled); a message larger than MAX_EVENT_BYTES closes the
 *   socket (ws's maxPayload) and is retried like any loss; an exception from onEvent is caught and
 *   logged, and the next message is delivered as usual.
 * - The password travels in the upgrade's Authorization header only, never in the URL.
 * - A half-open connection (Asterisk gone without a FIN) is found by a ping every `pingIntervalMs`:
 *   a ping still unanswered at the next one ends the connection.
 * - The upgrade's own deadline is ws's handshakeTimeout (real time, inside ws, as SonioxSession's);
 *   every other timer (backoff, ping, the close grace) is on the injected Clock.
 */
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { createBackoff, type Backoff } from '../shared/backoff.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { AppError } from '../shared/errors.js'
import { LogThrottle } from '../shared/log-throttle.js'
import type { Logger } from '../shared/logger.js'
import { ARI_AUTH_HINT, AriError } from './ari-error.js'
import { ariEndpoint, type AriConnection, type AriEndpoint } from './ari-connection.js'
import type { AriMetrics } from './ari-metrics.js'
import type { AriEvent } from './ari-types.js'

export type AriEventStreamState = 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed'

/** Largest message accepted (ARI events are a few KB; a bridge of many channels stays far below). */
export const MAX_EVENT_BYTES = 1024 * 1024
const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 }
const DEFAULT_STABLE_MS = 10_000
const DEFAULT_PING_INTERVAL_MS = 20_000
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000
/** close(): how long the close handshake may take before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000
/** Malformed messages are logged at most once per this interval (with how many were held back). */
const MALFORMED_LOG_INTERVAL_MS = 10_000

export interface AriEventStreamOptions extends AriConnection {
  /** The Stasis application name (ARI_APP). */
  app: string
  logger: Logger
  /** Backoff, ping and close timers. Default systemClock. */
  clock?: Clock
  /** Every event, in the order Asterisk sent them. An exception thrown here is logged and skipped. */
  onEvent: (event: AriEvent) => void
  /** The socket is open (each time, reconnections included). */
  onConnected?: () => void
  /** An attempt failed or the open socket was lost (each time); a reconnection follows. */
  onDisconnected?: (error: AppError) => void
  metrics?: AriMetrics
  /** Reconnection delays, jittered downwards. Default 500 .. 30000 ms. */
  backoff?: { initialMs: number; maxMs: number }
  /** A connection up at least this long starts the backoff over when it is lost. Default 10000 ms. */
  stableMs?: number
  /** Ping interval; a ping unanswered by the next one ends the connection. 0 = no pings. Default 20000 ms. */
  pingIntervalMs?: number
  /** Bound on the upgrade, in ms (ws's handshakeTimeout). Default 10000. */
  handshakeTimeoutMs?: number
  /** Uniform source for the backoff's jitter; injected by tests. */
  random?: () => number
}

export class AriEventStream {
  private stateValue: AriEventStreamState = 'idle'
  private socket: WebSocket | undefined
  private retryTimer: ClockTimer | undefined
  private pingTimer: ClockTimer | undefined
  private pongPending = false
  private connectedAt = 0
  private closing: Promise<void> | undefined
  private waiters: Array<{ resolve: () => void; reject: (err: AppError) => void }> = []
  private readonly endpoint: AriEndpoint
  private readonly url: string
  private readonly clock: Clock
  private readonly backoff: Backoff
  private readonly log: Logger
  private readonly throttle: LogThrottle

  constructor(private readonly options: AriEventStreamOptions) {
    this.endpoint = ariEndpoint(options)
    const scheme = this.endpoint.protocol === 'https:' ? 'wss:' : 'ws:'
    this.url = `${scheme}//${this.endpoint.host}${this.endpoint.basePath}/events?app=${encodeURIComponent(options.app)}&subscribeAll=true`
    this.clock = options.clock ?? systemClock
    const backoff = options.backoff ?? DEFAULT_BACKOFF
    this.backoff = createBackoff({ initialMs: backoff.initialMs, maxMs: backoff.maxMs, ...(options.random ? { random: options.random } : {}) })
    this.log = options.logger.child({ component: 'ari-events', app: options.app })
    this.throttle = new LogThrottle(MALFORMED_LOG_INTERVAL_MS, () => this.clock.now())
  }

  get state(): AriEventStreamState {
    return this.stateValue
  }

  /** Opens the socket; from then on every loss is followed by a reconnection until close(). */
  start(): void {
    if (this.stateValue !== 'idle') return
    this.connect()
  }

  /** Resolves when the state is 'connected' (at once if it is); rejects (ERR_ARI_EVENTS) if close() comes first. */
  connected(): Promise<void> {
    if (this.stateValue === 'connected') return Promise.resolve()
    if (this.stateValue === 'closed') return Promise.reject(new AppError('ERR_ARI_EVENTS', 'the ARI events stream is closed'))
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /** Stops for good: no reconnection, no further callback. Idempotent; resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing
    const wasConnected = this.stateValue === 'connected'
    this.stateValue = 'closed'
    this.clock.clearTimeout(this.retryTimer)
    this.clock.clearTimeout(this.pingTimer)
    this.retryTimer = undefined
    this.pingTimer = undefined
    if (wasConnected) this.options.metrics?.eventStreamConnected(false)
    for (const waiter of this.waiters.splice(0)) waiter.reject(new AppError('ERR_ARI_EVENTS', 'the ARI events stream was closed before it connected'))
    const socket = this.socket
    this.socket = undefined
    this.closing = new Promise<void>((resolve) => {
      if (socket === undefined || socket.readyState === WebSocket.CLOSED) {
        resolve()
        return
      }
      socket.once('close', () => {
        this.clock.clearTimeout(grace)
        resolve()
      })
      // The handlers of the stream's own socket stay; they check the state, which is now closed.
      const grace = this.clock.setTimeout(() => socket.terminate(), CLOSE_GRACE_MS)
      if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'closing')
      else socket.terminate()
    })
    return this.closing
  }

  // -------------------------------------------------------------------------------------------

  private connect(): void {
    this.stateValue = 'connecting'
    this.retryTimer = undefined
    const socket = new WebSocket(this.url, {
      headers: { Authorization: this.endpoint.authorization },
      maxPayload: MAX_EVENT_BYTES,
      handshakeTimeout: this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      perMessageDeflate: false,
    })
    this.socket = socket
    // The first failure of this socket is the one reported; the close that follows it adds nothing.
    let failure: AppError | undefined
    const fail = (error: AppError): void => {
      failure ??= error
    }
    socket.on('unexpected-response', (_req: unknown, res: IncomingMessage) => {
      res.resume()
      const status = res.statusCode ?? 0
      fail(
        status === 401
          ? new AriError('ERR_ARI_EVENTS', `the ARI events upgrade was answered 401: ${ARI_AUTH_HINT}`, { status })
          : new AriError(
              'ERR_ARI_EVENTS',
              `the ARI events upgrade was answered HTTP ${status} (check ARI_URL, ARI_APP, and that res_ari, res_ari_events and res_http_websocket are loaded)`,
              { status },
            ),
      )
      socket.terminate()
    })
    socket.on('open', () => this.onOpen(socket))
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => this.onMessage(socket, data, isBinary))
    socket.on('pong', () => (this.pongPending = false))
    socket.on('error', (err: Error) => {
      const opened = this.socket === socket && this.stateValue === 'connected'
      fail(new AriError('ERR_ARI_EVENTS', `the ARI events socket ${opened ? 'failed' : `could not be opened at ${this.endpoint.shown}`}: ${err.message}`, {}, { cause: err }))
    })
    socket.on('close', (code: number, reason: Buffer) => {
      const was = this.socket === socket ? this.stateValue : undefined
      const text = reason.toString('utf8')
      this.onLost(socket, failure ?? new AppError('ERR_ARI_EVENTS', `the ARI events socket ${was === 'connected' ? 'was closed' : 'closed before it opened'} (code ${code}${text ? `: ${text}` : ''})`))
    })
  }

  private onOpen(socket: WebSocket): void {
    if (this.socket !== socket || this.stateValue !== 'connecting') return
    this.stateValue = 'connected'
    this.connectedAt = this.clock.now()
    this.pongPending = false
    this.log.info({ url: this.endpoint.shown, attempt: this.backoff.attempt }, 'ARI events socket connected')
    this.options.metrics?.eventStreamConnected(true)
    this.schedulePing(socket)
    for (const waiter of this.waiters.splice(0)) waiter.resolve()
    this.callback('onConnected', () => this.options.onConnected?.())
  }

  private onLost(socket: WebSocket, error: AppError): void {
    if (this.socket !== socket || this.stateValue === 'closed') return
    const wasConnected = this.stateValue === 'connected'
    this.socket = undefined
    this.clock.clearTimeout(this.pingTimer)
    this.pingTimer = undefined
    if (wasConnected) {
      this.options.metrics?.eventStreamConnected(false)
      if (this.clock.now() - this.connectedAt >= (this.options.stableMs ?? DEFAULT_STABLE_MS)) this.backoff.reset()
    }
    const delayMs = this.backoff.next()
    this.stateValue = 'waiting'
    this.retryTimer = this.clock.setTimeout(() => {
      if (this.stateValue === 'waiting') this.connect()
    }, delayMs)
    this.log.warn({ err: error, attempt: this.backoff.attempt, delayMs }, wasConnected ? 'ARI events socket lost; reconnecting' : 'ARI events socket could not connect; retrying')
    this.callback('onDisconnected', () => this.options.onDisconnected?.(error))
  }

  private onMessage(socket: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    if (this.socket !== socket || this.stateValue !== 'connected') return
    const event = isBinary ? undefined : parseEvent(rawText(data))
    if (event === undefined) {
      const suppressed = this.throttle.take('malformed')
      if (suppressed !== undefined) {
        const err = new AppError('ERR_ARI_EVENTS', `ARI sent a ${isBinary ? 'binary message' : 'message that is not a JSON object with a string "type"'}; skipped`)
        this.log.warn({ err, bytes: rawLength(data), suppressed }, 'ARI events: malformed message skipped')
      }
      return
    }
    try {
      this.options.onEvent(event)
    } catch (err) {
      this.log.error({ err, type: event.type }, 'ARI events: the event handler threw; the event is skipped, the stream goes on')
    }
  }

  private schedulePing(socket: WebSocket): void {
    const interval = this.options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS
    if (interval <= 0) return
    this.pingTimer = this.clock.setTimeout(() => {
      if (this.socket !== socket || this.stateValue !== 'connected') return
      if (this.pongPending) {
        const error = new AppError('ERR_ARI_EVENTS', `the ARI events socket did not answer a ping within ${interval} ms (a half-open connection)`)
        this.onLost(socket, error)
        socket.terminate()
        return
      }
      this.pongPending = true
      socket.ping()
      this.pingTimer?.refresh()
    }, interval)
  }

  /** A callback of the owner's, so that its exception is logged here, not thrown into ws. */
  private callback(name: string, run: () => void): void {
    try {
      run()
    } catch (err) {
      this.log.error({ err, callback: name }, 'ARI events: a callback threw')
    }
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

function rawLength(data: WebSocket.RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0)
  return data.byteLength
}

/** The event, or undefined when the text is not a JSON object with a string `type`. */
export function parseEvent(text: string): AriEvent | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const type = (value as { type?: unknown }).type
  return typeof type === 'string' && type !== '' ? (value as AriEvent) : undefined
}
