/** src/events/call-event-factory.ts: the envelopes of one call. */
import t from 'tap'
import { CallEventFactory } from '../../src/events/call-event-factory.js'

t.test('seq is gapless from 0, ids are fixed and distinct, time is the injected clock', async (t) => {
  let now = Date.UTC(2026, 10, 20, 22, 0, 0)
  const events = new CallEventFactory('call-1', () => now)
  const first = events.create('call.started', { remote: '127.0.0.1' })
  now += 1500
  const second = events.create('transcript.final', { text: 'hello' })
  t.match(first, { type: 'call.started', call_id: 'call-1', seq: 0, time: '2026-11-20T22:00:00.000Z', data: { remote: '127.0.0.1' } })
  t.match(second, { type: 'transcript.final', call_id: 'call-1', seq: 1, time: '2026-11-20T22:00:01.500Z' })
  t.match(first.id, /^evt_[0-9a-f-]{36}$/)
  t.not(first.id, second.id)
})
