/**
 * src/soniox/start-message.ts: the first (text) frame of a Soniox session. Only documented fields,
 * unset optional ones omitted (not null), never the API key.
 */
import t from 'tap'
import { WebSocket } from 'ws'
import { buildStartMessage, type RecognitionOptions } from '../../src/soniox/start-message.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { MINIMAL_RECOGNITION } from '../support/recognition.js'

const MINIMAL: RecognitionOptions = MINIMAL_RECOGNITION

const ALL: RecognitionOptions = {
  model: 'stt-rt-v6',
  languageHints: ['en', 'es'],
  languageHintsStrict: true,
  context: { general: [{ key: 'domain', value: 'telephony' }], text: 'Support line', terms: ['AudioSocket'] },
  endpointDetection: true,
  maxEndpointDelayMs: 1500,
  endpointSensitivity: 0.3,
  endpointLatencyAdjustmentLevel: 2,
  speakerDiarization: true,
  languageIdentification: true,
  translation: { type: 'one_way', target_language: 'de' },
}

const CALL_ID = '40325ec2-5efd-4bd3-805f-53576e581d13'

t.test('minimal options give exactly the required fields', async (t) => {
  t.strictSame(buildStartMessage(MINIMAL, { sampleRate: 8000 }, CALL_ID), {
    model: 'stt-rt-v6',
    audio_format: 'pcm_s16le',
    sample_rate: 8000,
    num_channels: 1,
    client_reference_id: CALL_ID,
    enable_endpoint_detection: true,
  })
  const off = buildStartMessage({ ...MINIMAL, endpointDetection: false }, { sampleRate: 16000 }, CALL_ID)
  t.equal(off.enable_endpoint_detection, false, 'endpoint detection is always sent, also when off')
  t.equal(off.sample_rate, 16000, 'the sample rate comes from the audio format')
})

t.test('G.711 audio is declared as Soniox\'s own mulaw / alaw format, not converted', async (t) => {
  for (const encoding of ['mulaw', 'alaw'] as const) {
    t.match(buildStartMessage(MINIMAL, { sampleRate: 8000, encoding }, CALL_ID), { audio_format: encoding, sample_rate: 8000, num_channels: 1 }, encoding)
  }
  t.equal(buildStartMessage(MINIMAL, { sampleRate: 16000, encoding: 'pcm_s16le' }, CALL_ID).audio_format, 'pcm_s16le')
})

t.test('unset optional fields are omitted, not sent as null', async (t) => {
  const message = buildStartMessage(MINIMAL, { sampleRate: 8000 }, CALL_ID)
  for (const field of [
    'language_hints',
    'language_hints_strict',
    'context',
    'max_endpoint_delay_ms',
    'endpoint_sensitivity',
    'endpoint_latency_adjustment_level',
    'enable_speaker_diarization',
    'enable_language_identification',
    'translation',
  ]) {
    t.notOk(field in message, `${field} is absent`)
  }
  t.notOk(JSON.stringify(message).includes('null'), 'no null anywhere')
})

t.test('no api_key, whatever the options', async (t) => {
  for (const options of [MINIMAL, ALL]) {
    const message = buildStartMessage(options, { sampleRate: 8000 }, CALL_ID)
    t.notOk('api_key' in message)
  }
})

t.test('every option maps to its documented field', async (t) => {
  const message = buildStartMessage(ALL, { sampleRate: 8000 }, CALL_ID)
  t.strictSame(message, {
    model: 'stt-rt-v6',
    audio_format: 'pcm_s16le',
    sample_rate: 8000,
    num_channels: 1,
    client_reference_id: CALL_ID,
    language_hints: ['en', 'es'],
    language_hints_strict: true,
    context: { general: [{ key: 'domain', value: 'telephony' }], text: 'Support line', terms: ['AudioSocket'] },
    enable_endpoint_detection: true,
    max_endpoint_delay_ms: 1500,
    endpoint_sensitivity: 0.3,
    endpoint_latency_adjustment_level: 2,
    enable_speaker_diarization: true,
    enable_language_identification: true,
    translation: { type: 'one_way', target_language: 'de' },
  })

  const twoWay = buildStartMessage({ ...MINIMAL, translation: { type: 'two_way', language_a: 'en', language_b: 'es' } }, { sampleRate: 8000 }, CALL_ID)
  t.strictSame(twoWay.translation, { type: 'two_way', language_a: 'en', language_b: 'es' })

  const legacy = buildStartMessage({ ...MINIMAL, context: 'plain text context' }, { sampleRate: 8000 }, CALL_ID)
  t.equal(legacy.context, 'plain text context', 'the legacy string context is passed through')

  // Zero values are settings, not "unset".
  const zeros = buildStartMessage({ ...MINIMAL, endpointSensitivity: 0, endpointLatencyAdjustmentLevel: 0 }, { sampleRate: 8000 }, CALL_ID)
  t.equal(zeros.endpoint_sensitivity, 0)
  t.equal(zeros.endpoint_latency_adjustment_level, 0)
})

t.test('the message does not share arrays/objects with the (frozen) options', async (t) => {
  const options = Object.freeze({ ...ALL, languageHints: Object.freeze(['en']), translation: Object.freeze({ type: 'one_way' as const, target_language: 'de' }) })
  const message = buildStartMessage(options, { sampleRate: 8000 }, CALL_ID)
  ;(message.language_hints as string[]).push('fr')
  ;(message.translation as Record<string, unknown>).target_language = 'fr'
  t.strictSame(options.languageHints, ['en'])
  t.equal(options.translation.target_language, 'de')
})

t.test('client_reference_id is capped at 256 characters', async (t) => {
  const long = 'x'.repeat(300)
  t.equal((buildStartMessage(MINIMAL, { sampleRate: 8000 }, long).client_reference_id as string).length, 256)
  const exact = 'y'.repeat(256)
  t.equal(buildStartMessage(MINIMAL, { sampleRate: 8000 }, exact).client_reference_id, exact)
})

t.test('the Soniox stand-in accepts a start message with every option set (stt-rt-v6)', async (t) => {
  const fake = await startFakeSoniox()
  t.teardown(() => fake.close())
  const message = buildStartMessage(ALL, { sampleRate: 8000 }, 'c'.repeat(400))

  const ws = new WebSocket(fake.url, { headers: { Authorization: 'Bearer test-key' } })
  const received: Record<string, unknown>[] = []
  ws.on('message', (data) => received.push(JSON.parse(data.toString()) as Record<string, unknown>))
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })

  ws.send(JSON.stringify(message))
  // 800 ms of a loud tone at 8 kHz: two recognition windows.
  const audio = Buffer.alloc(8000 * 2 * 0.8)
  for (let i = 0; i < audio.length / 2; i++) audio.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)), i * 2)
  ws.send(audio.subarray(0, 3200), { binary: true })
  ws.send(audio.subarray(3200), { binary: true })
  ws.send(Buffer.alloc(0), { binary: true })
  await closed

  const [session] = await fake.waitForSessions(1)
  t.ok(session, 'one session closed')
  if (!session) return
  t.strictSame(session.violations, [], 'no protocol violations')
  t.strictSame(session.deprecations, [], 'no deprecated usage')
  t.equal(session.error, undefined, 'no error sent')
  t.strictSame(session.startMessage, message, 'the stand-in saw the message as built')
  t.equal(session.endOfAudio, 'binary')
  t.equal(session.audio.length, audio.length)
  t.ok(received.some((m) => m.finished === true), 'the stand-in answered "finished"')
  t.notOk(received.some((m) => 'error_code' in m), 'no error message received')
  t.ok(session.transcript.length > 0, 'the audio was recognised')
})
