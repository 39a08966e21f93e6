/**
 * What the ARI layer counts (Prometheus in production: server/service-metrics.ts implements it).
 * Labels come from fixed sets: no channel ids.
 */

export interface AriMetrics {
  /** A REST request is over: `ok` when its method resolved (a 404 it maps to undefined/false included), `error` when it rejected. */
  requestFinished(outcome: 'ok' | 'error'): void
  /** The events socket is open (true) or not (false); called on each change. */
  eventStreamConnected(connected: boolean): void
}

/** AriMetrics plus the taps (snoop + externalMedia streams) live now. */
export interface AriTapMetrics extends AriMetrics {
  tapStarted(): void
  tapEnded(): void
}
