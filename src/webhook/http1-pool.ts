/**
 * Keep-alive HTTP/1.1 connections to one origin, one request at a time on each, for the webhook
 * transport: the request is bytes we render, the response is read by ResponseParser.
 *
 * Why not node:http. The delivery worker sleeps between events, and Node's HTTP client (agent,
 * ClientRequest, IncomingMessage streams, header objects) runs cold on every one: the same requests
 * written to a pooled socket and answered through a small parser cost about half the CPU (the
 * figures are in bench/RESULTS.md).
 *
 * What keeps it correct (a response must never be credited to the wrong request):
 * - A connection carries one exchange at a time, and goes back to the pool only when its response
 *   ended where the framing says it ends (ResponseParser) and the server did not ask to close.
 * - A byte arriving on an idle connection, or after a response's end, retires that connection.
 *   (A server that sends an unasked-for response later, after the next request went out on the
 *   same connection, cannot be told from an answer: no HTTP/1.1 client can, node:http included.)
 * - A connection the server closed while idle is dropped at once; if it closes under a request
 *   before any response byte, the exchange reports `reusedSocket` and `responseStarted: false`
 *   so the caller may resend with `fresh`, on a new connection (the stale keep-alive race).
 */
import net from 'node:net'
import tls from 'node:tls'
import { ResponseParser, type ResponseHead } from './http1-response.js'
import { AppError } from '../shared/errors.js'

export interface OriginOptions {
  /** Host name or IP address to connect to (an IPv6 address without brackets). */
  host: string
  port: number
  /** Set for https: TLS options (ca, servername); the certificate is verified as tls.connect does. */
  tls?: tls.ConnectionOptions | undefined
  /** Connections open at most; requests beyond wait for one. */
  maxSockets: number
}

export interface ExchangeHandler {
  onHead(head: ResponseHead): void
  onBody(bytes: Buffer): void
  onEnd(): void
  /** The exchange failed (network, protocol, or cancel(error)); called at most once, never after onEnd. */
  onError(error: Error, info: { reusedSocket: boolean; responseStarted: boolean }): void
}

export interface Exchange {
  /** Ends the exchange now and closes its connection; with an error, onError reports it. */
  cancel(error?: Error): void
}

/** What each connection carries: its current exchange, if any. */
interface Connection {
  readonly socket: net.Socket
  /** It has carried an exchange before the current one. */
  used: boolean
  current: ActiveExchange | undefined
}

interface ActiveExchange {
  readonly head: string
  readonly body: string
  readonly handler: ExchangeHandler
  /** Must go on a new connection (a resend after a stale one). */
  readonly fresh: boolean
  parser: ResponseParser | undefined
  connection: Connection | undefined
  reused: boolean
  state: ExchangeState
}

/**
 * `open`: request sent or waiting, no end of response yet; `ended-reusable` / `ended-close`: the
 * parser saw the response end, and whether the connection may carry the next request; `over`: the
 * handler has been told (onEnd or onError), nothing more happens to this exchange.
 */
type ExchangeState = 'open' | 'ended-reusable' | 'ended-close' | 'over'

export class Http1Pool {
  private readonly idle: Connection[] = []
  private readonly open = new Set<Connection>()
  private readonly waiting: ActiveExchange[] = []
  private closed = false

  constructor(private readonly options: OriginOptions) {}

  /**
   * Sends `head` (the request line and headers, ending in an empty line; latin1, as header octets)
   * and `body` (UTF-8) on a pooled connection, or on a new one (always, with `fresh`).
   */
  request(head: string, body: string, handler: ExchangeHandler, options: { fresh?: boolean } = {}): Exchange {
    const exchange: ActiveExchange = {
      head,
      body,
      handler,
      fresh: options.fresh === true,
      parser: undefined,
      connection: undefined,
      reused: false,
      state: 'open',
    }
    if (this.closed) {
      queueMicrotask(() => this.fail(exchange, new AppError('ERR_WEBHOOK_NETWORK', 'the webhook connection pool is closed')))
    } else {
      this.waiting.push(exchange)
      this.dispatch()
    }
    return { cancel: (error) => this.cancel(exchange, error) }
  }

  /** Closes every connection, idle or busy (as http.Agent#destroy); exchanges in flight fail. */
  close(): void {
    this.closed = true
    for (const connection of [...this.open]) connection.socket.destroy()
    this.idle.length = 0
    for (const exchange of this.waiting.splice(0)) this.fail(exchange, new AppError('ERR_WEBHOOK_NETWORK', 'the webhook connection pool is closed'))
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0] as ActiveExchange
      // Most recently used first: its connection is the least likely to have been closed by the server.
      let connection = next.fresh ? undefined : this.idle.pop()
      if (connection === undefined) {
        if (this.open.size >= this.options.maxSockets) {
          // All slots taken: an idle connection (the oldest) makes room for a fresh one, if any is idle.
          const spare = this.idle.shift()
          if (spare === undefined) return
          this.retire(spare)
        }
        connection = this.connect()
      }
      this.waiting.shift()
      this.start(next, connection)
    }
  }

  private start(exchange: ActiveExchange, connection: Connection): void {
    exchange.connection = connection
    exchange.reused = connection.used
    connection.used = true
    connection.current = exchange
    // The parser only records the end: the connection is pooled after feed() returns, once it is
    // known that nothing followed the response in the same chunk.
    exchange.parser = new ResponseParser({
      onHead: (head) => exchange.handler.onHead(head),
      onBody: (bytes) => exchange.handler.onBody(bytes),
      onEnd: (reusable) => {
        exchange.state = reusable ? 'ended-reusable' : 'ended-close'
      },
    })
    const socket = connection.socket
    socket.ref()
    // One write when the socket can take it: head and body leave in the same packet (writev).
    socket.cork()
    socket.write(exchange.head, 'latin1')
    socket.write(exchange.body, 'utf8')
    socket.uncork()
  }

  private connect(): Connection {
    const { host, port } = this.options
    const socket = this.options.tls ? tls.connect({ ...this.options.tls, host, port }) : net.connect({ host, port })
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 1000)
    const connection: Connection = { socket, used: false, current: undefined }
    this.open.add(connection)
    socket.on('data', (chunk: Buffer) => this.onData(connection, chunk))
    socket.on('end', () => this.onServerEnd(connection))
    socket.on('error', (error) => this.onSocketGone(connection, error))
    socket.on('close', () => this.onSocketGone(connection, new AppError('ERR_WEBHOOK_NETWORK', 'the connection closed')))
    return connection
  }

  private onData(connection: Connection, chunk: Buffer): void {
    const exchange = connection.current
    const parser = exchange?.parser
    if (exchange === undefined || parser === undefined) {
      // Unasked-for bytes: this connection is out of step with us and is never used again.
      this.retire(connection)
      this.dispatch()
      return
    }
    const inStep = parser.feed(chunk)
    // Bytes after the end of the response: the answer stands, the connection is out of step and goes.
    if (exchange.state !== 'open') this.complete(exchange, inStep && exchange.state === 'ended-reusable')
    else if (!inStep) this.fail(exchange, parser.error ?? new AppError('ERR_WEBHOOK_PROTOCOL', 'bad response'))
  }

  private onServerEnd(connection: Connection): void {
    const exchange = connection.current
    const parser = exchange?.parser
    if (exchange !== undefined && parser !== undefined) {
      // A body delimited by the close ends here; anything else was cut short.
      parser.end()
      if (exchange.state !== 'open') this.complete(exchange, false)
      else this.fail(exchange, parser.error ?? new AppError('ERR_WEBHOOK_NETWORK', 'the connection closed'))
    }
    this.retire(connection)
    this.dispatch()
  }

  private onSocketGone(connection: Connection, error: Error): void {
    if (connection.current !== undefined) this.fail(connection.current, error)
    this.forget(connection)
    this.dispatch()
  }

  private complete(exchange: ActiveExchange, reusable: boolean): void {
    if (exchange.state === 'over') return
    exchange.state = 'over'
    const connection = exchange.connection as Connection
    connection.current = undefined
    if (reusable && !this.closed) {
      connection.socket.unref()
      this.idle.push(connection)
    } else {
      this.retire(connection)
    }
    exchange.handler.onEnd()
    this.dispatch()
  }

  private fail(exchange: ActiveExchange, error: Error): void {
    if (exchange.state === 'over') return
    exchange.state = 'over'
    const connection = exchange.connection
    if (connection !== undefined) {
      connection.current = undefined
      this.retire(connection)
    }
    exchange.handler.onError(error, { reusedSocket: exchange.reused, responseStarted: exchange.parser?.started ?? false })
    this.dispatch()
  }

  private cancel(exchange: ActiveExchange, error: Error | undefined): void {
    const queued = this.waiting.indexOf(exchange)
    if (queued !== -1) this.waiting.splice(queued, 1)
    if (error !== undefined) {
      this.fail(exchange, error)
      return
    }
    if (exchange.state === 'over') return
    exchange.state = 'over'
    if (exchange.connection !== undefined) {
      exchange.connection.current = undefined
      this.retire(exchange.connection)
    }
    this.dispatch()
  }

  /** Closes a connection for good; its slot is free at once (callers dispatch when they are done). */
  private retire(connection: Connection): void {
    this.forget(connection)
    connection.socket.destroy()
  }

  private forget(connection: Connection): void {
    const index = this.idle.indexOf(connection)
    if (index !== -1) this.idle.splice(index, 1)
    this.open.delete(connection)
  }
}
