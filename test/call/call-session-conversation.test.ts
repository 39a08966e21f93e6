/**
 * A CallSession that is one leg of a conversation (admitted with options.conversation), on the
 * in-memory socket with the fake clock: what it tells its LegObserver and when (legStarted with a
 * control, audioStarted, utterance, legEnded), role and conversation_id on every event, DTMF from
 * outside the stream, and the per-call silence mode and rate a tap stream is given.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { CallSession, type CallOptions, type CallSettings, type LegControl, type LegEnded, type LegObserver, type Transcriber, type TranscriberHandlers } from '../../src/call/call-session.js'
import type { EventEnvelope, EventSink } from '../../src/events/envelope.js'
import { AppError } from '../../src/shared/errors.js'
import { createLogger } from '../../src/shared/logger.js'
import type { AudioFormat, TranscriberStats, Utterance } from '../../src/soniox/index.js'
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
const CONVERSATION_ID = '0b7d3f1e-2a4c-4e6f-8a0b-1c2d3e4f5a6b'
const START = 1_000_000

class RecordingTranscriber implements Transcriber {
  readonly chunks: Buffer[] = []
  format: AudioFormat | undefined
  constructor(readonly handlers: TranscriberHandlers) {}
  start(format: AudioFormat): void {
    this.format = format
  }
  sendAudio(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk))
  }
  async finish(): Promise<void> {}
  close(): void {}
  stats(): TranscriberStats {
    return { sessions: 1, reconnects: 0, audioResentMs: 0, audioDroppedMs: 0 }
  }
}

type ObserverCall =
  | { method: 'legStarted'; callId: string; control: LegControl }
  | { method: 'audioStarted'; callId: string; at: number }
  | { method: 'utterance'; callId: string; utterance: Utterance }
  | { method: 'legEnded'; callId: string; ended: LegEnded; eventsSoFar: string[] }

interface Rig {
  socket: MemorySocket
  call: CallSession
  events: EventEnvelope[]
  clock: FakeTimers
  observed: ObserverCall[]
  sink: EventSink
  transcriber(): RecordingTranscriber
  control(): LegControl
  /** The observer calls of one method. */
  calls<M extends ObserverCall['method']>(method: M): Array<Extract<ObserverCall, { method: M }>>
}

function rig(t: Test, options: { role?: string; callOptions?: Partial<CallOptions>; settings?: Partial<CallSettings> } = {}): Rig {
  const socket = new MemorySocket()
  const events: EventEnvelope[] = []
  const sink: EventSink = { publish: (e) => void events.push(e), close: async () => {} }
  const clock = new FakeTimers(START)
  const observed: ObserverCall[] = []
  const observer: LegObserver = {
    legStarted: (callId, control) => void observed.push({ method: 'legStarted', callId, control }),
    audioStarted: (callId, at) => void observed.push({ method: 'audioStarted', callId, at }),
    utterance: (callId, utterance) => void observed.push({ method: 'utterance', callId, utterance }),
    legEnded: (callId, ended) => void observed.push({ method: 'legEnded', callId, ended, eventsSoFar: events.map((e) => e.type) }),
  }
  let transcriber: RecordingTranscriber | undefined
  const call = new CallSession({
    socket,
    logger: createLogger({ level: 'silent' }),
    sink,
    settings: { ...SETTINGS, ...options.settings },
    clock,
    createTranscriber: (_id, handlers) => (transcriber = new RecordingTranscriber(handlers)),
    admit: () => ({
      admitted: true,
      options: { metadata: { ticket: 'T-9' }, conversation: { conversationId: CONVERSATION_ID, role: options.role ?? 'caller', observer }, ...options.callOptions },
    }),
  })
  t.teardown(() => void call.shutdown())
  const r: Rig = {
    socket,
    call,
    events,
    clock,
    observed,
    sink,
    transcriber: () => {
      if (transcriber === undefined) throw new Error('no transcriber yet')
      return transcriber
    },
    control: () => {
      const started = r.calls('legStarted')
      if (started.length !== 1) throw new Error(`${started.length} legStarted calls`)
      return started[0]!.control
    },
    calls: <M extends ObserverCall['method']>(method: M) => observed.filter((c): c is Extract<ObserverCall, { method: M }> => c.method === method),
  }
  return r
}

function utterance(index: number, text: string, startMs: number, endMs: number): Utterance {
  return { index, text, start_ms: startMs, end_ms: endMs, confidence: 0.9, tokens: [{ text, start_ms: startMs, end_ms: endMs }], reason: 'endpoint' }
}

t.test('every event of the leg names its conversation and role; its own call_id and seq stay', async (t) => {
  const r = rig(t, { role: 'agent' })
  const id = randomUUID()
  r.socket.send(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320), frames.dtmf('4')]))
  r.transcriber().handlers.onUtterance(utterance(0, ' hello', 0, 20))
  r.control().dtmf('9')
  r.socket.hangUp()
  await r.call.closed()
  t.same(r.events.map((e) => e.type), ['call.started', 'call.dtmf', 'transcript.final', 'call.dtmf', 'call.ended'])
  for (const e of r.events) {
    t.match(e, { call_id: id, conversation_id: CONVERSATION_ID, role: 'agent' }, `${e.type} names the conversation and the role`)
  }
  t.same(r.events.map((e) => e.seq), [0, 1, 2, 3, 4], 'the leg\'s own gapless seq')
  t.same(r.events[0]?.data.metadata, { ticket: 'T-9' }, 'the options\' metadata as for any call')
})

t.test('legStarted once the UUID is in, with call.started already published; the control\'s dtmf publishes call.dtmf at audio time', async (t) => {
  const r = rig(t)
  const id = randomUUID()
  r.socket.send(frames.uuid(id))
  t.equal(r.calls('legStarted').length, 1)
  t.equal(r.calls('legStarted')[0]?.callId, id)
  t.same(r.events.map((e) => e.type), ['call.started'])
  const control = r.control()
  control.dtmf('1')
  t.same(r.events.at(-1)?.data, { digit: '1', at_ms: 0 }, 'before any audio: at 0 ms')
  r.socket.send(Buffer.concat([frames.audio(0x10, 320), frames.audio(0x10, 320), frames.audio(0x10, 160)]))
  r.clock.advance(3000) // wall time does not count: audio time does
  control.dtmf('#')
  t.same(r.events.at(-1)?.data, { digit: '#', at_ms: 50 }, '800 bytes of 8 kHz slin: 50 ms')
  t.match(r.events.at(-1), { type: 'call.dtmf', role: 'caller', conversation_id: CONVERSATION_ID })
  r.socket.send(frames.dtmf('7'))
  r.socket.hangUp()
  await r.call.closed()
  const ended = r.events.at(-1)
  t.equal(ended?.type, 'call.ended')
  t.same(ended?.data.frames, { audio: 3, dtmf: 3, unknown: 0, error: 0 }, 'the digits from ARI count with the one from the stream')
  const count = r.events.length
  control.dtmf('2')
  t.equal(r.events.length, count, 'a digit after the call ended publishes nothing')
})

t.test('the control\'s dtmf runs inside the leg\'s fault boundary: a throw there ends this leg, not the caller', async (t) => {
  const r = rig(t)
  const publish = r.sink.publish
  r.sink.publish = (e) => {
    if (e.type === 'call.dtmf') throw new TypeError('injected: the sink refuses call.dtmf')
    publish(e)
  }
  r.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  t.doesNotThrow(() => r.control().dtmf('5'), 'the conversation calling in is not thrown at')
  await r.call.closed()
  t.match(r.events.at(-1), { type: 'call.ended', data: { reason: 'error', error: { code: 'ERR_CALL_INTERNAL' } } })
  t.match(r.calls('legEnded'), [{ ended: { reason: 'error', errorCode: 'ERR_CALL_INTERNAL' } }])
})

t.test('audioStarted once, at the first audio frame with audio in it, with the clock\'s time then', async (t) => {
  const r = rig(t)
  const id = randomUUID()
  r.socket.send(frames.uuid(id))
  r.clock.advance(120)
  r.socket.send(frames.raw(0x10, Buffer.alloc(0)))
  t.same(r.calls('audioStarted'), [], 'an empty audio frame is not the start of the audio')
  r.clock.advance(15)
  r.socket.send(frames.audio(0x10, 320))
  t.same(r.calls('audioStarted').map((c) => [c.callId, c.at]), [[id, START + 135]])
  r.clock.advance(20)
  r.socket.send(Buffer.concat([frames.audio(0x10, 320), frames.audio(0x10, 320)]))
  r.socket.hangUp()
  await r.call.closed()
  t.equal(r.calls('audioStarted').length, 1, 'once')
  t.same(r.observed.map((c) => c.method), ['legStarted', 'audioStarted', 'legEnded'], 'in this order')
})

t.test('utterance() for each transcript.final, with the utterance as published', async (t) => {
  const r = rig(t)
  const id = randomUUID()
  r.socket.send(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320)]))
  const first = utterance(0, ' good morning', 0, 900)
  const second = utterance(1, ' bye', 1200, 1500)
  r.transcriber().handlers.onUtterance(first)
  r.transcriber().handlers.onPartial?.({ index: 2, text: ' not final', start_ms: 1600 })
  r.transcriber().handlers.onUtterance(second)
  t.same(r.calls('utterance').map((c) => [c.callId, c.utterance]), [[id, first], [id, second]])
  t.same(r.events.filter((e) => e.type === 'transcript.final').map((e) => e.data), [{ ...first }, { ...second }])
  r.socket.hangUp()
  await r.call.closed()
  t.equal(r.calls('utterance').length, 2, 'nothing else')
})

t.test('legEnded once, after call.ended is published, with its reason and audio time', async (t) => {
  const r = rig(t)
  const id = randomUUID()
  r.socket.send(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320), frames.audio(0x10, 480)]))
  t.same(r.calls('legEnded'), [], 'not while the call is live')
  r.socket.hangUp()
  await r.call.closed()
  const ended = r.calls('legEnded')
  t.equal(ended.length, 1)
  t.equal(ended[0]?.callId, id)
  t.same(ended[0]?.ended, { reason: 'hangup', audioMs: 50, errorCode: undefined })
  t.equal(ended[0]?.eventsSoFar.at(-1), 'call.ended', 'call.ended was already published')
  t.equal(r.events.at(-1)?.data.audio_ms, 50, 'the same audio time as call.ended')
  await r.call.shutdown()
  r.socket.emit('close', false)
  t.equal(r.calls('legEnded').length, 1, 'still once after more ends and closes')
})

t.test('legEnded carries the error code of call.ended: a violation, a server end, a lost transcription', async (t) => {
  const violation = rig(t)
  violation.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320), frames.audio(0x12, 640)]))
  await violation.call.closed()
  t.same(violation.calls('legEnded').map((c) => c.ended), [{ reason: 'error', audioMs: 20, errorCode: 'ERR_AUDIOSOCKET_RATE_CHANGED' }])

  const shutdown = rig(t)
  shutdown.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 160)]))
  await shutdown.call.shutdown()
  t.same(shutdown.calls('legEnded').map((c) => c.ended), [{ reason: 'shutdown', audioMs: 10, errorCode: undefined }])

  const lost = rig(t)
  lost.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  lost.transcriber().handlers.onError(new AppError('ERR_SONIOX_CLOSED', 'lost'), { accountProblem: false, reportFields: {} })
  lost.socket.hangUp()
  await lost.call.closed()
  t.same(lost.calls('legEnded').map((c) => c.ended), [{ reason: 'error', audioMs: 20, errorCode: 'ERR_SONIOX_CLOSED' }])
})

t.test('legEnded even when publishing call.ended throws: ERR_CALL_INTERNAL, so the conversation is not left waiting', async (t) => {
  const r = rig(t)
  const publish = r.sink.publish
  r.sink.publish = (e) => {
    if (e.type === 'call.ended') throw new RangeError('injected failure building call.ended')
    publish(e)
  }
  r.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  r.socket.hangUp()
  await r.call.closed()
  t.notOk(r.events.some((e) => e.type === 'call.ended'))
  t.same(r.calls('legEnded').map((c) => c.ended), [{ reason: 'error', audioMs: 20, errorCode: 'ERR_CALL_INTERNAL' }])
})

t.test('no UUID, no leg: a connection that never identifies itself tells the observer nothing', async (t) => {
  const r = rig(t)
  r.clock.advance(SETTINGS.firstFrameTimeoutMs)
  await r.call.closed()
  t.same(r.observed, [])
  t.same(r.events, [])
})

t.test('options.silenceMode continuous overrides the settings\' off: silence of the declared rate from the start', async (t) => {
  const r = rig(t, { callOptions: { silenceMode: 'continuous', sampleRate: 16000 } })
  r.socket.send(frames.uuid(randomUUID()))
  const first = r.socket.received
  t.ok(first.length >= 643, `a silence frame went out at once (${first.length} bytes)`)
  t.same([first[0], first.readUInt16BE(1)], [0x12, 640], 'kind 0x12, 640 bytes: 20 ms of 16 kHz')
  t.ok(first.subarray(3, 643).equals(Buffer.alloc(640)), 'zeros')
  const before = r.socket.received.length
  r.clock.advance(100)
  const more = r.socket.received.subarray(before)
  t.ok(more.length >= 643 * 4, `and every 20 ms after, with no audio in (${more.length} bytes in 100 ms)`)
  t.equal(more.length % 643, 0, 'whole frames')
  for (let at = 0; at < more.length; at += 643) t.same([more[at], more.readUInt16BE(at + 1)], [0x12, 640], `frame at ${at}`)
  await r.call.shutdown()
  t.match(r.events.at(-1)?.data, { silence_frames_sent: (r.socket.received.length - 3) / 643 }, 'call.ended counts them')
})

t.test('without the option the settings\' off holds: nothing is written to the stream', async (t) => {
  const r = rig(t, { callOptions: { sampleRate: 16000 } })
  r.socket.send(Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x12, 640)]))
  r.clock.advance(5000)
  t.equal(r.socket.received.length, 0)
  r.socket.hangUp()
  await r.call.closed()
  t.equal(r.events.at(-1)?.data.silence_frames_sent, 0)
})
