import type { EventEnvelope, EventSink } from './envelope.js'

/**
 * Several sinks at once (WEBHOOK_URL and EVENTS_FILE): each event goes to each sink, in the order
 * the sinks were given. The sinks are independent: a slow webhook does not hold up the file, and
 * each keeps its own guarantees (the webhook its spool and retries, the file its append order).
 */
export class FanOutSink implements EventSink {
  constructor(private readonly sinks: readonly EventSink[]) {}

  /** Starts every sink; rejects with the first failure (the server must not run half-configured). */
  async start(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.start?.()))
  }

  publish(event: EventEnvelope): void {
    // Sinks never throw from publish (the EventSink contract), so one cannot stop the next.
    for (const sink of this.sinks) sink.publish(event)
  }

  async reopen(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.reopen?.()))
  }

  /** Closes every sink in parallel, each within the same bound. */
  async close(timeoutMs: number): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.close(timeoutMs)))
  }
}
