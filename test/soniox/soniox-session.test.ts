/**
 * src/soniox/soniox-session.ts against the strict Soniox stand-in (test/support/fake-soniox.ts),
 * plus a plain `ws` server where the stand-in cannot misbehave the way a test needs.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import type { SonioxResult, SonioxToken } from '../../src/soniox/messages.js'
import type { AppError } from '../../src/shared/errors.js'
import { createGuard } from '../../src/shared/guard.js'
import { systemClock, type ClockTimer } from '../../src/shared/clock.js'
import { BATCH_DEADLINE_SLACK_MS, SonioxSession, type SonioxSessionOptions } from '../../src/soniox/soniox-session.js'
import { SonioxError } from '../../src/soniox/soniox-error.js'
import type { RecognitionOptions } from '../../src/soniox/start-message.js'
import { TranscriptAssembler } from '../../src/soniox/transcript-assembler.js'
import { FakeTimers } from '../support/fake-timers.js'
import { startFakeSoniox, type FakeSoniox, type FakeSonioxSession } from '../support/fake-soniox.js'
import { MINIMAL_RECOGNITION } from '../support/recognition.js'

const KEY = 'test-key'
const RATE = 8000
/** 20 ms of 8 kHz s16le: one typical AudioSocket frame. */
const FRAME_BYTES = 320

const RECOGNITION: RecognitionOptions = { ...MINIMAL_RECOGNITION, languageHints: ['en'] }

// ---------------------------------------------------------------------------------------------
// Helpers

type Segment = { tone: number; ms: number } | { silence: number }

/** s16le PCM from tone bursts and silences; the phase runs on, so every window differs. */
function pcm(segments: Segment[]): Buffer {
  const parts: Buffer[] = []
  let index = 0
  for (const seg of segments) {
    const ms = 'tone' in seg ? seg.ms : seg.silence
    const samples = Math.round((RATE * ms) / 1000)
    const buf = Buffer.alloc(samples * 2)
    for (let i = 0; i < samples; i++, index++) {
      const value = 'tone' in seg ? Math.round(8000 * Math.sin((2 * Math.PI * seg.tone * index) / RATE)) : 0
      buf.writeInt16LE(value, i * 2)
    }
    parts.push(buf)
  }
  return Buffer.concat(parts)
}

/** Speech with pauses: several words and at least one endpoint in the stand-in. */
const SPEECH = pcm([{ tone: 440, ms: 1600 }, { silence: 800 }, { tone: 660, ms: 2400 }, { silence: 400 }, { tone: 300, ms: 1200 }])

function frames(audio: Buffer, size = FRAME_BYTES): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < audio.length; i += size) out.push(audio.subarray(i, i + size))
  return out
}

/** A Soniox error message becomes a SonioxError, its details fixed at creation. */
function sonioxErrorOf(error: AppError): SonioxError {
  if (error instanceof SonioxError) return error
  throw new Error(`expected a SonioxError, got ${error.name} ${error.code}`)
}

type LogEntry = { kind: 'result'; result: SonioxResult } | { kind: 'error'; error: AppError } | { kind: 'finished' }

interface Harness {
  session: SonioxSession
  log: LogEntry[]
  results: SonioxResult[]
  errors: AppError[]
  /** Resolves with the first onError. */
  firstError: Promise<AppError>
  /** Resolves at the first onResult. */
  firstResult: Promise<void>
  /** The client socket (only when the test hook created it). */
  socket: () => WebSocket
  /** The client socket's 'open' event. */
  opened: Promise<void>
  /** The client socket's 'close' event: after it, nothing more can arrive. */
  closed: Promise<void>
}

function options(url: string, overrides: Partial<SonioxSessionOptions> = {}): SonioxSessionOptions {
  return {
    url,
    apiKey: KEY,
    recognition: RECOGNITION,
    clientReferenceId: 'call-1',
    connectTimeoutMs: 5000,
    finishTimeoutMs: 5000,
    audioBatchMs: 0,
    maxBufferedAudioMs: 30_000,
    keepaliveMs: 5000,
    pingIntervalMs: 5000,
    pongTimeoutMs: 5000,
    ...overrides,
  } as SonioxSessionOptions
}

/**
 * A session whose socket is created exactly as the default does, but captured so the test can
 * await its events. `hookSocket: false` leaves the module's own default socket factory in place.
 */
function startSession(t: Test, url: string, overrides: Partial<SonioxSessionOptions> = {}, hookSocket = true): Harness {
  const log: LogEntry[] = []
  const results: SonioxResult[] = []
  const errors: AppError[] = []
  let resolveError!: (e: AppError) => void
  let resolveResult!: () => void
  const firstError = new Promise<AppError>((resolve) => (resolveError = resolve))
  const firstResult = new Promise<void>((resolve) => (resolveResult = resolve))
  let socket: WebSocket | undefined
  let resolveOpened!: () => void
  let resolveClosed!: () => void
  const opened = new Promise<void>((resolve) => (resolveOpened = resolve))
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve))

  const createSocket = (socketUrl: string, headers: Record<string, string>, handshakeTimeoutMs: number): WebSocket => {
    socket = new WebSocket(socketUrl, { headers, handshakeTimeout: handshakeTimeoutMs, perMessageDeflate: false })
    socket.once('open', () => resolveOpened())
    socket.once('close', () => resolveClosed())
    return socket
  }
  const session = new SonioxSession(
    { ...options(url, overrides), ...(hookSocket ? { createSocket } : {}) },
    {
      onResult(result) {
        log.push({ kind: 'result', result })
        results.push(result)
        resolveResult()
      },
      onError(error) {
        log.push({ kind: 'error', error })
        errors.push(error)
        resolveError(error)
      },
      onFinished() {
        log.push({ kind: 'finished' })
      },
    },
  )
  t.teardown(() => session.close())
  return {
    session,
    log,
    results,
    errors,
    firstError,
    firstResult,
    socket: () => {
      if (!socket) throw new Error('no hooked socket')
      return socket
    },
    opened,
    closed,
  }
}

async function fakeSoniox(t: Test): Promise<FakeSoniox> {
  const fake = await startFakeSoniox()
  t.teardown(() => fake.close())
  return fake
}

/**
 * Round trip over the client socket: when the pong is back, the server has received and handled
 * every frame the client sent before the ping (one TCP stream, processed in order).
 */
function roundTrip(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    ws.once('pong', () => resolve())
    ws.ping()
  })
}

function onlySession(t: Test, fake: FakeSoniox): FakeSonioxSession {
  t.equal(fake.sessions.length, 1, 'one connection to the stand-in')
  const s = fake.sessions[0]
  if (!s) throw new Error('no session')
  return s
}

/** Final tokens (markers included) delivered through onResult, in order. */
function deliveredFinals(results: SonioxResult[]): SonioxToken[] {
  return results.flatMap((r) => r.tokens.filter((tok) => tok.is_final))
}

function assemble(results: SonioxResult[]): { transcript: string; utterances: string[] } {
  const a = new TranscriptAssembler()
  const texts: string[] = []
  for (const r of results) for (const u of a.push(r)) texts.push(u.text)
  const last = a.flush()
  if (last) texts.push(last.text)
  return { transcript: a.transcript, utterances: texts.map((s) => s.trim()).filter((s) => s !== '') }
}

/** A plain WebSocket server on port 0 that records what it receives and never answers. */
async function silentServer(t: Test, onConnection?: (ws: WebSocket) => void) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  const received: Array<{ data: Buffer; isBinary: boolean }> = []
  let resolveClientClosed!: () => void
  const clientClosed = new Promise<void>((resolve) => (resolveClientClosed = resolve))
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => received.push({ data: data as Buffer, isBinary }))
    ws.on('close', () => resolveClientClosed())
    onConnection?.(ws)
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => resolve())
      }),
  )
  const { port } = wss.address() as AddressInfo
  return { url: `ws://127.0.0.1:${port}/`, received, clientClosed }
}

// ---------------------------------------------------------------------------------------------

t.test('connects before the format is known and sends nothing until start()', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  t.equal(h.session.state, 'connecting')
  await h.opened
  t.equal(h.session.state, 'open')
  h.session.sendAudio(SPEECH.subarray(0, FRAME_BYTES))
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.state, 'awaiting-start', 'the stand-in is still waiting for the start message')
  t.equal(s.startMessage, undefined, 'no start message yet')
  t.equal(s.audio.length, 0, 'no audio yet')
  t.strictSame(s.violations, [])

  h.session.start({ sampleRate: RATE })
  t.equal(h.session.state, 'streaming')
  await roundTrip(h.socket())
  t.equal(s.state, 'streaming')
  t.match(s.startMessage, { model: 'stt-rt-v6', sample_rate: RATE, client_reference_id: 'call-1' })
  t.equal(s.audio.length, FRAME_BYTES, 'the queued frame followed the start message')
  h.session.start({ sampleRate: 16000 })
  await h.session.finish()
  t.equal(s.startMessage?.sample_rate, RATE, 'a second start() changes nothing')
  t.strictSame(s.violations, [])
})

t.test('audio before open / before start() is queued as copies and flushed in order after the start message', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  const all = frames(SPEECH.subarray(0, 40 * FRAME_BYTES))
  const originals = Buffer.concat(all.map((f) => Buffer.from(f)))
  const sources = all.map((f) => Buffer.from(f)) // the buffers handed over, which the test then scribbles on

  // 10 frames while connecting, 10 after open but before start(), 20 while streaming.
  for (const f of sources.slice(0, 10)) h.session.sendAudio(f)
  t.equal(h.session.state, 'connecting')
  await h.opened
  for (const f of sources.slice(10, 20)) h.session.sendAudio(f)
  // The caller's buffers may be views of socket chunks that get reused: scribble on them.
  for (const f of sources.slice(0, 20)) f.fill(0x7f)
  h.session.start({ sampleRate: RATE })
  for (const f of sources.slice(20)) h.session.sendAudio(f)
  await h.session.finish()

  const s = onlySession(t, fake)
  t.strictSame(s.violations, [], 'the start message came first (a binary first frame is a violation)')
  t.equal(s.audio.length, originals.length)
  t.ok(s.audio.equals(originals), 'the stand-in received the original bytes, in order')
  t.equal(s.binaryFrames, 1 + 20, 'the 20 frames held until the start message in one message, then one message per frame without batching')
  t.equal(h.session.bytesSent, originals.length)
  t.equal(h.session.bytesDropped, 0)
})

t.test('start() and finish() before the socket opens: everything goes out in order once it does', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  for (const f of frames(SPEECH)) h.session.sendAudio(f)
  h.session.start({ sampleRate: RATE })
  t.equal(h.session.state, 'connecting')
  await h.session.finish()
  t.equal(h.session.state, 'finished')
  t.strictSame(h.errors, [])
  const s = onlySession(t, fake)
  t.strictSame(s.violations, [])
  t.ok(s.audio.equals(SPEECH))
  t.equal(s.endOfAudio, 'binary')
  t.equal(assemble(h.results).transcript, s.transcript)
})

t.test('Authorization: Bearer header, no api_key; finish() delivers every final token, then resolves', async (t) => {
  const fake = await fakeSoniox(t)
  // The module's own socket factory: this is what production uses.
  const h = startSession(t, fake.url, {}, false)
  h.session.start({ sampleRate: RATE })
  for (const f of frames(SPEECH)) h.session.sendAudio(f)

  let finishedBeforeResolve = false
  await h.session.finish().then(() => {
    finishedBeforeResolve = h.log.some((e) => e.kind === 'finished')
  })
  t.ok(finishedBeforeResolve, 'finish() resolved only after onFinished')
  t.equal(h.session.state, 'finished')
  t.strictSame(h.errors, [], 'no error')
  t.equal(h.log.filter((e) => e.kind === 'finished').length, 1, 'onFinished once')
  t.equal(h.log.at(-1)?.kind, 'finished', 'nothing after onFinished')
  t.equal(h.results.at(-1)?.finished, true, 'the finished result itself went through onResult first')

  const [s] = await fake.waitForSessions(1)
  if (!s) throw new Error('no session')
  t.equal(s.headers.authorization, `Bearer ${KEY}`)
  t.notOk(s.startMessage && 'api_key' in s.startMessage, 'no api_key in the start message')
  t.strictSame(s.deprecations, [])
  t.strictSame(s.violations, [])
  t.equal(s.endOfAudio, 'binary', 'end of audio was an empty binary frame')
  t.equal(s.closeInitiator, 'server', 'the client did not close before "finished"')

  t.ok(s.transcript.length > 0, 'the stand-in recognised words')
  t.strictSame(deliveredFinals(h.results), s.finalTokens, 'every final token the stand-in sent reached onResult')
  const assembled = assemble(h.results)
  t.equal(assembled.transcript, s.transcript)
  t.strictSame(assembled.utterances, s.utterances)
  t.equal(h.session.bytesSent, SPEECH.length)

  const entries = h.log.length
  await h.session.finish()
  t.equal(h.log.length, entries, 'finish() again resolves without any further callback')
})

t.test('finish() twice while finishing: both resolve after finished, one end-of-audio frame', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  h.session.start({ sampleRate: RATE })
  for (const f of frames(SPEECH.subarray(0, 16000))) h.session.sendAudio(f)
  const first = h.session.finish()
  const second = h.session.finish()
  await Promise.all([first, second])
  t.equal(h.session.state, 'finished')
  const [s] = await fake.waitForSessions(1)
  t.strictSame(s?.violations, [], 'a second empty frame would be "frame after end of audio"')
  t.strictSame(h.errors, [])
})

t.test('finish() before any audio or start() closes without a session error', async (t) => {
  t.test('once open', async (t) => {
    const fake = await fakeSoniox(t)
    const h = startSession(t, fake.url)
    await h.opened
    await h.session.finish()
    t.equal(h.session.state, 'closed')
    await h.closed
    const [s] = await fake.waitForSessions(1)
    t.strictSame(h.errors, [])
    t.strictSame(h.log, [])
    t.equal(s?.startMessage, undefined, 'no session was started')
    t.strictSame(s?.violations, [])
    t.equal(s?.closeInitiator, 'client')
  })
  t.test('still connecting', async (t) => {
    const fake = await fakeSoniox(t)
    const h = startSession(t, fake.url)
    await h.session.finish()
    t.equal(h.session.state, 'closed')
    await h.closed
    t.strictSame(h.errors, [], 'aborting the handshake is not an error')
    t.strictSame(h.log, [])
  })
})

t.test('a server error at start (401): onError once, ERR_SONIOX_SERVER_ERROR with details, no result', async (t) => {
  const fake = await fakeSoniox(t)
  fake.rejectNextSessions(1, { code: 401, type: 'unauthenticated', message: 'Invalid API key.' })
  const h = startSession(t, fake.url)
  h.session.start({ sampleRate: RATE })
  for (const f of frames(SPEECH)) h.session.sendAudio(f)
  const error = sonioxErrorOf(await h.firstError)
  t.equal(error.code, 'ERR_SONIOX_SERVER_ERROR')
  t.equal(error.sonioxCode, 401)
  t.equal(error.sonioxType, 'unauthenticated')
  t.type(error.requestId, 'string', 'the request id is kept for support')
  t.match(error.message, /401.*Invalid API key/)
  t.equal(h.session.state, 'failed')
  await h.session.finish() // resolves at once on a failed session
  await h.closed
  t.equal(h.errors.length, 1, 'onError exactly once')
  t.strictSame(h.results, [], 'no result')
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
  t.equal(h.errors.length, 1, 'audio after the failure does not throw or report again')
})

t.test('a server error mid-stream (503): onError once, nothing after it', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  h.session.start({ sampleRate: RATE })
  const all = frames(SPEECH)
  for (const f of all.slice(0, all.length / 2)) h.session.sendAudio(f)
  await h.firstResult
  const s = onlySession(t, fake)
  s.fail(503, 'service_unavailable', 'Cannot continue request (code 1). Please restart the request.')
  // Keep streaming as a call would: the session must swallow it.
  for (const f of all.slice(all.length / 2)) h.session.sendAudio(f)
  const error = sonioxErrorOf(await h.firstError)
  t.equal(error.code, 'ERR_SONIOX_SERVER_ERROR')
  t.equal(error.sonioxCode, 503)
  t.equal(error.sonioxType, 'service_unavailable')
  await h.closed
  t.equal(h.errors.length, 1, 'onError exactly once')
  const errorAt = h.log.findIndex((e) => e.kind === 'error')
  t.equal(errorAt, h.log.length - 1, 'no result or finished after the error')
  t.ok(h.results.length > 0, 'results before the error were delivered')
  t.equal(h.session.state, 'failed')
  await h.session.finish()
  t.equal(h.log.length, errorAt + 1)
})

t.test('the connection dropping mid-stream: onError ERR_SONIOX_CLOSED once', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url)
  h.session.start({ sampleRate: RATE })
  for (const f of frames(SPEECH.subarray(0, 16000))) h.session.sendAudio(f)
  await h.firstResult
  onlySession(t, fake).drop()
  const error = await h.firstError
  t.equal(error.code, 'ERR_SONIOX_CLOSED')
  await h.closed
  t.equal(h.errors.length, 1, 'onError exactly once (socket error and close do not both report)')
  t.equal(h.session.state, 'failed')
  t.notOk(h.log.some((e) => e.kind === 'finished'))
  await h.session.finish()
})

t.test('a closed port: onError ERR_SONIOX_CONNECT once', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))

  const h = startSession(t, `ws://127.0.0.1:${port}/transcribe-websocket`)
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
  h.session.start({ sampleRate: RATE })
  const error = await h.firstError
  t.equal(error.code, 'ERR_SONIOX_CONNECT')
  t.ok(error.cause instanceof Error, 'the socket error is kept as the cause')
  await h.closed
  t.equal(h.errors.length, 1)
  t.equal(h.session.state, 'failed')
  await h.session.finish()
  t.strictSame(h.results, [])
})

t.test('a server that accepts TCP but never upgrades: ERR_SONIOX_CONNECT after connectTimeoutMs', async (t) => {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => sockets.add(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  const { port } = server.address() as AddressInfo
  const h = startSession(t, `ws://127.0.0.1:${port}/`, { connectTimeoutMs: 50 })
  h.session.start({ sampleRate: RATE })
  const error = await h.firstError
  t.equal(error.code, 'ERR_SONIOX_CONNECT')
  await h.closed
  t.equal(h.errors.length, 1)
  t.equal(h.session.state, 'failed')
})

t.test('no "finished" in time: ERR_SONIOX_FINISH_TIMEOUT, finish() resolves, socket closed', async (t) => {
  const server = await silentServer(t)
  const h = startSession(t, server.url, { finishTimeoutMs: 30 })
  h.session.start({ sampleRate: RATE })
  for (const f of frames(SPEECH.subarray(0, 3200))) h.session.sendAudio(f)
  await h.opened
  await h.session.finish()
  t.equal(h.errors.length, 1)
  t.equal(h.errors[0]?.code, 'ERR_SONIOX_FINISH_TIMEOUT')
  t.equal(h.session.state, 'failed')
  await server.clientClosed
  const last = server.received.at(-1)
  t.equal(last?.isBinary, true, 'the end of audio was sent as a binary frame')
  t.equal(last?.data.length, 0, 'an empty one')
  t.equal(server.received[0]?.isBinary, false, 'the start message is text')
  t.equal(server.received.length, 1 + 1 + 1, 'start + the 10 frames held while connecting, in one message + end')
  await h.closed
  t.equal(h.errors.length, 1, 'the close that follows is not reported again')
})

t.test('the finish timer goes through the injected clock', async (t) => {
  const server = await silentServer(t)
  const requested: number[] = []
  let fire: (() => void) | undefined
  const h = startSession(t, server.url, {
    finishTimeoutMs: 12_345,
    clock: {
      now: Date.now,
      setTimeout: (fn, ms) => {
        requested.push(ms)
        // The heartbeat uses the same clock; keep the finish timer's callback.
        if (ms === 12_345) fire = fn
        return { refresh() {}, unref() {} }
      },
      clearTimeout: () => {},
    },
  })
  h.session.start({ sampleRate: RATE })
  await h.opened
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 3))
  const done = h.session.finish()
  t.equal(requested.filter((ms) => ms === 12_345).length, 1, 'one finish timer, of finishTimeoutMs')
  t.ok(fire, 'a timer was set')
  fire?.()
  await done
  t.equal(h.errors[0]?.code, 'ERR_SONIOX_FINISH_TIMEOUT')
})

t.test('the finish timer is cleared once Soniox has finished', async (t) => {
  const fake = await fakeSoniox(t)
  const set: ClockTimer[] = []
  const cleared: ClockTimer[] = []
  const h = startSession(t, fake.url, {
    finishTimeoutMs: 12_345,
    clock: {
      now: Date.now,
      setTimeout: (fn, ms) => {
        const handle = systemClock.setTimeout(fn, ms)
        // The heartbeat uses the same clock; track only the finish timer.
        if (ms === 12_345) set.push(handle)
        return handle
      },
      clearTimeout: (handle) => {
        if (handle !== undefined) cleared.push(handle)
        systemClock.clearTimeout(handle)
      },
    },
  })
  h.session.start({ sampleRate: RATE })
  h.session.sendAudio(SPEECH.subarray(0, 3200))
  await h.session.finish()
  t.equal(set.length, 1, 'one finish timer')
  t.ok(set[0] && cleared.includes(set[0]), 'and it was cleared')
  t.strictSame(h.errors, [])
})

t.test('close() while finish() is pending resolves it without callbacks', async (t) => {
  const server = await silentServer(t)
  const h = startSession(t, server.url)
  h.session.start({ sampleRate: RATE })
  h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 5))
  await h.opened
  const done = h.session.finish()
  t.equal(h.session.state, 'finishing')
  h.session.close()
  await done
  await server.clientClosed
  t.strictSame(h.log, [], 'no onError for a close the owner asked for')
  t.equal(h.session.state, 'closed')
})

t.test('a server frame that is not JSON: ERR_SONIOX_BAD_MESSAGE', async (t) => {
  const server = await silentServer(t, (ws) => ws.once('message', () => ws.send('<html>502</html>')))
  const h = startSession(t, server.url)
  h.session.start({ sampleRate: RATE })
  const error = await h.firstError
  t.equal(error.code, 'ERR_SONIOX_BAD_MESSAGE')
  await h.closed
  t.equal(h.errors.length, 1)
  t.strictSame(h.results, [])
})

t.test('audioBatchMs joins chunks into fewer, larger frames with the same bytes', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { audioBatchMs: 100 }) // 1600 bytes at 8 kHz
  const audio = SPEECH.subarray(0, 21 * FRAME_BYTES)
  const chunks = frames(audio)
  t.equal(chunks.length, 21)
  await h.opened
  h.session.start({ sampleRate: RATE })
  for (const f of chunks) h.session.sendAudio(f)
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.binaryFrames, 4, 'four 100 ms frames so far; the 21st chunk waits for the batch to fill')
  t.equal(s.audio.length, 4 * 1600)
  await h.session.finish()
  t.equal(s.binaryFrames, 5, 'the remainder is flushed before the end of audio')
  t.ok(s.audio.equals(audio), 'same bytes, same order')
  t.strictSame(s.violations, [])
  t.equal(h.session.bytesSent, audio.length)
})

t.test('audioBatchMs with audio queued before start', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { audioBatchMs: 100 })
  const audio = SPEECH.subarray(0, 30 * FRAME_BYTES)
  const sources = frames(audio).map((f) => Buffer.from(f))
  for (const f of sources.slice(0, 10)) h.session.sendAudio(f)
  for (const f of sources.slice(0, 10)) f.fill(0)
  h.session.start({ sampleRate: RATE })
  await h.opened
  for (const f of sources.slice(10)) h.session.sendAudio(f)
  await h.session.finish()
  const s = onlySession(t, fake)
  t.ok(s.audio.equals(audio), 'same bytes, same order')
  t.ok(s.binaryFrames < 30, `fewer frames than chunks (${s.binaryFrames})`)
  t.strictSame(s.violations, [])
})

t.test('audioBatchMs: a chunk as large as a batch goes as its own message, after what is held', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { audioBatchMs: 100 }) // 1600 bytes at 8 kHz
  const audio = SPEECH.subarray(0, 4000)
  await h.opened
  h.session.start({ sampleRate: RATE })
  h.session.sendAudio(audio.subarray(0, 1000))
  h.session.sendAudio(audio.subarray(1000))
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.binaryFrames, 2, 'the 1000 bytes held, then the 3000-byte chunk')
  t.ok(s.audio.equals(audio), 'same bytes, same order')
  await h.session.finish()
  t.equal(s.binaryFrames, 2, 'nothing was left to flush')
})

t.test('audioBatchMs: batches hold whole chunks, so an odd-sized frame does not shift the batches after it', async (t) => {
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { audioBatchMs: 60 }) // 960 bytes at 8 kHz
  await h.opened
  h.session.start({ sampleRate: RATE })
  // As Asterisk sends between two playbacks: a short frame, then 20 ms frames again.
  const audio = SPEECH.subarray(0, 182 + 6 * FRAME_BYTES)
  h.session.sendAudio(audio.subarray(0, 182))
  for (const chunk of frames(audio.subarray(182))) h.session.sendAudio(chunk)
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.binaryFrames, 2, '182 + 3 x 320 bytes, then 3 x 320 bytes')
  t.equal(s.audio.length, audio.length, 'the last frame went out with its batch, none of it held back')
  t.ok(s.audio.equals(audio))
  await h.session.finish()
})

t.test('audioBatchMs: a partial batch goes out audioBatchMs + BATCH_DEADLINE_SLACK_MS after its first audio when the audio pauses', async (t) => {
  const fake = await fakeSoniox(t)
  const clock = new FakeTimers()
  const h = startSession(t, fake.url, { audioBatchMs: 60, clock }) // 960 bytes at 8 kHz
  await h.opened
  h.session.start({ sampleRate: RATE })
  const chunks = frames(SPEECH.subarray(0, 4 * FRAME_BYTES))
  // Four frames 20 ms apart, then the audio pauses (as between two of Asterisk's playbacks).
  for (const [i, chunk] of chunks.entries()) {
    if (i > 0) clock.advance(20)
    h.session.sendAudio(chunk)
  }
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.binaryFrames, 1, 'the first three frames filled a batch')
  // The fourth frame opened a batch at the last advance; its deadline is 60 + 20 ms later.
  clock.advance(60 + BATCH_DEADLINE_SLACK_MS - 1)
  await roundTrip(h.socket())
  t.equal(s.binaryFrames, 1, 'not before the deadline')
  clock.advance(1)
  await roundTrip(h.socket())
  t.equal(s.binaryFrames, 2, 'the frame before the pause is sent at the deadline, not with the next frame')
  t.ok(s.audio.equals(SPEECH.subarray(0, 4 * FRAME_BYTES)))
  await h.session.finish()
  t.strictSame(s.violations, [])
})

t.test('audioBatchMs: while frames flow every 20 ms, the deadline sends no partial batch', async (t) => {
  const fake = await fakeSoniox(t)
  const clock = new FakeTimers()
  const h = startSession(t, fake.url, { audioBatchMs: 60, clock })
  await h.opened
  h.session.start({ sampleRate: RATE })
  const audio = SPEECH.subarray(0, 90 * FRAME_BYTES)
  for (const chunk of frames(audio)) {
    h.session.sendAudio(chunk)
    clock.advance(20)
  }
  await roundTrip(h.socket())
  const s = onlySession(t, fake)
  t.equal(s.audio.length, audio.length)
  t.equal(s.binaryFrames, 30, '30 messages of 960 bytes for 90 frames: no partial batch went out early')
  await h.session.finish()
})

t.test('maxBufferedAudioMs: audio beyond the bound while connecting fails the session, nothing is silently dropped', async (t) => {
  const fake = await fakeSoniox(t)
  // The bound is maxBufferedAudioMs + connectTimeoutMs of audio: 2050 ms at 8 kHz = 32800 bytes = 102.5 frames.
  const h = startSession(t, fake.url, { maxBufferedAudioMs: 50, connectTimeoutMs: 2000 })
  h.session.start({ sampleRate: RATE })
  const audio = Buffer.alloc(110 * FRAME_BYTES, 3)
  for (const f of frames(audio)) h.session.sendAudio(f)
  const err = await h.firstError
  t.equal(err.code, 'ERR_SONIOX_BACKPRESSURE', 'the session fails (ResilientTranscriber resumes it from its own buffer)')
  t.equal(h.session.state, 'failed')
  t.equal(h.errors.length, 1, 'one error')
  t.equal(h.session.bytesSent, 0, 'no audio went out on the failed session, so it holds no hole')
})

t.test('maxBufferedAudioMs: the whole queue within the bound is sent once the socket opens', async (t) => {
  // Regression guard for the flush after the start message: the bound applies to what waits, and
  // audio that was accepted into the queue must not be dropped on the way out.
  const fake = await fakeSoniox(t)
  const h = startSession(t, fake.url, { maxBufferedAudioMs: 1000 }) // bound: (1000 + 5000 connect) ms = 96000 bytes
  const audio = SPEECH.subarray(0, 50 * FRAME_BYTES) // 1 s: within the bound
  for (const f of frames(audio)) h.session.sendAudio(f)
  t.equal(h.session.bytesDropped, 0, 'all of it fits the bound while connecting')
  h.session.start({ sampleRate: RATE })
  await h.session.finish()
  const s = onlySession(t, fake)
  t.equal(h.session.bytesDropped, 0, 'nothing dropped at the flush')
  t.equal(s.audio.length, audio.length)
})

t.test('close() is idempotent and no callback fires after it', async (t) => {
  t.test('mid-stream, with results in flight', async (t) => {
    const fake = await fakeSoniox(t)
    const h = startSession(t, fake.url)
    h.session.start({ sampleRate: RATE })
    for (const f of frames(SPEECH)) h.session.sendAudio(f)
    await h.firstResult
    const seen = h.log.length
    h.session.close()
    h.session.close()
    t.equal(h.session.state, 'closed')
    h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
    await h.session.finish()
    await h.closed
    await fake.waitForSessions(1)
    t.equal(h.log.length, seen, 'no onResult/onError/onFinished after close()')
    t.equal(h.session.state, 'closed')
  })
  t.test('while connecting', async (t) => {
    const fake = await fakeSoniox(t)
    const h = startSession(t, fake.url)
    h.session.start({ sampleRate: RATE })
    h.session.sendAudio(Buffer.alloc(FRAME_BYTES, 1))
    h.session.close()
    h.session.close()
    await h.closed
    t.strictSame(h.log, [], 'aborting the handshake reports nothing')
    t.equal(h.session.state, 'closed')
  })
  t.test('after finished', async (t) => {
    const fake = await fakeSoniox(t)
    const h = startSession(t, fake.url)
    h.session.start({ sampleRate: RATE })
    h.session.sendAudio(SPEECH.subarray(0, 3200))
    await h.session.finish()
    const seen = h.log.length
    h.session.close()
    h.session.close()
    await h.closed
    t.equal(h.log.length, seen)
    t.equal(h.session.state, 'closed')
  })
})

t.test("an exception inside the session's own WebSocket handlers goes to the call's guard, not the process", async (t) => {
  const fake = await fakeSoniox(t)
  const faults: unknown[] = []
  let resolveFault!: () => void
  const faulted = new Promise<void>((resolve) => (resolveFault = resolve))
  const guard = createGuard((err) => {
    faults.push(err)
    resolveFault()
  })
  // A context that cannot be serialised makes building the start message throw in the 'open' handler.
  const circular: Record<string, unknown> = {}
  circular.self = circular
  const h = startSession(t, fake.url, { guard, recognition: { ...RECOGNITION, context: circular as never } })
  h.session.start({ sampleRate: RATE })
  await faulted
  t.match(faults, [{ name: 'TypeError', message: /circular/i }])
})
