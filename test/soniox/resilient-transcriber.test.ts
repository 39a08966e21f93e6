/**
 * src/soniox/resilient-transcriber.ts with scripted sessions (no sockets) and hand-driven time:
 * which session gets which call bytes, how results are shifted into call time, when a new
 * session is opened, when it gives up, and what the stats say.
 *
 * Audio is 8 kHz s16le: 1 ms = 16 bytes, 20 ms = 320 bytes. Every byte encodes its call position
 * (mod 251), so "session N received call audio a..b ms" is checked byte for byte.
 */
import t, { type Test } from 'tap'
import { createLogger } from '../../src/shared/logger.js'
import { AppError, type ErrorCode } from '../../src/shared/errors.js'
import type { SonioxResult, SonioxToken } from '../../src/soniox/messages.js'
import {
  ResilientTranscriber,
  type ResilientTranscriberOptions,
  type SessionLike,
} from '../../src/soniox/resilient-transcriber.js'
import { AUDIO_RING_BLOCK_BYTES, sharedAudioBlockPool } from '../../src/soniox/audio-ring.js'
import { SonioxHealth } from '../../src/soniox/soniox-health.js'
import type { SonioxSessionHandlers } from '../../src/soniox/soniox-session.js'
import { SonioxError, sonioxCodeOf } from '../../src/soniox/soniox-error.js'
import { FakeTimers } from '../support/fake-timers.js'

const RATE = 8000
const BYTES_PER_MS = 16
const FRAME_MS = 20

/** Call audio from `fromMs` to `toMs`, each byte = its call position mod 251. */
function callAudio(fromMs: number, toMs: number): Buffer {
  const from = fromMs * BYTES_PER_MS
  const b = Buffer.alloc((toMs - fromMs) * BYTES_PER_MS)
  for (let i = 0; i < b.length; i++) b[i] = (from + i) % 251
  return b
}

// ---------------------------------------------------------------------------------------------
// A scripted session

type SessionCall = 'start' | 'audio' | 'finish' | 'close'

class ScriptedSession implements SessionLike {
  readonly calls: SessionCall[] = []
  readonly chunks: Buffer[] = []
  format: { sampleRate: number } | undefined
  finishCalls = 0
  closeCalls = 0

  constructor(
    readonly index: number,
    readonly handlers: SonioxSessionHandlers,
  ) {}

  start(format: { sampleRate: number }): void {
    this.calls.push('start')
    this.format = format
  }

  sendAudio(chunk: Buffer): void {
    this.calls.push('audio')
    this.chunks.push(Buffer.from(chunk))
  }

  finish(): Promise<void> {
    this.calls.push('finish')
    this.finishCalls++
    return Promise.resolve()
  }

  close(): void {
    this.calls.push('close')
    this.closeCalls++
  }

  get audio(): Buffer {
    return Buffer.concat(this.chunks)
  }

  /** Emits a result (timestamps in this session's own time). */
  result(tokens: SonioxToken[], finalAudioProcMs?: number): SonioxResult {
    const result: SonioxResult = { kind: 'result', tokens, finalAudioProcMs, totalAudioProcMs: finalAudioProcMs, finished: false }
    this.handlers.onResult(result)
    return result
  }

  /** Emits an error as SonioxSession would (onError, once). */
  fail(code: ErrorCode, sonioxCode?: number): SonioxError {
    const error = new SonioxError(code, `scripted ${code}${sonioxCode ? ` ${sonioxCode}` : ''}`, { sonioxCode })
    this.handlers.onError(error)
    return error
  }

  /** The last result (`finished: true`), then onFinished, as SonioxSession delivers them. */
  finished(finalAudioProcMs?: number): void {
    this.handlers.onResult({ kind: 'result', tokens: [], finalAudioProcMs, totalAudioProcMs: finalAudioProcMs, finished: true })
    this.handlers.onFinished()
  }
}

function word(text: string, startMs: number, endMs: number, isFinal = true): SonioxToken {
  return { text, start_ms: startMs, end_ms: endMs, confidence: 0.9, is_final: isFinal }
}

// ---------------------------------------------------------------------------------------------
// Rig

interface Rig {
  tr: ResilientTranscriber
  timers: FakeTimers
  sessions: ScriptedSession[]
  /** The newest session. */
  last(): ScriptedSession
  session(i: number): ScriptedSession
  results: SonioxResult[]
  errors: AppError[]
  /** Calls of the transcriber's own onFinished handler. */
  readonly finishedCalls: number
  logs: Array<Record<string, unknown>>
  /** Sends call audio fromMs..toMs in 20 ms frames. */
  feed(fromMs: number, toMs: number): void
}

const POLICY = { maxAttempts: 5, maxMs: 60_000, initialDelayMs: 500, maxDelayMs: 2000 }
const FINISH_TIMEOUT_MS = 10_000

function captureLogger(logs: Array<Record<string, unknown>>) {
  return createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } })
}

function rig(overrides: Partial<ResilientTranscriberOptions> = {}, start = true): Rig {
  const timers = new FakeTimers()
  const sessions: ScriptedSession[] = []
  const logs: Array<Record<string, unknown>> = []
  const results: SonioxResult[] = []
  const errors: AppError[] = []
  let finishedCalls = 0
  const tr = new ResilientTranscriber(
    {
      createSession: (handlers) => {
        const s = new ScriptedSession(sessions.length, handlers)
        sessions.push(s)
        return s
      },
      maxBufferedAudioMs: 60_000,
      maxSessionMs: 3_600_000,
      reconnect: POLICY,
      finishTimeoutMs: FINISH_TIMEOUT_MS,
      logger: captureLogger(logs),
      clock: timers,
      random: () => 0, // no jitter: delays are exact
      ...overrides,
    },
    {
      onResult: (result) => results.push(result),
      onError: (error) => errors.push(error),
      onFinished: () => void finishedCalls++,
    },
  )
  if (start) tr.start({ sampleRate: RATE })
  return {
    tr,
    timers,
    sessions,
    results,
    errors,
    logs,
    get finishedCalls() {
      return finishedCalls
    },
    last: () => {
      const s = sessions.at(-1)
      if (!s) throw new Error('no session')
      return s
    },
    session: (i) => {
      const s = sessions[i]
      if (!s) throw new Error(`no session #${i}`)
      return s
    },
    feed: (fromMs, toMs) => {
      for (let ms = fromMs; ms < toMs; ms += FRAME_MS) tr.sendAudio(callAudio(ms, Math.min(ms + FRAME_MS, toMs)))
    },
  }
}

const FINISH_AGAIN_BUG =
  'src/soniox/resilient-transcriber.ts finish(): when finish() was already called, `if (this.endRequested) return done` returns a promise whose resolver is queued in finishWaiters even though the transcriber has already settled (done/failed), so it never resolves'

/** Whether a promise has settled, after letting pending microtasks run. */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  void p.then(
    () => (settled = true),
    () => (settled = true),
  )
  await new Promise((resolve) => setImmediate(resolve))
  return settled
}

function sameAudio(t: Test, actual: Buffer, fromMs: number, toMs: number, what: string): void {
  const expected = callAudio(fromMs, toMs)
  if (actual.equals(expected)) {
    t.pass(`${what}: call audio ${fromMs}..${toMs} ms`)
    return
  }
  // Say where it is instead: the first byte encodes its position mod 251, the length its span.
  t.fail(`${what}: expected call audio ${fromMs}..${toMs} ms (${expected.length} B), got ${actual.length} B (${actual.length / BYTES_PER_MS} ms)`)
}

// ---------------------------------------------------------------------------------------------

t.test('the first session is opened at construction; start() sends the format; audio is forwarded', async (t) => {
  const r = rig({}, false)
  t.equal(r.sessions.length, 1, 'created before start(): the handshake overlaps the wait for audio')
  t.strictSame(r.session(0).calls, [], 'but nothing is sent yet')
  t.equal(r.tr.stats().sessions, 0, 'a session counts once it is sent a start message')

  r.tr.start({ sampleRate: RATE })
  t.strictSame(r.session(0).calls, ['start'])
  t.strictSame(r.session(0).format, { sampleRate: RATE })
  t.equal(r.tr.stats().sessions, 1)

  r.feed(0, 1000)
  t.equal(r.session(0).chunks.length, 50, 'each 20 ms frame forwarded as it comes')
  sameAudio(t, r.session(0).audio, 0, 1000, 'session 0')
  r.tr.start({ sampleRate: 16000 })
  t.equal(r.session(0).calls.filter((c) => c === 'start').length, 1, 'a second start() changes nothing')
  t.equal(r.sessions.length, 1)
  t.strictSame(r.tr.stats(), { sessions: 1, reconnects: 0, audioResentMs: 0, audioDroppedMs: 0 })
})

t.test('results of the first session are passed up unchanged', async (t) => {
  const r = rig()
  r.feed(0, 2000)
  const sent = r.session(0).result([word(' hel', 120, 300), word('lo', 300, 420), word(' wor', 500, 700, false)], 400)
  t.equal(r.results.length, 1)
  t.equal(r.results[0], sent, 'the very same object (offset 0)')
  t.strictSame(r.results[0]?.tokens.map((tok) => [tok.start_ms, tok.end_ms]), [[120, 300], [300, 420], [500, 700]])
})

t.test('a retriable error: a new session at once, from the last finalized position, timestamps in call time', async (t) => {
  const cases: Array<{ name: string; code: ErrorCode; sonioxCode?: number }> = [
    { name: '503', code: 'ERR_SONIOX_SERVER_ERROR', sonioxCode: 503 },
    { name: 'ERR_SONIOX_CLOSED', code: 'ERR_SONIOX_CLOSED' },
    { name: 'ERR_SONIOX_UNRESPONSIVE', code: 'ERR_SONIOX_UNRESPONSIVE' },
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const r = rig()
      r.feed(0, 3000)
      // Final words end at 1200 ms; Soniox's own progress says 1000: the later one counts.
      r.session(0).result([word(' hel', 900, 1100), word('lo', 1100, 1200), word(' wor', 1300, 1500, false)], 1000)
      t.equal(r.results.length, 1)
      const error = r.session(0).fail(c.code, c.sonioxCode)
      t.equal(r.sessions.length, 1, 'the replacement is opened from a timer, not inside onError')
      t.equal(r.timers.calls.at(-1)?.ms, 0, 'the first retry has delay 0')
      t.equal(r.errors.length, 0, 'a retriable error is not passed up')
      r.timers.advance(0)
      t.equal(r.sessions.length, 2)
      const s1 = r.session(1)
      t.strictSame(s1.calls.slice(0, 1), ['start'], 'start message first')
      t.strictSame(s1.format, { sampleRate: RATE })
      sameAudio(t, s1.audio, 1200, 3000, 'the new session got everything from the last final word')
      r.feed(3000, 3400)
      sameAudio(t, s1.audio, 1200, 3400, 'then live audio')
      t.equal(r.session(0).chunks.length, 150, 'the failed session was sent nothing more')

      s1.result([word(' world', 100, 500), word(' next', 600, 800, false)], 300)
      const shifted = r.results.at(-1)
      t.strictSame(
        shifted?.tokens.map((tok) => [tok.text, tok.start_ms, tok.end_ms, tok.is_final]),
        [
          [' world', 1300, 1700, true],
          [' next', 1800, 2000, false],
        ],
        'session time + 1200 ms = call time',
      )
      t.strictSame(r.tr.stats(), { sessions: 2, reconnects: 1, audioResentMs: 1800, audioDroppedMs: 0 })
      const line = r.logs.find((l) => l.msg === 'Soniox session replaced; resuming from the last final word')
      t.match(line, { cause: c.code, attempt: 1, delayMs: 0, resentMs: 1800, droppedMs: 0, atMs: 1200 })
      t.equal(error.code, c.code)
    })
  }

  t.test("Soniox's progress later than the last final word", async (t) => {
    const r = rig()
    r.feed(0, 3000)
    r.session(0).result([word(' a', 100, 400)], 900)
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    sameAudio(t, r.session(1).audio, 900, 3000, 'resumed from final_audio_proc_ms')
  })

  t.test('a final position is kept across results that report less', async (t) => {
    const r = rig()
    r.feed(0, 3000)
    r.session(0).result([word(' a', 100, 1400)], 1400)
    r.session(0).result([word(' b', 1500, 1600, false)], 800) // non-final only, older progress
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    sameAudio(t, r.session(1).audio, 1400, 3000, 'the furthest final position counts')
  })

  t.test('offsets add up over two replacements', async (t) => {
    const r = rig()
    r.feed(0, 2000)
    r.session(0).result([word(' a', 0, 500)], 500)
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    r.feed(2000, 3000)
    r.session(1).result([word(' b', 0, 700)], 700) // call 500..1200
    r.session(1).fail('ERR_SONIOX_SERVER_ERROR', 503)
    r.timers.advance(0) // a session produced a result in between: delay 0 again
    sameAudio(t, r.session(2).audio, 1200, 3000, 'session 2 starts at 500 + 700 ms')
    r.session(2).result([word(' c', 10, 50)])
    t.match(r.results.at(-1)?.tokens[0], { start_ms: 1210, end_ms: 1250 })
    t.strictSame(r.tr.stats(), { sessions: 3, reconnects: 2, audioResentMs: 1500 + 1800, audioDroppedMs: 0 })
  })
})

t.test('a session that fails before start() (no audio yet) is replaced lazily at start(), not as a reconnect', async (t) => {
  const r = rig({}, false)
  r.session(0).fail('ERR_SONIOX_SERVER_ERROR', 408) // e.g. Soniox's start timeout on a silent call
  t.equal(r.timers.calls.length, 0, 'no retry timer')
  t.equal(r.sessions.length, 1, 'no session opened while there is nothing to send')
  t.equal(r.errors.length, 0, 'nothing reported')
  r.tr.start({ sampleRate: RATE })
  t.equal(r.sessions.length, 2, 'a new session at the first audio')
  r.feed(0, 200)
  t.strictSame(r.session(1).calls.slice(0, 2), ['start', 'audio'])
  sameAudio(t, r.session(1).audio, 0, 200, 'the new session carries the call from its first byte')
  t.strictSame(r.tr.stats(), { sessions: 1, reconnects: 0, audioResentMs: 0, audioDroppedMs: 0 })

  const silent = rig({}, false)
  silent.session(0).fail('ERR_SONIOX_CLOSED')
  t.ok(await isSettled(silent.tr.finish()), 'a call that ends without audio after such a failure finishes at once')
  t.equal(silent.sessions.length, 1, 'without opening a session')
})

t.test('positions follow the sample rate (16 kHz: 32 bytes per ms)', async (t) => {
  const r = rig({}, false)
  r.tr.start({ sampleRate: 16000 })
  const audio = Buffer.alloc(32 * 2000)
  for (let i = 0; i < audio.length; i++) audio[i] = i % 251
  for (let i = 0; i < audio.length; i += 640) r.tr.sendAudio(audio.subarray(i, i + 640))
  r.session(0).result([word(' a', 0, 750)], 750)
  r.session(0).fail('ERR_SONIOX_CLOSED')
  r.timers.advance(0)
  t.ok(r.session(1).audio.equals(audio.subarray(32 * 750)), 'resumed at byte 24000 = 750 ms at 16 kHz')
  r.session(1).result([word(' b', 10, 20)])
  t.match(r.results.at(-1)?.tokens[0], { start_ms: 760, end_ms: 770 })
  t.equal(r.tr.stats().audioResentMs, 1250)
})

t.test('repeated failures back off (0, then growing, capped); a result resets the streak', async (t) => {
  const r = rig({ reconnect: { maxAttempts: 10, maxMs: 600_000, initialDelayMs: 500, maxDelayMs: 2000 } })
  r.feed(0, 1000)
  const delays: number[] = []
  for (let i = 0; i < 6; i++) {
    r.last().fail('ERR_SONIOX_SERVER_ERROR', 429)
    const call = r.timers.calls.at(-1)
    delays.push(call?.ms ?? -1)
    const before = r.sessions.length
    if (call && call.ms > 0) {
      r.timers.advance(call.ms - 1)
      t.equal(r.sessions.length, before, `no session before the ${call.ms} ms delay is over`)
    }
    r.timers.advance(call?.ms ? 1 : 0)
    t.equal(r.sessions.length, before + 1)
  }
  t.strictSame(delays, [0, 500, 1000, 2000, 2000, 2000], 'first at once, then doubling, capped at maxDelayMs')

  // A session that produces a result ends the streak: next failure is immediate again.
  r.last().result([], 0)
  r.last().fail('ERR_SONIOX_CLOSED')
  t.equal(r.timers.calls.at(-1)?.ms, 0, 'attempts reset after a result')
  r.timers.advance(0)
  r.last().fail('ERR_SONIOX_CLOSED')
  t.equal(r.timers.calls.at(-1)?.ms, 500, 'and the backoff restarts from initialDelayMs')
  t.equal(r.errors.length, 0)

  t.test('jitter only shortens a delay', async (t) => {
    const r = rig({ random: () => 0.999, reconnect: { maxAttempts: 10, maxMs: 600_000, initialDelayMs: 1000, maxDelayMs: 1000 } })
    r.feed(0, 100)
    r.last().fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    r.last().fail('ERR_SONIOX_CLOSED')
    const ms = r.timers.calls.at(-1)?.ms ?? -1
    t.ok(ms >= 800 && ms < 1000, `delay ${ms} within [0.8, 1) x 1000`)
  })
})

t.test('giving up', async (t) => {
  t.test('after maxAttempts consecutive failed reconnection attempts', async (t) => {
    const r = rig({ reconnect: { maxAttempts: 3, maxMs: 600_000, initialDelayMs: 100, maxDelayMs: 100 } })
    r.feed(0, 3000)
    r.session(0).result([word(' a', 0, 1000)], 1000)
    const done = r.tr.finish()
    t.equal(r.session(0).finishCalls, 1)
    let last: SonioxError | undefined
    for (let i = 0; i < 4; i++) {
      last = r.last().fail('ERR_SONIOX_SERVER_ERROR', 503)
      r.timers.advance(1000)
    }
    t.equal(r.sessions.length, 4, 'the first session and maxAttempts = 3 replacements')
    t.equal(r.errors.length, 1, 'onError once')
    const gaveUp = r.errors[0] as AppError
    t.equal(gaveUp.code, 'ERR_SONIOX_GAVE_UP')
    t.equal(gaveUp.cause, last, 'the last session error is the cause')
    t.match(gaveUp.message, /3 attempts/)
    t.ok(await isSettled(done), 'finish() resolves')
    t.strictSame(r.tr.stats(), { sessions: 4, reconnects: 3, audioResentMs: 3 * 2000, audioDroppedMs: 2000 }, 'the 2000 ms never finalized are counted as dropped')
    t.equal(r.timers.pending, 0, 'no retry left')
    r.feed(3000, 4000)
    r.timers.advance(60_000)
    t.equal(r.sessions.length, 4, 'nothing opens afterwards')
    t.equal(r.errors.length, 1)
    t.ok(await isSettled(r.tr.finish()), 'a second finish() after giving up resolves too')
  })

  t.test('after maxMs since the streak started, whatever the attempt count', async (t) => {
    const r = rig({ reconnect: { maxAttempts: 100, maxMs: 5000, initialDelayMs: 500, maxDelayMs: 500 } })
    r.feed(0, 1000)
    r.session(0).fail('ERR_SONIOX_CONNECT') // streak starts
    r.timers.advance(0)
    r.timers.advance(3000) // session 1 hangs for 3 s, then fails
    r.session(1).fail('ERR_SONIOX_CONNECT')
    r.timers.advance(500)
    t.equal(r.sessions.length, 3)
    r.timers.advance(1500) // 5000 ms into the streak: not past it yet
    r.session(2).fail('ERR_SONIOX_CONNECT')
    t.equal(r.errors.length, 0, 'exactly maxMs is still allowed')
    r.timers.advance(500)
    r.timers.advance(1)
    const cause = r.session(3).fail('ERR_SONIOX_CONNECT')
    t.equal(r.errors.length, 1)
    t.equal(r.errors[0]?.code, 'ERR_SONIOX_GAVE_UP')
    t.equal(r.errors[0]?.cause, cause)
    t.equal(r.sessions.length, 4)
    t.equal(r.tr.stats().audioDroppedMs, 1000)
    t.ok(await isSettled(r.tr.finish()))
  })

  t.test('a streak that ended with a result does not count towards maxMs', async (t) => {
    const r = rig({ reconnect: { maxAttempts: 100, maxMs: 5000, initialDelayMs: 500, maxDelayMs: 500 } })
    r.feed(0, 1000)
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    r.session(1).result([], 0)
    r.timers.advance(60_000)
    r.session(1).fail('ERR_SONIOX_CLOSED')
    t.equal(r.errors.length, 0, 'a new streak starts')
    r.timers.advance(0)
    t.equal(r.sessions.length, 3)
  })
})

t.test('permanent errors: no new session, the original error is passed up, health is told', async (t) => {
  // `logged`: health logs it at error once per cause (an account problem, or a request Soniox refuses).
  const cases: Array<{ name: string; code: ErrorCode; sonioxCode?: number; account: boolean; logged: boolean }> = [
    { name: '400', code: 'ERR_SONIOX_SERVER_ERROR', sonioxCode: 400, account: false, logged: true },
    { name: '401', code: 'ERR_SONIOX_SERVER_ERROR', sonioxCode: 401, account: true, logged: true },
    { name: '402', code: 'ERR_SONIOX_SERVER_ERROR', sonioxCode: 402, account: true, logged: true },
    { name: 'ERR_SONIOX_BAD_MESSAGE', code: 'ERR_SONIOX_BAD_MESSAGE', account: false, logged: false },
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const healthLogs: Array<Record<string, unknown>> = []
      const health = new SonioxHealth(captureLogger(healthLogs))
      const reported: AppError[] = []
      const reportFailure = health.reportFailure.bind(health)
      health.reportFailure = (error) => {
        reported.push(error)
        reportFailure(error)
      }
      const r = rig({ health })
      r.feed(0, 2000)
      r.session(0).result([word(' a', 0, 500)], 500)
      const done = r.tr.finish()
      const error = r.session(0).fail(c.code, c.sonioxCode)
      t.equal(r.timers.pending, 0, 'no retry scheduled (and the finish deadline is cleared)')
      r.timers.advance(60_000)
      t.equal(r.sessions.length, 1, 'no new session')
      t.equal(r.errors.length, 1)
      t.equal(r.errors[0], error, 'the original error, not wrapped')
      t.strictSame(reported, [error], 'health.reportFailure got it')
      t.equal(health.problem?.sonioxCode, c.account ? c.sonioxCode : undefined)
      t.equal(healthLogs.filter((l) => l.level === 50).length, c.logged ? 1 : 0, 'account problems and refused requests logged by health')
      t.equal(r.tr.stats().audioDroppedMs, 1500, 'audio never finalized is counted')
      t.equal(r.tr.stats().reconnects, 0)
      t.ok(await isSettled(done), 'finish() resolves')
    })
  }

  t.test('a session that works clears the health problem', async (t) => {
    const health = new SonioxHealth(captureLogger([]))
    const accountError = new SonioxError('ERR_SONIOX_SERVER_ERROR', '401', { sonioxCode: 401 })
    health.reportFailure(accountError)
    const r = rig({ health })
    r.feed(0, 500)
    t.equal(health.problem?.sonioxCode, 401)
    r.session(0).result([], 0)
    t.equal(health.problem, undefined)
  })
})

t.test('audio past maxBufferedAudioMs while no session is up: oldest dropped, counted, offset follows', async (t) => {
  const r = rig({ maxBufferedAudioMs: 2000, reconnect: { maxAttempts: 5, maxMs: 600_000, initialDelayMs: 3000, maxDelayMs: 3000 } })
  r.feed(0, 1000)
  r.session(0).result([word(' a', 0, 500)], 500)
  r.session(0).fail('ERR_SONIOX_SERVER_ERROR', 503)
  r.timers.advance(0)
  sameAudio(t, r.session(1).audio, 500, 1000, 'first replacement: from the final position')
  r.session(1).fail('ERR_SONIOX_SERVER_ERROR', 503) // second failure in a row: 3000 ms wait
  t.equal(r.timers.calls.at(-1)?.ms, 3000)
  r.feed(1000, 4000) // 3 s of call audio with no session up; 3.5 s unfinalized > 2 s bound
  r.timers.advance(3000)
  t.equal(r.sessions.length, 3)
  sameAudio(t, r.session(2).audio, 2000, 4000, 'resumed at the oldest byte still held (the newest 2 s)')
  r.session(2).result([word(' b', 0, 200)], 200)
  t.match(r.results.at(-1)?.tokens[0], { start_ms: 2000, end_ms: 2200 }, 'its offset is where its audio starts in the call')
  t.strictSame(r.tr.stats(), { sessions: 3, reconnects: 2, audioResentMs: 500, audioDroppedMs: 1500 })
  t.match(
    r.logs.filter((l) => l.msg === 'Soniox session replaced; resuming from the last final word').at(-1),
    { attempt: 2, delayMs: 3000, droppedMs: 1500, atMs: 2000 },
  )
})

t.test('rotation before maxSessionMs', async (t) => {
  t.test('finish the old session, hold live audio, continue at the rotation point', async (t) => {
    const r = rig({ maxSessionMs: 1000 })
    r.feed(0, 980)
    t.equal(r.session(0).finishCalls, 0)
    r.feed(980, 1000)
    t.equal(r.session(0).finishCalls, 1, 'finished once it has been sent maxSessionMs of audio')
    t.equal(r.sessions.length, 1, 'no second session while the first is finishing')
    r.feed(1000, 1400)
    sameAudio(t, r.session(0).audio, 0, 1000, 'the finishing session gets no more audio')
    r.session(0).result([word(' last', 700, 990)], 990)
    t.match(r.results.at(-1)?.tokens[0], { start_ms: 700, end_ms: 990 }, 'its last words still come through, unshifted')
    r.session(0).finished(1000)
    t.equal(r.sessions.length, 2)
    const s1 = r.session(1)
    t.equal(s1.calls[0], 'start')
    sameAudio(t, s1.audio, 1000, 1400, 'the new session starts at the rotation point with the held audio')
    r.feed(1400, 1600)
    sameAudio(t, s1.audio, 1000, 1600, 'then live audio')
    s1.result([word(' next', 50, 300)], 300)
    t.match(r.results.at(-1)?.tokens[0], { start_ms: 1050, end_ms: 1300 }, 'offset = 1000 ms')
    t.strictSame(r.tr.stats(), { sessions: 2, reconnects: 0, audioResentMs: 0, audioDroppedMs: 0 })
    t.equal(r.finishedCalls, 0, "a rotation's finished is not the call's")
    r.feed(1600, 2000)
    t.equal(s1.finishCalls, 1, 'and it rotates again after maxSessionMs of its own')
  })

  t.test('finish() during a rotation: the next session is sent the held audio and finished', async (t) => {
    const r = rig({ maxSessionMs: 1000 })
    r.feed(0, 1200)
    const done = r.tr.finish()
    t.equal(r.session(0).finishCalls, 1, 'finish() does not finish the rotating session twice')
    r.session(0).finished(1000)
    const s1 = r.session(1)
    sameAudio(t, s1.audio, 1000, 1200, 'the held audio')
    t.strictSame(s1.calls.at(-1), 'finish', 'then the end of audio')
    t.notOk(await isSettled(done))
    s1.finished(200)
    t.ok(await isSettled(done))
  })

  t.test('finish() during a rotation with nothing held: done when the old session finishes', async (t) => {
    const r = rig({ maxSessionMs: 1000 })
    r.feed(0, 1000)
    const done = r.tr.finish()
    r.session(0).finished(1000)
    t.equal(r.sessions.length, 1, 'no empty session opened')
    t.ok(await isSettled(done))
  })

  t.test('held audio past maxBufferedAudioMs during a rotation', async (t) => {
    const r = rig({ maxSessionMs: 1000, maxBufferedAudioMs: 1500 })
    r.feed(0, 1000) // rotation starts; nothing finalized yet
    r.feed(1000, 3000) // the old session takes 2 s to finish: 3 s held > 1.5 s bound
    r.session(0).finished(1000)
    const s1 = r.session(1)
    sameAudio(t, s1.audio, 1500, 3000, 'the newest 1.5 s were kept and sent')
    s1.result([word(' x', 0, 100)], 100)
    const tok = r.results.at(-1)?.tokens[0]
    t.match(tok, { start_ms: 1500, end_ms: 1600 }, 'its timestamps start where its audio starts (1500 ms)')
    t.equal(r.tr.stats().audioDroppedMs, 500, 'the evicted 500 ms are counted as dropped')
  })
})

t.test('finish()', async (t) => {
  t.test('while active: session.finish(), resolves after onFinished', async (t) => {
    const r = rig()
    r.feed(0, 600)
    const done = r.tr.finish()
    t.equal(r.session(0).finishCalls, 1)
    t.notOk(await isSettled(done), 'pending until Soniox has finished')
    r.feed(600, 800)
    sameAudio(t, r.session(0).audio, 0, 600, 'audio after finish() is not sent')
    const again = r.tr.finish()
    t.equal(r.session(0).finishCalls, 1, 'a second finish() does not finish the session again')
    r.session(0).result([word(' end', 100, 600)], 600)
    t.equal(r.results.length, 1, 'the last words are delivered')
    r.session(0).finished(600)
    t.ok(await isSettled(done), 'resolves after onFinished')
    t.ok(await isSettled(again))
    t.equal(r.errors.length, 0)
    t.equal(r.finishedCalls, 1, "the transcriber's own onFinished handler is called once")
  })

  t.test('while waiting for a reconnect: the new session is sent the rest and finished', async (t) => {
    const r = rig()
    r.feed(0, 1000)
    r.session(0).result([word(' a', 0, 300)], 300)
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    r.session(1).fail('ERR_SONIOX_CLOSED') // now waiting 500 ms
    r.feed(1000, 1200)
    const done = r.tr.finish()
    t.equal(r.sessions.length, 2, 'nothing opened early')
    r.timers.advance(500)
    const s2 = r.session(2)
    t.strictSame(s2.calls[0], 'start')
    t.strictSame(s2.calls.at(-1), 'finish', 'finished right after the rest of the audio')
    sameAudio(t, s2.audio, 300, 1200, 'the rest: from the final position to the end of the call')
    t.notOk(await isSettled(done))
    s2.result([word(' b', 0, 900)], 900)
    s2.finished(900)
    t.ok(await isSettled(done))
  })

  t.test('with no audio ever (no start()): the session is closed, finish() resolves', async (t) => {
    const r = rig({}, false)
    const done = r.tr.finish()
    t.ok(await isSettled(done))
    t.strictSame(r.session(0).calls, ['close'], 'closed, never started nor finished')
    t.equal(r.tr.stats().sessions, 0)
  })

  t.test('finish() again once the transcription is over resolves at once', async (t) => {
    const r = rig()
    r.feed(0, 400)
    const first = r.tr.finish()
    r.session(0).finished(400)
    t.ok(await isSettled(first))
    t.ok(await isSettled(r.tr.finish()), 'after done')

    const never = rig({}, false)
    t.ok(await isSettled(never.tr.finish()))
    t.ok(await isSettled(never.tr.finish()), 'after done without audio')

    const closed = rig()
    closed.tr.close()
    t.ok(await isSettled(closed.tr.finish()), 'after close() (finish() not called before): resolves')
  })

  t.test('a retriable failure after finish(): resumed, rest sent, finished', async (t) => {
    const r = rig()
    r.feed(0, 1000)
    const done = r.tr.finish()
    r.session(0).fail('ERR_SONIOX_FINISH_TIMEOUT')
    r.timers.advance(0)
    sameAudio(t, r.session(1).audio, 0, 1000, 'all of it, nothing was final')
    t.strictSame(r.session(1).calls.at(-1), 'finish')
    r.session(1).finished(1000)
    t.ok(await isSettled(done))
  })
})

t.test('close()', async (t) => {
  t.test('while active: closes the session once; idempotent; resolves a pending finish()', async (t) => {
    const r = rig()
    r.feed(0, 200)
    const done = r.tr.finish()
    r.tr.close()
    r.tr.close()
    t.equal(r.session(0).closeCalls, 1)
    t.ok(await isSettled(done))
    r.feed(200, 400)
    t.equal(r.session(0).chunks.length, 10, 'nothing sent after close()')
  })

  t.test('cancels a pending retry timer', async (t) => {
    const r = rig()
    r.feed(0, 200)
    r.session(0).fail('ERR_SONIOX_CLOSED')
    r.timers.advance(0)
    r.session(1).fail('ERR_SONIOX_CLOSED') // 500 ms retry pending
    t.equal(r.timers.pending, 1)
    r.tr.close()
    t.equal(r.timers.pending, 0, 'the retry timer was cleared')
    r.tr.close()
    r.timers.advance(60_000)
    t.equal(r.sessions.length, 2, 'no session opened after close()')
    t.equal(r.errors.length, 0, 'and no error reported')
  })

  t.test("gives the call's audio blocks back to the shared pool for other calls", async (t) => {
    while (sharedAudioBlockPool.size > 0) sharedAudioBlockPool.take()
    const r = rig()
    r.feed(0, 2000) // 32,000 bytes at 8 kHz, none finalized: 8 blocks of 4 KB held
    t.equal(sharedAudioBlockPool.size, 0, 'nothing released while the audio is unfinalized')
    r.tr.close()
    t.equal(sharedAudioBlockPool.size, Math.ceil((2000 * RATE * 2) / 1000 / AUDIO_RING_BLOCK_BYTES), 'every block went back')
  })
})

t.test('results and events from a replaced (stale) session are ignored', async (t) => {
  const r = rig()
  r.feed(0, 2000)
  r.session(0).result([word(' a', 0, 500)], 500)
  const stale = r.session(0)
  stale.fail('ERR_SONIOX_CLOSED')
  stale.result([word(' late', 500, 900)], 900) // while waiting
  t.equal(r.results.length, 1, 'ignored while no session is up')
  r.timers.advance(0)
  stale.result([word(' later', 900, 1200)], 1200) // a replacement is up
  t.equal(r.results.length, 1, 'ignored after the replacement is up')
  stale.fail('ERR_SONIOX_CLOSED')
  stale.finished(1200)
  t.equal(r.timers.pending, 0, 'a stale error schedules nothing')
  t.equal(r.sessions.length, 2, 'and opens nothing')
  t.equal(r.tr.stats().reconnects, 1)
  // Had the stale results counted, the final position would be 1200 ms.
  r.session(1).fail('ERR_SONIOX_CLOSED')
  r.timers.advance(500)
  sameAudio(t, r.session(2).audio, 500, 2000, 'the stale results did not move the final position')
  r.session(2).result([word(' b', 0, 100)], 100)
  t.equal(r.results.length, 2, 'the current session delivers')
  t.match(r.results[1]?.tokens[0], { start_ms: 500, end_ms: 600 })
})

t.test('metrics: each session error by code, each replacement, and giving up', async (t) => {
  const seen: string[] = []
  const r = rig({
    reconnect: { maxAttempts: 2, maxMs: 600_000, initialDelayMs: 100, maxDelayMs: 100 },
    metrics: { reconnected: () => seen.push('reconnect'), error: (e) => seen.push(`${e.code}:${sonioxCodeOf(e) ?? ''}`) },
  })
  r.feed(0, 1000)
  r.session(0).fail('ERR_SONIOX_SERVER_ERROR', 503)
  r.timers.advance(0)
  r.session(1).fail('ERR_SONIOX_CLOSED')
  r.timers.advance(1000)
  r.session(2).fail('ERR_SONIOX_SERVER_ERROR', 503)
  t.same(seen, ['ERR_SONIOX_SERVER_ERROR:503', 'reconnect', 'ERR_SONIOX_CLOSED:', 'reconnect', 'ERR_SONIOX_SERVER_ERROR:503', 'ERR_SONIOX_GAVE_UP:'])
  t.equal(r.tr.stats().reconnects, seen.filter((s) => s === 'reconnect').length, 'the counter agrees with call.ended')
})

t.test('Soniox unreachable when the call ends: finish() settles at SONIOX_FINISH_TIMEOUT_MS, not after the reconnect loop', async (t) => {
  // A long reconnect policy, as configured by default (20 attempts, 300 s).
  const r = rig({ reconnect: { maxAttempts: 20, maxMs: 300_000, initialDelayMs: 500, maxDelayMs: 10_000 } })
  r.feed(0, 1000)
  r.session(0).result([word('hello', 0, 400)], 400)
  // Soniox goes away; every replacement fails to connect.
  r.session(0).fail('ERR_SONIOX_CLOSED')
  r.feed(1000, 2000)
  const failEveryNewSession = (): void => {
    for (const s of r.sessions) if (s.calls.includes('start') && !(s as { failed?: boolean }).failed) {
      ;(s as { failed?: boolean }).failed = true
      s.fail('ERR_SONIOX_CONNECT')
    }
  }
  r.timers.advance(0)
  failEveryNewSession()
  const done = r.tr.finish()
  let endedAt: number | undefined
  void done.then(() => (endedAt = r.timers.now()))
  const finishAt = r.timers.now()
  for (let elapsed = 0; elapsed < 60_000 && endedAt === undefined; elapsed += 100) {
    r.timers.advance(100)
    failEveryNewSession()
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(endedAt !== undefined, 'finish() settled')
  t.ok((endedAt ?? Infinity) - finishAt <= FINISH_TIMEOUT_MS, `within SONIOX_FINISH_TIMEOUT_MS (${(endedAt ?? Infinity) - finishAt} ms)`)
  t.match(r.errors.at(-1), { code: 'ERR_SONIOX_FINISH_TIMEOUT', message: /1600 ms of audio were not transcribed/ })
  t.equal(r.tr.stats().audioDroppedMs, 1600, 'the audio after the last final word (400 ms) is counted as never transcribed')
  t.equal(r.timers.pending, 0, 'no retry timer left behind')
})

t.test('the finish deadline is cleared when the last words arrive in time', async (t) => {
  const r = rig()
  r.feed(0, 1000)
  const done = r.tr.finish()
  r.session(0).finished(1000)
  t.ok(await isSettled(done))
  t.equal(r.timers.pending, 0, 'no deadline left armed')
  t.same(r.errors, [])
})
