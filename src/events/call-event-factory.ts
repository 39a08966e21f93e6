/**
 * Builds the event envelopes of one call (or of one conversation: its own stream): gapless `seq`
 * from 0 and an `id` fixed at creation (receivers deduplicate retried deliveries on it).
 */
import { randomUUID } from 'node:crypto'
import type { EventEnvelope, EventType } from './envelope.js'

export class CallEventFactory {
  private nextSeq = 0

  constructor(
    private readonly callId: string,
    private readonly now: () => number,
    /** A conversation's leg (or the conversation itself): named on every envelope. */
    private readonly conversation?: { readonly conversationId: string; readonly role?: string | undefined },
  ) {}

  create(type: EventType, data: Record<string, unknown>): EventEnvelope {
    const id = `evt_${randomUUID()}`
    const seq = this.nextSeq++
    const time = new Date(this.now()).toISOString()
    const conversation = this.conversation
    if (conversation === undefined) return { id, type, call_id: this.callId, seq, time, data }
    if (conversation.role === undefined) return { id, type, call_id: this.callId, seq, conversation_id: conversation.conversationId, time, data }
    return { id, type, call_id: this.callId, seq, conversation_id: conversation.conversationId, role: conversation.role, time, data }
  }
}
