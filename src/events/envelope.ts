/**
 * The outside contract: every event leaves the server in this envelope (see README "Events").
 * `seq` is gapless per call from 0; `id` is fixed when the event is created and never changes
 * across retries, so receivers can deduplicate on it (it is also the `webhook-id` header).
 */
export type EventType =
  | 'call.started'
  | 'transcript.partial'
  | 'transcript.final'
  | 'call.dtmf'
  | 'call.ended'
  | 'conversation.started'
  | 'conversation.ended'

export interface EventEnvelope<D extends object = Record<string, unknown>> {
  readonly id: string
  readonly type: EventType
  readonly call_id: string
  readonly seq: number
  /**
   * Set on every event of a conversation's leg (a tapped bridged call) and on the conversation's
   * own events, whose `call_id` is the conversation id (their own stream, seq from 0).
   */
  readonly conversation_id?: string
  /** A leg's role in its conversation ("caller", "agent", ...); only on a leg's events. */
  readonly role?: string
  /** ISO-8601 wall-clock time at which the server created the event. */
  readonly time: string
  readonly data: D
}

/**
 * Where events go. `publish` never throws and never blocks the caller: delivery, retries and
 * ordering are the sink's job. `close` waits (bounded) for what is in flight.
 */
export interface EventSink {
  /**
   * Optional preparation before the server takes calls: open files, recover the spool. Rejects if
   * the sink cannot work (the server then does not start). Events published before it resolves are
   * held, not lost.
   */
  start?(): Promise<void>
  publish(event: EventEnvelope): void
  /**
   * Optional: reopen the files the sink appends to, after log rotation moved them (SIGHUP). Never
   * rejects; a file that cannot be reopened is logged and the old one kept.
   */
  reopen?(): Promise<void>
  close(timeoutMs: number): Promise<void>
}
