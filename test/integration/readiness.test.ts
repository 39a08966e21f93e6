/**
 * GET /readyz follows Soniox's verdict on the account: 503 from the first 401/402 (a load balancer
 * then sends calls to an instance with a working key), and 200 again once a probe session is
 * accepted, without a call having to prove it.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { loadCapture } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { startHarness } from '../support/harness.js'
import { scrapeMetrics } from '../support/prometheus.js'
import { replayCapture } from '../support/replay.js'
import { waitUntil } from '../support/wait.js'

t.test('503 while Soniox refuses the key, 200 once a probe session is accepted again', async (t) => {
  const httpPort = await freePort()
  const h = await startHarness({ env: { HTTP_PORT: String(httpPort) }, app: { accountReprobeMs: 300 } })
  t.teardown(() => h.stop())
  const readyz = async (): Promise<{ status: number; body: any }> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`)
    return { status: res.status, body: await res.json() }
  }
  t.match(await readyz(), { status: 200, body: { status: 'ready' } })

  // The call's session and the next two probes are refused; the third probe is accepted.
  h.soniox.rejectNextSessions(3, { code: 401, type: 'unauthenticated', message: 'Invalid API key.' })
  const id = randomUUID()
  const call = replayCapture(loadCapture('app-8k-dtmf'), { port: h.port, speed: 8, uuidBytes: uuidToBytes(id) })
  await waitUntil(() => h.logs.some((r) => r.level === 50 && r.sonioxCode === 401), 'the account problem logged')
  t.match(await readyz(), { status: 503, body: { status: 'not_ready', reason: 'soniox_account', soniox_code: 401 } })
  t.equal((await scrapeMetrics(httpPort)).value('audiosocket_ready'), 0)

  await waitUntil(() => h.logs.some((r) => r.msg === 'Soniox accepts sessions again'), 'a probe accepted', 5000)
  t.match(await readyz(), { status: 200, body: { status: 'ready' } })
  t.equal(h.soniox.sessions.length, 4, 'one call session and three probes, no more')
  t.ok(h.soniox.sessions.slice(1).every((s) => s.startMessage?.client_reference_id === 'audiosocket-soniox-probe'), 'the probes say what they are')
  const accepted = h.soniox.sessions[3]
  t.equal(accepted?.audio.length, 1600, 'the accepted probe sent 100 ms of 8 kHz silence')
  t.equal(accepted?.endOfAudio, 'binary', 'then the empty frame')
  t.same(accepted?.violations, [])

  const result = await call
  t.equal(result.closedByServer, false, 'the caller was never hung up')
  await h.receiver.waitFor((events) => events.some((e) => e.call_id === id && e.type === 'call.ended'), 10000)
  const m = await scrapeMetrics(httpPort)
  t.equal(m.value('audiosocket_soniox_errors_total', { code: 'ERR_SONIOX_SERVER_ERROR', soniox_code: '401' }), 1, 'the call\'s refusal counted by code')
  t.equal(m.value('audiosocket_calls_total', { reason: 'error' }), 1)
})
