/**
 * A hand-driven clock for src/tools/replay/scheduler.ts (ReplayClock): time moves only in advance(),
 * which runs due timers in time order, setting now() to each timer's due time as it runs, exactly
 * as a perfectly punctual machine would.
 */
import type { ReplayClock } from '../../src/tools/index.js'

interface Timer {
  id: number
  at: number
  run: () => void
}

export class FakeClock implements ReplayClock {
  #now: number
  #timers: Timer[] = []
  #nextId = 1
  #waiters: Array<() => void> = []

  constructor(startMs = 1000) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  setTimer(run: () => void, delayMs: number): unknown {
    const timer = { id: this.#nextId++, at: this.#now + Math.max(0, delayMs), run }
    this.#timers.push(timer)
    for (const wake of this.#waiters.splice(0)) wake()
    return timer.id
  }

  clearTimer(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle)
  }

  /** Timers pending. */
  get pending(): number {
    return this.#timers.length
  }

  /** Resolves the next time a timer is set. */
  nextTimer(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order, at its own time. */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.#timers = this.#timers.filter((t) => t !== due)
      this.#now = Math.max(this.#now, due.at)
      due.run()
    }
    this.#now = target
  }

  /**
   * A stalled event loop: time jumps to `ms` first, then every timer that fell due runs, in order,
   * all late, at `ms`.
   */
  stallUntil(ms: number): void {
    this.#now = Math.max(this.#now, ms)
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= this.#now).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.#timers = this.#timers.filter((t) => t !== due)
      due.run()
    }
  }

  /** Moves time to `ms` exactly (never backwards). */
  advanceTo(ms: number): void {
    this.advance(Math.max(0, ms - this.#now))
  }
}
