/**
 * Timers for delays that come from a setting or from a peer (a `Retry-After`), which may be longer
 * than a Node timer can hold. Node's setTimeout takes at most 2^31-1 ms (24.8 days): given more it
 * prints a TimeoutOverflowWarning and fires after 1 ms, so a receiver's `Retry-After: 2500000`
 * (29 days, within a WEBHOOK_MAX_AGE of 30 d) became a retry every millisecond.
 *
 * longTimer(base) returns a setTimer/clearTimer pair over a base pair (Node's own for systemClock in
 * clock.ts, through setLongTimeout; tests pass fake ones as `base`):
 * - A delay up to MAX_TIMER_DELAY_MS goes to the base timer as it is: the same handle, no extra cost.
 * - A longer one arms the maximum and re-arms for the rest until the whole delay has passed: it
 *   fires once, never early (a base timer never fires early; lateness of the legs adds up, as it
 *   would for one timer that slept through a stalled loop). clearTimer stops it at any leg.
 * - NaN and negative delays are 0 (Node's own timers treat them as 1 ms).
 * - Infinity never fires: the wait re-arms for ever, until cleared. That is what a wait without end
 *   means; capping it would fire it after 24.8 days for no reason anyone asked for.
 */

/** The longest delay a Node timer holds (a signed 32-bit count of milliseconds). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1

export interface TimerFunctions<H> {
  setTimer(callback: () => void, ms: number): H
  clearTimer(handle: H): void
}

/** A wait longer than one base timer can hold; `leg` is the base timer armed now. */
export class LongWait<H> {
  private unrefed = false

  constructor(public leg: H) {}

  /** As Timeout#unref: this wait does not keep the process alive, at any leg (when the base handle can unref). */
  unref(): this {
    this.unrefed = true
    unrefLeg(this.leg)
    return this
  }

  /** Called for each new leg. */
  armed(leg: H): void {
    this.leg = leg
    if (this.unrefed) unrefLeg(leg)
  }
}

function unrefLeg(leg: unknown): void {
  if (typeof leg === 'object' && leg !== null && 'unref' in leg && typeof leg.unref === 'function') leg.unref()
}

/** setTimer/clearTimer over `base` that take any delay (see the module comment). */
export function longTimer<H>(base: TimerFunctions<H>): TimerFunctions<H | LongWait<H>> {
  const setTimer = (callback: () => void, ms: number): H | LongWait<H> => {
    const delay = ms > 0 ? ms : 0 // NaN too
    if (delay <= MAX_TIMER_DELAY_MS) return base.setTimer(callback, delay)
    let remaining = delay
    const nextLeg = (): H => {
      const leg = Math.min(remaining, MAX_TIMER_DELAY_MS)
      remaining -= leg // Infinity stays Infinity: re-armed for ever
      return base.setTimer(remaining > 0 ? rearm : callback, leg)
    }
    const rearm = (): void => wait.armed(nextLeg())
    const wait = new LongWait(nextLeg())
    return wait
  }
  const clearTimer = (handle: H | LongWait<H>): void => {
    if (handle instanceof LongWait) base.clearTimer(handle.leg)
    else base.clearTimer(handle)
  }
  return { setTimer, clearTimer }
}

/** A handle of setLongTimeout: a Node Timeout, or a LongWait over them; both can unref(). */
export type LongTimeout = NodeJS.Timeout | LongWait<NodeJS.Timeout>

const nodeTimers = longTimer<NodeJS.Timeout>({
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (handle) => clearTimeout(handle),
})

/** setTimeout for a delay from a setting or a peer: any length (see the module comment). */
export const setLongTimeout: (callback: () => void, ms: number) => LongTimeout = nodeTimers.setTimer

/** clearTimeout for a setLongTimeout handle; undefined is ignored, as clearTimeout ignores it. */
export function clearLongTimeout(handle: LongTimeout | undefined): void {
  if (handle !== undefined) nodeTimers.clearTimer(handle)
}
