import t from 'tap'
import {
  HEADER_LENGTH,
  Kind,
  MAX_PAYLOAD_LENGTH,
  UUID_PAYLOAD_LENGTH,
  audioKindForSampleRate,
  bytesPerMs,
  isAudioKind,
  sampleRateOfKind,
} from '../../src/audiosocket/constants.js'

t.test('wire sizes', async (t) => {
  t.equal(HEADER_LENGTH, 3)
  t.equal(MAX_PAYLOAD_LENGTH, 65535)
  t.equal(UUID_PAYLOAD_LENGTH, 16)
})

t.test('kind values match enum ast_audiosocket_msg_kind', async (t) => {
  t.same(Kind, {
    Hangup: 0x00,
    Uuid: 0x01,
    Dtmf: 0x03,
    Slin8: 0x10,
    Slin12: 0x11,
    Slin16: 0x12,
    Slin24: 0x13,
    Slin32: 0x14,
    Slin44: 0x15,
    Slin48: 0x16,
    Slin96: 0x17,
    Slin192: 0x18,
    Error: 0xff,
  })
})

// Reference section 2.3: kind, rate, bytes per 20 ms.
const AUDIO_TABLE: [number, number, number][] = [
  [0x10, 8000, 320],
  [0x11, 12000, 480],
  [0x12, 16000, 640],
  [0x13, 24000, 960],
  [0x14, 32000, 1280],
  [0x15, 44100, 1764],
  [0x16, 48000, 1920],
  [0x17, 96000, 3840],
  [0x18, 192000, 7680],
]

t.test('sample rates by kind, both directions', async (t) => {
  for (const [kind, rate, bytesPer20Ms] of AUDIO_TABLE) {
    t.equal(sampleRateOfKind(kind), rate, `0x${kind.toString(16)} -> ${rate}`)
    t.equal(audioKindForSampleRate(rate), kind, `${rate} -> 0x${kind.toString(16)}`)
    t.equal(bytesPerMs(rate) * 20, bytesPer20Ms, `${rate} Hz: ${bytesPer20Ms} bytes per 20 ms`)
  }
  for (const kind of [0x00, 0x01, 0x02, 0x03, 0x0f, 0x19, 0xff, -1, 16.5]) {
    t.equal(sampleRateOfKind(kind), undefined, `no rate for ${kind}`)
  }
  for (const rate of [0, 11025, 22050, 44000, 8000.5]) {
    t.equal(audioKindForSampleRate(rate), undefined, `no kind for ${rate} Hz`)
  }
})

t.test('isAudioKind covers exactly 0x10-0x18', async (t) => {
  const audio: number[] = []
  for (let kind = 0; kind < 256; kind++) if (isAudioKind(kind)) audio.push(kind)
  t.same(audio, AUDIO_TABLE.map(([kind]) => kind))
  t.notOk(isAudioKind(0x10 + 0.5))
})
