/**
 * src/events/avr-format.ts: WEBHOOK_FORMAT=avr, each standard event as the AVR Core webhook bodies
 * it becomes (none, one, or error + call_ended), with AVR's envelope keys exactly.
 */
import t from 'tap'
import type { EventEnvelope } from '../../src/events/envelope.js'
import { avrEventText, avrRole, serializeAvrEvent } from '../../src/events/avr-format.js'
import { serializeEvent } from '../../src/events/serialize-event.js'

const CALL = '40325ec2-5efd-4bd3-805f-53576e581d13'
const TIME = '2026-11-20T22:00:04.512Z'

function envelope(type: EventEnvelope['type'], data: Record<string, unknown>, extra: Partial<EventEnvelope> = {}): EventEnvelope {
  return { id: 'evt_1', type, call_id: CALL, seq: 3, time: TIME, data, ...extra }
}

/** The bodies, parsed, and the delivery fields beside each. */
function avr(event: EventEnvelope): Array<{ id: string; callId: string; seq: number; type: string; format: unknown; body: any }> {
  return serializeAvrEvent(event).map((s) => ({ id: s.id, callId: s.callId, seq: s.seq, type: s.type, format: s.format, body: JSON.parse(s.bodyText) }))
}

t.test('the envelope is AVR\'s: uuid, type, timestamp, payload, in that order, and nothing else', async (t) => {
  const [started] = serializeAvrEvent(envelope('call.started', { remote_address: '127.0.0.1', remote_port: 5000, local_port: 9092, metadata: { ticket: 'T-1' } }))
  t.equal(started?.bodyText, `{"uuid":"${CALL}","type":"call_started","timestamp":"${TIME}","payload":{}}`, 'call_started carries an empty payload, as AVR\'s')
  t.same(Object.keys(JSON.parse(started?.bodyText ?? '{}')), ['uuid', 'type', 'timestamp', 'payload'])
  t.match(started, { id: 'evt_1', callId: CALL, seq: 3, type: 'call_started', format: 'avr' }, 'delivery keeps the event id, call and seq beside the body')
  t.equal(avrEventText('u', 'x', TIME, { a: 1 }), `{"uuid":"u","type":"x","timestamp":"${TIME}","payload":{"a":1}}`)
})

t.test('transcript.final is one transcription with role user and the text without its leading space', async (t) => {
  const final = envelope('transcript.final', { index: 0, text: ' Thank you for calling Northwind support.', start_ms: 120, end_ms: 2480, confidence: 0.96, tokens: [], reason: 'endpoint' })
  t.same(avr(final), [
    { id: 'evt_1', callId: CALL, seq: 3, type: 'transcription', format: 'avr', body: { uuid: CALL, type: 'transcription', timestamp: TIME, payload: { role: 'user', text: 'Thank you for calling Northwind support.' } } },
  ])
  t.same(avr(envelope('transcript.final', { index: 1, text: '  ', tokens: [] })), [], 'an utterance of no words is not sent')
})

t.test('a conversation leg\'s role maps to AVR\'s: caller -> user, agent -> agent, others as they are', async (t) => {
  const final = (role: string | undefined): unknown => avr(envelope('transcript.final', { text: ' Hello.' }, role === undefined ? {} : { conversation_id: 'conv', role }))[0]?.body.payload
  t.same(final(undefined), { role: 'user', text: 'Hello.' }, 'a call of its own: the caller, AVR\'s user')
  t.same(final('caller'), { role: 'user', text: 'Hello.' })
  t.same(final('agent'), { role: 'agent', text: 'Hello.' })
  t.same(final('supervisor'), { role: 'supervisor', text: 'Hello.' })
  t.equal(avrRole('customer'), 'customer')
  const started = avr(envelope('call.started', {}, { conversation_id: 'conv', role: 'agent' }))[0]?.body
  t.same(Object.keys(started), ['uuid', 'type', 'timestamp', 'payload'], 'a leg\'s other events carry no role or conversation_id: AVR has none')
})

t.test('call.dtmf is dtmf_digit with the digit', async (t) => {
  t.same(avr(envelope('call.dtmf', { digit: '#', at_ms: 4090 })).map((e) => e.body), [{ uuid: CALL, type: 'dtmf_digit', timestamp: TIME, payload: { digit: '#' } }])
})

t.test('call.ended is call_ended, after an error when the call ended with one', async (t) => {
  const ended = { reason: 'hangup', duration_ms: 16018, transcript: ' Hi.', error: null, metadata: null }
  t.same(avr(envelope('call.ended', ended)), [{ id: 'evt_1', callId: CALL, seq: 3, type: 'call_ended', format: 'avr', body: { uuid: CALL, type: 'call_ended', timestamp: TIME, payload: {} } }])

  const failed = avr(envelope('call.ended', { ...ended, reason: 'error', error: { code: 'ERR_SONIOX_AUTH', message: 'Soniox refused the API key', soniox_code: 401 } }))
  t.same(
    failed.map((e) => [e.id, e.seq, e.type, e.body]),
    [
      ['evt_1.error', 3, 'error', { uuid: CALL, type: 'error', timestamp: TIME, payload: { message: 'Soniox refused the API key (ERR_SONIOX_AUTH)' } }],
      ['evt_1', 3, 'call_ended', { uuid: CALL, type: 'call_ended', timestamp: TIME, payload: {} }],
    ],
    'error first, then call_ended: two deliveries of their own, sharing the seq (ties keep their order)',
  )
})

t.test('events AVR has no equivalent of are not sent', async (t) => {
  t.same(serializeAvrEvent(envelope('transcript.partial', { index: 0, text: ' Thank you', start_ms: 120 })), [])
  t.same(serializeAvrEvent(envelope('conversation.started', { channel: { id: 'x', name: 'PJSIP/1' }, legs: [] }, { conversation_id: CALL })), [])
  t.same(serializeAvrEvent(envelope('conversation.ended', { reason: 'hangup', transcript: [] }, { conversation_id: CALL })), [])
})

t.test('the standard serialisation is untouched: no format marker, the same bytes', async (t) => {
  const event = envelope('call.dtmf', { digit: '5', at_ms: 1 })
  t.same(serializeEvent(event), { id: 'evt_1', callId: CALL, seq: 3, type: 'call.dtmf', bodyText: JSON.stringify(event) })
  t.notOk('format' in serializeEvent(event))
})
