/**
 * Preloaded into a benchmark target (`node --import <this file>`, server and relay alike) to
 * measure its main thread's event-loop delay, as perf_hooks.monitorEventLoopDelay sees it (a 1 ms
 * timer and how late it fires). It does nothing until asked: each SIGUSR2 appends one JSON line to
 * BENCH_LOOP_DELAY_FILE with the delays since the previous signal, then starts afresh. The
 * orchestrator signals at the start and end of each window it reports on; a signal that arrives
 * during a stall is handled after it, so the stall still falls in the window it began in.
 *
 * Loaded only for the burst scenario (bench/burst.ts), so the steady-state runs stay as they were.
 * Plain JavaScript: the server is started from dist/ without a TypeScript loader, under tests too.
 * Each line is a LoopDelayWindow (bench/burst.ts).
 */
import { appendFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'

const file = process.env.BENCH_LOOP_DELAY_FILE
if (file) {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  process.on('SIGUSR2', () => {
    const window = {
      at: Date.now(),
      count: histogram.count,
      p50Ms: histogram.percentile(50) / 1e6,
      p99Ms: histogram.percentile(99) / 1e6,
      maxMs: histogram.max / 1e6,
    }
    histogram.reset()
    appendFileSync(file, `${JSON.stringify(window)}\n`)
  })
}
