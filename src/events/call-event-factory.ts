/**
 * Builds the event envelopes of one call: gapless `seq` from 0 and an `id` fixed at creation
 * (receivers deduplicate retried deliveries on it).
 */
import { randomUUID } from 'node:crypto'
import type { EventEnvelope, EventType } from './envelope.js'

export class CallEventFactory {
  private nextSeq = 0

  constructor(
    private readonly callId: string,
    private readonly now: () => number,
  ) {}

  create(type: EventType, data: Record<string, unknown>): EventEnvelope {
    return {
      id: `evt_${randomUUID()}`,
      type,
      call_id: this.callId,
      seq: this.nextSeq++,
      time: new Date(this.now()).toISOString(),
      data,
    }
  }
}
