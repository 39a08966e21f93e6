/**
 * src/server/http-endpoint.ts on a real port: health, readiness, metrics, and call registration with
 * its bearer token, body schema and limits.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/logger.js'
import { HttpEndpoint, MAX_BODY_BYTES, type NotReady } from '../../src/server/http-endpoint.js'
import { Registry } from '../../src/server/metrics.js'
import { RegistrationStore } from '../../src/server/registrations.js'

const TOKEN = 'test-token-0123456789abcdef'
const UUID = '40325ec2-5efd-4bd3-805f-53576e581d13'

interface Rig {
  base: string
  registrations: RegistrationStore
  logs: Array<Record<string, unknown>>
  state: { notReady: NotReady | undefined }
}

async function rig(t: Test, token: string | null = TOKEN): Promise<Rig> {
  const logs: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const registry = new Registry()
  registry.counter('demo_total', 'A demo counter.').inc(5)
  const registrations = new RegistrationStore(60_000)
  const state: Rig['state'] = { notReady: undefined }
  const endpoint = new HttpEndpoint({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'debug', destination }),
    notReady: () => state.notReady,
    renderMetrics: () => registry.render(),
    activeCalls: () => 3,
    registrations,
    token,
  })
  const { port } = await endpoint.listen()
  t.teardown(() => endpoint.close())
  return { base: `http://127.0.0.1:${port}`, registrations, logs, state }
}

const post = (url: string, body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }): Promise<Response> =>
  fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })

t.test('healthz, readyz and metrics', async (t) => {
  const r = await rig(t)
  const health = await fetch(`${r.base}/healthz`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  t.equal((await fetch(`${r.base}/healthz`, { method: 'HEAD' })).status, 200, 'HEAD works for probes')

  const ready = await fetch(`${r.base}/readyz`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready', active_calls: 3 })
  r.state.notReady = { reason: 'soniox_account', detail: { soniox_code: 402 } }
  const notReady = await fetch(`${r.base}/readyz`)
  t.equal(notReady.status, 503, 'a load balancer stops sending calls')
  t.same(await notReady.json(), { status: 'not_ready', reason: 'soniox_account', soniox_code: 402 })
  t.equal((await fetch(`${r.base}/healthz`)).status, 200, 'not ready is still alive')

  const metrics = await fetch(`${r.base}/metrics`)
  t.equal(metrics.status, 200)
  t.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  t.match(await metrics.text(), /^demo_total 5$/m)

  t.equal((await fetch(`${r.base}/nothing`)).status, 404)
  const wrong = await fetch(`${r.base}/metrics`, { method: 'POST' })
  t.equal(wrong.status, 405)
  t.equal(wrong.headers.get('allow'), 'GET, HEAD')
})

t.test('registration needs the bearer token', async (t) => {
  const r = await rig(t)
  const none = await post(`${r.base}/calls/${UUID}`, '{}', {})
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  t.equal((await post(`${r.base}/calls/${UUID}`, '{}', { authorization: `Bearer ${TOKEN}x` })).status, 401, 'a wrong token')
  t.equal((await post(`${r.base}/calls/${UUID}`, '{}', { authorization: TOKEN })).status, 401, 'the token without "Bearer"')
  t.equal(r.registrations.size, 0, 'nothing was registered')
  t.equal(r.logs.filter((l) => l.msg === 'HTTP request refused: missing or wrong bearer token' && l.level === 40).length, 3, 'each refusal is logged at warn')
  t.notOk(JSON.stringify(r.logs).includes(TOKEN), 'the token never reaches the log')

  const disabled = await rig(t, null)
  const res = await post(`${disabled.base}/calls/${UUID}`, '{}')
  t.equal(res.status, 403)
  t.match(await res.json(), { error: /set HTTP_TOKEN/ })
})

t.test('a registration is stored with its options, replaced, and withdrawn', async (t) => {
  const r = await rig(t)
  const body = { language_hints: ['de'], context: { terms: ['Northwind'] }, metadata: { ticket: 'T-9' } }
  const created = await post(`${r.base}/calls/${UUID.toUpperCase()}`, JSON.stringify(body))
  t.equal(created.status, 201)
  const answer = (await created.json()) as { call_id: string; expires_at: string }
  t.equal(answer.call_id, UUID, 'the UUID in its canonical lowercase form')
  t.ok(Date.parse(answer.expires_at) > Date.now() + 50_000, 'expires after the TTL')
  t.equal((await post(`${r.base}/calls/${UUID}`, JSON.stringify(body))).status, 200, 'registering again replaces')
  t.same(r.registrations.take(UUID), { recognition: { languageHints: ['de'], context: { terms: ['Northwind'] } }, metadata: { ticket: 'T-9' } })

  t.equal((await post(`${r.base}/calls/${UUID}`, '')).status, 201, 'an empty body registers the UUID with the defaults')
  const auth = { authorization: `Bearer ${TOKEN}` }
  t.equal((await fetch(`${r.base}/calls/${UUID}`, { method: 'DELETE', headers: auth })).status, 204)
  t.equal((await fetch(`${r.base}/calls/${UUID}`, { method: 'DELETE', headers: auth })).status, 404)
  t.equal((await fetch(`${r.base}/calls/${UUID}`, { headers: auth })).status, 405)
})

t.test('bad registrations are refused with the reason', async (t) => {
  const r = await rig(t)
  const badUuid = await post(`${r.base}/calls/1700000000.12`, '{}')
  t.equal(badUuid.status, 400)
  t.match(await badUuid.json(), { error: /UUID in its 36-character form/ })
  const badJson = await post(`${r.base}/calls/${UUID}`, '{"language_hints": [')
  t.equal(badJson.status, 400)
  t.match(await badJson.json(), { error: 'the body must be JSON' })
  const badField = await post(`${r.base}/calls/${UUID}`, JSON.stringify({ langauge_hints: ['en'] }))
  t.equal(badField.status, 400)
  t.match(await badField.json(), { error: /unknown field "langauge_hints"/ })
  const huge = await post(`${r.base}/calls/${UUID}`, JSON.stringify({ metadata: { blob: 'x'.repeat(MAX_BODY_BYTES) } }))
  t.equal(huge.status, 413)
  t.equal(r.registrations.size, 0)
})

t.test('no registration while draining', async (t) => {
  const r = await rig(t)
  r.state.notReady = { reason: 'draining' }
  const res = await post(`${r.base}/calls/${UUID}`, '{}')
  t.equal(res.status, 503)
  t.equal(r.registrations.size, 0)
})
