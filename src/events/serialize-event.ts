/**
 * An envelope turned into the bytes that leave the server: the JSON every sink writes (a webhook
 * body, a JSON line), serialised once, when the event is published, so the bytes are fixed even if
 * the publisher later mutates `data`.
 */
import { AppError } from '../shared/errors.js'
import type { EventEnvelope } from './envelope.js'

/** An event as delivery keeps and sends it: the fields it orders and logs by, and the exact body. */
export interface SerializedEvent {
  readonly id: string
  readonly callId: string
  readonly seq: number
  readonly type: string
  /** The envelope's JSON: the bytes POSTed, spooled and signed. */
  readonly bodyText: string
  /**
   * Absent for the standard envelope, whose JSON carries its own id, call_id and seq (the spool
   * reads them back from it). `avr`: AVR's envelope (events/avr-format.ts), which carries none of
   * them, so the spool keeps them beside the body.
   */
  readonly format?: 'avr'
}

/** Throws ERR_WEBHOOK_GAVE_UP if the envelope cannot be turned into JSON (a BigInt, a cycle). */
export function serializeEvent(event: EventEnvelope): SerializedEvent {
  let bodyText: string
  try {
    bodyText = JSON.stringify(event)
  } catch (cause) {
    throw new AppError('ERR_WEBHOOK_GAVE_UP', 'the event cannot be serialised to JSON', { cause })
  }
  return { id: event.id, callId: event.call_id, seq: event.seq, type: event.type, bodyText }
}

/** The fields every log line about one event carries. */
export function eventLogFields(event: Pick<SerializedEvent, 'id' | 'callId' | 'seq' | 'type'>): { eventId: string; callId: string; seq: number; type: string } {
  return { eventId: event.id, callId: event.callId, seq: event.seq, type: event.type }
}

/** eventLogFields of an envelope not (or not yet) serialised. */
export function envelopeLogFields(event: EventEnvelope): { eventId: string; callId: string; seq: number; type: string } {
  return { eventId: event.id, callId: event.call_id, seq: event.seq, type: event.type }
}
