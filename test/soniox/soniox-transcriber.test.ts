/**
 * src/soniox/soniox-transcriber.ts over a scripted result stream (no sockets, no clock): what a
 * call hears (utterances, partials with their index, one classified failure after the open words)
 * and what Soniox is sent (16-bit PCM in whole samples; G.711 as it came).
 */
import t from 'tap'
import { AppError } from '../../src/shared/errors.js'
import type { SonioxResult, SonioxToken } from '../../src/soniox/messages.js'
import { SonioxError } from '../../src/soniox/soniox-error.js'
import type { SonioxSessionHandlers } from '../../src/soniox/soniox-session.js'
import { SonioxTranscriber, type ResultStream, type TranscriptListener, type TranscriptPartial, type TranscriptionFailure } from '../../src/soniox/soniox-transcriber.js'
import type { AudioFormat } from '../../src/soniox/start-message.js'
import type { Utterance } from '../../src/soniox/transcript-assembler.js'

class ScriptedStream implements ResultStream {
  format: AudioFormat | undefined
  readonly chunks: Buffer[] = []
  readonly calls: string[] = []
  constructor(readonly handlers: SonioxSessionHandlers) {}
  start(format: AudioFormat): void {
    this.format = format
  }
  sendAudio(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk))
  }
  async finish(): Promise<void> {
    this.calls.push('finish')
  }
  close(): void {
    this.calls.push('close')
  }
  stats() {
    return { sessions: 2, reconnects: 1, audioResentMs: 40, audioDroppedMs: 0 }
  }
  result(tokens: SonioxToken[]): void {
    const result: SonioxResult = { kind: 'result', tokens, finalAudioProcMs: 0, totalAudioProcMs: 0, finished: false }
    this.handlers.onResult(result)
  }
}

function rig(options: { partials?: boolean } = {}) {
  const utterances: Utterance[] = []
  const partials: TranscriptPartial[] = []
  const errors: Array<[AppError, TranscriptionFailure]> = []
  const order: string[] = []
  const listener: TranscriptListener = {
    onUtterance: (u) => {
      utterances.push(u)
      order.push(`utterance:${u.reason}`)
    },
    onError: (error, failure) => {
      errors.push([error, failure])
      order.push(`error:${error.code}`)
    },
  }
  if (options.partials) listener.onPartial = (p) => void partials.push(p)
  let stream: ScriptedStream | undefined
  const tr = new SonioxTranscriber((handlers) => (stream = new ScriptedStream(handlers)), listener)
  if (stream === undefined) throw new Error('the inner stream is built at once')
  return { tr, stream, utterances, partials, errors, order }
}

const word = (text: string, startMs: number, isFinal = true): SonioxToken => ({ text, start_ms: startMs, end_ms: startMs + 100, is_final: isFinal })

t.test('odd-length payloads keep 16-bit sample alignment towards Soniox', async (t) => {
  const r = rig()
  r.tr.start({ sampleRate: 8000, encoding: 'pcm_s16le' })
  for (const payload of [[1, 2, 3], [4, 5, 6, 7, 8], [9]]) r.tr.sendAudio(Buffer.from(payload))
  t.ok(r.stream.chunks.every((chunk) => chunk.length % 2 === 0), 'every chunk sent holds whole samples')
  t.same([...Buffer.concat(r.stream.chunks)], [1, 2, 3, 4, 5, 6, 7, 8], 'the bytes arrive in order; the 9th waits for its pair')
})

t.test('an odd byte kept for later is a copy, not a view of a buffer the caller may reuse', async (t) => {
  const r = rig()
  r.tr.start({ sampleRate: 8000 })
  const reused = Buffer.from([1, 2, 3])
  r.tr.sendAudio(reused)
  reused.fill(0)
  r.tr.sendAudio(Buffer.from([4]))
  t.same([...Buffer.concat(r.stream.chunks)], [1, 2, 3, 4])
})

t.test('G.711 (one byte a sample) passes as it came, odd lengths and all', async (t) => {
  const r = rig()
  r.tr.start({ sampleRate: 8000, encoding: 'mulaw' })
  r.tr.sendAudio(Buffer.alloc(160, 0xff))
  r.tr.sendAudio(Buffer.alloc(161, 0x7f))
  t.same(r.stream.format, { sampleRate: 8000, encoding: 'mulaw' })
  t.same(r.stream.chunks.map((c) => c.length), [160, 161])
})

t.test('results become utterances; close() delivers the words still open, as call_end', async (t) => {
  const r = rig()
  r.stream.result([word(' Hello', 0), word(' there', 200), { text: '<end>', is_final: true }, word(' bye', 500)])
  t.same(r.utterances.map((u) => [u.index, u.text, u.reason]), [[0, ' Hello there', 'endpoint']])
  await r.tr.finish()
  r.tr.close()
  t.same(r.stream.calls, ['finish', 'close'])
  t.same(r.utterances.map((u) => [u.index, u.text, u.reason]), [[0, ' Hello there', 'endpoint'], [1, ' bye', 'call_end']])
  r.tr.close()
  t.equal(r.utterances.length, 2, 'a second close delivers nothing')
  t.same(r.tr.stats(), { sessions: 2, reconnects: 1, audioResentMs: 40, audioDroppedMs: 0 }, 'the stream\'s stats')
})

t.test('partials only for a listener that asks, with the index the utterance will have', async (t) => {
  const quiet = rig()
  quiet.stream.result([word(' Hel', 0, false)])
  t.same(quiet.partials, [])

  const r = rig({ partials: true })
  r.stream.result([word(' Hel', 0, false)])
  r.stream.result([word(' Hello', 0), { text: '<end>', is_final: true }, word(' how', 400, false)])
  r.stream.result([])
  t.same(r.partials, [
    { index: 0, text: ' Hel', start_ms: 0 },
    { index: 1, text: ' how', start_ms: 400 },
  ], 'none for a result that leaves no words open')
})

t.test('a failure: the open words first, then the error, classified, once', async (t) => {
  const r = rig()
  r.stream.result([word(' hello', 0)])
  const refused = new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 402', { sonioxCode: 402, requestId: 'r-1' })
  r.stream.handlers.onError(refused)
  r.stream.handlers.onError(new AppError('ERR_SONIOX_GAVE_UP'))
  t.same(r.order, ['utterance:call_end', 'error:ERR_SONIOX_SERVER_ERROR'])
  t.same(r.errors[0]?.[1], { accountProblem: true, requestRefused: false, reportFields: { soniox_code: 402, request_id: 'r-1' } })

  const other = rig()
  other.stream.handlers.onError(new AppError('ERR_SONIOX_GAVE_UP', 'gave up'))
  t.same(other.errors[0]?.[1], { accountProblem: false, requestRefused: false, reportFields: {} }, 'no Soniox details, not the account')
  t.same(other.utterances, [], 'nothing was open')

  const badRequest = rig()
  badRequest.stream.handlers.onError(new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 400 invalid_request: Invalid model specified.', { sonioxCode: 400, sonioxType: 'invalid_request', requestId: 'r-2' }))
  t.same(
    badRequest.errors[0]?.[1],
    { accountProblem: false, requestRefused: true, reportFields: { soniox_code: 400, soniox_type: 'invalid_request', request_id: 'r-2' } },
    'a 400: a refused request, with what Soniox said for call.ended',
  )
})
