/**
 * The TCP listener Asterisk connects to: one CallSession per connection, tracked so the process
 * can end every live call properly on shutdown.
 */
import net from 'node:net'
import type { Logger } from '../logger.js'
import type { CallSession } from '../call/call-session.js'

export interface AudioSocketServerOptions {
  host: string
  port: number
  logger: Logger
  /** Builds the call for a new connection; the server only tracks it. */
  createCall: (socket: net.Socket, onClosed: (call: CallSession) => void) => CallSession
}

export class AudioSocketServer {
  private readonly server: net.Server
  private readonly calls = new Set<CallSession>()

  constructor(private readonly options: AudioSocketServerOptions) {
    // Asterisk never half-closes on purpose; treat its FIN as the end of the call.
    this.server = net.createServer({ allowHalfOpen: false, noDelay: true }, (socket) => this.onConnection(socket))
    this.server.on('error', (err) => options.logger.error({ err }, 'AudioSocket listener error'))
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.server.once('error', onError)
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError)
        resolve(this.server.address() as net.AddressInfo)
      })
    })
  }

  get activeCalls(): number {
    return this.calls.size
  }

  /** Stops accepting, ends every live call (hangup to Asterisk, last words from Soniox), waits. */
  async close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()))
    await Promise.all([...this.calls].map((call) => call.shutdown()))
    await stopped
  }

  private onConnection(socket: net.Socket): void {
    const call = this.options.createCall(socket, (closed) => this.calls.delete(closed))
    if (call.state !== 'closed') this.calls.add(call)
  }
}
