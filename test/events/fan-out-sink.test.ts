/** src/events/fan-out-sink.ts: WEBHOOK_URL and EVENTS_FILE together. */
import t from 'tap'
import type { EventEnvelope, EventSink } from '../../src/events/envelope.js'
import { FanOutSink } from '../../src/events/fan-out-sink.js'

function recorder(startError?: Error) {
  const events: EventEnvelope[] = []
  const calls: string[] = []
  const sink: EventSink = {
    start: async () => {
      calls.push('start')
      if (startError) throw startError
    },
    publish: (e) => void events.push(e),
    close: async (timeoutMs) => void calls.push(`close ${timeoutMs}`),
  }
  return { sink, events, calls }
}

const e = (seq: number): EventEnvelope => ({ id: `evt_${seq}`, type: 'call.dtmf', call_id: 'c', seq, time: '2026-11-20T22:00:00.000Z', data: { digit: '1' } })

t.test('every event goes to every sink; start and close reach each', async (t) => {
  const a = recorder()
  const b = recorder()
  // A sink without start() (stdout) is fine too.
  const plainEvents: EventEnvelope[] = []
  const plain: EventSink = { publish: (x) => void plainEvents.push(x), close: async () => {} }
  const fan = new FanOutSink([a.sink, b.sink, plain])
  await fan.start()
  fan.publish(e(0))
  fan.publish(e(1))
  await fan.close(1234)
  t.same(a.events, [e(0), e(1)])
  t.same(b.events, [e(0), e(1)])
  t.same(plainEvents, [e(0), e(1)])
  t.same(a.calls, ['start', 'close 1234'])
  t.same(b.calls, ['start', 'close 1234'])
})

t.test('a sink that cannot start fails the whole start', async (t) => {
  const fan = new FanOutSink([recorder().sink, recorder(new Error('no spool')).sink])
  await t.rejects(fan.start(), { message: 'no spool' })
})
