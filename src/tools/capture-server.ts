/**
 * `audiosocket-soniox capture`: record AudioSocket connections to capture files, one per connection.
 *
 * - Listen mode (no upstream): a stand-in AudioSocket server that only listens. It reads everything
 *   Asterisk sends, never writes, and closes when Asterisk closes, like the server that recorded the
 *   fixtures. For when you only want recordings.
 * - Tee mode (`upstream`): a transparent proxy between Asterisk and a running server. Bytes are
 *   forwarded the moment they are read, untouched and unpaced, in both directions; FIN and reset
 *   are passed on as they happen; both directions are recorded. Asterisk sees the real server's
 *   behaviour and the server sees Asterisk's cadence, plus one loopback hop.
 *
 * Neither mode ever pauses the Asterisk socket (Asterisk drops a call whose write would block).
 */
import net from 'node:net'
import { FrameParser, UUID_PAYLOAD_LENGTH } from '../audiosocket/index.js'
import type { Endpoint } from '../capture/format.js'
import { CaptureRecorder, endpoint, type CaptureFileOps, type RecorderLogger } from '../capture/recorder.js'
import { AppError, isErrnoException } from '../shared/errors.js'
import { monotonicClock, type Clock } from '../shared/clock.js'

/** What the capture tool logs through (pino's Logger fits). */
export interface CaptureServerLogger extends RecorderLogger {
  info(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface CaptureServerOptions {
  host: string
  port: number
  /** Tee mode: forward every connection to this server. */
  upstream?: { host: string; port: number }
  /** Where capture files go (created if missing). */
  dir: string
  logger: CaptureServerLogger
  /** e.g. "audiosocket-soniox 0.1.0", written into each capture header. */
  tool: string
  /** Called once per connection, after its capture is on disk (or failed). */
  onCapture?: (call: CapturedConnection) => void
  /** Bound on connecting to the upstream server, like Asterisk's own 2 s. Default 2000 ms. */
  upstreamConnectTimeoutMs?: number
  /** Connection durations and the upstream connect timeout (an option: any length). Default monotonicClock. */
  clock?: Clock
  fileOps?: Partial<CaptureFileOps>
}

export interface CapturedConnection {
  /** The capture file, or undefined if writing it failed (logged). */
  path: string | undefined
  uuid: string | undefined
  asterisk: Endpoint | null
  bytesIn: number
  bytesOut: number
  durationMs: number
  /** Tee mode: why the upstream connection failed, if it did. */
  upstreamError?: string
}

/**
 * Feeds Asterisk's first bytes to a FrameParser until the first frame is read, and hands the
 * recorder the UUID from it: there is no CallSession here to say which call this is.
 */
function identifyCall(recorder: CaptureRecorder): (chunk: Buffer) => void {
  // A UUID payload is 16 bytes: a bigger first frame is not a UUID and ends the search at its header.
  let parser: FrameParser | undefined = new FrameParser({ maxPayloadLength: UUID_PAYLOAD_LENGTH })
  return (chunk) => {
    if (parser === undefined) return
    const [first] = parser.push(chunk)
    if (first?.type === 'uuid') recorder.callIdentified(first.uuid)
    if (first !== undefined || parser.error !== null) parser = undefined
  }
}

function isReset(err: unknown): boolean {
  return isErrnoException(err) && (err.code === 'ECONNRESET' || err.code === 'EPIPE')
}

/** Passes a reset on (RST) where the platform can, else just closes. */
function resetOrDestroy(socket: net.Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

export class CaptureServer {
  readonly #server: net.Server
  readonly #options: CaptureServerOptions
  readonly #clock: Clock
  readonly #connections = new Set<{ abort(): void; done: Promise<void> }>()

  constructor(options: CaptureServerOptions) {
    this.#options = options
    this.#clock = options.clock ?? monotonicClock
    // allowHalfOpen: in tee mode each direction's FIN is forwarded on its own; in listen mode
    // the connection is ended explicitly when Asterisk ends it.
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#onConnection(socket))
    this.#server.on('error', (err) => options.logger.error({ err }, 'capture listener error'))
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject)
        resolve(this.#server.address() as net.AddressInfo)
      })
    })
  }

  /** Connections in progress. */
  get active(): number {
    return this.#connections.size
  }

  /**
   * Stops accepting. Live connections run to their end unless `abort` (then they are cut, and
   * their captures end there). Resolves when every capture is written.
   */
  async close(options: { abort?: boolean } = {}): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    if (options.abort) for (const c of this.#connections) c.abort()
    await Promise.all([...this.#connections].map((c) => c.done))
    await stopped
  }

  #onConnection(client: net.Socket): void {
    const { upstream, logger } = this.#options
    const started = this.#clock.now()
    const recorder = new CaptureRecorder({
      dir: this.#options.dir,
      logger,
      fileOps: this.#options.fileOps,
      header: {
        tool: this.#options.tool,
        mode: upstream ? 'tee' : 'listen',
        asterisk: endpoint(client.remoteAddress, client.remotePort),
        server: upstream ? { address: upstream.host, port: upstream.port } : endpoint(client.localAddress, client.localPort),
        ...(upstream ? { proxy: endpoint(client.localAddress, client.localPort) } : {}),
      },
    })
    const identify = identifyCall(recorder)
    let upstreamError: string | undefined
    let resolveDone!: () => void
    const done = new Promise<void>((resolve) => (resolveDone = resolve))
    const sockets: net.Socket[] = [client]
    const entry = { abort: () => sockets.forEach((s) => s.destroy()), done }
    this.#connections.add(entry)

    let open = 0
    const onSocketClosed = (): void => {
      if (--open > 0) return
      void recorder.close().then((path) => {
        this.#connections.delete(entry)
        const call: CapturedConnection = {
          path,
          uuid: recorder.uuid,
          asterisk: endpoint(client.remoteAddress, client.remotePort),
          bytesIn: recorder.bytes.in,
          bytesOut: recorder.bytes.out,
          durationMs: this.#clock.now() - started,
          ...(upstreamError !== undefined ? { upstreamError } : {}),
        }
        logger.info({ captureFile: path, callId: recorder.uuid, bytesIn: call.bytesIn, bytesOut: call.bytesOut }, 'connection captured')
        this.#options.onCapture?.(call)
        resolveDone()
      })
    }
    const track = (socket: net.Socket): void => {
      open++
      socket.once('close', onSocketClosed)
    }
    track(client)
    client.setNoDelay(true)

    if (!upstream) {
      client.on('data', (chunk: Buffer) => {
        recorder.data('in', chunk)
        identify(chunk)
      })
      client.on('end', () => {
        recorder.fin('in')
        client.end()
      })
      client.on('finish', () => recorder.fin('out'))
      client.on('error', (err) => {
        if (isReset(err)) recorder.reset('in')
      })
      return
    }

    const server = net.connect({ host: upstream.host, port: upstream.port, allowHalfOpen: true, noDelay: true })
    sockets.push(server)
    track(server)
    let connected = false
    // A command-line option: taken at any length.
    const connectTimer = this.#clock.setTimeout(() => {
      server.destroy(new AppError('ERR_CAPTURE_UPSTREAM', `no connection within ${this.#options.upstreamConnectTimeoutMs ?? 2000} ms`))
    }, this.#options.upstreamConnectTimeoutMs ?? 2000)
    server.once('connect', () => {
      connected = true
      this.#clock.clearTimeout(connectTimer)
    })

    // Bytes Asterisk sends before the upstream connection is up are queued by write(), in order.
    client.on('data', (chunk: Buffer) => {
      recorder.data('in', chunk)
      if (!server.destroyed) server.write(chunk)
      identify(chunk)
    })
    server.on('data', (chunk: Buffer) => {
      recorder.data('out', chunk)
      if (!client.destroyed) client.write(chunk)
    })
    client.on('end', () => {
      recorder.fin('in')
      if (!server.destroyed) server.end()
    })
    server.on('end', () => {
      recorder.fin('out')
      if (!client.destroyed) client.end()
    })
    client.on('error', (err) => {
      if (isReset(err)) {
        recorder.reset('in')
        resetOrDestroy(server)
      } else {
        server.destroy()
      }
    })
    server.on('error', (err) => {
      this.#clock.clearTimeout(connectTimer)
      if (!connected) {
        upstreamError = `cannot connect to ${upstream.host}:${upstream.port}: ${err.message}`
        logger.error({ err, upstream: `${upstream.host}:${upstream.port}` }, 'capture proxy cannot reach the upstream server; closing the Asterisk connection')
        client.destroy()
        return
      }
      if (isReset(err)) {
        recorder.reset('out')
        resetOrDestroy(client)
      } else {
        client.destroy()
      }
    })
    // A side that closed without error (both FINs exchanged) closes the other once it is done.
    client.on('close', () => {
      if (!server.destroyed && server.writableEnded && server.readableEnded) server.destroy()
    })
    server.on('close', () => {
      this.#clock.clearTimeout(connectTimer)
      if (!client.destroyed && client.writableEnded && client.readableEnded) client.destroy()
    })
  }
}
