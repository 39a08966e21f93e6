/**
 * One way to inject time: every class that reads the time or sets a timer takes a Clock (tests
 * pass the fake one in test/support/fake-timers.ts; production uses systemClock).
 *
 * systemClock's timers take any delay: one a Node timer can hold (up to 2^31-1 ms, 24.8 days) is
 * a plain Node Timeout, with no extra object (the silence pacer sets one every 20 ms per call);
 * a longer one (a setting, a peer's Retry-After) is waited out in legs by long-timer.ts rather
 * than firing after 1 ms as Node's would.
 */
import { UNGUARDED, type Guard } from './guard.js'
import { MAX_TIMER_DELAY_MS, clearLongTimeout, setLongTimeout, type LongTimeout } from './long-timer.js'

export interface ClockTimer {
  /** Due its delay from now again, whether pending or run (Node's Timeout#refresh): no new timer. */
  refresh(): void
  /** As Timeout#unref: the timer does not keep the process alive. */
  unref(): void
}

export interface Clock {
  /**
   * Milliseconds: systemClock's since the epoch (a wall clock: it may step); monotonicClock's from
   * an arbitrary origin, never stepping (for intervals only).
   */
  now(): number
  setTimeout(callback: () => void, ms: number): ClockTimer
  /** Cancels a timer; undefined, or one that has run, is ignored. */
  clearTimeout(timer: ClockTimer | undefined): void
}

/** A delay longer than a Node timer holds, re-armed in legs until the whole delay has passed. */
class LongTimer implements ClockTimer {
  private wait: LongTimeout
  private unrefed = false

  constructor(
    private readonly callback: () => void,
    private readonly ms: number,
  ) {
    this.wait = setLongTimeout(callback, ms)
  }

  refresh(): void {
    clearLongTimeout(this.wait)
    this.wait = setLongTimeout(this.callback, this.ms)
    if (this.unrefed) this.wait.unref()
  }

  unref(): void {
    this.unrefed = true
    this.wait.unref()
  }

  cancel(): void {
    clearLongTimeout(this.wait)
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => (ms >= 0 && ms <= MAX_TIMER_DELAY_MS ? setTimeout(callback, ms) : new LongTimer(callback, ms)),
  clearTimeout: (timer) => {
    if (timer instanceof LongTimer) timer.cancel()
    // Every other timer of systemClock is a Node Timeout.
    else if (timer !== undefined) clearTimeout(timer as NodeJS.Timeout)
  },
}

/** systemClock's timers, with a clock that never steps (performance.now()): for pacing, as the replay's. */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: systemClock.setTimeout,
  clearTimeout: systemClock.clearTimeout,
}

/** `clock` with every timer callback inside `guard` (a call's fault boundary). */
export function guardedClock(clock: Clock, guard: Guard): Clock {
  if (guard === UNGUARDED) return clock
  return {
    now: () => clock.now(),
    setTimeout: (callback, ms) => clock.setTimeout(guard(callback), ms),
    clearTimeout: (timer) => clock.clearTimeout(timer),
  }
}
