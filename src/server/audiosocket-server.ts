/**
 * The TCP listener Asterisk connects to: admission (ALLOWED_SOURCES, MAX_CALLS), one CallSession
 * per admitted connection, tracked so the process can drain (stop accepting, let live calls end)
 * and end every remaining call properly on shutdown.
 */
import net from 'node:net'
import { LogThrottle } from '../shared/log-throttle.js'
import { clearLongTimeout, setLongTimeout } from '../shared/long-timer.js'
import { encodeHangup } from '../audiosocket/index.js'
import type { Logger } from '../shared/logger.js'
import type { CallSession } from '../call/call-session.js'
import type { AddressMatcher } from './admission.js'
import type { RefusalReason } from './service-metrics.js'

export interface AudioSocketServerOptions {
  host: string
  port: number
  logger: Logger
  /** Builds the call for a new connection; the server only tracks it. */
  createCall: (socket: net.Socket, onClosed: (call: CallSession) => void) => CallSession
  /** Live connections at most (a call still finishing counts until its call.ended); 0 or unset = no limit. */
  maxCalls?: number
  /** Peers allowed to connect; unset = any. */
  allowedSources?: AddressMatcher | undefined
  /** After a refusal's hangup frame, how long Asterisk gets to close before the socket is destroyed. */
  hangupGraceMs?: number
  metrics?: { connectionAccepted(): void; connectionRefused(reason: RefusalReason): void }
}

export class AudioSocketServer {
  private readonly server: net.Server
  private readonly calls = new Set<CallSession>()
  /** Resolves when the listener is closed and every connection is gone (net.Server 'close'). */
  private listenerClosed: Promise<void> | undefined
  private readonly idleWaiters = new Set<() => void>()

  constructor(private readonly options: AudioSocketServerOptions) {
    // Asterisk never half-closes on purpose; treat its FIN as the end of the call. Paused on
    // connect: admission decides before a single byte of the peer is read.
    this.server = net.createServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: true }, (socket) => this.onConnection(socket))
  }

  /**
   * Starts listening; resolves with the bound address (port 0 picks a free port). A failure to
   * listen (EADDRINUSE, ...) rejects and is not logged here: the caller reports it once.
   */
  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.server.once('error', onError)
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError)
        this.server.on('error', (err) => this.options.logger.error({ err }, 'AudioSocket listener error'))
        resolve(this.server.address() as net.AddressInfo)
      })
    })
  }

  get activeCalls(): number {
    return this.calls.size
  }

  /**
   * Closes the listening socket at once: new connections are refused by the kernel (and a proxy in
   * front sends them elsewhere); live calls go on. Idempotent.
   */
  stopAccepting(): void {
    void this.closeListener()
  }

  /** Resolves true once no call is live, or false when `timeoutMs` passes first. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.calls.size === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (idle: boolean): void => {
        clearLongTimeout(timer)
        this.idleWaiters.delete(onIdle)
        resolve(idle)
      }
      const onIdle = (): void => done(true)
      const timer = setLongTimeout(() => done(false), timeoutMs)
      this.idleWaiters.add(onIdle)
    })
  }

  /** Stops accepting, ends every live call (hangup to Asterisk, last words from Soniox), waits. */
  async close(): Promise<void> {
    const stopped = this.closeListener()
    await Promise.all([...this.calls].map((call) => call.shutdown()))
    await stopped
  }

  private closeListener(): Promise<void> {
    // Once only: net.Server emits 'close' once, and a callback added after it would never run.
    this.listenerClosed ??= new Promise<void>((resolve) => this.server.close(() => resolve()))
    return this.listenerClosed
  }

  /** Refusals are counted in metrics every time but logged at most once per reason per 10 s. */
  private readonly refusalLogs = new LogThrottle(10_000)

  private onConnection(socket: net.Socket): void {
    const metrics = this.options.metrics
    metrics?.connectionAccepted()
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    const allowed = this.options.allowedSources
    if (allowed !== undefined && !allowed.matches(socket.remoteAddress)) {
      // A reset, not a FIN and not a hangup frame: nothing of the protocol is said to a stranger,
      // and every Asterisk version treats a reset as a failed AudioSocket (the channel hangs up),
      // whereas Asterisk before 20.14 ignores a bare FIN and leaves the caller in a dead call.
      metrics?.connectionRefused('source')
      const suppressed = this.refusalLogs.take('source')
      if (suppressed !== undefined) this.options.logger.warn({ remote, suppressed }, 'connection refused: source address not in ALLOWED_SOURCES')
      socket.resetAndDestroy()
      return
    }
    const maxCalls = this.options.maxCalls ?? 0
    if (maxCalls > 0 && this.calls.size >= maxCalls) {
      metrics?.connectionRefused('max_calls')
      const suppressed = this.refusalLogs.take('max_calls')
      if (suppressed !== undefined) this.options.logger.warn({ remote, activeCalls: this.calls.size, maxCalls, suppressed }, 'connection refused: MAX_CALLS reached')
      this.refuseWithHangup(socket)
      return
    }
    const call = this.options.createCall(socket, (closed) => this.onCallClosed(closed))
    if (call.state !== 'closed') this.calls.add(call)
    socket.resume()
  }

  /**
   * A peer that is Asterisk but cannot be served now: the hangup frame `00 00 00`, then FIN. Current
   * Asterisk ends AudioSocket() and continues the dialplan (so it can route the call elsewhere);
   * Asterisk before 20.14 hangs the channel up, where a bare FIN would leave the caller in a dead
   * call. No CallSession, no Soniox session, no event: the call is refused, not half-served. What
   * Asterisk sends meanwhile (its UUID frame) is read and dropped, never left unread.
   */
  private refuseWithHangup(socket: net.Socket): void {
    socket.on('error', () => {})
    socket.on('data', () => {})
    socket.end(encodeHangup())
    const grace = setLongTimeout(() => socket.destroy(), this.options.hangupGraceMs ?? 2000).unref()
    socket.once('close', () => clearLongTimeout(grace))
    socket.resume()
  }

  private onCallClosed(call: CallSession): void {
    this.calls.delete(call)
    if (this.calls.size === 0) for (const notify of [...this.idleWaiters]) notify()
  }
}
