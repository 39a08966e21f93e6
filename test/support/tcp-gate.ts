/**
 * A TCP forwarder on a fixed 127.0.0.1 port in front of a real server (the Soniox stand-in), for
 * tests of what the server does before Soniox answers:
 *
 *   down     nothing listens on the port: connections are refused (Soniox unreachable)
 *   held     connections are accepted and kept waiting, nothing forwarded (Soniox slow to answer);
 *            what they send meanwhile is kept and forwarded first on `open()`
 *   open     every connection, held ones included, is piped to the target
 *
 * `url(path)` is the ws:// URL of the gate; the server under test is pointed at it.
 */
import net from 'node:net'
import { freePort } from './free-port.js'

export interface TcpGate {
  readonly port: number
  readonly state: 'down' | 'held' | 'open'
  /** Connections accepted so far (held or forwarded). */
  readonly accepted: number
  /** Connections accepted and waiting for `open()`. */
  readonly waiting: number
  url(path: string): string
  /** Starts listening, holding connections. */
  hold(): Promise<void>
  /** Starts listening if needed and forwards every connection from now on (and the held ones). */
  open(): Promise<void>
  close(): Promise<void>
}

export async function createTcpGate(target: { host?: string; port: number }): Promise<TcpGate> {
  const port = await freePort()
  let state: 'down' | 'held' | 'open' = 'down'
  let accepted = 0
  // Held connections are read (so that their end is seen) and what they send is kept for the target.
  const held: Array<{ client: net.Socket; chunks: Buffer[]; onData: (chunk: Buffer) => void }> = []
  const sockets = new Set<net.Socket>()
  const forward = (client: net.Socket, early: Buffer[] = []): void => {
    const upstream = net.connect({ host: target.host ?? '127.0.0.1', port: target.port })
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    for (const chunk of early) upstream.write(chunk)
    client.pipe(upstream).pipe(client)
  }
  const server = net.createServer((client) => {
    accepted++
    sockets.add(client)
    client.on('close', () => {
      sockets.delete(client)
      const i = held.findIndex((h) => h.client === client)
      if (i >= 0) held.splice(i, 1)
    })
    client.on('error', () => {})
    if (state === 'open') forward(client)
    else {
      const entry = { client, chunks: [] as Buffer[], onData: (chunk: Buffer) => void entry.chunks.push(chunk) }
      client.on('data', entry.onData)
      held.push(entry)
    }
  })
  const listen = async (): Promise<void> => {
    if (server.listening) return
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  }
  return {
    port,
    get state() {
      return state
    },
    get accepted() {
      return accepted
    },
    get waiting() {
      return held.length
    },
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    async hold() {
      state = 'held'
      await listen()
    },
    async open() {
      state = 'open'
      await listen()
      for (const { client, chunks, onData } of held.splice(0)) {
        client.off('data', onData)
        forward(client, chunks)
      }
    },
    async close() {
      for (const s of sockets) s.destroy()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
