/**
 * The baseline: the least a correct Node relay must do for the same job. Parse AudioSocket
 * frames, open one Soniox WebSocket per call, forward each audio payload, POST each finished
 * utterance. No retries, no spool, no metrics, no logging, no validation beyond the framing.
 * The server's figures are reported as ratios to this one's under the identical load.
 *
 * It speaks whatever scheme it is given, as the server does: wss:// to the stand-in and https://
 * to the receiver under `--tls` / `--webhook-tls` (the CA trusted through NODE_EXTRA_CA_CERTS), so
 * the baseline pays the same TLS cost per frame and per POST.
 */
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import WebSocket from 'ws'
import { serveRole } from '../lib/roles.js'

const SONIOX_URL = process.env.SONIOX_WEBSOCKET_URL as string
const WEBHOOK = new URL(process.env.WEBHOOK_URL as string)
const RATES: Record<number, number> = { 0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000, 0x17: 96000, 0x18: 192000 }
const TRANSPORT = WEBHOOK.protocol === 'https:' ? https : http
const agent = new TRANSPORT.Agent({ keepAlive: true, maxSockets: 64 })

function post(body: object): void {
  const data = JSON.stringify(body)
  const req = TRANSPORT.request({ host: WEBHOOK.hostname, port: WEBHOOK.port, path: WEBHOOK.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } })
  req.on('response', (res) => res.resume())
  req.on('error', () => {})
  req.end(data)
}

function onConnection(socket: net.Socket): void {
  socket.setNoDelay(true)
  let tail: Buffer | undefined
  let callId = ''
  let ws: WebSocket | undefined
  let open = false
  let startMessage: string | undefined
  const queue: Buffer[] = []
  let text: string[] = []
  let index = 0
  let seq = 0

  const flushUtterance = (): void => {
    if (text.length === 0) return
    post({ id: `${callId}-${seq}`, type: 'transcript.final', call_id: callId, seq: seq++, data: { index: index++, text: text.join('') } })
    text = []
  }

  const onAudio = (kind: number, payload: Buffer): void => {
    if (!ws) return
    if (startMessage === undefined) {
      startMessage = JSON.stringify({ model: 'stt-rt-v6', audio_format: 'pcm_s16le', sample_rate: RATES[kind] ?? 8000, num_channels: 1, client_reference_id: callId, enable_endpoint_detection: true })
      if (open) ws.send(startMessage)
    }
    if (open) ws.send(payload)
    else queue.push(Buffer.from(payload))
  }

  socket.on('data', (chunk: Buffer) => {
    let buf = tail ? Buffer.concat([tail, chunk]) : chunk
    let off = 0
    while (buf.length - off >= 3) {
      const kind = buf[off] as number
      const len = buf.readUInt16BE(off + 1)
      if (buf.length - off - 3 < len) break
      const payload = buf.subarray(off + 3, off + 3 + len)
      off += 3 + len
      if (kind === 0x01) {
        callId = payload.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5')
        ws = new WebSocket(SONIOX_URL, { headers: { Authorization: `Bearer ${process.env.SONIOX_API_KEY}` }, perMessageDeflate: false })
        ws.on('open', () => {
          open = true
          if (startMessage !== undefined) ws?.send(startMessage)
          for (const q of queue.splice(0)) ws?.send(q)
        })
        ws.on('message', (data: Buffer) => {
          const msg = JSON.parse(data.toString()) as { tokens: Array<{ text: string; is_final: boolean }>; finished?: boolean }
          for (const t of msg.tokens) {
            if (!t.is_final) continue
            if (t.text === '<end>' || t.text === '<fin>') flushUtterance()
            else text.push(t.text)
          }
          if (msg.finished) {
            flushUtterance()
            ws?.close()
          }
        })
        ws.on('error', () => {})
      } else if (kind >= 0x10 && kind <= 0x18) {
        onAudio(kind, payload)
      }
    }
    buf = buf.subarray(off)
    tail = buf.length > 0 ? Buffer.from(buf) : undefined
  })
  const end = (): void => {
    if (ws && open) ws.send(Buffer.alloc(0))
    else ws?.terminate()
    socket.destroy()
  }
  socket.on('end', end)
  socket.on('error', end)
}

const server = net.createServer({ noDelay: true }, onConnection)
server.listen(Number(process.env.AUDIOSOCKET_PORT ?? 0), '127.0.0.1', () => {
  serveRole({ port: (server.address() as net.AddressInfo).port }, {})
})
