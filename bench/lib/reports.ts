/**
 * What the bench's roles report at the end of a measurement (stand-in, receiver, load generator),
 * the audio latency matched from two of them, and the counts repeated runs sum. Shared by the
 * steady-state and burst scenarios.
 */
import type { LinkReport } from './tls.js'

export interface StandInReport {
  connections: number
  link: LinkReport
  calls: Record<string, { wordsProduced: number; utteranceEnds: Array<[number, number, number]>; arrivals?: Array<[number, number]> }>
}
export interface ReceiverReport {
  requests: number
  callsEnded: number
  /** conversation.ended events (the server's conversations; none from the relay). */
  conversationsEnded: number
  link: LinkReport
  finals: Record<string, Array<[number, number, number]>>
}
export interface LoadReport {
  calls: number
  ok: number
  failures: string[]
  maxLatenessMs: number
  writes: Record<string, Array<[number, number]>>
}

/**
 * Audio latency: each sampled write made within [from, to) (default: all), to the first stand-in
 * arrival that holds its last byte.
 */
export function audioLatencies(writes: LoadReport['writes'], standIn: Pick<StandInReport, 'calls'>, from = -Infinity, to = Infinity): number[] {
  const out: number[] = []
  for (const [uuid, log] of Object.entries(writes)) {
    const arrivals = standIn.calls[uuid]?.arrivals
    if (!arrivals) continue
    let j = 0
    let previous = 0
    for (const [bytes, at] of log) {
      if (bytes === previous) continue // not an audio write (the UUID frame)
      previous = bytes
      while (j < arrivals.length && (arrivals[j]?.[0] ?? 0) < bytes) j++
      const arrival = arrivals[j]
      if (!arrival) break
      if (at >= from && at < to) out.push(arrival[1] - at)
    }
  }
  return out
}

/** The counts a measurement of either scenario takes from those reports. */
export interface RunCounts {
  wordsProduced: number
  wordsDelivered: number
  callsFailed: number
  errors: number
  maxLoadLatenessMs: number
}

/** Repeated runs' counts as one: words, failed calls and errors summed; the worst load-generator lateness; how many runs. */
export function sumCounts(runs: RunCounts[]): RunCounts & { runs: number } {
  const sum = (pick: (r: RunCounts) => number): number => runs.reduce((n, r) => n + pick(r), 0)
  return {
    wordsProduced: sum((r) => r.wordsProduced),
    wordsDelivered: sum((r) => r.wordsDelivered),
    callsFailed: sum((r) => r.callsFailed),
    errors: sum((r) => r.errors),
    maxLoadLatenessMs: Math.max(...runs.map((r) => r.maxLoadLatenessMs)),
    runs: runs.length,
  }
}
