/**
 * src/soniox/probe.ts against the Soniox stand-in: a probe session proves the key (finished after
 * 100 ms of silence), reports Soniox's refusal as the error, and ends at once when its signal aborts
 * (the server stopping while Soniox has not answered).
 */
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { PROBE_CLIENT_REFERENCE_ID, probeSoniox } from '../../src/soniox/probe.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { createTcpGate } from '../support/tcp-gate.js'
import { waitUntil } from '../support/wait.js'

async function standIn(t: Test) {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const recognition = loadConfig({ env: { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url } }).soniox
  return { soniox, recognition }
}

t.test('accepted: ok, one session of 100 ms of silence named as a probe', async (t) => {
  const { soniox, recognition } = await standIn(t)
  const result = await probeSoniox({ url: soniox.url, apiKey: 'test-key', recognition, timeoutMs: 5000 })
  t.match(result, { ok: true })
  t.equal(soniox.sessions.length, 1)
  t.equal(soniox.sessions[0]?.startMessage?.client_reference_id, PROBE_CLIENT_REFERENCE_ID)
  t.equal(soniox.sessions[0]?.audio.length, 1600)
})

t.test("refused: Soniox's code in the error", async (t) => {
  const { soniox, recognition } = await standIn(t)
  const result = await probeSoniox({ url: soniox.url, apiKey: 'wrong-key', recognition, timeoutMs: 5000 })
  t.match(result, { ok: false, error: { sonioxCode: 401 } })
})

t.test('aborted while Soniox has not answered: a failure at once, the connection closed', async (t) => {
  const { soniox, recognition } = await standIn(t)
  const gate = await createTcpGate({ port: Number(new URL(soniox.url).port) })
  t.teardown(() => gate.close())
  await gate.hold()
  const abort = new AbortController()
  const started = Date.now()
  const probe = probeSoniox({ url: gate.url('/transcribe-websocket'), apiKey: 'test-key', recognition, timeoutMs: 10_000, signal: abort.signal })
  await waitUntil(() => gate.waiting === 1, 'the probe connected to the gate')
  abort.abort()
  const result = await probe
  t.match(result, { ok: false, error: { code: 'ERR_SONIOX_CLOSED', message: /cancelled/ } })
  t.ok(Date.now() - started < 5000, 'long before its timeout')
  await waitUntil(() => gate.waiting === 0, 'the held connection closed by the client')

  const already = new AbortController()
  already.abort()
  t.match(await probeSoniox({ url: soniox.url, apiKey: 'test-key', recognition, timeoutMs: 10_000, signal: already.signal }), { ok: false, error: { code: 'ERR_SONIOX_CLOSED' } }, 'an aborted signal: no probe')
})
