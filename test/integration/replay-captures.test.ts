/**
 * The core promise, end to end over real sockets: every real Asterisk capture, replayed at its
 * recorded cadence into the server, reaches Soniox byte for byte at the right sample rate, and
 * the webhook receives exactly the transcript the Soniox stand-in produced from those bytes,
 * the DTMF digits in order, and a gapless, signed event sequence.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { expectedTranscript } from '../support/fake-soniox.js'
import { loadCapture, loadCaptureSummary } from '../support/frames.js'
import { startHarness } from '../support/harness.js'
import { captureAudio, replayCapture } from '../support/replay.js'
import { allSilence, framesSentBack } from '../support/silence.js'

const CAPTURES = [
  { stem: 'app-8k-speech', sampleRate: 8000 },
  { stem: 'app-8k-dtmf', sampleRate: 8000 },
  { stem: 'chan-16k-dtmf', sampleRate: 16000 },
  { stem: 'dial-16k-speech', sampleRate: 16000 },
  { stem: 'dial-48k-speech', sampleRate: 48000 },
]

t.test('every capture replayed at recorded cadence yields its exact transcript, DTMF and sample rate', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())

  // All calls at once, as on a PBX: they share the server, the Soniox stand-in and the receiver.
  const runs = await Promise.all(
    CAPTURES.map(async ({ stem, sampleRate }) => {
      const capture = loadCapture(stem)
      const summary = loadCaptureSummary(stem)
      const result = await replayCapture(capture, { port: h.port })
      return { stem, sampleRate, capture, summary, result }
    }),
  )
  await h.receiver.waitFor((events) => events.filter((e) => e.type === 'call.ended').length === CAPTURES.length, 30000)
  // call.ended can reach the receiver before the stand-in has seen its WebSocket close: wait for
  // that state instead of sampling it ('finished' until the close handshake is done). One more:
  // the server's start probe, the stand-in's first session.
  await h.soniox.waitForSessions(CAPTURES.length + 1, 30000)

  for (const { stem, sampleRate, capture, summary, result } of runs) {
    t.test(stem, async (t) => {
      t.equal(result.closedByServer, false, 'the server never cut the call short')
      // The only thing a transcriber sends Asterisk is 20 ms silence of the call's own kind, in
      // the gaps (the recordings have a 1 s pause, and no audio while DTMF plays or after it).
      const kind = capture.frames.find((f) => f.kind >= 0x10)?.kind ?? 0x10
      const back = framesSentBack(result.received)
      const bytesPer20ms = kind === 0x10 ? 320 : (sampleRate / 50) * 2
      t.ok(allSilence(back, kind, bytesPer20ms), `only ${bytesPer20ms}-byte silence frames of kind 0x${kind.toString(16)} were sent back`)

      const session = h.soniox.sessions.find((s) => s.startMessage?.client_reference_id === summary.uuid)
      if (!session) return t.fail(`no Soniox session for ${summary.uuid}`)
      t.same(session.violations, [], 'no protocol violation at Soniox')
      t.same(session.deprecations, [], 'no deprecated usage (the key travels in the header)')
      t.equal(session.headers.authorization, 'Bearer test-key')
      t.match(session.startMessage, { model: 'stt-rt-v6', audio_format: 'pcm_s16le', sample_rate: sampleRate, num_channels: 1, enable_endpoint_detection: true })
      t.equal(session.endOfAudio, 'binary', 'audio was ended with the empty frame')
      t.equal(session.state, 'closed')

      const audio = captureAudio(capture)
      t.equal(session.audio.length, audio.length, 'every audio byte reached Soniox')
      t.ok(session.audio.equals(audio), 'the audio reached Soniox byte for byte, in order')

      const expected = expectedTranscript(audio, sampleRate)
      t.equal(session.transcript, expected.transcript, 'the stand-in recognised exactly these bytes')
      t.ok(session.transcript.trim().split(/\s+/).length >= 10, 'the capture produced a real transcript')

      const events = h.receiver.eventsFor(summary.uuid)
      t.same(events.map((e) => e.seq), events.map((_, i) => i), 'seq is gapless from 0 and delivered in order')
      t.equal(events[0]?.type, 'call.started')
      t.equal(events.at(-1)?.type, 'call.ended')
      t.ok(h.receiver.requests.filter((r) => r.body?.call_id === summary.uuid).every((r) => r.signatureValid === true), 'every request is signed')

      const finals = events.filter((e) => e.type === 'transcript.final')
      t.equal(finals.map((e) => e.data.text).join(''), session.transcript, 'the delivered utterances are exactly the transcript Soniox produced')
      t.same(finals.map((e) => e.data.text.trim()), session.utterances, 'utterances split where Soniox sent <end>')
      t.same(finals.map((e) => e.data.index), finals.map((_, i) => i))
      for (const f of finals) {
        t.ok(f.data.start_ms <= f.data.end_ms, `utterance ${f.data.index} has ordered timestamps`)
        t.notMatch(f.data.text, /<end>|<fin>/, 'markers never leak into text')
      }

      const digits = events.filter((e) => e.type === 'call.dtmf')
      t.same(digits.map((e) => e.data.digit), summary.dtmf.map((d) => d.digit), 'DTMF digits arrive in order')
      const atMs = digits.map((e) => e.data.at_ms as number)
      t.same(atMs, [...atMs].sort((a, b) => a - b), 'DTMF times are in call audio order')

      const ended = events.at(-1)
      t.equal(ended.data.reason, 'hangup')
      t.equal(ended.data.transcript, session.transcript)
      t.equal(ended.data.sample_rate, sampleRate)
      t.equal(ended.data.utterances, finals.length)
      t.equal(ended.data.audio_ms, Math.round((audio.length / 2 / sampleRate) * 1000))
      t.equal(ended.data.error, null)
      t.equal(ended.data.silence_frames_sent, back.length, 'call.ended counts the silence frames sent')
      t.match(ended.data.soniox, { sessions: 1, reconnects: 0, audio_dropped_ms: 0 })
      t.equal(ended.data.frames.dtmf, summary.dtmf.length)
    })
  }
})

t.test('two calls replaying the same capture under different UUIDs stay apart', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const capture = loadCapture('app-8k-dtmf')
  const ids = [randomUUID(), randomUUID()]
  await Promise.all(ids.map((id) => replayCapture(capture, { port: h.port, speed: 4, uuidBytes: uuidToBytes(id) })))
  await h.receiver.waitFor((events) => events.filter((e) => e.type === 'call.ended').length === 2, 20000)
  const [a, b] = ids.map((id) => h.receiver.eventsFor(id))
  t.ok(a && b)
  t.equal(a?.at(-1)?.data.transcript, b?.at(-1)?.data.transcript, 'the same audio gives the same transcript')
  t.same(a?.map((e) => e.type), b?.map((e) => e.type), 'the same event sequence per call')
  t.ok(a?.every((e) => e.call_id === ids[0]) && b?.every((e) => e.call_id === ids[1]), 'no event crosses calls')
})
