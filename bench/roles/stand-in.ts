/**
 * Benchmark Soniox stand-in: speaks the real-time protocol like Soniox (start message, binary
 * audio, sub-word tokens sent non-final then final, an `<end>` every few words, progress fields,
 * the empty frame -> last finals + `finished` -> close), but keeps only what the measurements
 * need, so it can carry a thousand calls. The strict, validating stand-in for tests is
 * test/support/fake-soniox.ts; this one trades validation for throughput.
 *
 * Records, per call: words produced (final word tokens sent); when each utterance-ending message
 * (`<end>`) was sent and at which audio byte; and for sampled calls, when each audio message arrived
 * and how many audio bytes had arrived by then (audio latency is computed against the load
 * generator's write log, and so is the word-to-webhook latency, from the `<end>`'s audio byte).
 *
 * Word windows: a word every 400 ms of audio received, but each call's windows start at its own
 * offset within the first 400 ms (the calls' order times the golden ratio), so a word's last byte
 * lands anywhere within a 20 ms frame and within an audio batch (SONIOX_AUDIO_BATCH_MS), as the end
 * of real speech does. With windows on whole multiples of 400 ms from the start, every word would end
 * exactly where a 20, 40, 80, 100 or 200 ms batch ends, and batching would cost no latency at all.
 *
 * BENCH_TLS_CERT and BENCH_TLS_KEY (PEM files, see bench/lib/tls.ts) make it serve wss://.
 */
import { readFileSync } from 'node:fs'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer, type WebSocket } from 'ws'
import { PROBE_CLIENT_REFERENCE_ID } from '../../src/soniox/probe.js'
import { epochMs, serveRole } from '../lib/roles.js'
import type { LinkReport } from '../lib/tls.js'

const WORD_MS = 400
const WORDS_PER_UTTERANCE = 4
const VOCABULARY = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa']
const SAMPLED_CALLS = Number(process.env.BENCH_SAMPLED_CALLS ?? 50)
/** The golden ratio's fractional part: call i's window offset is (i * this mod 1) of a window. */
const PHASE_STEP = 0.6180339887498949

interface CallRecord {
  wordsProduced: number
  /** Audio bytes received over the call. */
  audioBytes: number
  /** [utterance index, epoch ms the message carrying its <end> was sent, audio bytes that made it due] */
  utteranceEnds: Array<[number, number, number]>
  /** For sampled calls: [audio bytes received so far, epoch ms], one per audio message. */
  arrivals?: Array<[number, number]>
}

const calls = new Map<string, CallRecord>()
let sampled = 0
const link: LinkReport = { connections: 0, tlsConnections: 0 }

function tokensOf(word: string, startMs: number, isFinal: boolean): object[] {
  const cut = Math.ceil(word.length / 2)
  const mid = startMs + WORD_MS / 2
  return [
    { text: ` ${word.slice(0, cut)}`, start_ms: startMs, end_ms: mid, confidence: 0.93, is_final: isFinal },
    { text: word.slice(cut), start_ms: mid, end_ms: startMs + WORD_MS, confidence: 0.93, is_final: isFinal },
  ]
}

function onConnection(ws: WebSocket, req: IncomingMessage): void {
  link.connections++
  const socket = req.socket as TLSSocket
  if (socket.encrypted) {
    link.tlsConnections++
    link.cipher ??= `${socket.getProtocol() ?? '?'} ${socket.getCipher().standardName}`
  }
  let record: CallRecord | undefined
  let windowBytes = 0
  let bytes = 0
  let nextWindowAt = 0
  let windowIndex = 0
  /** Audio ms before the first window: this call's offset (see the header). */
  let phaseMs = 0
  let pendingWord: { word: string; startMs: number } | undefined
  let utteranceWords = 0
  let utteranceIndex = 0
  let ended = false

  const settle = (out: object[]): void => {
    if (!pendingWord || !record) return
    out.push(...tokensOf(pendingWord.word, pendingWord.startMs, true))
    record.wordsProduced++
    utteranceWords++
    pendingWord = undefined
  }

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (record === undefined) {
      const start = JSON.parse(data.toString()) as { sample_rate: number; client_reference_id: string }
      windowBytes = Math.round((start.sample_rate * WORD_MS) / 1000) * 2
      record = { wordsProduced: 0, audioBytes: 0, utteranceEnds: [] }
      nextWindowAt = windowBytes
      // The server's start-up probe (100 ms of silence) is no call: it takes no sample slot and no
      // window offset, so the calls get the same offsets, and words, whichever target runs.
      if (start.client_reference_id === PROBE_CLIENT_REFERENCE_ID) return
      const phaseBytes = 2 * Math.round((((calls.size * PHASE_STEP) % 1) * windowBytes) / 2)
      phaseMs = (phaseBytes / 2 / start.sample_rate) * 1000
      nextWindowAt = phaseBytes + windowBytes
      if (sampled < SAMPLED_CALLS) {
        sampled++
        record.arrivals = []
      }
      calls.set(start.client_reference_id, record)
      return
    }
    if (ended) return
    if (isBinary && data.length > 0) {
      bytes += data.length
      record.audioBytes = bytes
      record.arrivals?.push([bytes, epochMs()])
      while (bytes >= nextWindowAt) {
        const finals: object[] = []
        settle(finals)
        let endsUtterance = false
        if (utteranceWords >= WORDS_PER_UTTERANCE) {
          finals.push({ text: '<end>', is_final: true })
          utteranceWords = 0
          endsUtterance = true
        }
        const startMs = phaseMs + windowIndex * WORD_MS
        pendingWord = { word: VOCABULARY[windowIndex % VOCABULARY.length] as string, startMs }
        windowIndex++
        const due = nextWindowAt
        nextWindowAt += windowBytes
        const message = JSON.stringify({
          tokens: [...finals, ...tokensOf(pendingWord.word, startMs, false)],
          final_audio_proc_ms: startMs,
          total_audio_proc_ms: startMs + WORD_MS,
        })
        ws.send(message)
        if (endsUtterance) record.utteranceEnds.push([utteranceIndex++, epochMs(), due])
      }
      return
    }
    const text = isBinary ? '' : data.toString()
    if (text === '') {
      // End of audio: the pending word becomes final, then `finished`, then close.
      ended = true
      const finals: object[] = []
      settle(finals)
      const procMs = phaseMs + windowIndex * WORD_MS
      if (finals.length > 0) ws.send(JSON.stringify({ tokens: finals, final_audio_proc_ms: procMs, total_audio_proc_ms: procMs }))
      ws.send(JSON.stringify({ tokens: [], final_audio_proc_ms: procMs, total_audio_proc_ms: procMs, finished: true }))
      ws.close(1000)
    }
    // keepalive / finalize: nothing to do for the benchmark's audio (never silent long enough).
  })
}

const certFile = process.env.BENCH_TLS_CERT
const keyFile = process.env.BENCH_TLS_KEY
// Over TLS the WebSocket server rides an https server; a plain request gets the 426 that ws's own
// server answers, so a probe of the stand-in sees the same over either scheme.
const tlsServer =
  certFile && keyFile
    ? https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade Required')
      })
    : undefined
const wss = tlsServer ? new WebSocketServer({ server: tlsServer, perMessageDeflate: false }) : new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
wss.on('connection', onConnection)
const announce = (port: number): void => {
  serveRole(
    { url: `${tlsServer ? 'wss' : 'ws'}://127.0.0.1:${port}/transcribe-websocket` },
    {
      report: () => ({ connections: link.connections, link, calls: Object.fromEntries(calls) }),
    },
  )
}
if (tlsServer) tlsServer.listen(0, '127.0.0.1', () => announce((tlsServer.address() as { port: number }).port))
else wss.on('listening', () => announce((wss.address() as { port: number }).port))
