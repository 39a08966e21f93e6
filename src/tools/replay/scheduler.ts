/**
 * The replay's pacing: every write is due at an absolute time on one monotonic clock, so timer
 * lateness never accumulates (drift-corrected). All calls share one Scheduler, which keeps one
 * timer for the earliest due task whatever the number of calls. The clock is injectable, so tests
 * drive pacing without waiting on wall time; by default monotonicClock, whose timers take delays of
 * any length (the capture's timing over --speed, command-line options).
 */
import { monotonicClock, type Clock, type ClockTimer } from '../../shared/clock.js'

interface ScheduledTask {
  due: number
  seq: number
  run: () => void
  cancelled: boolean
}

/**
 * Runs callbacks at absolute times on one clock, with a single timer armed for the earliest.
 * A task may run up to `earlyMs` before its time: Node timers have 1 ms granularity, and waking
 * for a sub-millisecond wait would only make that write later.
 */
export class Scheduler {
  readonly clock: Clock
  readonly #earlyMs: number
  readonly #heap: ScheduledTask[] = []
  #seq = 0
  #timer: ClockTimer | undefined
  #timerDue = Infinity

  constructor(clock: Clock = monotonicClock, options: { earlyMs?: number } = {}) {
    this.clock = clock
    this.#earlyMs = options.earlyMs ?? 0.5
  }

  /** Runs `run` at clock time `due` (ms); returns a cancel function. */
  at(due: number, run: () => void): () => void {
    const task: ScheduledTask = { due, seq: this.#seq++, run, cancelled: false }
    this.#push(task)
    this.#arm()
    return () => {
      task.cancelled = true
    }
  }

  get size(): number {
    return this.#heap.length
  }

  #fire = (): void => {
    this.#timer = undefined
    this.#timerDue = Infinity
    const limit = this.clock.now() + this.#earlyMs
    while (this.#heap.length > 0 && (this.#heap[0] as ScheduledTask).due <= limit) {
      const task = this.#pop()
      if (task.cancelled) continue
      try {
        task.run()
      } catch {
        // A task's failure belongs to its call, which handles its own errors; never stop the others.
      }
    }
    this.#arm()
  }

  #arm(): void {
    while (this.#heap.length > 0 && (this.#heap[0] as ScheduledTask).cancelled) this.#pop()
    const next = this.#heap[0]
    if (next === undefined) {
      this.clock.clearTimeout(this.#timer)
      this.#timer = undefined
      this.#timerDue = Infinity
      return
    }
    if (this.#timer !== undefined && this.#timerDue <= next.due) return
    this.clock.clearTimeout(this.#timer)
    this.#timerDue = next.due
    this.#timer = this.clock.setTimeout(this.#fire, Math.max(0, next.due - this.clock.now()))
  }

  #less(a: ScheduledTask, b: ScheduledTask): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq)
  }

  #push(task: ScheduledTask): void {
    const h = this.#heap
    h.push(task)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#less(h[i] as ScheduledTask, h[parent] as ScheduledTask)) break
      ;[h[i], h[parent]] = [h[parent] as ScheduledTask, h[i] as ScheduledTask]
      i = parent
    }
  }

  #pop(): ScheduledTask {
    const h = this.#heap
    const top = h[0] as ScheduledTask
    const last = h.pop() as ScheduledTask
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.#less(h[l] as ScheduledTask, h[m] as ScheduledTask)) m = l
        if (r < h.length && this.#less(h[r] as ScheduledTask, h[m] as ScheduledTask)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m] as ScheduledTask, h[i] as ScheduledTask]
        i = m
      }
    }
    return top
  }
}
