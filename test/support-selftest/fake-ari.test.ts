/**
 * Self-test of the fake ARI's hooks for playing Asterisk's part outside ARI (test/support/fake-ari.ts):
 * `onChannel` tells of the channels snoop and externalMedia make (with the query an AudioSocket
 * stream would be opened from) and of channels gone; `hangup()` ends a channel and its snoops as
 * Asterisk reports a party hanging up; `stats.events` counts what was pushed. Driven by the real
 * AriRest and a plain `ws` events socket. The model's REST behaviour is covered by test/ari/ and
 * test/server/conversation-taps.test.ts.
 */
import t from 'tap'
import { WebSocket } from 'ws'
import { AriRest } from '../../src/ari/index.js'
import { startFakeAri, type FakeAriChannelChange } from '../support/fake-ari.js'
import { waitUntil } from '../support/wait.js'

t.test('onChannel, hangup() and stats.events', async (t) => {
  const ari = await startFakeAri()
  ari.stasisEvents = true
  const rest = new AriRest(ari.connection)
  t.teardown(async () => {
    rest.close()
    await ari.close()
  })
  const auth = `Basic ${Buffer.from(`${ari.connection.username}:${ari.connection.password}`).toString('base64')}`
  const ws = new WebSocket(`${ari.url.replace('http', 'ws')}/ari/events?app=test&subscribeAll=true`, { headers: { authorization: auth } })
  const events: Array<{ type: string; channel: { id: string } }> = []
  ws.on('message', (data) => events.push(JSON.parse(String(data)) as { type: string; channel: { id: string } }))
  await new Promise((resolve) => ws.once('open', resolve))
  t.teardown(() => ws.close())

  const changes: Array<FakeAriChannelChange & { eventsSoFar: number }> = []
  ari.onChannel = (change) => changes.push({ ...change, eventsSoFar: ari.stats.events })
  ari.addChannel({ id: 'c1', name: 'PJSIP/alice-00000001' })

  await rest.snoop('c1', { spy: 'in', app: 'test', snoopId: 'c1-snoop' })
  await rest.externalMedia({ channelId: 'c1-media', app: 'test', externalHost: '127.0.0.1:9092', format: 'slin', data: 'leg-uuid' })
  await waitUntil(() => changes.length === 2, 'two creations')
  t.match(changes[0], { type: 'created', id: 'c1-snoop', kind: 'snoop', query: { spy: 'in', app: 'test' }, eventsSoFar: 1 }, 'the snoop, told after its StasisStart went out')
  t.match(changes[1], { type: 'created', id: 'c1-media', kind: 'externalMedia', query: { data: 'leg-uuid', external_host: '127.0.0.1:9092', encapsulation: 'audiosocket' }, eventsSoFar: 2 }, 'the externalMedia channel with what Asterisk connects with')

  t.equal(await rest.hangup('c1-media'), true)
  await waitUntil(() => changes.length === 3, 'the DELETE told')
  t.match(changes[2], { type: 'destroyed', id: 'c1-media', eventsSoFar: 4 }, 'a DELETE: told after its StasisEnd and ChannelDestroyed')

  t.equal(ari.hangup('c1'), true)
  t.same(changes.slice(3).map((c) => [c.type, c.id]), [['destroyed', 'c1-snoop'], ['destroyed', 'c1']], 'the snoop ends with the channel it spies on')
  t.notOk(ari.channels.has('c1') || ari.channels.has('c1-snoop'), 'both left the model')
  t.equal(ari.hangup('c1'), false, 'an unknown channel')
  await waitUntil(() => events.length === 7, 'every event')
  t.same(
    events.map((e) => `${e.type} ${e.channel.id}`),
    ['StasisStart c1-snoop', 'StasisStart c1-media', 'StasisEnd c1-media', 'ChannelDestroyed c1-media', 'StasisEnd c1-snoop', 'ChannelDestroyed c1-snoop', 'ChannelDestroyed c1'],
    'as Asterisk sends them; the hung-up channel, never in Stasis, has its ChannelDestroyed only',
  )
  t.equal(ari.stats.events, 7)
  t.same(ari.violations, [])
})
