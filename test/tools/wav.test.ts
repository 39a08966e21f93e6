/**
 * src/tools/wav.ts: the WAV holds exactly the audio payloads of the chosen direction, at the
 * capture's own rate, under a correct RIFF header; gaps can be filled to restore the timeline.
 */
import t from 'tap'
import { captureAudio, encodeWav } from '../../src/tools/index.js'
import { captureOf } from '../support/capture-builders.js'
import { loadFixtureCapture } from '../support/capture-fixtures.js'
import { frames, loadCapture } from '../support/frames.js'
import { captureAudio as recordedAudio } from '../support/replay.js'

/** The fields of a canonical 44-byte WAV header, read independently of the writer. */
function readWav(wav: Buffer): { riff: string; riffSize: number; wave: string; format: number; channels: number; rate: number; byteRate: number; align: number; bits: number; dataSize: number; data: Buffer } {
  return {
    riff: wav.toString('latin1', 0, 4),
    riffSize: wav.readUInt32LE(4),
    wave: wav.toString('latin1', 8, 12) + wav.toString('latin1', 12, 16),
    format: wav.readUInt16LE(20),
    channels: wav.readUInt16LE(22),
    rate: wav.readUInt32LE(24),
    byteRate: wav.readUInt32LE(28),
    align: wav.readUInt16LE(32),
    bits: wav.readUInt16LE(34),
    dataSize: wav.readUInt32LE(40),
    data: wav.subarray(44),
  }
}

for (const [stem, rate] of [
  ['app-8k-speech', 8000],
  ['chan-16k-dtmf', 16000],
  ['dial-48k-speech', 48000],
] as const) {
  t.test(`${stem}: the WAV is what Asterisk sent, at ${rate} Hz`, async (t) => {
    const audio = captureAudio(loadFixtureCapture(stem))
    const wav = readWav(encodeWav(audio.pcm, audio.sampleRate))
    t.match(wav, { riff: 'RIFF', wave: 'WAVEfmt ', format: 1, channels: 1, rate, byteRate: rate * 2, align: 2, bits: 16 })
    const expected = recordedAudio(loadCapture(stem))
    t.equal(wav.dataSize, expected.length)
    t.equal(wav.riffSize, 36 + expected.length)
    t.ok(wav.data.equals(expected), 'every audio payload, in order, nothing else (no UUID, no DTMF bytes)')
  })
}

t.test('fill-gaps puts the pauses back: the 1 s Wait of app-8k-speech becomes silence', async (t) => {
  const capture = loadFixtureCapture('app-8k-speech')
  const plain = captureAudio(capture)
  const filled = captureAudio(capture, { fillGaps: true })
  t.ok(filled.filledMs > 990 && filled.filledMs < 1000, `about 997 ms of silence added (${filled.filledMs} ms)`)
  t.equal(filled.pcm.length - plain.pcm.length, Math.round((filled.filledMs * 8000) / 1000) * 2)
})

t.test("--direction out: the server's audio; nothing there is a named error", async (t) => {
  const out = captureAudio(loadFixtureCapture('violation-server-writes'), { direction: 'out' })
  t.equal(out.frames, 2)
  t.equal(out.pcm.length, 640)
  t.throws(() => captureAudio(loadFixtureCapture('app-8k-speech'), { direction: 'out' }), { code: 'ERR_CAPTURE_NO_AUDIO', message: /no audio from the server/ })
})

t.test('a rate change has no single WAV rate; 0x10 can be declared 16 kHz', async (t) => {
  t.throws(() => captureAudio(loadFixtureCapture('violation-rate-change')), { code: 'ERR_CAPTURE_CORRUPT', message: /changes from 8000 Hz to 16000 Hz/ })
  const old = captureOf((c) => c.in(frames.uuid('7d9b1f7e-3c1a-4b8e-9f00-5e2a6c4d1b01')).audio(0x10, 3, { bytes: 640 }))
  t.equal(captureAudio(old, { slinSampleRate: 16000 }).sampleRate, 16000, 'for Asterisk before 20.17 dialled with c(slin16)')
  t.equal(encodeWav(Buffer.from([1, 2, 3]), 8000).readUInt32LE(40), 2, 'an odd trailing byte is not a sample')
})
