/**
 * Benchmark webhook receiver: answers 204 at once and records, per call, each transcript.final
 * (utterance index, word count, epoch ms of arrival), and counts call.ended and conversation.ended.
 * The same receiver serves the server under test and the minimal relay, which posts the same
 * envelope shape.
 *
 * BENCH_TLS_CERT and BENCH_TLS_KEY (PEM files, see bench/lib/tls.ts) make it serve https://.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import { epochMs, serveRole } from '../lib/roles.js'
import type { LinkReport } from '../lib/tls.js'

/** callId -> [index, words, receivedAt][] */
const finals = new Map<string, Array<[number, number, number]>>()
let requests = 0
let callsEnded = 0
let conversationsEnded = 0
const link: LinkReport = { connections: 0, tlsConnections: 0 }

const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const at = epochMs()
    requests++
    const event = JSON.parse(Buffer.concat(chunks).toString()) as { type: string; call_id: string; data: { index?: number; text?: string } }
    if (event.type === 'transcript.final') {
      const text = event.data.text ?? ''
      const words = text.trim() === '' ? 0 : text.trim().split(/\s+/).length
      let list = finals.get(event.call_id)
      if (!list) finals.set(event.call_id, (list = []))
      list.push([event.data.index ?? -1, words, at])
    } else if (event.type === 'call.ended') {
      callsEnded++
    } else if (event.type === 'conversation.ended') {
      conversationsEnded++
    }
    res.writeHead(204).end()
  })
}

const certFile = process.env.BENCH_TLS_CERT
const keyFile = process.env.BENCH_TLS_KEY
const tlsOn = Boolean(certFile && keyFile)
const server = tlsOn ? https.createServer({ cert: readFileSync(certFile as string), key: readFileSync(keyFile as string) }, onRequest) : http.createServer(onRequest)
server.on('connection', () => link.connections++)
server.on('secureConnection', (socket: TLSSocket) => {
  link.tlsConnections++
  link.cipher ??= `${socket.getProtocol() ?? '?'} ${socket.getCipher().standardName}`
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  serveRole(
    { url: `${tlsOn ? 'https' : 'http'}://127.0.0.1:${port}/events` },
    { report: () => ({ requests, callsEnded, conversationsEnded, link, finals: Object.fromEntries(finals) }) },
  )
})
