/**
 * src/soniox/tls-reuse.ts: the Soniox WebSockets over wss:// share one TLS context and resume the
 * previous session, against a real TLS WebSocket server with a certificate from a throwaway CA.
 */
import { existsSync, readFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { makeBenchCertificates } from '../../bench/lib/tls.js'
import { createSonioxSocket } from '../../src/soniox/soniox-session.js'
import { TlsReuse } from '../../src/soniox/tls-reuse.js'

const skip = existsSync('/usr/bin/openssl') ? false : 'needs /usr/bin/openssl to make a throwaway CA'

async function tlsWebSocketServer(t: Test): Promise<{ url: string; resumedOnServer: boolean[]; ca: Buffer }> {
  const certificates = makeBenchCertificates()
  t.teardown(() => certificates.remove())
  const server = https.createServer({ key: readFileSync(certificates.keyFile), cert: readFileSync(certificates.certFile) })
  const wss = new WebSocketServer({ server })
  const resumedOnServer: boolean[] = []
  wss.on('connection', (_ws, req) => resumedOnServer.push((req.socket as TLSSocket).isSessionReused()))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const client of wss.clients) client.terminate()
    wss.close()
    server.close()
  })
  return { url: `wss://127.0.0.1:${(server.address() as AddressInfo).port}/transcribe-websocket`, resumedOnServer, ca: readFileSync(certificates.caFile) }
}

/** Opens a socket, waits for the upgrade (the server's tickets come before its 101), closes it. */
async function openAndClose(socket: WebSocket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.close(1000)
  await closed
}

t.test('connects after the first resume the first one\'s session, with one context', { skip }, async (t) => {
  const server = await tlsWebSocketServer(t)
  const reuse = new TlsReuse({ ca: server.ca })
  for (let i = 0; i < 3; i++) await openAndClose(createSonioxSocket(server.url, { Authorization: 'Bearer k' }, 5000, reuse))
  t.strictSame(server.resumedOnServer, [false, true, true], 'one full handshake, then two resumed ones, as the server saw them')
})

t.test('the shared context still verifies the certificate: an unknown CA is refused', { skip }, async (t) => {
  const server = await tlsWebSocketServer(t)
  const reuse = new TlsReuse() // the default roots: the throwaway CA is not among them
  const socket = createSonioxSocket(server.url, {}, 5000, reuse)
  const error = await new Promise<Error>((resolve) => socket.once('error', resolve))
  t.match(error.message, /certificate/)
  t.strictSame(server.resumedOnServer, [], 'no WebSocket reached the server')
})

t.test('ws:// URLs do not go through it', async (t) => {
  let connects = 0
  const reuse = new TlsReuse()
  const connect = reuse.connect
  Object.defineProperty(reuse, 'connect', { value: (options: Parameters<typeof connect>[0]) => (connects++, connect(options)) })
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise<void>((resolve) => server.once('listening', resolve))
  t.teardown(() => server.close())
  await openAndClose(createSonioxSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, {}, 5000, reuse))
  t.equal(connects, 0, 'a plain socket, not a TLS one from the shared context')
})
