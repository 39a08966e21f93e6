/** src/events/serialize-event.ts: the one place an envelope becomes the bytes sinks write. */
import t from 'tap'
import type { EventEnvelope } from '../../src/events/envelope.js'
import { envelopeLogFields, eventLogFields, serializeEvent } from '../../src/events/serialize-event.js'

const envelope: EventEnvelope = { id: 'evt_1', type: 'call.dtmf', call_id: 'c', seq: 4, time: '2026-11-20T22:00:00.000Z', data: { digit: '5' } }

t.test('the body is the envelope JSON, fixed at serialisation', async (t) => {
  const data: Record<string, unknown> = { digit: '5' }
  const serialized = serializeEvent({ ...envelope, data })
  data.digit = '6'
  t.same(serialized, { id: 'evt_1', callId: 'c', seq: 4, type: 'call.dtmf', bodyText: JSON.stringify(envelope) })
})

t.test('an envelope JSON cannot express is ERR_WEBHOOK_GAVE_UP with the cause', async (t) => {
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.throws(() => serializeEvent({ ...envelope, data: circular }), { code: 'ERR_WEBHOOK_GAVE_UP', cause: TypeError })
  t.throws(() => serializeEvent({ ...envelope, data: { n: 1n } }), { code: 'ERR_WEBHOOK_GAVE_UP' })
})

t.test('log fields are the same for an envelope and its serialised form', async (t) => {
  const fields = { eventId: 'evt_1', callId: 'c', seq: 4, type: 'call.dtmf' }
  t.same(envelopeLogFields(envelope), fields)
  t.same(eventLogFields(serializeEvent(envelope)), fields)
})
