/**
 * WEBHOOK_FORMAT=avr: events as AVR Core's webhook sends them, so that a receiver written for AVR
 * keeps working when the AudioSocket line points here instead. AVR's envelope is
 * `{ "uuid", "type", "timestamp", "payload" }` (its "Webhook Integration Guide" and the sample
 * receiver agentvoiceresponse/avr-webhook), and the standard events map onto its events so:
 *
 *   call.started         -> call_started   {}
 *   transcript.final     -> transcription  { role, text }   one per utterance; text without the
 *                                                            leading space Soniox's first token carries
 *   call.dtmf            -> dtmf_digit     { digit }
 *   call.ended           -> error          { message }      only when the call ended with an error, then
 *                           call_ended     {}
 *   transcript.partial   -> nothing (AVR has none; config refuses TRANSCRIPT_PARTIAL_EVENTS with avr)
 *   conversation.*       -> nothing (AVR has no conversation; each leg is a call of its own)
 *
 * `role` is "user", AVR's role for the caller. A conversation's leg (a tapped bridged call) carries
 * its role: "caller" becomes "user", "agent" stays "agent", any other role is sent as it is.
 *
 * This runs where the standard envelope would be serialised (webhook/worker-sink.ts), once per event,
 * so the spool, the retries, the order per call and the dead letters hold and send these bodies:
 * delivery is the same for both formats. The bodies carry no event id, call id or seq, so each
 * SerializedEvent carries them beside the body (`format: 'avr'`) and the spool stores them so.
 */
import { AppError } from '../shared/errors.js'
import type { EventEnvelope } from './envelope.js'
import type { SerializedEvent } from './serialize-event.js'

/** The event types AVR Core's webhook sends that this server sends too. */
export type AvrEventType = 'call_started' | 'transcription' | 'dtmf_digit' | 'error' | 'call_ended'

/** What an AVR receiver gets: the keys in AVR's order. */
export interface AvrEvent {
  readonly uuid: string
  readonly type: AvrEventType | string
  /** ISO-8601, as AVR's `new Date().toISOString()`. */
  readonly timestamp: string
  readonly payload: Record<string, unknown>
}

/** Suffix of the id of the `error` event that goes before a call_ended (the pair shares the call.ended's seq). */
export const AVR_ERROR_ID_SUFFIX = '.error'

/** AVR's role for a transcript: "user" for a call, the leg's role mapped for a conversation's leg. */
export function avrRole(role: string | undefined): string {
  if (role === undefined || role === 'caller') return 'user'
  return role
}

/** AVR's envelope as JSON text, keys in AVR's order. */
export function avrEventText(uuid: string, type: string, timestamp: string, payload: Record<string, unknown>): string {
  return JSON.stringify({ uuid, type, timestamp, payload } satisfies AvrEvent)
}

/**
 * The AVR bodies of one event, in the order they go out: none (an event AVR has no equivalent of),
 * one, or two (an `error`, then `call_ended`). Each is its own delivery with its own id; the
 * `error` shares the call.ended's seq and goes first, and equal seqs keep their publication order
 * in the delivery queue, the spool and the dead-letter redelivery. Throws ERR_WEBHOOK_GAVE_UP for
 * an event JSON cannot express, as serializeEvent does.
 */
export function serializeAvrEvent(event: EventEnvelope): SerializedEvent[] {
  const data = event.data as Record<string, unknown>
  const body = (type: AvrEventType, payload: Record<string, unknown>, id = event.id): SerializedEvent => {
    let bodyText: string
    try {
      bodyText = avrEventText(event.call_id, type, event.time, payload)
    } catch (cause) {
      throw new AppError('ERR_WEBHOOK_GAVE_UP', 'the event cannot be serialised to JSON', { cause })
    }
    return { id, callId: event.call_id, seq: event.seq, type, bodyText, format: 'avr' }
  }
  switch (event.type) {
    case 'call.started':
      return [body('call_started', {})]
    case 'transcript.final': {
      const text = typeof data.text === 'string' ? data.text.trim() : ''
      // An utterance of no words (nothing but markers) is nothing an AVR receiver would ever get.
      if (text === '') return []
      return [body('transcription', { role: avrRole(event.role), text })]
    }
    case 'call.dtmf':
      return [body('dtmf_digit', { digit: String(data.digit) })]
    case 'call.ended': {
      const error = data.error as { code?: unknown; message?: unknown } | null | undefined
      if (error === null || error === undefined) return [body('call_ended', {})]
      const message = typeof error.message === 'string' ? error.message : 'the call ended with an error'
      const code = typeof error.code === 'string' ? ` (${error.code})` : ''
      return [body('error', { message: `${message}${code}` }, `${event.id}${AVR_ERROR_ID_SUFFIX}`), body('call_ended', {})]
    }
    case 'transcript.partial':
    case 'conversation.started':
    case 'conversation.ended':
      return []
  }
}
