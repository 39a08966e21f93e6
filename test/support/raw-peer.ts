/**
 * A hand-driven AudioSocket peer for bad-input tests: write exactly the bytes a test names, and
 * record what the server sends back and when it closes.
 */
import net from 'node:net'

export interface RawPeer {
  socket: net.Socket
  write(bytes: Buffer): void
  /** Everything received so far. */
  received(): Buffer
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>
}

export async function connectRawPeer(port: number): Promise<RawPeer> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.setNoDelay(true)
  const chunks: Buffer[] = []
  socket.on('data', (c) => chunks.push(c))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { socket, write: (b) => socket.write(b), received: () => Buffer.concat(chunks), closed }
}
