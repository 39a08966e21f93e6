/**
 * Benchmark Soniox stand-in: speaks the real-time protocol like Soniox (start message, binary
 * audio, sub-word tokens sent non-final then final, an `<end>` every few words, progress fields,
 * the empty frame -> last finals + `finished` -> close), but keeps only what the measurements
 * need, so it can carry a thousand calls. The strict, validating stand-in for tests is
 * test/support/fake-soniox.ts; this one trades validation for throughput.
 *
 * Records, per call: words produced (final word tokens sent); when each utterance-ending message
 * (`<end>`) was sent; and for sampled calls, when each audio message arrived and how many audio
 * bytes had arrived by then (audio latency is computed against the load generator's write log).
 */
import { WebSocketServer, type WebSocket } from 'ws'
import { epochMs, serveRole } from '../lib/roles.js'

const WORD_MS = 400
const WORDS_PER_UTTERANCE = 4
const VOCABULARY = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa']
const SAMPLED_CALLS = Number(process.env.BENCH_SAMPLED_CALLS ?? 50)

interface CallRecord {
  wordsProduced: number
  /** [utterance index, epoch ms the message carrying its <end> was sent] */
  utteranceEnds: Array<[number, number]>
  /** For sampled calls: [audio bytes received so far, epoch ms], one per audio message. */
  arrivals?: Array<[number, number]>
}

const calls = new Map<string, CallRecord>()
let sampled = 0
let connections = 0

function tokensOf(word: string, startMs: number, isFinal: boolean): object[] {
  const cut = Math.ceil(word.length / 2)
  const mid = startMs + WORD_MS / 2
  return [
    { text: ` ${word.slice(0, cut)}`, start_ms: startMs, end_ms: mid, confidence: 0.93, is_final: isFinal },
    { text: word.slice(cut), start_ms: mid, end_ms: startMs + WORD_MS, confidence: 0.93, is_final: isFinal },
  ]
}

function onConnection(ws: WebSocket): void {
  connections++
  let record: CallRecord | undefined
  let windowBytes = 0
  let bytes = 0
  let nextWindowAt = 0
  let windowIndex = 0
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
      nextWindowAt = windowBytes
      record = { wordsProduced: 0, utteranceEnds: [] }
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
        const startMs = windowIndex * WORD_MS
        pendingWord = { word: VOCABULARY[windowIndex % VOCABULARY.length] as string, startMs }
        windowIndex++
        nextWindowAt += windowBytes
        const message = JSON.stringify({
          tokens: [...finals, ...tokensOf(pendingWord.word, startMs, false)],
          final_audio_proc_ms: startMs,
          total_audio_proc_ms: startMs + WORD_MS,
        })
        ws.send(message)
        if (endsUtterance) record.utteranceEnds.push([utteranceIndex++, epochMs()])
      }
      return
    }
    const text = isBinary ? '' : data.toString()
    if (text === '') {
      // End of audio: the pending word becomes final, then `finished`, then close.
      ended = true
      const finals: object[] = []
      settle(finals)
      const procMs = windowIndex * WORD_MS
      if (finals.length > 0) ws.send(JSON.stringify({ tokens: finals, final_audio_proc_ms: procMs, total_audio_proc_ms: procMs }))
      ws.send(JSON.stringify({ tokens: [], final_audio_proc_ms: procMs, total_audio_proc_ms: procMs, finished: true }))
      ws.close(1000)
    }
    // keepalive / finalize: nothing to do for the benchmark's audio (never silent long enough).
  })
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
wss.on('connection', onConnection)
wss.on('listening', () => {
  const address = wss.address() as { port: number }
  serveRole(
    { url: `ws://127.0.0.1:${address.port}/transcribe-websocket` },
    {
      report: () => ({ connections, calls: Object.fromEntries(calls) }),
    },
  )
})
