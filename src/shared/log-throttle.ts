/**
 * At most one log line per key per interval, reporting how many were held back meanwhile. For
 * events a peer can trigger at will (refused connections): a port scan must not flood the journal,
 * but the first refusal, and the rate, stay visible.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns undefined to stay quiet, or the number of lines suppressed since the last one logged. */
  take(key: string): number | undefined {
    const now = this.now()
    const entry = this.last.get(key)
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++
      return undefined
    }
    const suppressed = entry?.suppressed ?? 0
    this.last.set(key, { at: now, suppressed: 0 })
    return suppressed
  }
}
