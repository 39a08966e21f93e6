/**
 * Plays captures into an AudioSocket server the way Asterisk sent them: the recorded reads, one
 * write each, at their recorded times (or faster), then the recorded ending (FIN or reset).
 * Usable as a library: `audiosocket-soniox replay` and the benchmark's load generator both use it.
 *
 * Pacing: every write is due at `start + offset / speed` on the Scheduler's clock (scheduler.ts),
 * shared by all calls; each call keeps at most one entry in it.
 *
 * Acting like Asterisk: a hangup frame (00 00 00) or a FIN from the server stops the call and
 * closes our side. Unlike Asterisk, which close()s both ways, the replay half-closes and keeps
 * reading until the server closes, so it can report everything the server sent back.
 *
 * Over 400 lines because one call's replay and the run of many (runReplays) share its options and
 * results; the pacing is in scheduler.ts, the plan in replay-plan.ts.
 */
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { FrameParser, Kind, uuidToBytes } from '../../audiosocket/index.js'
import { AppError, isErrnoException } from '../../shared/errors.js'
import { hexKind } from '../kind-names.js'
import { withUuid, type ReplayPlan, type ReplayStep } from './replay-plan.js'
import type { Clock, ClockTimer } from '../../shared/clock.js'
import { Scheduler } from './scheduler.js'

// ---------------------------------------------------------------------------------------------
// One call

export interface CallReplayOptions {
  host: string
  port: number
  /** 1 = recorded cadence, 10 = ten times faster, Infinity = as fast as the socket takes it. */
  speed?: number
  /** Send the capture's own UUID instead of a fresh one. */
  keepUuid?: boolean
  /** Use this UUID (overrides keepUuid). */
  uuid?: string
  scheduler?: Scheduler
  /** Like Asterisk's 2 s per address. */
  connectTimeoutMs?: number
  /** After our side has ended, how long to wait for the server to close before giving up. Default 10 s. */
  lingerMs?: number
  /** Sees every write as it goes out, with when it was due and when it went (clock ms): a timeline. */
  onSend?: (write: ReplayWrite) => void
  /**
   * Plays an Asterisk externalMedia channel's stream, which outlives its audio: when the plan runs
   * out of steps our side stays open (the server's frames still read) until this settles, then
   * ends with a FIN; settling earlier ends our side at once, mid-plan (`completed` false), as
   * Asterisk closes the stream when the channel is hung up. A recorded FIN or reset step in the
   * plan still ends the call where it stands. Unset: our side ends when the plan does.
   */
  holdUntil?: Promise<unknown>
}

/** One write of a replayed call, as `onSend` sees it. */
export interface ReplayWrite {
  /** 0 for the call's first write. */
  index: number
  bytes: number
  /** When it was due and when it went, on the scheduler's clock (ms). */
  dueMs: number
  atMs: number
  /** Where it sits in the recording: µs after the capture's start. */
  atUs: number
  /** Frames wholly sent so far, this write included. */
  framesSent: number
}

/** How the server ended its side of the call. */
export type ServerEnding = 'hangup-frame' | 'fin' | 'reset' | 'none'

export interface CallReplayResult {
  name: string
  /** The UUID sent (fresh unless kept), or undefined if the stream has no UUID frame. */
  uuid: string | undefined
  ok: boolean
  /** Why the call failed, when it did. */
  failure: string | undefined
  connected: boolean
  framesSent: number
  framesTotal: number
  bytesSent: number
  bytesTotal: number
  writes: number
  /** Every recorded byte was sent (the server did not stop the call first). */
  completed: boolean
  /** How our side ended: FIN or reset (as the capture did, or FIN in answer to the server's end), or 'none' if the connection was gone first. */
  ending: 'fin' | 'reset' | 'none'
  /** Connect to close. */
  durationMs: number
  server: {
    ending: ServerEnding
    /** The server ended its side before we had sent everything. */
    endedFirst: boolean
    /** ms after connect when the server ended its side. */
    endedAtMs: number | undefined
    bytes: number
    /** Frames the server sent, by kind ("0x00", "0x10", ...). */
    frames: Record<string, number>
    /** When what the server sent is not valid AudioSocket framing. */
    protocolError: string | undefined
  }
  /** How late writes went out against their due time (ms). */
  lateness: { maxMs: number; meanMs: number }
  /** Writes the socket could not take at once: Asterisk's non-blocking write would have failed the call. */
  writeStalls: number
  /** Anything else worth telling (e.g. the server never closed after our FIN). */
  notes: string[]
}

/** 'holding': the plan is done and our side waits for `holdUntil` (still open, still reading). */
type CallState = 'connecting' | 'sending' | 'holding' | 'ended' | 'closed'

export function replayCall(plan: ReplayPlan, options: CallReplayOptions): Promise<CallReplayResult> {
  return new Promise((resolve) => new CallReplay(plan, options, resolve).start())
}

class CallReplay {
  #state: CallState = 'connecting'
  readonly #plan: ReplayPlan
  readonly #options: CallReplayOptions
  readonly #resolve: (result: CallReplayResult) => void
  readonly #scheduler: Scheduler
  readonly #clock: Clock
  readonly #speed: number
  readonly #uuidBytes: Buffer | undefined
  readonly #uuid: string | undefined
  #socket!: net.Socket
  #startMs = 0
  #connectedAtMs: number | undefined
  #next = 0
  #bytesSent = 0
  #writes = 0
  #writeStalls = 0
  #latenessSum = 0
  #latenessMax = 0
  #cancelTask: (() => void) | undefined
  #connectTimer: ClockTimer | undefined
  #lingerTimer: ClockTimer | undefined
  #ending: 'fin' | 'reset' | 'none' = 'none'
  #failure: string | undefined
  readonly #notes: string[] = []
  readonly #received = new FrameParser()
  #receivedBytes = 0
  readonly #receivedFrames: Record<string, number> = {}
  #serverEnding: ServerEnding = 'none'
  #serverEndedAtMs: number | undefined
  #serverEndedFirst = false
  #protocolError: string | undefined
  /** `holdUntil` has settled: nothing more is held open. */
  #released = false

  constructor(plan: ReplayPlan, options: CallReplayOptions, resolve: (result: CallReplayResult) => void) {
    this.#plan = plan
    this.#options = options
    this.#resolve = resolve
    this.#scheduler = options.scheduler ?? new Scheduler()
    this.#clock = this.#scheduler.clock
    this.#speed = options.speed ?? 1
    if (!(this.#speed > 0)) throw new RangeError(`speed must be above 0, got ${this.#speed}`)
    if (plan.uuid !== undefined && (options.uuid !== undefined || !options.keepUuid)) {
      this.#uuid = options.uuid ?? randomUUID()
      this.#uuidBytes = uuidToBytes(this.#uuid)
    } else {
      this.#uuid = plan.uuid
    }
  }

  start(): void {
    this.#startMs = this.#clock.now()
    const socket = net.connect({ host: this.#options.host, port: this.#options.port, allowHalfOpen: true, noDelay: true })
    this.#socket = socket
    const timeoutMs = this.#options.connectTimeoutMs ?? 2000
    this.#connectTimer = this.#clock.setTimeout(() => {
      if (this.#state === 'connecting') socket.destroy(new AppError('ERR_REPLAY_CONNECT', `no connection within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once('connect', () => this.#onConnect())
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('end', () => this.#onServerEnd('fin'))
    socket.on('error', (err) => this.#onError(err))
    socket.on('close', () => this.#onClose())
    const release = (): void => {
      this.#released = true
      if (this.#state === 'sending' || this.#state === 'holding') this.#endOurSide('fin')
    }
    this.#options.holdUntil?.then(release, release)
  }

  #elapsedMs(): number {
    return this.#clock.now() - (this.#connectedAtMs ?? this.#startMs)
  }

  #onConnect(): void {
    this.#clock.clearTimeout(this.#connectTimer)
    this.#state = 'sending'
    this.#connectedAtMs = this.#clock.now()
    if (this.#released) return this.#endOurSide('fin')
    if (Number.isFinite(this.#speed)) this.#schedule()
    else this.#sendFast()
  }

  // Paced: one entry in the shared scheduler at a time, for the next step.
  #schedule(): void {
    const step = this.#plan.steps[this.#next]
    if (step === undefined) return this.#planDone()
    const due = (this.#connectedAtMs as number) + step.atUs / 1000 / this.#speed
    this.#cancelTask = this.#scheduler.at(due, () => {
      this.#cancelTask = undefined
      if (this.#state !== 'sending') return
      const lateness = Math.max(0, this.#clock.now() - due)
      this.#latenessMax = Math.max(this.#latenessMax, lateness)
      this.#latenessSum += lateness
      this.#runStep(step, due)
      if (this.#state === 'sending') this.#schedule()
    })
  }

  #sendFast(): void {
    while (this.#state === 'sending') {
      const step = this.#plan.steps[this.#next]
      if (step === undefined) return this.#planDone()
      if (step.type === 'data' && !this.#runStep(step)) {
        this.#socket.once('drain', () => this.#sendFast())
        return
      }
      if (step.type !== 'data') this.#runStep(step)
    }
  }

  /** Returns false when the socket's buffer is full (the write was still queued). */
  #runStep(step: ReplayStep, dueMs = this.#clock.now()): boolean {
    this.#next++
    if (step.type === 'fin' || step.type === 'reset') {
      this.#endOurSide(step.type)
      return true
    }
    const bytes = this.#uuidBytes ? withUuid(step.bytes, step.streamOffset, this.#uuidBytes) : step.bytes
    this.#bytesSent += bytes.length
    this.#writes++
    const flushed = this.#socket.write(bytes)
    if (!flushed) this.#writeStalls++
    this.#options.onSend?.({ index: this.#writes - 1, bytes: bytes.length, dueMs, atMs: this.#clock.now(), atUs: step.atUs, framesSent: this.#sentFrames() })
    if (this.#next === this.#plan.steps.length) this.#planDone()
    return flushed
  }

  /** Every step has gone: our side ends now, or holds until `holdUntil` settles. */
  #planDone(): void {
    if (this.#options.holdUntil === undefined || this.#released) return this.#endOurSide('fin')
    if (this.#state === 'sending') this.#state = 'holding'
  }

  #endOurSide(how: 'fin' | 'reset'): void {
    if (this.#state !== 'sending' && this.#state !== 'connecting' && this.#state !== 'holding') return
    this.#state = 'ended'
    this.#cancelTask?.()
    this.#cancelTask = undefined
    this.#ending = how
    if (how === 'reset') {
      this.#socket.resetAndDestroy()
      return
    }
    this.#socket.end()
    const lingerMs = this.#options.lingerMs ?? 10000
    this.#lingerTimer = this.#clock.setTimeout(() => {
      this.#notes.push(`the server had not closed the connection ${lingerMs} ms after ours ended`)
      this.#socket.destroy()
    }, lingerMs)
  }

  #onData(chunk: Buffer): void {
    this.#receivedBytes += chunk.length
    if (this.#protocolError !== undefined) return
    for (const frame of this.#received.push(chunk)) {
      const kind =
        frame.type === 'audio' || frame.type === 'unknown' ? frame.kind : frame.type === 'hangup' ? Kind.Hangup : frame.type === 'uuid' ? Kind.Uuid : frame.type === 'dtmf' ? Kind.Dtmf : Kind.Error
      const key = hexKind(kind)
      this.#receivedFrames[key] = (this.#receivedFrames[key] ?? 0) + 1
      if (frame.type === 'hangup' && this.#serverEnding === 'none') {
        // Asterisk reads the hangup and closes: stop sending, end our side.
        this.#markServerEnd('hangup-frame')
        this.#endOurSide('fin')
      }
    }
    if (this.#received.error !== null) this.#protocolError = this.#received.error.message
  }

  #markServerEnd(how: ServerEnding): void {
    if (this.#serverEnding !== 'none') return
    this.#serverEnding = how
    this.#serverEndedAtMs = this.#elapsedMs()
    this.#serverEndedFirst = this.#state === 'sending' || this.#state === 'connecting'
  }

  #onServerEnd(how: 'fin' | 'reset'): void {
    this.#markServerEnd(how)
    // Asterisk treats EOF as the end of the call (20.14+): stop and close our side.
    this.#endOurSide('fin')
  }

  #onError(err: Error): void {
    if (this.#state === 'connecting') {
      this.#failure = new AppError('ERR_REPLAY_CONNECT', `cannot connect to ${this.#options.host}:${this.#options.port}: ${err.message}`).message
      return
    }
    if (isErrnoException(err) && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
      this.#markServerEnd('reset')
      this.#state = this.#state === 'sending' || this.#state === 'holding' ? 'ended' : this.#state
      this.#cancelTask?.()
      return
    }
    this.#failure ??= `socket error: ${err.message}`
  }

  #onClose(): void {
    if (this.#state === 'closed') return
    const wasConnecting = this.#state === 'connecting'
    this.#state = 'closed'
    this.#cancelTask?.()
    this.#clock.clearTimeout(this.#connectTimer)
    this.#clock.clearTimeout(this.#lingerTimer)
    if (wasConnecting) this.#failure ??= `cannot connect to ${this.#options.host}:${this.#options.port}`
    const complete = !this.#plan.steps.slice(this.#next).some((step) => step.type === 'data')
    // Cut short: the server ended the call where the recorded server did not, either before our
    // side ended or by a hangup frame (a server's explicit decision, whenever it arrives).
    const serverEnded = this.#serverEndedFirst || this.#serverEnding === 'hangup-frame'
    if (this.#failure === undefined && serverEnded && !this.#plan.serverEndedInCapture) {
      const sent = this.#sentFrames()
      this.#failure = `cut short: the server ended the call (${this.#serverEnding}) after ${sent} of ${this.#plan.frameEnds.length} frames`
    }
    const writes = Math.max(1, this.#writes)
    this.#resolve({
      name: this.#plan.name,
      uuid: this.#uuid,
      ok: this.#failure === undefined,
      failure: this.#failure,
      connected: this.#connectedAtMs !== undefined,
      completed: complete,
      framesSent: this.#sentFrames(),
      framesTotal: this.#plan.frameEnds.length,
      bytesSent: this.#bytesSent,
      bytesTotal: this.#plan.inboundBytes,
      writes: this.#writes,
      ending: this.#ending,
      durationMs: this.#connectedAtMs === undefined ? 0 : this.#clock.now() - this.#connectedAtMs,
      server: {
        ending: this.#serverEnding,
        endedFirst: this.#serverEndedFirst,
        endedAtMs: this.#serverEndedAtMs,
        bytes: this.#receivedBytes,
        frames: { ...this.#receivedFrames },
        protocolError: this.#protocolError,
      },
      lateness: { maxMs: this.#latenessMax, meanMs: this.#latenessSum / writes },
      writeStalls: this.#writeStalls,
      notes: this.#notes,
    })
  }

  #sentFrames(): number {
    // frameEnds is ascending: binary search for the frames wholly sent.
    const ends = this.#plan.frameEnds
    let lo = 0
    let hi = ends.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((ends[mid] as number) <= this.#bytesSent) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

// ---------------------------------------------------------------------------------------------
// Many calls: the load generator

export interface ReplayRunOptions extends Omit<CallReplayOptions, 'uuid' | 'onSend'> {
  /** Sees every write of every call, with the call's index in job order (as onResult's). */
  onSend?: (write: ReplayWrite, call: number) => void
  /** Calls in flight at once. Default 1. */
  concurrency?: number
  /** Times the whole list is played. Default 1. */
  repeat?: number
  /** Minimum time between two call starts, to ramp up instead of starting all at once. Default 0. */
  startIntervalMs?: number
  /** Called as each call finishes, in finishing order. */
  onResult?: (result: CallReplayResult, index: number) => void
}

export interface ReplaySummary {
  results: CallReplayResult[]
  calls: number
  ok: number
  failed: number
  framesSent: number
  bytesSent: number
  /** First connect attempt to last close. */
  wallMs: number
  maxLatenessMs: number
}

/** Replays `plans` × `repeat` with at most `concurrency` calls at once; results in job order. */
export async function runReplays(plans: ReplayPlan[], options: ReplayRunOptions): Promise<ReplaySummary> {
  const concurrency = options.concurrency ?? 1
  const repeat = options.repeat ?? 1
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a whole number of at least 1, got ${concurrency}`)
  if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError(`repeat must be a whole number of at least 1, got ${repeat}`)
  const scheduler = options.scheduler ?? new Scheduler()
  const clock = scheduler.clock
  const jobs: ReplayPlan[] = []
  for (let r = 0; r < repeat; r++) jobs.push(...plans)
  const results: CallReplayResult[] = new Array(jobs.length)
  const started = clock.now()
  let nextJob = 0
  let nextStartAt = started
  const interval = options.startIntervalMs ?? 0

  const waitUntil = (at: number): Promise<void> =>
    at <= clock.now() ? Promise.resolve() : new Promise((resolve) => scheduler.at(at, resolve))

  const worker = async (): Promise<void> => {
    while (nextJob < jobs.length) {
      const index = nextJob++
      const startAt = nextStartAt
      nextStartAt = Math.max(startAt, clock.now()) + interval
      await waitUntil(startAt)
      const onSend = options.onSend
      const result = await replayCall(jobs[index] as ReplayPlan, { ...options, scheduler, onSend: onSend && ((write) => onSend(write, index)) })
      results[index] = result
      options.onResult?.(result, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker))

  let framesSent = 0
  let bytesSent = 0
  let maxLatenessMs = 0
  for (const r of results) {
    framesSent += r.framesSent
    bytesSent += r.bytesSent
    maxLatenessMs = Math.max(maxLatenessMs, r.lateness.maxMs)
  }
  const ok = results.filter((r) => r.ok).length
  return { results, calls: results.length, ok, failed: results.length - ok, framesSent, bytesSent, wallMs: clock.now() - started, maxLatenessMs }
}
