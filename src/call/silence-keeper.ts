/**
 * Keeps Asterisk's side of the call alive with 20 ms frames of silence.
 *
 * Asterisk 20.14+ ends an AudioSocket() call after 2 s in which neither side sent anything: a
 * transcriber is silent, so a caller on hold (no RTP) or using DTX would be cut off. And the
 * channel driver can stall for good if the server never sends (asterisk#2089). Modes:
 *   off         never send
 *   gaps        once the caller's audio has been absent for `afterMs`, send silence every 20 ms
 *               until it resumes (the default)
 *   continuous  send silence every 20 ms from the start of the call (the #2089 workaround)
 *
 * Cost: in `gaps` mode an active caller costs one timer wake-up per `afterMs`, not a timer reset
 * per audio frame: the watchdog re-arms itself from the last audio time when it fires early.
 * Pacing is drift-corrected: frame n is due at start + n*20 ms, and each wake-up sends every
 * frame due by then, not one (one per wake-up would pace at the loop's turn time whenever a
 * loaded loop wakes the pacer less often than every 20 ms). The catch-up is bounded: after an event-loop stall longer than 100 ms it resynchronises instead of
 * sending a burst, because Asterisk plays whatever arrives at once.
 */
import { Kind, encodeAudio, sampleRateOfKind } from '../audiosocket/index.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'

export type SilenceMode = 'off' | 'gaps' | 'continuous'

export const SILENCE_FRAME_MS = 20

/**
 * One 20 ms AudioSocket frame of silence of `kind`. Asterisk reads a 0x10 frame as 8 kHz slin
 * whatever it sends us (older versions label every rate 0x10), so 0x10 silence is always 8 kHz;
 * the wideband kinds exist only where Asterisk also accepts them back.
 */
export function silenceFrame(kind: number): Buffer {
  const rate = kind === Kind.Slin8 ? 8000 : sampleRateOfKind(kind)
  if (rate === undefined) return silenceFrame(Kind.Slin8)
  return encodeAudio(kind, Buffer.alloc(((rate * SILENCE_FRAME_MS) / 1000) * 2))
}

/**
 * At most this many frames (100 ms) are sent in one wake-up to catch up with the grid; when more
 * are due, the loop stalled: one frame goes out and a new grid starts there.
 */
const MAX_CATCH_UP_FRAMES = 5

export interface SilenceKeeperOptions {
  mode: SilenceMode
  afterMs: number
  /** Writes one complete AudioSocket frame (header + payload) in one write. */
  write(frame: Buffer): void
  /** Default systemClock; a call passes its own, whose timers run inside its fault boundary. */
  clock?: Clock
}

export class SilenceKeeper {
  private frame: Buffer
  private lastInboundAt: number
  private watchdog: ClockTimer | undefined
  private pacer: ClockTimer | undefined
  private paceStart = 0
  private framesSent = 0
  private stopped = false
  private readonly clock: Clock

  /** Silence frames written so far. */
  totalFrames = 0

  /** @param initialFrame the silence frame to send until the call's audio kind is known. */
  constructor(
    private readonly options: SilenceKeeperOptions,
    initialFrame: Buffer,
  ) {
    this.frame = initialFrame
    this.clock = options.clock ?? systemClock
    this.lastInboundAt = this.clock.now()
    if (options.mode === 'continuous') this.startPacing()
    else if (options.mode === 'gaps') this.armWatchdog(options.afterMs)
  }

  /** Silence of the call's own audio kind, once the first inbound frame has told it. */
  setFrame(frame: Buffer): void {
    this.frame = frame
  }

  /** The caller's audio arrived: cheap, called for every inbound frame. */
  onInboundAudio(): void {
    this.lastInboundAt = this.clock.now()
    if (this.options.mode !== 'gaps' || this.pacer === undefined) return
    this.clock.clearTimeout(this.pacer)
    this.pacer = undefined
    this.armWatchdog(this.options.afterMs)
  }

  stop(): void {
    this.stopped = true
    this.clock.clearTimeout(this.watchdog)
    this.clock.clearTimeout(this.pacer)
    this.watchdog = undefined
    this.pacer = undefined
  }

  private armWatchdog(ms: number): void {
    this.watchdog = this.clock.setTimeout(() => this.onWatchdog(), ms)
  }

  private onWatchdog(): void {
    this.watchdog = undefined
    if (this.stopped) return
    const now = this.clock.now()
    // The wall clock stepped back past the last audio: count the quiet from now, not from then.
    if (now < this.lastInboundAt) this.lastInboundAt = now
    const quietFor = now - this.lastInboundAt
    if (quietFor < this.options.afterMs) {
      this.armWatchdog(this.options.afterMs - quietFor)
      return
    }
    this.startPacing()
  }

  private startPacing(): void {
    this.paceStart = this.clock.now()
    this.framesSent = 0
    this.sendDueFrames()
  }

  private sendDueFrames(): void {
    this.pacer = undefined
    if (this.stopped) return
    const now = this.clock.now()
    // Frame n is due at paceStart + n*20: every frame up to now that has not gone out yet.
    let due = Math.floor((now - this.paceStart) / SILENCE_FRAME_MS) + 1 - this.framesSent
    // More than the catch-up bound (a stalled loop, or the clock stepped forward), or the next
    // frame is over a frame's time away (the clock stepped back): one frame, and a new grid.
    if (due > MAX_CATCH_UP_FRAMES || due < 0) {
      this.paceStart = now
      this.framesSent = 0
      due = 1
    }
    // due == 0: woken before the next frame's time (clock rounding); only re-arm.
    for (let i = 0; i < due; i++) {
      this.options.write(this.frame)
      this.framesSent++
      this.totalFrames++
      if (this.stopped) return
    }
    const nextDue = this.paceStart + this.framesSent * SILENCE_FRAME_MS
    this.pacer = this.clock.setTimeout(() => this.sendDueFrames(), nextDue - now)
  }
}
