/**
 * audiosocket_calls_ended_total counts calls ENDED by reason (it was audiosocket_calls_total up to
 * 0.1.x, easily read as "calls"). The old name is exported alongside with the same values for one
 * release, and this test fails from 0.3.0 on until the alias is removed.
 */
import t from 'tap'
import { createServiceMetrics } from '../../src/server/service-metrics.js'
import { VERSION } from '../../src/version.js'
import { parseExposition } from '../support/prometheus.js'

const REASONS = ['hangup', 'server_hangup', 'error', 'shutdown', 'timeout']

t.test('calls ended, by reason, under the new name and the deprecated one alike; calls started apart', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true, process: { procDir: null } })
  t.teardown(() => metrics.close())
  let m = parseExposition(metrics.registry.render())
  for (const reason of REASONS) {
    t.equal(m.value('audiosocket_calls_ended_total', { reason }), 0, `${reason} at 0 from the start`)
    t.equal(m.value('audiosocket_calls_total', { reason }), 0)
  }
  metrics.call.callStarted()
  metrics.call.callStarted()
  metrics.call.callStarted()
  metrics.call.callEnded('hangup')
  metrics.call.callEnded('hangup')
  metrics.call.callEnded('error')
  m = parseExposition(metrics.registry.render())
  t.equal(m.value('audiosocket_calls_started_total'), 3)
  t.equal(m.value('audiosocket_calls_active'), 0)
  t.equal(m.value('audiosocket_calls_ended_total', { reason: 'hangup' }), 2)
  t.equal(m.value('audiosocket_calls_ended_total', { reason: 'error' }), 1)
  for (const reason of REASONS) {
    t.equal(m.value('audiosocket_calls_total', { reason }), m.value('audiosocket_calls_ended_total', { reason }), `the old name follows (${reason})`)
  }
  t.equal(m.types.get('audiosocket_calls_ended_total'), 'counter')
  t.match(m.help.get('audiosocket_calls_total'), /^DEPRECATED, removed in 0\.3\.0: .*audiosocket_calls_ended_total/)
  t.match(m.help.get('audiosocket_calls_ended_total'), /Calls ended .*audiosocket_calls_started_total/)
})

t.test('the deprecated audiosocket_calls_total is gone by 0.3.0', async (t) => {
  const [major = 0, minor = 0] = VERSION.split('.').map(Number)
  if (major === 0 && minor < 3) {
    t.pass(`version ${VERSION}: the alias is still exported, as documented`)
    return
  }
  const metrics = createServiceMetrics({ version: 'test', ready: () => true, process: { procDir: null } })
  t.teardown(() => metrics.close())
  t.notOk(parseExposition(metrics.registry.render()).types.has('audiosocket_calls_total'), `version ${VERSION}: remove audiosocket_calls_total (service-metrics.ts, README) as announced`)
})
