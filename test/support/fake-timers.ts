/**
 * The fake Clock (src/shared/clock.ts): hand-driven time for every class that takes one
 * (CallSession, SilenceKeeper, SonioxSession, ResilientTranscriber, the webhook transport, the
 * replay's Scheduler); `setTimer` / `clearTimer` serve as the base of long-timer.ts's tests. Time
 * moves only when the test says so; `nextTimer()` waits for code under test to arm a timer.
 *
 *   advance(ms)      punctual machine: every timer due within `ms` runs at its own due time
 *   runNext(lateBy)  runs the earliest timer `lateBy` ms after it was due (a late wake-up)
 *   stallUntil(t)    a stalled event loop: time jumps to `t`, then every overdue timer runs, late
 *
 * Every arming (setTimer, or `refresh()` on a handle, as Node's Timeout has) and every clearTimer
 * is recorded (`calls`, `clears`) so a test can count wake-ups. Handles are plain objects (typed as
 * NodeJS.Timeout for setTimer); they never reach the real timer API.
 */
import type { Clock, ClockTimer } from '../../src/shared/clock.js'

export interface FakeTimerCall {
  /** Fake time at which setTimer was called. */
  at: number
  /** Delay requested. */
  ms: number
  /** Fake time at which it is due. */
  due: number
  /** A re-arming of an existing handle (`refresh()`), not a new timer. */
  refresh: boolean
}

interface Pending {
  id: number
  due: number
  fn: () => void
  handle: NodeJS.Timeout
}

export class FakeTimers implements Clock {
  #now: number
  #nextId = 1
  #pending: Pending[] = []
  readonly #cleared = new WeakSet<object>()
  #waiters: Array<() => void> = []
  /** Every arming, in order: setTimer calls and refresh() of a handle (`refresh: true`). */
  readonly calls: FakeTimerCall[] = []
  /** How many clearTimer calls found a pending timer to cancel. */
  clears = 0

  constructor(startMs = 1_000_000) {
    this.#now = startMs
  }

  /** Bound, so it can be passed as an option as is. */
  readonly now = (): number => this.#now

  readonly setTimer = (fn: () => void, ms: number): NodeJS.Timeout => {
    const handle = {
      fakeTimerId: this.#nextId,
      // Like Node's Timeout#refresh: due `ms` from now again, whether it is pending or has run.
      refresh: (): NodeJS.Timeout => {
        if (this.#cleared.has(timeout)) return timeout // Node: a cleared Timeout stays cleared
        this.#pending = this.#pending.filter((p) => p.handle !== timeout)
        this.#arm(fn, ms, timeout, true)
        return timeout
      },
      unref: (): NodeJS.Timeout => timeout,
    }
    const timeout = handle as unknown as NodeJS.Timeout
    this.#arm(fn, ms, timeout, false)
    for (const wake of this.#waiters.splice(0)) wake()
    return timeout
  }

  /** Resolves the next time a new timer is set (not a refresh()). */
  nextTimer(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  #arm(fn: () => void, ms: number, handle: NodeJS.Timeout, refresh: boolean): void {
    const delay = Math.max(0, Number.isFinite(ms) ? ms : 0)
    this.#pending.push({ id: this.#nextId++, due: this.#now + delay, fn, handle })
    this.calls.push({ at: this.#now, ms, due: this.#now + delay, refresh })
  }

  readonly clearTimer = (handle: NodeJS.Timeout): void => {
    this.#cleared.add(handle)
    const before = this.#pending.length
    this.#pending = this.#pending.filter((p) => p.handle !== handle)
    if (this.#pending.length < before) this.clears++
  }

  /** Clock#setTimeout: the same timer as setTimer (a handle that can refresh() and unref()). */
  readonly setTimeout = (fn: () => void, ms: number): ClockTimer => this.setTimer(fn, ms)

  readonly clearTimeout = (timer: ClockTimer | undefined): void => {
    if (timer !== undefined) this.clearTimer(timer as NodeJS.Timeout)
  }

  /** Timers scheduled and not yet run or cleared. */
  get pending(): number {
    return this.#pending.length
  }

  /** Due time of the earliest pending timer, if any. */
  get nextDue(): number | undefined {
    return this.#earliest()?.due
  }

  /** Moves time forward by `ms`, running each timer that falls due at its own due time, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms)
  }

  /** Moves time to `target` (never backwards), running due timers punctually. */
  advanceTo(target: number): void {
    for (;;) {
      const next = this.#earliest()
      if (next === undefined || next.due > target) break
      this.#run(next, Math.max(this.#now, next.due))
    }
    this.#now = Math.max(this.#now, target)
  }

  /** Runs the earliest pending timer `lateByMs` after its due time; false when none is pending. */
  runNext(lateByMs = 0): boolean {
    const next = this.#earliest()
    if (next === undefined) return false
    this.#run(next, Math.max(this.#now, next.due + lateByMs))
    return true
  }

  /** Time jumps to `t`; then every timer due by then (including ones they set) runs, late, at `t`. */
  stallUntil(t: number): void {
    this.#now = Math.max(this.#now, t)
    for (;;) {
      const next = this.#earliest()
      if (next === undefined || next.due > this.#now) break
      this.#run(next, this.#now)
    }
  }

  #earliest(): Pending | undefined {
    let best: Pending | undefined
    for (const p of this.#pending) if (best === undefined || p.due < best.due || (p.due === best.due && p.id < best.id)) best = p
    return best
  }

  #run(p: Pending, at: number): void {
    this.#pending = this.#pending.filter((x) => x !== p)
    this.#now = at
    p.fn()
  }
}
