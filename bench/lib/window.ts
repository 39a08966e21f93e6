/**
 * The measurement window of the steady state, shared by every scenario that reports CPU per
 * call-second (or stream-second), so that their figures read the same way: it opens after the ramp
 * and a warm-up, when every call is live, and closes 2 s before the first call ends (at least 1 s
 * long); memory is read in its middle.
 */
import { cpuSeconds, mainThreadCpuSeconds, rssBytes, wakeups } from './proc.js'
import { sleep } from './rig.js'

export interface WindowReading {
  /** What the target used over the window: CPU seconds of all threads and of the main thread alone, thread wake-ups. */
  cpuSeconds: number
  mainThreadCpuSeconds: number
  wakeups: number
  /** Resident memory in the middle of the window. */
  rssBytes: number
  /** The window's length. */
  seconds: number
}

/** Waits from the load's start through the window (call it as the load starts) and reads the target `pid` over it. */
export async function readWindow(pid: number, options: { rampMs: number; warmupMs: number; durationMs: number }): Promise<WindowReading> {
  await sleep(options.rampMs + options.warmupMs)
  const windowMs = Math.max(1000, options.durationMs - options.rampMs - options.warmupMs - 2000)
  const cpu0 = cpuSeconds(pid)
  const main0 = mainThreadCpuSeconds(pid)
  const wakeups0 = wakeups(pid)
  const t0 = performance.now()
  await sleep(windowMs / 2)
  const rss = rssBytes(pid)
  await sleep(windowMs / 2)
  return {
    cpuSeconds: cpuSeconds(pid) - cpu0,
    mainThreadCpuSeconds: mainThreadCpuSeconds(pid) - main0,
    wakeups: wakeups(pid) - wakeups0,
    rssBytes: rss,
    seconds: (performance.now() - t0) / 1000,
  }
}
