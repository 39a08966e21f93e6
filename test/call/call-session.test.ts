/**
 * CallSession on an in-memory connection (test/support/memory-socket.ts) with the fake clock, a
 * recording transcriber and an in-memory sink, so each behaviour of the state machine is driven
 * frame by frame: bytes reach the call as they are sent and time moves only when a test says so.
 * No port, no polling, no wall-clock wait. (The real-socket path: test/integration/.)
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { CallSession, type CallMetrics, type CallRecognitionOptions, type CallSessionDeps, type CallSettings, type Transcriber, type TranscriberHandlers } from '../../src/call/call-session.js'
import { createLogger } from '../../src/shared/logger.js'
import type { AudioFormat, TranscriberStats, Utterance } from '../../src/soniox/index.js'
import type { EventEnvelope, EventSink } from '../../src/events/envelope.js'
import { AppError } from '../../src/shared/errors.js'
import { LogThrottle } from '../../src/shared/log-throttle.js'
import { FakeTimers } from '../support/fake-timers.js'
import { frames } from '../support/frames.js'
import { MemorySocket } from '../support/memory-socket.js'

const SETTINGS: CallSettings = {
  firstFrameTimeoutMs: 2000,
  slinSampleRate: 8000,
  slinEncoding: 'slin',
  maxPayloadBytes: 65535,
  stallTimeoutMs: 2000,
  hangupGraceMs: 500,
  partialEvents: false,
  partialIntervalMs: 500,
  silenceMode: 'off',
  silenceAfterMs: 1000,
}

class RecordingTranscriber implements Transcriber {
  format: AudioFormat | undefined
  /** The call's own recognition options, as the factory received them. */
  recognition: CallRecognitionOptions | undefined
  readonly chunks: Buffer[] = []
  finished = false
  closedCount = 0
  constructor(readonly handlers: TranscriberHandlers) {}
  start(format: AudioFormat): void {
    this.format = format
  }
  sendAudio(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk))
  }
  async finish(): Promise<void> {
    this.finished = true
  }
  close(): void {
    this.closedCount++
  }
  stats(): TranscriberStats {
    return { sessions: this.format ? 1 : 0, reconnects: 0, audioResentMs: 0, audioDroppedMs: 0 }
  }
  get audio(): Buffer {
    return Buffer.concat(this.chunks)
  }
}

/** Asterisk's end of the connection. */
interface Peer {
  /** Bytes to the call, delivered at once as one chunk. */
  write(bytes: Buffer | string): void
  /** Asterisk's FIN: the normal end of a call. */
  end(): void
  /** Every byte the call sent back. */
  readonly received: Buffer
}

interface Rig {
  peer: Peer
  socket: MemorySocket
  call: CallSession
  events: EventEnvelope[]
  logs: Array<Record<string, unknown>>
  transcriber(): RecordingTranscriber
  clock: FakeTimers
}

function rig(t: Test, settings: Partial<CallSettings> = {}, deps: Partial<CallSessionDeps> = {}): Rig {
  const socket = new MemorySocket()
  const events: EventEnvelope[] = []
  const sink: EventSink = { publish: (e) => void events.push(e), close: async () => {} }
  const logs: Array<Record<string, unknown>> = []
  // Synchronous: a log line is in `logs` as soon as it is written.
  const destination = { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }
  let transcriber: RecordingTranscriber | undefined
  const clock = new FakeTimers(1_000_000)
  const call = new CallSession({
    socket,
    logger: createLogger({ level: 'debug', destination }),
    sink,
    settings: { ...SETTINGS, ...settings },
    clock,
    createTranscriber: (_id, handlers, _log, recognition) => {
      transcriber = new RecordingTranscriber(handlers)
      transcriber.recognition = recognition
      return transcriber
    },
    ...deps,
  })
  t.teardown(() => void call.shutdown())
  const peer: Peer = {
    write: (bytes) => socket.send(bytes),
    end: () => socket.hangUp(),
    get received() {
      return socket.received
    },
  }
  return {
    peer,
    socket,
    call,
    events,
    logs,
    clock,
    transcriber: () => {
      if (!transcriber) throw new Error('no transcriber yet')
      return transcriber
    },
  }
}

/** The in-memory rig delivers at once: what a test expects after a write is already so. */
function already(condition: () => boolean, what: string): void {
  if (!condition()) throw new Error(`not so after the write: ${what}`)
}

const types = (events: EventEnvelope[]): string[] => events.map((e) => e.type)

/** An utterance as the transcriber delivers it. */
function utterance(index: number, text: string, startMs: number, endMs: number): Utterance {
  return { index, text, start_ms: startMs, end_ms: endMs, confidence: null, tokens: [{ text, start_ms: startMs, end_ms: endMs }], reason: 'call_end' }
}

const NOT_THE_ACCOUNT = { accountProblem: false, reportFields: {} }

const NO_CALL_METRICS: CallMetrics = {
  callStarted() {},
  callEnded() {},
  callFaulted() {},
  connectionFailed() {},
  g711Suspected() {},
  frameReceived() {},
  frameSent() {},
}

// Sample alignment of odd payloads is the transcriber's (test/soniox/soniox-transcriber.test.ts).
t.test('odd-length payloads reach the transcriber as they came, in order, and count in audio_ms', async (t) => {
  const r = rig(t)
  const a = Buffer.from([1, 2, 3])
  const b = Buffer.from([4, 5, 6, 7, 8])
  const c = Buffer.from([9])
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.raw(0x10, a), frames.raw(0x10, b), frames.raw(0x10, c)]))
  already(() => r.call.state === 'streaming' && (r.transcriber().audio.length ?? 0) >= 9, 'audio forwarded')
  const tr = r.transcriber()
  t.same(tr.chunks.map((chunk) => chunk.length), [3, 5, 1], 'one chunk per frame, odd lengths too')
  t.same([...tr.audio], [1, 2, 3, 4, 5, 6, 7, 8, 9], 'the bytes arrive in order')
  r.peer.end()
  await r.call.closed()
  t.equal(r.events.at(-1)?.data.audio_ms, 1, '9 bytes at 8 kHz is 0.56 ms, rounded')
})

t.test('0x10 audio takes AUDIOSOCKET_SLIN_SAMPLE_RATE (old Asterisk labels slin16 as 0x10)', async (t) => {
  const r = rig(t, { slinSampleRate: 16000 })
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 640)]))
  already(() => r.call.state === 'streaming' && r.transcriber().format !== undefined, 'format')
  t.same(r.transcriber().format, { sampleRate: 16000, encoding: 'pcm_s16le' })
  r.peer.end()
  await r.call.closed()
  t.equal(r.events.at(-1)?.data.audio_ms, 20, '640 bytes at 16 kHz is 20 ms')
})

t.test('wideband kinds give their own rate, whatever the 0x10 setting', async (t) => {
  for (const [kind, rate] of [[0x11, 12000], [0x12, 16000], [0x15, 44100], [0x16, 48000], [0x18, 192000]] as const) {
    const r = rig(t, { slinSampleRate: 16000 })
    r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(kind, 320)]))
    already(() => r.call.state === 'streaming' && r.transcriber().format !== undefined, 'format')
    t.same(r.transcriber().format, { sampleRate: rate, encoding: 'pcm_s16le' }, `kind 0x${kind.toString(16)}`)
    r.peer.end()
    await r.call.closed()
  }
})

t.test('a change of audio rate mid-call ends the call with ERR_AUDIOSOCKET_RATE_CHANGED', async (t) => {
  const r = rig(t)
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320), frames.audio(0x12, 640)]))
  await r.call.closed()
  const ended = r.events.at(-1)
  t.equal(ended?.type, 'call.ended')
  t.equal(ended?.data.reason, 'error')
  t.match(ended?.data.error, { code: 'ERR_AUDIOSOCKET_RATE_CHANGED' })
})

t.test('unknown kinds and error frames are logged and skipped; the call goes on', async (t) => {
  const r = rig(t)
  r.peer.write(
    Buffer.concat([
      frames.uuid(randomUUID()),
      frames.raw(0x02, Buffer.alloc(6)),
      frames.audio(0x10, 320),
      frames.raw(0x7f, Buffer.alloc(2)),
      frames.raw(0xff, Buffer.from([0x04])),
      frames.raw(0x10, Buffer.alloc(0)),
      frames.audio(0x10, 320),
      frames.dtmf('5'),
    ]),
  )
  already(() => r.events.some((e) => e.type === 'call.dtmf'), 'dtmf event')
  t.equal(r.call.state, 'streaming', 'still streaming')
  t.equal(r.transcriber().audio.length, 640, 'both audio frames forwarded, the empty one ignored')
  t.equal(r.logs.filter((l) => l.msg === 'unknown AudioSocket frame kind skipped').length, 1, 'one warn line for unknown kinds, not one per frame')
  t.equal(r.logs.filter((l) => l.errorCode === 4).length, 1, 'the error frame is logged with its code')
  r.peer.end()
  await r.call.closed()
  t.same(r.events.at(-1)?.data.frames, { audio: 3, dtmf: 1, unknown: 2, error: 1 })
  t.same(r.events.find((e) => e.type === 'call.dtmf')?.data, { digit: '5', at_ms: 40 })
})

t.test('a hangup frame from the peer ends the call as a hangup', async (t) => {
  const r = rig(t)
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320), frames.hangup()]))
  await r.call.closed()
  t.equal(r.events.at(-1)?.data.reason, 'hangup')
  t.ok(r.transcriber().finished, 'Soniox was asked for its last words')
})

t.test('frames after the hangup frame in the same chunk are read and dropped', async (t) => {
  const r = rig(t)
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320), frames.hangup(), frames.audio(0x10, 320), frames.dtmf('5')]))
  await r.call.closed()
  t.equal(r.transcriber().audio.length, 320, 'only the audio before the hangup reached the transcriber')
  t.notOk(r.events.some((e) => e.type === 'call.dtmf'), 'no DTMF event after the hangup')
  t.same(r.events.at(-1)?.data.frames, { audio: 1, dtmf: 0, unknown: 0, error: 0 })
})

t.test('transcription failure keeps the call up and is reported at the end', async (t) => {
  const r = rig(t)
  const id = randomUUID()
  r.peer.write(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320)]))
  already(() => r.call.state === 'streaming' && r.transcriber().chunks.length === 1, 'first audio')
  const tr = r.transcriber()
  // As the transcriber fails: the words it had open, then the error.
  tr.handlers.onUtterance(utterance(0, ' hello', 0, 200))
  tr.handlers.onError(new AppError('ERR_SONIOX_CLOSED', 'lost'), NOT_THE_ACCOUNT)
  r.peer.write(frames.audio(0x10, 320))
  already(() => r.events.filter((e) => e.type === 'transcript.final').length === 1, 'the open words flushed')
  t.equal(r.call.state, 'streaming', 'the caller is not hung up')
  r.peer.end()
  await r.call.closed()
  t.equal(tr.chunks.length, 1, 'no audio is sent to a failed transcriber')
  t.equal(tr.finished, false, 'a failed transcriber is not asked to finish')
  const ended = r.events.at(-1)
  t.match(ended?.data, { reason: 'error', transcript: ' hello', audio_ms: 40, error: { code: 'ERR_SONIOX_CLOSED' } })
})

t.test('transcript.partial is off by default and throttled when on', async (t) => {
  const off = rig(t)
  off.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  already(() => off.call.state === 'streaming' && off.transcriber().chunks.length === 1, 'audio')
  t.equal(off.transcriber().handlers.onPartial, undefined, 'the transcriber is not asked for partials')
  off.transcriber().handlers.onPartial?.({ index: 0, text: ' hi', start_ms: null })
  t.notOk(off.events.some((e) => e.type === 'transcript.partial'), 'no partials unless enabled')

  const on = rig(t, { partialEvents: true, partialIntervalMs: 500 })
  on.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  already(() => on.call.state === 'streaming' && on.transcriber().chunks.length === 1, 'audio')
  const push = (text: string): void => on.transcriber().handlers.onPartial?.({ index: 0, text, start_ms: 0 })
  push(' hel') // t=0: the first partial goes out at once
  on.clock.advance(100)
  push(' hello') // t=100: within the interval, throttled
  on.clock.advance(500)
  push(' hello') // t=600: interval passed and the text is new since t=0: published
  on.clock.advance(10)
  push(' hello there') // t=610: within the interval again, throttled
  on.clock.advance(600)
  push(' hello there') // t=1210: not published yet, so it goes out now
  const partials = on.events.filter((e) => e.type === 'transcript.partial').map((e) => e.data.text)
  t.same(partials, [' hel', ' hello', ' hello there'], 'first partial at once, then at most one per interval, only when the text changed')
})

t.test('a pre-registered call: its recognition options reach the transcriber, its metadata both call events', async (t) => {
  const id = randomUUID()
  const asked: string[] = []
  const r = rig(t, {}, {
    admit: (callId) => {
      asked.push(callId)
      return { admitted: true, options: { recognition: { languageHints: ['de'] }, metadata: { ticket: 'T-7' } } }
    },
  })
  r.peer.write(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320)]))
  already(() => r.call.state === 'streaming' && r.transcriber().chunks.length === 1, 'audio')
  t.same(asked, [id], 'admission is asked once, with the UUID')
  t.same(r.transcriber().recognition, { languageHints: ['de'] })
  r.peer.end()
  await r.call.closed()
  t.same(r.events[0]?.data.metadata, { ticket: 'T-7' }, 'call.started carries the metadata')
  t.same(r.events.at(-1)?.data.metadata, { ticket: 'T-7' }, 'and so does call.ended')

  const plain = rig(t)
  plain.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  already(() => plain.call.state === 'streaming' && plain.transcriber().chunks.length === 1, 'audio')
  plain.peer.end()
  await plain.call.closed()
  t.equal(plain.events[0]?.data.metadata, null, 'without a registration the field is null, never absent')
  t.equal(plain.transcriber().recognition, undefined, 'and the configured options apply')
})

t.test('a refused call: a hangup frame, no event, no transcriber, one warn line', async (t) => {
  const id = randomUUID()
  let transcribers = 0
  const r = rig(t, {}, {
    admit: () => ({ admitted: false, reason: 'its UUID is not registered' }),
    createTranscriber: () => {
      transcribers++
      throw new Error('a refused call must not get a transcriber')
    },
  })
  r.peer.write(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320)]))
  await r.call.closed()
  t.ok(r.socket.finSent, 'then the connection is half-closed (Asterisk closes its side on reading the hangup)')
  r.clock.advance(SETTINGS.hangupGraceMs)
  t.ok(r.socket.destroyed, 'or is closed by the server after the hangup grace')
  t.same([...r.peer.received], [0, 0, 0], 'exactly one hangup frame')
  t.same(r.events, [], 'no event at all')
  t.equal(transcribers, 0)
  t.equal(r.call.callId, undefined, 'it never became a call')
  t.same(r.logs.filter((l) => l.level === 40).map((l) => [l.msg, l.callId]), [['call refused: its UUID is not registered', id]])
})

t.test('metrics: every frame by type and size, calls started and ended by reason, frames sent', async (t) => {
  const counts: Record<string, number> = {}
  const add = (key: string, n = 1): void => void (counts[key] = (counts[key] ?? 0) + n)
  const metrics: CallMetrics = {
    callStarted: () => add('started'),
    callEnded: (reason) => add(`ended:${reason}`),
    callFaulted: () => add('faulted'),
    connectionFailed: () => add('failed'),
    g711Suspected: () => add('g711'),
    frameReceived: (type, bytes) => {
      add(`frames:${type}`)
      add(`bytes:${type}`, bytes)
    },
    frameSent: (kind) => add(`sent:${kind}`),
  }
  const r = rig(t, {}, { metrics })
  r.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320), frames.audio(0x10, 161), frames.dtmf('7'), frames.raw(0x7f, Buffer.alloc(5))]))
  already(() => r.events.some((e) => e.type === 'call.dtmf'), 'dtmf')
  await r.call.shutdown()
  t.same(counts, {
    'frames:uuid': 1,
    'bytes:uuid': 16,
    started: 1,
    'frames:audio': 2,
    'bytes:audio': 481,
    'frames:dtmf': 1,
    'bytes:dtmf': 1,
    'frames:unknown': 1,
    'bytes:unknown': 5,
    'sent:hangup': 1,
    'ended:shutdown': 1,
  })
})

// ---- one call's exception ends that call only ---------------------------------------------------

/** Which of the call's own pieces throws (each is a place the event loop enters the call). */
type FaultyPiece = 'transcriber' | 'result-callback' | 'event-sink' | 'wire-tap'

/**
 * Two calls side by side; `piece` of call A throws. Without the call's fault boundary the exception
 * reaches process 'uncaughtException' and this whole test process dies with every call in it.
 */
async function faultBesideALiveCall(t: Test, piece: FaultyPiece) {
  const faults: string[] = []
  const metrics: CallMetrics = {
    callStarted() {},
    callEnded() {},
    callFaulted: () => void faults.push('fault'),
    connectionFailed() {},
    g711Suspected() {},
    frameReceived() {},
    frameSent() {},
  }
  const boom = (): never => {
    throw new TypeError(`injected failure in the ${piece}`)
  }
  const deps: Partial<CallSessionDeps> = { metrics }
  if (piece === 'transcriber') {
    deps.createTranscriber = (_id, handlers) =>
      Object.assign(new RecordingTranscriber(handlers), { sendAudio: boom })
  }
  if (piece === 'result-callback') {
    // An utterance the call's publishing chokes on, delivered as a Soniox WebSocket message would
    // be: from the event loop, not from inside the call's own stack.
    deps.createTranscriber = (_id, handlers) => {
      const transcriber = new RecordingTranscriber(handlers)
      transcriber.start = () => void setImmediate(() => handlers.onUtterance(null as never))
      return transcriber
    }
  }
  if (piece === 'wire-tap') {
    let chunks = 0
    deps.wireTap = { inbound: () => void (++chunks === 2 && boom()), outbound() {}, close() {} }
  }
  const a = rig(t, {}, deps)
  if (piece === 'event-sink') {
    // Building or publishing call A's transcript event fails; its other events go through.
    const publish = (a as unknown as { call: { deps: { sink: EventSink } } }).call.deps.sink.publish
    ;(a as unknown as { call: { deps: { sink: EventSink } } }).call.deps.sink.publish = (e) => (e.type === 'call.dtmf' ? boom() : publish(e))
  }
  const b = rig(t)

  b.peer.write(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  a.peer.write(frames.uuid(randomUUID()))
  already(() => a.call.state === 'streaming', 'call A started')
  a.peer.write(Buffer.concat([frames.audio(0x10, 320), frames.dtmf('5')]))
  await a.call.closed()

  const ended = a.events.at(-1)
  t.equal(ended?.type, 'call.ended', 'call A still publishes call.ended')
  t.match(ended?.data, { reason: 'error', error: { code: 'ERR_CALL_INTERNAL', message: piece === 'result-callback' ? /TypeError/ : new RegExp(`injected failure in the ${piece}`) } })
  t.same([...a.peer.received], [0, 0, 0], 'Asterisk is told to hang up call A')
  const errorLines = a.logs.filter((l) => l.level === 50)
  t.equal(errorLines.length, 1, 'one error line')
  t.match(errorLines[0], { msg: /exception in the call's handling/, err: { stack: /TypeError: .*\n +at / } }, 'with the stack')
  t.same(faults, ['fault'], 'counted once')

  // Call B never noticed: it goes on taking audio and ends normally.
  b.peer.write(frames.audio(0x10, 320))
  already(() => b.transcriber().audio.length === 640, 'call B still streams')
  t.equal(b.call.state, 'streaming')
  b.peer.end()
  await b.call.closed()
  t.match(b.events.at(-1)?.data, { reason: 'hangup', error: null })
}

for (const piece of ['transcriber', 'result-callback', 'event-sink', 'wire-tap'] as const) {
  t.test(`an exception in one call's ${piece} ends that call only, with a live call beside it`, (t) => faultBesideALiveCall(t, piece))
}

t.test('an exception while ending (publishing call.ended) closes the call without an unhandled rejection', async (t) => {
  const r = rig(t)
  const sink = (r as unknown as { call: { deps: { sink: EventSink } } }).call.deps.sink
  const publish = sink.publish
  sink.publish = (e) => {
    if (e.type === 'call.ended') throw new RangeError('injected failure building call.ended')
    publish(e)
  }
  r.peer.write(frames.uuid(randomUUID()))
  already(() => r.call.state === 'streaming', 'started')
  r.peer.end()
  await r.call.closed()
  t.equal(r.call.state, 'closed')
  t.match(r.logs.filter((l) => l.level === 50), [{ msg: /exception while ending the call/, err: { message: /injected failure building call.ended/ } }])
})

t.test('lines a peer triggers before its call exists share one throttle: one per cause per interval, then the count held back', async (t) => {
  const clock = { now: 0 }
  const connectionLogs = new LogThrottle(10_000, () => clock.now)
  const failed: string[] = []
  const metrics: CallMetrics = { ...NO_CALL_METRICS, connectionFailed: () => void failed.push('failed') }
  const garbage = async (): Promise<Rig> => {
    const r = rig(t, {}, { connectionLogs, metrics })
    r.peer.write('GET / HTTP/1.1\r\n\r\n')
    await r.call.closed()
    return r
  }
  const first = await garbage()
  const second = await garbage()
  const third = await garbage()
  clock.now += 10_000
  const fourth = await garbage()
  const warn = (r: Rig) => r.logs.filter((l) => l.level === 40)
  t.match(warn(first), [{ errorCode: 'ERR_AUDIOSOCKET_FIRST_FRAME', suppressed: 0, msg: /^connection closed before a call started/ }])
  t.same([warn(second), warn(third)], [[], []], 'the same cause within the interval: no line')
  t.match(warn(fourth), [{ errorCode: 'ERR_AUDIOSOCKET_FIRST_FRAME', suppressed: 2 }], 'the next line says how many were held back')
  t.equal(failed.length, 4, 'the metric counts every one')
})

// ---- what 0x10 carries: slin, or G.711 mislabelled ----------------------------------------------

/**
 * Sends `count` 0x10 frames of `bytes` each, one per `everyMs` of the call's clock, each processed
 * before the clock moves on (as Asterisk paces them).
 */
function paced(r: Rig, count: number, bytes: number, everyMs: number): void {
  for (let i = 0; i < count; i++) {
    const before = r.transcriber().audio.length
    r.peer.write(frames.audio(0x10, bytes, 0x55))
    already(() => r.transcriber().audio.length === before + bytes, 'frame taken')
    r.clock.advance(everyMs)
  }
}

t.test('G.711 labelled as slin (160-byte 0x10 frames every 20 ms): one warn line naming c(slin), a metric, call.ended says so', async (t) => {
  const suspected: string[] = []
  const r = rig(t, {}, { metrics: { ...NO_CALL_METRICS, g711Suspected: () => void suspected.push('g711') } })
  r.peer.write(frames.uuid(randomUUID()))
  already(() => r.call.state === 'streaming', 'started')
  paced(r, 60, 160, 20)
  r.peer.end()
  await r.call.closed()
  const warnings = r.logs.filter((l) => l.level === 40)
  t.equal(warnings.length, 1)
  t.match(warnings[0]?.msg, /looks like G\.711 labelled as slin.*c\(slin\).*AUDIOSOCKET_SLIN_ENCODING=mulaw/)
  t.same(suspected, ['g711'])
  t.match(r.events.at(-1)?.data, { suspected_g711: true, audio_encoding: 'pcm_s16le', sample_rate: 8000 })
})

t.test('real 8 kHz slin is never suspected: 160-byte frames every 10 ms (ptime 10), or 320 every 20 ms', async (t) => {
  for (const [bytes, everyMs] of [[160, 10], [320, 20]] as const) {
    const r = rig(t)
    r.peer.write(frames.uuid(randomUUID()))
    already(() => r.call.state === 'streaming', 'started')
    paced(r, 1200 / everyMs, bytes, everyMs)
    r.peer.end()
    await r.call.closed()
    t.same(r.logs.filter((l) => l.level === 40), [], `${bytes} bytes every ${everyMs} ms: no warning`)
    t.match(r.events.at(-1)?.data, { suspected_g711: false }, `${bytes} bytes every ${everyMs} ms`)
  }
})

t.test('AUDIOSOCKET_SLIN_ENCODING=mulaw: 0x10 goes to the transcriber as mulaw at 8 kHz, one byte a sample, never realigned', async (t) => {
  const r = rig(t, { slinEncoding: 'mulaw' })
  r.peer.write(frames.uuid(randomUUID()))
  already(() => r.call.state === 'streaming', 'started')
  r.peer.write(Buffer.concat([frames.audio(0x10, 160, 0xff), frames.audio(0x10, 161, 0x7f)]))
  already(() => r.transcriber().audio.length === 321, 'audio taken as it came')
  t.same(r.transcriber().format, { sampleRate: 8000, encoding: 'mulaw' })
  t.same(r.transcriber().chunks.map((c) => c.length), [160, 161], 'odd lengths pass: a G.711 sample is one byte')
  paced(r, 60, 160, 20)
  r.peer.end()
  await r.call.closed()
  t.match(r.events.at(-1)?.data, { audio_encoding: 'mulaw', sample_rate: 8000, audio_ms: 1240, suspected_g711: false }, '321 + 9,600 bytes at 8,000 a second')
})

t.test('silence before the first audio frame has the kind the call declared (a wideband channel-driver call)', async (t) => {
  const r = rig(t, { silenceMode: 'continuous' }, { admit: () => ({ admitted: true, options: { sampleRate: 16000 } }) })
  r.peer.write(frames.uuid(randomUUID()))
  const bytes = r.peer.received
  t.ok(bytes.length >= 3 + 640, 'a silence frame went out at once')
  t.same([bytes[0], bytes.readUInt16BE(1)], [0x12, 640], '20 ms of 16 kHz silence (0x12), not 8 kHz 0x10')
  await r.call.shutdown()
})
