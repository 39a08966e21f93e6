/**
 * A TCP server on 127.0.0.1 (port 0) that records what each connection sends and how it ends,
 * and lets a test script the server side (send a hangup, close, reset). Stands in for an
 * AudioSocket server where the real one is not the point of the test.
 */
import net from 'node:net'

export interface SinkConnection {
  socket: net.Socket
  received(): Buffer
  /** Resolves once `n` bytes have arrived (or the connection closed first). */
  receivedAtLeast(n: number): Promise<Buffer>
  /** How the peer ended: its FIN, a reset, or neither before close. */
  ended: Promise<'fin' | 'reset' | 'closed'>
  closed: Promise<void>
}

export interface TcpSink {
  port: number
  connections: SinkConnection[]
  nextConnection(): Promise<SinkConnection>
  /** Most connections open at the same time so far. */
  readonly maxConcurrent: number
  close(): Promise<void>
}

export async function startTcpSink(onConnection?: (c: SinkConnection) => void): Promise<TcpSink> {
  const connections: SinkConnection[] = []
  const waiting: Array<(c: SinkConnection) => void> = []
  let open = 0
  let maxConcurrent = 0
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open++
    maxConcurrent = Math.max(maxConcurrent, open)
    const chunks: Buffer[] = []
    let size = 0
    const watchers = new Set<() => void>()
    let resolveEnded!: (how: 'fin' | 'reset' | 'closed') => void
    const ended = new Promise<'fin' | 'reset' | 'closed'>((resolve) => (resolveEnded = resolve))
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      size += c.length
      for (const w of watchers) w()
    })
    socket.on('end', () => {
      resolveEnded('fin')
      socket.end()
    })
    socket.on('error', () => resolveEnded('reset'))
    socket.on('close', () => {
      open--
      resolveEnded('closed')
      for (const w of watchers) w()
    })
    const connection: SinkConnection = {
      socket,
      received: () => Buffer.concat(chunks),
      receivedAtLeast: (n) =>
        new Promise((resolve) => {
          const check = (): void => {
            if (size >= n || socket.destroyed) {
              watchers.delete(check)
              resolve(Buffer.concat(chunks))
            }
          }
          watchers.add(check)
          check()
        }),
      ended,
      closed,
    }
    connections.push(connection)
    onConnection?.(connection)
    waiting.shift()?.(connection)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    nextConnection: () => new Promise((resolve) => waiting.push(resolve)),
    get maxConcurrent() {
      return maxConcurrent
    },
    close: async () => {
      for (const c of connections) c.socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
