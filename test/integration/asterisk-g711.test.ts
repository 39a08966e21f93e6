/**
 * G.711 through the AudioSocket channel driver, against a real Asterisk (test/support/asterisk.ts).
 *
 * Each call is a call file `Channel: Local/audiosocket@test` with `Codecs: !all,ulaw`, so both halves
 * of the Local channel are μ-law. The originated half plays 3 s of a 400 Hz tone (a raw 8 kHz .sln
 * file: Asterisk transcodes it to μ-law); the other half runs Dial(AudioSocket/127.0.0.1:<port>/<uuid>)
 * into the server (in process, startHarness), with or without c(slin). CAPTURE_DIR records every byte
 * Asterisk sent, so the test checks what was really on the wire, frame by frame, besides what the
 * server concluded.
 *
 * Skipped, with the reason, when there is no Asterisk at ASTERISK_PREFIX (default /opt/asterisk).
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { directionStream, readCaptureFile } from '../../src/capture/index.js'
import { walkFrames, type WalkedFrame } from '../../src/tools/index.js'
import { asteriskMissing, startAsterisk } from '../support/asterisk.js'
import { startHarness, type Harness } from '../support/harness.js'
import { callSessions } from '../support/soniox-probes.js'

const missing = asteriskMissing()

const RATE = 8000
const TONE_HZ = 400 // a period of 20 samples: every 160-sample frame starts at the same phase
const TONE_MS = 3000
const AMPLITUDE = 8000

/** 3 s of a 400 Hz tone, 8 kHz signed 16-bit little-endian: the .sln format. */
function tone(): Buffer {
  const samples = (RATE * TONE_MS) / 1000
  const pcm = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(AMPLITUDE * Math.sin((2 * Math.PI * TONE_HZ * i) / RATE)), i * 2)
  return pcm
}

/** G.711 μ-law byte to linear (ITU-T G.711, the decoder every implementation shares). */
function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4)
  return u & 0x80 ? 0x84 - t : t - 0x84
}

/** Largest distance between `samples` and the tone, each sample at its phase within the frame. */
function distanceFromTone(samples: number[]): number {
  let worst = 0
  samples.forEach((s, i) => {
    const expected = AMPLITUDE * Math.sin((2 * Math.PI * TONE_HZ * i) / RATE)
    worst = Math.max(worst, Math.abs(s - expected))
  })
  return worst
}

interface CallResult {
  h: Harness
  uuid: string
  ended: any
  /** Audio frames (0x10-0x18) Asterisk sent, as recorded by the server. */
  audio: WalkedFrame[]
  /** Every kind Asterisk sent, in order of first appearance, with counts. */
  kinds: Map<number, number>
  sizes: Map<number, number>
}

async function callThroughAsterisk(t: Test, dialOptions: string, env: Record<string, string> = {}): Promise<CallResult> {
  const captureDir = join(t.testdir(), 'calls')
  const h = await startHarness({ env: { CAPTURE_DIR: captureDir, ...env } })
  let harnessStopped = false
  t.teardown(() => (harnessStopped ? undefined : h.stop()))
  const uuid = randomUUID()
  const ast = await startAsterisk(t, {
    extensions: ['[test]', `exten => audiosocket,1,Dial(AudioSocket/127.0.0.1:${h.port}/${uuid}${dialOptions})`, ' same => n,Hangup()', ''].join('\n'),
  })
  const sound = ast.writeSound('tone', tone())
  ast.originate({ Channel: 'Local/audiosocket@test', Codecs: '!all,ulaw', Application: 'Playback', Data: sound })

  let events: any[]
  try {
    events = await h.receiver.waitFor((evs) => evs.some((e) => e.call_id === uuid && e.type === 'call.ended'), 30000)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await ast.diagnostics()}`)
  }
  const ended = events.find((e) => e.call_id === uuid && e.type === 'call.ended')
  await h.stop() // drains the capture recorder
  harnessStopped = true

  const files = readdirSync(captureDir)
  if (files.length !== 1) throw new Error(`expected one capture in ${captureDir}, found ${files.join(', ') || 'none'}`)
  const capture = await readCaptureFile(join(captureDir, files[0]!))
  const walk = walkFrames(Buffer.from(directionStream(capture, 'in').bytes))
  const kinds = new Map<number, number>()
  const sizes = new Map<number, number>()
  for (const f of walk.frames) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1)
  const audio = walk.frames.filter((f) => f.kind >= 0x10 && f.kind <= 0x18)
  for (const f of audio) sizes.set(f.length, (sizes.get(f.length) ?? 0) + 1)
  t.comment(`Asterisk sent kinds ${JSON.stringify([...kinds].map(([k, n]) => [`0x${k.toString(16)}`, n]))}, audio sizes ${JSON.stringify([...sizes])}`)
  t.comment(`call.ended: ${JSON.stringify({ ...ended.data, transcript: undefined })}`)
  const problems = ast.log().split('\n').filter((l) => /WARNING|ERROR/.test(l))
  if (problems.length > 0) t.comment(`Asterisk's warnings and errors:\n${problems.join('\n')}`)
  return { h, uuid, ended: ended.data, audio, kinds, sizes }
}

const G711_WARNING = /looks like G\.711 labelled as slin/

function warnings(h: Harness): string[] {
  return h.logs.filter((r) => r.level === 40 && typeof r.msg === 'string' && G711_WARNING.test(r.msg)).map((r) => r.msg as string)
}

/** The stream's bytes as μ-law, decoded. */
function decodeUlaw(bytes: Buffer): number[] {
  return [...bytes].map(ulawToLinear)
}

function decodeSlin(bytes: Buffer): number[] {
  const samples: number[] = []
  for (let i = 0; i + 1 < bytes.length; i += 2) samples.push(bytes.readInt16LE(i))
  return samples
}

/** μ-law's largest quantisation step below 8,159 is 256: half of it, with room for the sine's rounding. */
const ULAW_TOLERANCE = 160

t.test('μ-law caller, Dial(AudioSocket/...) without c(slin): Asterisk sends μ-law as 0x10, the server flags it', { skip: missing ?? false }, async (t) => {
  const r = await callThroughAsterisk(t, '')
  t.same([...r.kinds.keys()], [0x01, 0x10], 'Asterisk sent the UUID, then only 0x10 frames')
  t.same([...r.sizes.keys()], [160], 'every audio frame is 160 bytes: 20 ms of μ-law, not 20 ms of slin')
  const wire = Buffer.concat(r.audio.map((f) => f.payload))
  t.ok(distanceFromTone(decodeUlaw(wire)) <= ULAW_TOLERANCE, 'the bytes are the tone in μ-law')
  t.ok(distanceFromTone(decodeSlin(wire)) > AMPLITUDE, 'and are not the tone as slin')

  t.match(r.ended, { suspected_g711: true, sample_rate: 8000, audio_encoding: 'pcm_s16le', reason: 'hangup' }, 'call.ended says suspected_g711')
  t.equal(r.ended.frames.audio, r.audio.length, 'call.ended counts the frames Asterisk sent')
  t.equal(r.ended.audio_ms, r.ended.frames.audio * 10, 'taken for 8 kHz slin, each 160-byte frame counts 10 ms: half the real duration')
  t.equal(warnings(r.h).length, 1, 'one warn line: the audio looks like G.711 labelled as slin')
})

t.test('the same call with c(slin): 320-byte slin frames, nothing suspected', { skip: missing ?? false }, async (t) => {
  const r = await callThroughAsterisk(t, '/c(slin)')
  t.same([...r.kinds.keys()], [0x01, 0x10], 'Asterisk sent the UUID, then only 0x10 frames')
  t.same([...r.sizes.keys()], [320], 'every audio frame is 320 bytes: 20 ms of 8 kHz slin')
  const wire = Buffer.concat(r.audio.map((f) => f.payload))
  t.ok(distanceFromTone(decodeSlin(wire)) <= ULAW_TOLERANCE, 'the bytes are the tone as slin (through the μ-law Local channel, so within μ-law precision)')

  t.match(r.ended, { suspected_g711: false, sample_rate: 8000, audio_encoding: 'pcm_s16le', reason: 'hangup' }, 'call.ended: slin, nothing suspected')
  t.equal(r.ended.frames.audio, r.audio.length, 'call.ended counts the frames Asterisk sent')
  t.equal(r.ended.audio_ms, r.ended.frames.audio * 20, 'each 320-byte frame counts 20 ms')
  t.ok(r.ended.audio_ms > TONE_MS - 200 && r.ended.audio_ms <= TONE_MS, `audio_ms ${r.ended.audio_ms} is the ${TONE_MS} ms played`)
  t.same(warnings(r.h), [], 'no G.711 warning')
})

t.test('μ-law without c(slin), server told AUDIOSOCKET_SLIN_ENCODING=mulaw: Soniox gets mulaw, durations right', { skip: missing ?? false }, async (t) => {
  const r = await callThroughAsterisk(t, '', { AUDIOSOCKET_SLIN_ENCODING: 'mulaw' })
  t.same([...r.kinds.keys()], [0x01, 0x10], 'Asterisk sent the UUID, then only 0x10 frames')
  t.same([...r.sizes.keys()], [160], 'every audio frame is 160 bytes of μ-law')

  t.equal(callSessions(r.h.soniox).length, 1, 'one Soniox session (the start probe aside)')
  const session = callSessions(r.h.soniox)[0]!
  t.match(session.startMessage, { audio_format: 'mulaw', sample_rate: 8000 }, 'the start message declares mulaw at 8 kHz')
  t.same(session.violations, [], 'the stand-in saw nothing Soniox would refuse')
  const wire = Buffer.concat(r.audio.map((f) => f.payload))
  t.ok(session.audio.equals(wire), "Soniox received Asterisk's μ-law bytes unchanged")
  t.ok(distanceFromTone(decodeUlaw(session.audio)) <= ULAW_TOLERANCE, 'which decode to the tone')

  t.match(r.ended, { suspected_g711: false, sample_rate: 8000, audio_encoding: 'mulaw', reason: 'hangup' }, 'call.ended: mulaw, nothing suspected')
  t.equal(r.ended.frames.audio, r.audio.length, 'call.ended counts the frames Asterisk sent')
  t.equal(r.ended.audio_ms, r.ended.frames.audio * 20, 'one byte a sample: each 160-byte frame counts 20 ms')
  t.ok(r.ended.audio_ms > TONE_MS - 200 && r.ended.audio_ms <= TONE_MS, `audio_ms ${r.ended.audio_ms} is the ${TONE_MS} ms played`)
  t.same(warnings(r.h), [], 'no G.711 warning: the operator declared it')
})
