/**
 * Keeps one call transcribed across Soniox session failures, and across Soniox's 300-minute
 * session limit, so that the call's transcript has no gap and no duplicate.
 *
 * How: every audio byte is kept (in call byte positions) until Soniox reports it final. When a
 * session fails for a retriable reason, a new session is opened (at once, then with jittered
 * backoff, within bounded attempts and time) and sent everything from the last finalized
 * position, then live audio. Final tokens already delivered are never re-sent because their
 * audio never reaches the new session; the new session's timestamps are shifted by the call
 * position it starts at, so every token is in call audio time. The open utterance is not
 * flushed at the seam (the assembler above keeps it), so it is completed by the new session.
 *
 *   active --retriable error--> waiting --timer--> active (resumed from the final position)
 *   active --session reaches maxSessionMs--> rotating --old session finished--> active
 *   any --permanent error or reconnect bounds exhausted--> failed     finish() --> ... --> done
 *
 * Over 400 lines because resume, rotation, backoff and the finish deadline all move the same call
 * byte positions (sent, finalized, dropped); the audio it holds is in audio-ring.ts, one session in
 * soniox-session.ts.
 */
import { AppError } from '../shared/errors.js'
import { createBackoff, type Backoff } from '../shared/backoff.js'
import { guardedClock, systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { UNGUARDED, type Guard } from '../shared/guard.js'
import type { Logger } from '../shared/logger.js'
import type { SonioxResult, SonioxToken } from './messages.js'
import { AudioRing } from './audio-ring.js'
import { bytesPerSample, type AudioFormat } from './start-message.js'
import type { SonioxMetrics, SonioxSessionHandlers } from './soniox-session.js'
import { isRetriableSonioxError, sonioxCodeOf } from './soniox-error.js'
import type { SonioxHealth } from './soniox-health.js'

/** What this class needs of a session; SonioxSession is the real one. */
export interface SessionLike {
  start(format: AudioFormat): void
  sendAudio(chunk: Buffer): void
  finish(): Promise<void>
  close(): void
}

export interface TranscriberStats {
  /** Soniox sessions that were sent a start message. */
  sessions: number
  /** Sessions opened to replace a failed one (rotations at the session limit not included). */
  reconnects: number
  /** Audio sent again to a replacement session because the failed one had not finalized it. */
  audioResentMs: number
  /** Audio that never reached a session that finalized it (buffer bound, or gave up). */
  audioDroppedMs: number
}

export interface ReconnectPolicy {
  /** Replacement sessions tried in one failure streak; the next failure gives up. */
  maxAttempts: number
  /** Give up when no session has worked for this long since the first failure of a streak. */
  maxMs: number
  initialDelayMs: number
  maxDelayMs: number
}

export interface ResilientTranscriberOptions {
  createSession: (handlers: SonioxSessionHandlers) => SessionLike
  /** Unfinalized + unsent audio kept per call; past it the oldest is dropped and counted. */
  maxBufferedAudioMs: number
  /** Rotate to a new session once a session has been sent this much audio (Soniox caps at 300 min). */
  maxSessionMs: number
  reconnect: ReconnectPolicy
  /**
   * Once the call has ended (finish()), how long its last words may take, reconnections included
   * (SONIOX_FINISH_TIMEOUT_MS): past it the transcriber gives up and counts what was never
   * transcribed. Without it a Soniox outage would hold the call's end for the whole reconnect loop.
   */
  finishTimeoutMs: number
  logger: Logger
  health?: SonioxHealth
  metrics?: Pick<SonioxMetrics, 'reconnected' | 'error'>
  /** Default systemClock; its timers take any delay (backoff, SONIOX_FINISH_TIMEOUT_MS come from settings). */
  clock?: Clock
  random?: () => number
  /** The call's fault boundary: the reconnect timer runs inside it (the sessions get their own). */
  guard?: Guard
}

type State = 'active' | 'waiting' | 'rotating' | 'done' | 'failed'

/** One Soniox session and where its audio sits in the call. */
interface SessionRecord {
  readonly session: SessionLike
  /** Call byte position of the session's first audio byte: its time zero. */
  readonly startPos: number
  readonly offsetMs: number
  /** Call byte position just past the last byte handed to this session. */
  sentEnd: number
  producedResult: boolean
}

export class ResilientTranscriber {
  private state: State = 'active'
  private current: SessionRecord | undefined
  private format: AudioFormat | undefined
  private ring: AudioRing | undefined
  /** Call byte position up to which Soniox has finalized everything. */
  private finalPos = 0
  /**
   * finish() was called. Not a state of its own: the caller's intent can come in active, waiting
   * or rotating alike, and each goes on as it was (the next session is finished as it opens).
   */
  private endRequested = false
  private attempts = 0
  private streakStartedAt = 0
  private retryTimer: ClockTimer | undefined
  private finishDeadline: ClockTimer | undefined
  private readonly backoff: Backoff
  private finishWaiters: Array<() => void> = []
  private readonly clock: Clock
  private readonly counters = { sessions: 0, reconnects: 0, resentBytes: 0, droppedBytes: 0 }
  /** Call position just past the last byte ever handed to any session (to count resends). */
  private sentHighWater = 0

  constructor(
    private readonly options: ResilientTranscriberOptions,
    private readonly handlers: SonioxSessionHandlers,
  ) {
    this.clock = guardedClock(options.clock ?? systemClock, options.guard ?? UNGUARDED)
    this.backoff = createBackoff({
      initialMs: options.reconnect.initialDelayMs,
      maxMs: options.reconnect.maxDelayMs,
      ...(options.random ? { random: options.random } : {}),
    })
    // Connect now: the handshake overlaps the wait for the first audio frame.
    this.current = this.openSession(0)
  }

  start(format: AudioFormat): void {
    if (this.format !== undefined) return
    this.format = format
    this.ring = new AudioRing(this.msToBytes(this.options.maxBufferedAudioMs))
    this.current ??= this.openSession(0)
    this.beginSession(this.current)
  }

  sendAudio(chunk: Buffer): void {
    if (this.ring === undefined || this.state === 'done' || this.state === 'failed' || this.endRequested) return
    this.ring.append(chunk)
    const record = this.current
    if (this.state !== 'active' || record === undefined) return
    record.session.sendAudio(chunk)
    record.sentEnd = this.ring.endPos
    this.sentHighWater = record.sentEnd
    if (record.sentEnd - record.startPos >= this.msToBytes(this.options.maxSessionMs)) this.rotate(record)
  }

  /** Ends the audio; resolves when every final word has been delivered or transcription is over. */
  finish(): Promise<void> {
    if (this.state === 'done' || this.state === 'failed') return Promise.resolve()
    const done = new Promise<void>((resolve) => this.finishWaiters.push(resolve))
    if (this.endRequested) return done
    this.endRequested = true
    this.finishDeadline = this.clock.setTimeout(() => this.onFinishDeadline(), this.options.finishTimeoutMs)
    if (this.state === 'active') {
      if (this.format === undefined || this.current === undefined) {
        // No audio ever arrived: there is no session to finish.
        this.current?.session.close()
        this.settle('done')
      } else {
        void this.current.session.finish()
      }
    }
    // waiting / rotating: the next session is sent the rest and finished as soon as it opens.
    return done
  }

  /**
   * The call ended SONIOX_FINISH_TIMEOUT_MS ago and its last words are still not all in (Soniox
   * unreachable, reconnecting, or slow): stop, and report what was never transcribed.
   */
  private onFinishDeadline(): void {
    this.finishDeadline = undefined
    if (this.state === 'done' || this.state === 'failed') return
    this.clock.clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.current?.session.close()
    this.current = undefined
    const untranscribedMs = Math.round(this.bytesToMs(Math.max(0, (this.ring?.endPos ?? 0) - this.finalPos)))
    this.fail(
      new AppError(
        'ERR_SONIOX_FINISH_TIMEOUT',
        `the call ended ${this.options.finishTimeoutMs} ms ago (SONIOX_FINISH_TIMEOUT_MS) and Soniox has not delivered its last words` +
          `${this.attempts > 0 ? ` (reconnecting: ${this.attempts} failed attempts)` : ''}; ${untranscribedMs} ms of audio were not transcribed`,
      ),
    )
  }

  /** Immediate teardown; idempotent. */
  close(): void {
    this.clock.clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.current?.session.close()
    this.current = undefined
    if (this.state !== 'failed') this.settle('done')
  }

  stats(): TranscriberStats {
    return {
      sessions: this.counters.sessions,
      reconnects: this.counters.reconnects,
      audioResentMs: Math.round(this.bytesToMs(this.counters.resentBytes)),
      audioDroppedMs: Math.round(this.bytesToMs(this.counters.droppedBytes)),
    }
  }

  // ---- sessions -----------------------------------------------------------------------------

  private openSession(startPos: number): SessionRecord {
    // Sessions call back only from socket events, never during createSession itself.
    let self: SessionRecord | undefined
    const session = this.options.createSession({
      onResult: (result) => self && this.onResult(self, result),
      onError: (error) => self && this.onSessionError(self, error),
      onFinished: () => self && this.onSessionFinished(self),
    })
    self = { session, startPos, offsetMs: Math.round(this.bytesToMs(startPos)), sentEnd: startPos, producedResult: false }
    this.state = 'active'
    return self
  }

  /** Sends the start message and every held byte from the session's start position. */
  private beginSession(record: SessionRecord): void {
    const ring = this.ring
    if (this.format === undefined || ring === undefined) return
    record.session.start(this.format)
    this.counters.sessions++
    for (const chunk of ring.slice(record.startPos)) record.session.sendAudio(chunk)
    record.sentEnd = ring.endPos
    this.sentHighWater = Math.max(this.sentHighWater, record.sentEnd)
    if (this.endRequested) void record.session.finish()
  }

  private onResult(record: SessionRecord, result: SonioxResult): void {
    if (record !== this.current) return
    if (!record.producedResult) {
      record.producedResult = true
      // A session that works ends a failure streak.
      this.attempts = 0
      this.backoff.reset()
      this.options.health?.reportHealthy()
    }
    this.advanceFinal(record, finalMsOf(result))
    this.handlers.onResult(record.offsetMs === 0 ? result : shiftResult(result, record.offsetMs))
  }

  private onSessionFinished(record: SessionRecord): void {
    if (record !== this.current) return
    // `finished` means every byte the session was sent is final.
    this.finalPos = Math.max(this.finalPos, record.sentEnd)
    this.ring?.release(this.finalPos)
    if (this.state === 'rotating') {
      const held = (this.ring?.endPos ?? 0) > this.finalPos
      if (this.endRequested && !held) {
        this.settle('done')
        return
      }
      this.continueFromFinal()
      return
    }
    if (this.endRequested) this.settle('done')
  }

  private onSessionError(record: SessionRecord, error: AppError): void {
    if (record !== this.current) return
    this.current = undefined
    this.options.metrics?.error(error)
    if (this.format === undefined) {
      // The session opened early (at the UUID) failed before any audio, e.g. Soniox's start
      // timeout on a call that stays silent: nothing is lost; open a new one when audio comes.
      return
    }
    if (!isRetriableSonioxError(error)) {
      this.options.health?.reportFailure(error)
      this.fail(error)
      return
    }
    this.attempts++
    if (this.attempts === 1) this.streakStartedAt = this.clock.now()
    const failingFor = this.clock.now() - this.streakStartedAt
    if (this.attempts > this.options.reconnect.maxAttempts || failingFor > this.options.reconnect.maxMs) {
      this.fail(
        new AppError(
          'ERR_SONIOX_GAVE_UP',
          `gave up reconnecting to Soniox after ${this.attempts - 1} attempts in ${failingFor} ms; last error: ${error.message}`,
          { cause: error },
        ),
      )
      return
    }
    // The first retry goes at once (most failures are one session's, e.g. a 503); repeated
    // failures back off with jitter so a Soniox outage or a 429 is not hammered.
    const delayMs = this.attempts === 1 ? 0 : this.backoff.next()
    this.state = 'waiting'
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined
      this.resume(error, delayMs)
    }, delayMs)
  }

  /**
   * Opens the next session at the last finalized position (or at the oldest byte still held, if
   * the bound evicted audio past it: that audio is lost and counted) and sends it what is held.
   */
  private continueFromFinal(): { resumeFrom: number; lost: number; resent: number } {
    const resumeFrom = Math.max(this.finalPos, this.ring?.startPos ?? 0)
    const lost = resumeFrom - this.finalPos
    const resent = Math.max(0, this.sentHighWater - resumeFrom)
    this.counters.droppedBytes += lost
    this.counters.resentBytes += resent
    this.finalPos = resumeFrom
    this.current = this.openSession(resumeFrom)
    this.beginSession(this.current)
    return { resumeFrom, lost, resent }
  }

  /** Opens a replacement session for a failed one. */
  private resume(cause: AppError, delayMs: number): void {
    if (this.state !== 'waiting') return
    this.counters.reconnects++
    this.options.metrics?.reconnected()
    const { resumeFrom, lost, resent } = this.continueFromFinal()
    this.options.logger.info(
      {
        cause: cause.code,
        sonioxCode: sonioxCodeOf(cause),
        attempt: this.attempts,
        delayMs,
        resentMs: Math.round(this.bytesToMs(resent)),
        droppedMs: Math.round(this.bytesToMs(lost)),
        atMs: Math.round(this.bytesToMs(resumeFrom)),
      },
      'Soniox session replaced; resuming from the last final word',
    )
  }

  /** Finishes this session (all its words become final), then continues in a new one. */
  private rotate(record: SessionRecord): void {
    this.state = 'rotating'
    this.options.logger.info({ sessionMs: Math.round(this.bytesToMs(record.sentEnd - record.startPos)) }, 'Soniox session limit near: continuing in a new session')
    void record.session.finish()
  }

  private advanceFinal(record: SessionRecord, finalMs: number | undefined): void {
    if (finalMs === undefined) return
    const pos = Math.min(record.startPos + this.msToBytes(finalMs), record.sentEnd)
    if (pos <= this.finalPos) return
    this.finalPos = pos
    this.ring?.release(pos)
  }

  private fail(error: AppError): void {
    // The session's own error was counted when it came; giving up is an outcome of its own.
    if (error.code === 'ERR_SONIOX_GAVE_UP') this.options.metrics?.error(error)
    // Audio held and never finalized is lost with the transcription.
    this.counters.droppedBytes += Math.max(0, (this.ring?.endPos ?? 0) - this.finalPos)
    this.finalPos = this.ring?.endPos ?? 0
    this.handlers.onError(error)
    this.settle('failed')
  }

  private settle(state: 'done' | 'failed'): void {
    const wasSettled = this.state === 'done' || this.state === 'failed'
    this.state = state
    this.clock.clearTimeout(this.finishDeadline)
    this.finishDeadline = undefined
    // Nothing is resent from here on: the call's blocks go back to the pool for other calls.
    this.ring?.releaseAll()
    if (state === 'done' && this.endRequested && !wasSettled) this.handlers.onFinished()
    for (const resolve of this.finishWaiters.splice(0)) resolve()
  }

  private msToBytes(ms: number): number {
    const rate = this.format?.sampleRate ?? 8000
    return Math.round((ms * rate) / 1000) * (this.format ? bytesPerSample(this.format) : 2)
  }

  private bytesToMs(bytes: number): number {
    const rate = this.format?.sampleRate ?? 8000
    return (bytes / (this.format ? bytesPerSample(this.format) : 2) / rate) * 1000
  }
}

/**
 * How far a result proves the session's audio final: Soniox's own progress field, or the end of
 * the last final token if that is later (never resend audio behind a word already delivered).
 */
function finalMsOf(result: SonioxResult): number | undefined {
  let ms = result.finalAudioProcMs
  for (const token of result.tokens) {
    if (token.is_final && token.end_ms !== undefined && (ms === undefined || token.end_ms > ms)) ms = token.end_ms
  }
  return ms
}

/** Moves a result's timestamps and progress fields from session time into call audio time. */
function shiftResult(result: SonioxResult, offsetMs: number): SonioxResult {
  const tokens = result.tokens.map((t): SonioxToken => {
    if (t.start_ms === undefined && t.end_ms === undefined) return t
    const shifted: SonioxToken = { ...t }
    if (t.start_ms !== undefined) shifted.start_ms = t.start_ms + offsetMs
    if (t.end_ms !== undefined) shifted.end_ms = t.end_ms + offsetMs
    return shifted
  })
  return {
    ...result,
    tokens,
    finalAudioProcMs: result.finalAudioProcMs === undefined ? undefined : result.finalAudioProcMs + offsetMs,
    totalAudioProcMs: result.totalAudioProcMs === undefined ? undefined : result.totalAudioProcMs + offsetMs,
  }
}
