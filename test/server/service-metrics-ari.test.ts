/**
 * src/server/service-metrics.ts, the ARI part (metrics.ari, an AriTapMetrics): requests by
 * outcome, the events socket gauge and the live taps, as a Prometheus server reads them; and fed by
 * the real ARI client against the fake ARI.
 */
import t from 'tap'
import { AriRest } from '../../src/ari/index.js'
import { createServiceMetrics } from '../../src/server/service-metrics.js'
import { startFakeAri } from '../support/fake-ari.js'
import { parseExposition } from '../support/prometheus.js'

t.test('ARI requests by outcome, the events socket gauge, the live taps', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  const read = (): ReturnType<typeof parseExposition> => parseExposition(metrics.registry.render())
  let m = read()
  t.equal(m.types.get('audiosocket_ari_requests_total'), 'counter')
  t.equal(m.types.get('audiosocket_ari_connected'), 'gauge')
  t.equal(m.types.get('audiosocket_ari_taps_active'), 'gauge')
  t.equal(m.value('audiosocket_ari_connected'), 0, 'not connected before anything happened')
  t.equal(m.value('audiosocket_ari_taps_active'), 0)

  metrics.ari.requestFinished('ok')
  metrics.ari.requestFinished('ok')
  metrics.ari.requestFinished('error')
  metrics.ari.eventStreamConnected(true)
  metrics.ari.tapStarted()
  metrics.ari.tapStarted()
  metrics.ari.tapEnded()
  m = read()
  t.equal(m.value('audiosocket_ari_requests_total', { outcome: 'ok' }), 2)
  t.equal(m.value('audiosocket_ari_requests_total', { outcome: 'error' }), 1)
  t.equal(m.value('audiosocket_ari_connected'), 1)
  t.equal(m.value('audiosocket_ari_taps_active'), 1)
  metrics.ari.eventStreamConnected(false)
  t.equal(read().value('audiosocket_ari_connected'), 0)
})

t.test('fed by the ARI client', async (t) => {
  const ari = await startFakeAri()
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  const rest = new AriRest(ari.connection, { metrics: metrics.ari })
  t.teardown(async () => {
    rest.close()
    await ari.close()
  })
  await rest.listChannels()
  t.equal(await rest.hangup('gone'), false)
  await t.rejects(rest.snoop('gone', { spy: 'in', app: 'a', snoopId: 's' }))
  const m = parseExposition(metrics.registry.render())
  t.equal(m.value('audiosocket_ari_requests_total', { outcome: 'ok' }), 2)
  t.equal(m.value('audiosocket_ari_requests_total', { outcome: 'error' }), 1)
})
