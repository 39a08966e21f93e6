/**
 * A real TCP server on 127.0.0.1 (port 0) that reads HTTP/1.1 requests (head + Content-Length body)
 * and lets a test answer each with raw bytes, so that every framing and connection behaviour of the
 * webhook client can be scripted, including the broken ones no real HTTP server library would send.
 */
import net from 'node:net'
import type { Test } from 'tap'

/** One request as a raw server saw it, with the connection it came on (numbered from 1). */
export interface SeenRequest {
  connection: number
  text: string
  socket: net.Socket
}

/**
 * A real TCP server on port 0 that reads requests (head + Content-Length body) and lets the test
 * answer each with raw bytes, so that every framing and connection behaviour can be scripted.
 */
export async function rawHttpServer(t: Test, answer: (request: SeenRequest, index: number) => void): Promise<{ port: number; requests: SeenRequest[]; connections: () => number }> {
  const requests: SeenRequest[] = []
  let connections = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    const connection = ++connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = ''
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1')
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n')
        if (headEnd === -1) return
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, headEnd))?.[1] ?? 0)
        if (buffered.length < headEnd + 4 + length) return
        const request = { connection, text: buffered.slice(0, headEnd + 4 + length), socket }
        buffered = buffered.slice(headEnd + 4 + length)
        requests.push(request)
        answer(request, requests.length - 1)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { port: (server.address() as net.AddressInfo).port, requests, connections: () => connections }
}

