/**
 * The shipped asterisk-dialplan.conf.sample, extension by extension, against a real Asterisk
 * (test/support/asterisk.ts) and the real server (startHarness, with the Soniox stand-in).
 *
 * The sample is read from the repository at test time and loaded as extensions.conf as it is; the
 * only substitutions are the server's addresses, which a test cannot have at the sample's fixed
 * ports: 127.0.0.1:9092 (AudioSocket) and 127.0.0.1:9093 (HTTP, extension 103) become the harness's
 * loopback ports. A test context is appended after it: each call is a call file
 * `Channel: Local/<exten>@transcribe` whose originated half runs [sample-test] play: it plays a known
 * sound file, sends DTMF digits, and hangs up. The other half runs the sample's extension.
 *
 * The Local channel is restricted to the sound's own format (`Codecs: !all,slin` for the 8 kHz .sln,
 * `!all,slin16` for the .sln16), so nothing is transcoded or resampled anywhere: the bytes that
 * reach the Soniox stand-in must be the sound file's bytes, and the stand-in's words are a pure
 * function of those bytes (expectedTranscript), so the transcript is known exactly.
 *
 * One exception, measured and explained: the AudioSocket() application (100, 103) may lose the first
 * frame or two. ast_audiosocket_connect() (res_audiosocket.c) puts the channel in autoservice while it
 * connects, and autoservice reads and discards voice frames; the first frame, read by Answer() while
 * it waits for media and queued back, is still on the channel then, and is lost whenever the
 * autoservice thread gets to it first (about one call in three here). In 103 CURL() does the same
 * (func_curl.c) while the registration is posted, after Answer(). So every sound starts with a
 * quiet lead-in (below the stand-in's silence threshold, never 0), and the test accepts the sound
 * minus up to LEAD_IN_FRAMES of its first frames, exactly, and nothing else; the transcript is then
 * exactly the stand-in's for the audio it received. The channel driver (101) connects before the
 * call is bridged and Dial() forwards the caller's audio meanwhile: there no frame may be missing.
 *
 * Extension 102 (uuidgen through SHELL()) is not covered: the test Asterisk has no func_shell.
 * Skipped, with the reason, when there is no Asterisk at ASTERISK_PREFIX (default /opt/asterisk).
 */
import t, { type Test } from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ASTERISK_PREFIX, asteriskMissing, startAsterisk, type Asterisk } from '../support/asterisk.js'
import { expectedTranscript, type FakeSonioxSession } from '../support/fake-soniox.js'
import { freePort } from '../support/free-port.js'
import { startHarness, type Harness } from '../support/harness.js'

const missing = asteriskMissing()

const SAMPLE_FILE = new URL('../../asterisk-dialplan.conf.sample', import.meta.url)
/** How the sample spells the server's addresses. */
const SAMPLE_AUDIOSOCKET = '127.0.0.1:9092'
const SAMPLE_HTTP = '127.0.0.1:9093'
/** The sample's placeholder token (extension 103): the server is given it, so the line stays as shipped. */
const SAMPLE_TOKEN = 'CHANGE-ME-to-HTTP_TOKEN'

/**
 * Extension 103 reads CALLERID(num); func_callerid is not in ../shared/asterisk/build.sh's list, so
 * without it CALLERID() is an unknown function (an ERROR line) and the caller is "". With it (checked
 * once against a prefix with func_callerid.so added) the call file's caller ID, filtered, arrives.
 */
const HAS_FUNC_CALLERID = existsSync(join(ASTERISK_PREFIX, 'lib', 'asterisk', 'modules', 'func_callerid.so'))

const TEST_CONTEXT = [
  '',
  '; ---- appended by test/integration/asterisk-dialplan-sample.test.ts ----',
  '[sample-test]',
  'exten => play,1,Playback(${SOUND})',
  ' same => n,SendDTMF(${DIGITS})',
  ' same => n,Hangup()',
  '',
].join('\n')

/** The sample as shipped, with only the two addresses pointed at the harness. */
function sampleExtensions(audiosocketPort: number, httpPort: number): string {
  const sample = readFileSync(SAMPLE_FILE, 'utf8')
  for (const needle of [SAMPLE_AUDIOSOCKET, `http://${SAMPLE_HTTP}/calls/`, SAMPLE_TOKEN]) {
    if (!sample.includes(needle)) throw new Error(`asterisk-dialplan.conf.sample no longer contains ${needle}: update this test`)
  }
  return sample.replaceAll(SAMPLE_AUDIOSOCKET, `127.0.0.1:${audiosocketPort}`).replaceAll(SAMPLE_HTTP, `127.0.0.1:${httpPort}`) + TEST_CONTEXT
}

/** The quiet lead-in every sound starts with: frames the AudioSocket() application may drop. */
const LEAD_IN_FRAMES = 10
const FRAME_MS = 20

/**
 * Deterministic "speech": LEAD_IN_FRAMES of quiet, then loud bursts of pseudo-random noise separated
 * by quiet (below the stand-in's silence threshold, but never 0, so that zero frames Asterisk might
 * add are told apart from the sound). `bursts` alternate loud, quiet, loud... (ms), ending loud.
 */
function speech(rate: number, seed: number, bursts: number[]): Buffer {
  const parts = [LEAD_IN_FRAMES * FRAME_MS, ...bursts]
  const samples = (rate * parts.reduce((a, b) => a + b, 0)) / 1000
  const pcm = Buffer.alloc(samples * 2)
  let state = seed >>> 0
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32 - 0.5 // -0.5 .. 0.5
  }
  let at = 0
  parts.forEach((partMs, i) => {
    const loud = i % 2 === 1
    const n = (rate * partMs) / 1000
    for (let k = 0; k < n; k++, at++) {
      const v = loud ? Math.round(next() * 12000) : Math.round(next() * 80) || 1
      pcm.writeInt16LE(v, at * 2)
    }
  })
  return pcm
}

interface CallOptions {
  exten: string
  rate: 8000 | 16000
  /** Local channel codec and sound file extension. */
  codec: 'slin' | 'slin16'
  soundExt: 'sln' | 'sln16'
  pcm: Buffer
  digits: string
  callerId?: string
  /** Leading frames of the sound that may be missing (the lead-in, for AudioSocket()); 0 for Dial(). */
  mayDropFrames: number
}

interface CallOutcome {
  id: string
  events: any[]
  started: any
  ended: any
  finals: any[]
  session: FakeSonioxSession
  /** The stand-in's audio with leading and trailing all-zero frames removed, and how many there were. */
  trimmed: Buffer
  zeroFrames: { leading: number; trailing: number }
}

/** Whole all-zero frames at the start and the end of `audio`. */
function trimZeroFrames(audio: Buffer, frameBytes: number): { trimmed: Buffer; leading: number; trailing: number } {
  const isZero = (i: number): boolean => audio.subarray(i * frameBytes, (i + 1) * frameBytes).every((b) => b === 0)
  const frames = Math.floor(audio.length / frameBytes)
  let leading = 0
  while (leading < frames && isZero(leading)) leading++
  let trailing = 0
  while (trailing < frames - leading && audio.length % frameBytes === 0 && isZero(frames - 1 - trailing)) trailing++
  return { trimmed: audio.subarray(leading * frameBytes, audio.length - trailing * frameBytes), leading, trailing }
}

/** Which 20 ms frames of `sent` are missing from, or differ in, `received`: for a failure message. */
function frameDiff(received: Buffer, sent: Buffer, frameBytes: number): string {
  const frames = (b: Buffer): string[] => {
    const out: string[] = []
    for (let i = 0; i < b.length; i += frameBytes) out.push(b.subarray(i, i + frameBytes).toString('base64'))
    return out
  }
  const r = frames(received)
  const s = frames(sent)
  const index = new Map(s.map((f, i) => [f, i]))
  const mapped = r.map((f) => index.get(f) ?? -1)
  const missing = s.map((_, i) => i).filter((i) => !mapped.includes(i))
  return `received ${r.length} frames, sent ${s.length}; received frames as sent-frame indexes: ${JSON.stringify(mapped)}; sent frames never received: ${JSON.stringify(missing)}`
}

/** Asterisk log lines already shown. */
const reported = new Set<string>()

async function placeCall(t: Test, h: Harness, ast: Asterisk, o: CallOptions): Promise<CallOutcome> {
  const known = new Set(h.receiver.events.map((e) => e.call_id))
  const sound = ast.writeSound(`exten-${o.exten}`, o.pcm, o.soundExt)
  const fields: Record<string, string | number | string[]> = {
    Channel: `Local/${o.exten}@transcribe`,
    Codecs: `!all,${o.codec}`,
    Context: 'sample-test',
    Extension: 'play',
    Priority: 1,
    Setvar: [`SOUND=${sound}`, `DIGITS=${o.digits}`],
  }
  if (o.callerId !== undefined) fields.CallerID = o.callerId
  ast.originate(fields)

  const isNewEnd = (e: any): boolean => e.type === 'call.ended' && !known.has(e.call_id)
  try {
    await h.receiver.waitFor((evs) => evs.some(isNewEnd), 20000)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await ast.diagnostics()}`)
  }
  const id = h.receiver.events.find(isNewEnd).call_id as string
  const events = h.receiver.eventsFor(id)
  const sessions = h.soniox.sessions.filter((s) => s.startMessage?.client_reference_id === id)
  if (sessions.length !== 1) throw new Error(`expected one Soniox session for ${id}, found ${sessions.length}`)
  const session = sessions[0]!
  const frameBytes = (o.rate / 1000) * FRAME_MS * 2
  const { trimmed, leading, trailing } = trimZeroFrames(session.audio, frameBytes)
  const ended = events.find((e) => e.type === 'call.ended')
  t.comment(`extension ${o.exten}: call ${id}, ${session.audio.length} bytes to Soniox, zero frames added: ${leading} leading, ${trailing} trailing`)
  t.comment(`call.ended: ${JSON.stringify({ ...ended.data, transcript: undefined })}`)
  const problems = ast.log().split('\n').filter((l) => /WARNING|ERROR/.test(l) && !reported.has(l))
  for (const l of problems) reported.add(l)
  if (problems.length > 0) t.comment(`Asterisk's warnings and errors during the call:\n${problems.join('\n')}`)
  return {
    id,
    events,
    started: events.find((e) => e.type === 'call.started'),
    ended,
    finals: events.filter((e) => e.type === 'transcript.final'),
    session,
    trimmed,
    zeroFrames: { leading, trailing },
  }
}

/** What every extension must deliver: the sound's bytes, its exact transcript, its digits, a clean end. */
function assertCall(t: Test, h: Harness, c: CallOutcome, o: CallOptions): void {
  const types = c.events.map((e) => e.type as string)
  t.equal(types[0], 'call.started', 'call.started first')
  t.equal(types.at(-1), 'call.ended', 'call.ended last')
  t.same([...new Set(types.slice(1, -1))].sort(), ['call.dtmf', 'transcript.final'], 'in between only transcript.final and call.dtmf')
  t.same(c.events.map((e) => e.seq), c.events.map((_, i) => i), 'seq gapless from 0')
  const requests = h.receiver.requests.filter((r) => r.body?.call_id === c.id)
  t.ok(requests.length > 0 && requests.every((r) => r.signatureValid === true), 'every webhook carries a valid signature')

  t.match(c.session.startMessage, { audio_format: 'pcm_s16le', sample_rate: o.rate, num_channels: 1 }, `the Soniox session is pcm_s16le at ${o.rate} Hz`)
  t.same(c.session.violations, [], 'the stand-in saw nothing Soniox would refuse')
  t.equal(c.session.endOfAudio, 'binary', 'the audio was ended with an empty frame')
  const frameBytes = (o.rate / 1000) * FRAME_MS * 2
  const missingBytes = o.pcm.length - c.trimmed.length
  const dropped = missingBytes / frameBytes
  const same = Number.isInteger(dropped) && dropped >= 0 && dropped <= o.mayDropFrames && o.pcm.subarray(missingBytes).equals(c.trimmed)
  t.ok(
    same,
    `Soniox received the sound file's bytes unchanged: all ${o.pcm.length} of them${o.mayDropFrames > 0 ? ` but up to ${o.mayDropFrames} lead-in frames` : ''}` +
      ` (here ${dropped} frame(s) missing; ${c.zeroFrames.leading} leading and ${c.zeroFrames.trailing} trailing zero frames added)`,
  )
  if (!same) t.comment(frameDiff(c.trimmed, o.pcm, frameBytes))

  const expected = expectedTranscript(c.session.audio, o.rate)
  t.ok(expected.transcript.trim().split(' ').length >= 4, `the stand-in hears words in the sound: ${JSON.stringify(expected.transcript)}`)
  t.equal(c.finals.map((e) => e.data.text).join(''), expected.transcript, 'the transcript.final texts, concatenated, are exactly the stand-in\'s transcript')
  t.ok(c.finals.length >= 2, `${c.finals.length} transcript.final events (the sound has a pause)`)
  t.equal(c.session.transcript, expected.transcript, 'which is what the stand-in sent')
  const dtmf = c.events.filter((e) => e.type === 'call.dtmf')
  t.same(dtmf.map((e) => e.data.digit), [...o.digits], `call.dtmf: ${o.digits}, sent after the sound`)
  const soundMs = (o.pcm.length / 2 / o.rate) * 1000
  t.ok(
    dtmf.every((e, i) => e.data.at_ms >= soundMs - o.mayDropFrames * FRAME_MS && e.data.at_ms <= c.ended.data.audio_ms && (i === 0 || e.data.at_ms >= dtmf[i - 1].data.at_ms)),
    `at the end of the audio, in order (at_ms ${dtmf.map((e) => e.data.at_ms).join(', ')}; sound ${soundMs} ms)`,
  )

  t.match(c.ended.data, { reason: 'hangup', sample_rate: o.rate, audio_encoding: 'pcm_s16le', suspected_g711: false, error: null }, 'call.ended: hangup, the rate, slin')
  t.equal(c.ended.data.transcript, expected.transcript, 'call.ended has the whole transcript')
  t.equal(c.ended.data.utterances, expected.utterances.length, `and its ${expected.utterances.length} utterances`)
  t.same(c.finals.map((e) => e.data.text.trim()), expected.utterances, 'one transcript.final per utterance')
  t.equal(c.ended.data.audio_ms, (c.session.audio.length / 2 / o.rate) * 1000, 'audio_ms is the audio received')
}

t.test('asterisk-dialplan.conf.sample on a real Asterisk', { skip: missing ?? false }, async (t) => {
  const httpPort = await freePort()
  const h = await startHarness({ env: { HTTP_PORT: String(httpPort), HTTP_TOKEN: SAMPLE_TOKEN } })
  t.teardown(() => h.stop())
  const ast = await startAsterisk(t, {
    extensions: sampleExtensions(h.port, httpPort),
    modules: ['func_uuid', 'func_strings', 'func_curl', 'res_curl', 'app_senddtmf', ...(HAS_FUNC_CALLERID ? ['func_callerid'] : [])],
  })

  t.test('100: Answer, UUID(), AudioSocket() at 8 kHz', async (t) => {
    const o: CallOptions = { exten: '100', rate: 8000, codec: 'slin', soundExt: 'sln', pcm: speech(8000, 100, [1600, 600, 800]), digits: '12', mayDropFrames: LEAD_IN_FRAMES }
    const c = await placeCall(t, h, ast, o)
    assertCall(t, h, c, o)
    t.equal(c.started.data.metadata, null, 'no registration: metadata null')
  })

  t.test('101: Answer, UUID(), Dial(AudioSocket/...c(slin16),,g) at 16 kHz', async (t) => {
    const o: CallOptions = { exten: '101', rate: 16000, codec: 'slin16', soundExt: 'sln16', pcm: speech(16000, 101, [1600, 600, 800]), digits: '3#', mayDropFrames: 0 }
    const c = await placeCall(t, h, ast, o)
    assertCall(t, h, c, o)
    t.equal(c.started.data.metadata, null, 'no registration: metadata null')
  })

  t.test('103: Answer, UUID(), registration with CURL(), AudioSocket() at 8 kHz', async (t) => {
    const o: CallOptions = {
      exten: '103',
      rate: 8000,
      codec: 'slin',
      soundExt: 'sln',
      pcm: speech(8000, 103, [1200, 600, 1200]),
      digits: '*9',
      callerId: '"Sample Caller" <+1-555-0103>',
      mayDropFrames: LEAD_IN_FRAMES,
    }
    const c = await placeCall(t, h, ast, o)
    assertCall(t, h, c, o)
    const metadata = { caller: HAS_FUNC_CALLERID ? '+15550103' : '', exten: '103', channel: c.started.data.metadata?.channel }
    if (!HAS_FUNC_CALLERID) t.comment('no func_callerid in this Asterisk: CALLERID(num) is empty, so metadata.caller is ""')
    t.same(c.started.data.metadata, metadata, 'call.started carries the registration\'s metadata')
    t.match(c.started.data.metadata.channel, /^Local\/103@transcribe-[0-9a-f]+;2$/, 'metadata.channel is the Local channel running 103')
    t.same(c.ended.data.metadata, metadata, 'and so does call.ended')
    t.same(c.session.startMessage?.language_hints, ['en', 'es'], 'the registration\'s language hints reached Soniox')
    const line = ast.log().split('\n').find((l) => l.includes(`audiosocket-soniox registration of ${c.id}: `))
    t.match(line, new RegExp(`"call_id":"${c.id}"`), 'the dialplan logged the server\'s answer to the registration')
  })
})
