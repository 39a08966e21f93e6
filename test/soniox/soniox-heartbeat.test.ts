/**
 * SonioxSession's liveness work (src/soniox/soniox-session.ts) against the strict stand-in
 * (test/support/fake-soniox.ts): keepalives while the caller is silent, pings that find a
 * half-open link, the send-buffer bound, and which errors are worth a new session.
 *
 * The heartbeat runs on injected time (test/support/fake-timers.ts) while the socket is real, so
 * "10 s without audio" takes no wall time; one test runs on real timers with tens of ms.
 */
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { AppError, type ErrorCode } from '../../src/shared/errors.js'
import { SonioxSession, type SonioxSessionOptions } from '../../src/soniox/soniox-session.js'
import type { RecognitionOptions } from '../../src/soniox/start-message.js'
import { startFakeSoniox, type FakeSoniox, type FakeSonioxSession } from '../support/fake-soniox.js'
import { FakeTimers } from '../support/fake-timers.js'
import { waitUntil } from '../support/wait.js'
import { MINIMAL_RECOGNITION } from '../support/recognition.js'

const RATE = 8000
const FRAME_BYTES = 320 // 20 ms of 8 kHz s16le
const LONG = 10 * 60_000

const RECOGNITION: RecognitionOptions = { ...MINIMAL_RECOGNITION, languageHints: ['en'] }

interface Sent {
  text: boolean
  length: number
}

interface Harness {
  session: SonioxSession
  errors: AppError[]
  opened: Promise<void>
  closed: Promise<void>
  socket(): WebSocket
  /** Every frame the client handed to its socket, in order (start, audio, keepalive, end). */
  sent: Sent[]
  pings: () => number
  pongs: () => number
  /** Overrides the socket's bufferedAmount (undefined = the real value). */
  setBufferedAmount(value: number | undefined): void
}

function startSession(t: Test, url: string, overrides: Partial<SonioxSessionOptions>): Harness {
  const errors: AppError[] = []
  const sent: Sent[] = []
  let socket: WebSocket | undefined
  let pings = 0
  let pongs = 0
  let bufferedOverride: number | undefined
  let resolveOpened!: () => void
  let resolveClosed!: () => void
  const opened = new Promise<void>((resolve) => (resolveOpened = resolve))
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
  const options: SonioxSessionOptions = {
    url,
    apiKey: 'test-key',
    recognition: RECOGNITION,
    clientReferenceId: 'call-heartbeat',
    connectTimeoutMs: 5000,
    finishTimeoutMs: LONG,
    audioBatchMs: 0,
    maxBufferedAudioMs: 30_000,
    keepaliveMs: LONG,
    pingIntervalMs: LONG,
    pongTimeoutMs: LONG,
    createSocket: (socketUrl, headers, handshakeTimeoutMs) => {
      const ws = new WebSocket(socketUrl, { headers, handshakeTimeout: handshakeTimeoutMs, perMessageDeflate: false })
      const realBuffered = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'bufferedAmount')?.get
      Object.defineProperty(ws, 'bufferedAmount', { get: () => bufferedOverride ?? (realBuffered?.call(ws) as number) })
      const send = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void
      ws.send = ((data: unknown, ...rest: unknown[]) => {
        sent.push({ text: typeof data === 'string', length: typeof data === 'string' ? data.length : (data as Buffer).length })
        send(data, ...rest)
      }) as WebSocket['send']
      const ping = ws.ping.bind(ws)
      ws.ping = ((...args: Parameters<WebSocket['ping']>) => {
        pings++
        ping(...args)
      }) as WebSocket['ping']
      ws.on('pong', () => pongs++)
      ws.once('open', () => resolveOpened())
      ws.once('close', () => resolveClosed())
      socket = ws
      return ws
    },
    ...overrides,
  }
  const session = new SonioxSession(options, {
    onResult: () => {},
    onError: (error) => errors.push(error),
    onFinished: () => {},
  })
  t.teardown(() => session.close())
  return {
    session,
    errors,
    opened,
    closed,
    sent,
    socket: () => {
      if (!socket) throw new Error('no socket')
      return socket
    },
    pings: () => pings,
    pongs: () => pongs,
    setBufferedAmount: (value) => (bufferedOverride = value),
  }
}

function fakeTimerOptions(timers: FakeTimers): Partial<SonioxSessionOptions> {
  return { clock: timers }
}

async function fakeSoniox(t: Test): Promise<FakeSoniox> {
  const fake = await startFakeSoniox()
  t.teardown(() => fake.close())
  return fake
}

/** When our own ping's pong is back, the stand-in has handled every frame sent before it. */
function roundTrip(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    ws.once('pong', () => resolve())
    ws.ping()
  })
}

function onlySession(fake: FakeSoniox): FakeSonioxSession {
  const s = fake.sessions[0]
  if (!s) throw new Error('no session at the stand-in')
  return s
}

/** Opens a session on fake time, starts it and waits until the stand-in is streaming. */
async function streaming(t: Test, overrides: Partial<SonioxSessionOptions>) {
  const fake = await fakeSoniox(t)
  const timers = new FakeTimers()
  const h = startSession(t, fake.url, { ...fakeTimerOptions(timers), ...overrides })
  await h.opened
  h.session.start({ sampleRate: RATE })
  await roundTrip(h.socket())
  const s = onlySession(fake)
  t.equal(s.state, 'streaming')
  return { fake, timers, h, s }
}

// ---------------------------------------------------------------------------------------------

t.test('keepalives: sent when no audio flows, not while it flows', async (t) => {
  const { timers, h, s } = await streaming(t, { keepaliveMs: 1000 })
  const tick = timers.calls[0]?.ms ?? 0
  t.ok(tick > 0 && tick <= 500, `the heartbeat ticks at most every keepaliveMs/2 (${tick} ms)`)

  timers.advance(5000)
  await roundTrip(h.socket())
  t.equal(s.keepalives, 5, '5 s of silence, keepaliveMs 1000: 5 keepalives')
  t.strictSame(
    s.controlMessages.filter((m) => m.type === 'keepalive'),
    Array.from({ length: 5 }, () => ({ type: 'keepalive' })),
    'exactly {"type":"keepalive"}',
  )

  const timersBefore = timers.calls.length
  for (let i = 0; i < 500; i++) {
    h.session.sendAudio(Buffer.alloc(FRAME_BYTES))
    timers.advance(20)
  }
  await roundTrip(h.socket())
  t.equal(s.keepalives, 5, 'none during 10 s of audio every 20 ms')
  t.equal(s.audio.length, 500 * FRAME_BYTES)
  const armings = timers.calls.slice(timersBefore)
  t.ok(armings.length <= 10_000 / tick + 1, `one heartbeat arming per tick, not per frame (${armings.length} for 500 frames)`)
  t.ok(armings.length >= 10_000 / tick - 1, 'and the heartbeat kept ticking')
  t.equal(armings.filter((call) => !call.refresh).length, 0, 'each tick re-arms the same timer (refresh), none is created')

  timers.advance(1000 + tick)
  await roundTrip(h.socket())
  t.equal(s.keepalives, 6, 'one keepalive once the audio has stopped for keepaliveMs')
  t.strictSame(s.violations, [])
})

t.test('close() stops the heartbeat: the re-armed timer does not outlive the session', async (t) => {
  const { timers, h, s } = await streaming(t, { keepaliveMs: 1000 })
  timers.advance(3000) // a few ticks: the heartbeat timer has been refreshed several times
  t.ok(timers.calls.some((call) => call.refresh), 'the heartbeat was re-armed by refresh()')
  await roundTrip(h.socket())
  const keepalives = s.keepalives
  t.ok(keepalives >= 2, `keepalives flowed before close() (${keepalives})`)
  h.session.close()
  t.equal(timers.pending, 0, 'no timer left pending after close()')
  timers.advance(20_000)
  t.equal(timers.pending, 0, 'and none re-armed itself later')
  await h.closed
  t.equal(s.keepalives, keepalives, 'no keepalive after close()')
})

t.test('no keepalive before the start message', async (t) => {
  const fake = await fakeSoniox(t)
  const timers = new FakeTimers()
  const h = startSession(t, fake.url, { ...fakeTimerOptions(timers), keepaliveMs: 1000 })
  await h.opened
  timers.advance(10_000) // open, but no audio yet: no format, no start message
  await roundTrip(h.socket())
  t.equal(h.sent.length, 0, 'nothing sent while waiting for the first audio')
  h.session.start({ sampleRate: RATE })
  await roundTrip(h.socket())
  const s = onlySession(fake)
  t.equal(s.state, 'streaming', 'the start message was the first frame')
  t.strictSame(s.violations, [])
})

t.test('keepalive is never sent after the end-of-audio frame', async (t) => {
  const { timers, h, s } = await streaming(t, { keepaliveMs: 1000 })
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES))
  const done = h.session.finish()
  t.equal(h.session.state, 'finishing')
  // Before Soniox's `finished` can arrive, many heartbeat ticks pass with no audio.
  timers.advance(20_000)
  const endAt = h.sent.findIndex((f) => !f.text && f.length === 0)
  t.ok(endAt > 0, 'the end-of-audio frame was sent')
  t.strictSame(h.sent.slice(endAt + 1), [], 'nothing after it')
  await done
  await h.closed
  t.equal(s.endOfAudio, 'binary')
  t.equal(s.keepalives, 0)
  t.strictSame(s.violations, [], 'the stand-in saw no frame after the end of audio')
  t.strictSame(h.errors, [])
})

t.test('a half-open link (freeze) -> ERR_SONIOX_UNRESPONSIVE within pingInterval + pongTimeout + tick', async (t) => {
  const PING = 1000
  const PONG = 1000
  const { timers, h, s } = await streaming(t, { pingIntervalMs: PING, pongTimeoutMs: PONG })
  const tick = timers.calls[0]?.ms ?? 0

  // A live link: pings are answered, nothing fails.
  for (let i = 0; i < 20; i++) {
    timers.advance(tick)
    await waitUntil(() => h.pongs() >= h.pings(), 'the pong')
  }
  t.ok(h.pings() >= 4, `pinged every pingIntervalMs (${h.pings()} pings in ${20 * tick} ms)`)
  t.strictSame(h.errors, [], 'answered pings fail nothing')

  s.freeze()
  const frozenAt = timers.now()
  const pingsBefore = h.pings()
  let failedAt: number | undefined
  while (failedAt === undefined && timers.now() < frozenAt + 10_000) {
    timers.advance(10)
    await new Promise((resolve) => setImmediate(resolve))
    if (h.errors.length > 0) failedAt = timers.now()
  }
  t.equal(h.errors.length, 1, 'onError once')
  t.equal(h.errors[0]?.code, 'ERR_SONIOX_UNRESPONSIVE')
  const after = (failedAt ?? Infinity) - frozenAt
  t.ok(after <= PING + PONG + tick, `detected ${after} ms after the freeze (bound ${PING + PONG + tick})`)
  t.ok(after >= PONG, `not before a pong was overdue (${after} ms)`)
  t.equal(h.pings() - pingsBefore, 1, 'one unanswered ping, no ping while one is outstanding')
  t.equal(h.session.state, 'failed')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(h.errors.length, 1, 'nothing reported after it')
  t.equal(h.socket().readyState, WebSocket.CLOSED, 'the dead link is torn down, not left closing')
})

t.test('the same on real timers (tens of ms)', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { pingIntervalMs: 60, pongTimeoutMs: 60 })
  await h.opened
  h.session.start({ sampleRate: RATE })
  await roundTrip(h.socket())
  const frozenAt = Date.now()
  onlySession(fake).freeze()
  await waitUntil(() => h.errors.length > 0, 'ERR_SONIOX_UNRESPONSIVE', 30_000)
  const after = Date.now() - frozenAt
  t.equal(h.errors[0]?.code, 'ERR_SONIOX_UNRESPONSIVE')
  // The bound (ping + pong + tick) is proven on the fake clock above; real timers on a loaded
  // machine only run late, never early.
  t.ok(after >= 60, `not before a pong was overdue (detected after ${after} ms)`)
})

t.test('a send buffer past its bound -> ERR_SONIOX_BACKPRESSURE', async (t) => {
  // The bound is maxBufferedAudioMs + connectTimeoutMs of audio: (100 + 2000) ms at 8 kHz = 16 bytes/ms.
  const bound = (100 + 2000) * 16
  const { h } = await streaming(t, { maxBufferedAudioMs: 100, connectTimeoutMs: 2000 })
  h.setBufferedAmount(bound - FRAME_BYTES)
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
  t.strictSame(h.errors, [], 'exactly at the bound is still fine')
  h.setBufferedAmount(bound - FRAME_BYTES + 1)
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
  t.equal(h.errors.length, 1)
  t.equal(h.errors[0]?.code, 'ERR_SONIOX_BACKPRESSURE')
  t.equal(h.session.state, 'failed')
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
  t.equal(h.errors.length, 1, 'reported once')
  t.equal(h.session.bytesSent, FRAME_BYTES, 'the frame that would pass the bound was not sent')
})
