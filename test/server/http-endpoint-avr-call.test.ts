/**
 * AVR Core's pre-registration, `POST /call` with `{ "uuid", "payload" }` (src/server/http-endpoint.ts,
 * parseAvrCall in src/server/registrations.ts): an alias of `POST /calls/{uuid}` with the payload as
 * metadata, behind the same bearer token, with the same answers and bounds.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/shared/logger.js'
import { HttpEndpoint, type NotReady } from '../../src/server/http-endpoint.js'
import { MAX_METADATA_CHARS, parseAvrCall, RegistrationStore } from '../../src/server/registrations.js'
import { createServiceMetrics } from '../../src/server/service-metrics.js'

const TOKEN = 'test-token-0123456789abcdef'
const UUID = '935652e3-7c59-4edc-b17f-9646a9c2a265'
/** The body AVR's documented dialplan posts (avr-core-http-web-service), variables filled in. */
const AVR_BODY = { uuid: UUID, payload: { from: '2000', to: '5001', uniqueid: '1770758888.32', channel: 'PJSIP/2000-00000013' } }

async function rig(t: Test, options: { token?: string | null; store?: RegistrationStore } = {}) {
  const logs: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  t.teardown(() => (metrics as { close?: () => void }).close?.())
  const registrations = options.store ?? new RegistrationStore(60_000)
  const state: { notReady: NotReady | undefined } = { notReady: undefined }
  const endpoint = new HttpEndpoint({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'debug', destination }),
    notReady: () => state.notReady,
    renderMetrics: () => metrics.registry.render(),
    activeCalls: () => 0,
    registrations,
    token: options.token === undefined ? TOKEN : options.token,
    metrics: metrics.http,
  })
  const { port } = await endpoint.listen()
  t.teardown(() => endpoint.close())
  return { base: `http://127.0.0.1:${port}`, registrations, state, logs, metrics }
}

const post = (url: string, body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }): Promise<Response> =>
  fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })

t.test('parseAvrCall: uuid and payload, the payload as metadata', async (t) => {
  t.same(parseAvrCall(AVR_BODY), { uuid: UUID, options: { metadata: AVR_BODY.payload } })
  t.same(parseAvrCall({ uuid: UUID.toUpperCase() }), { uuid: UUID, options: {} }, 'no payload: the configured defaults; the UUID in its canonical form')
  t.same(parseAvrCall({ uuid: UUID, payload: {} }), { uuid: UUID, options: { metadata: {} } })
  const refused: Array<[unknown, RegExp]> = [
    [[], /the body must be a JSON object/],
    [{ payload: {} }, /uuid must be the call's UUID/],
    [{ uuid: '1770758888.32' }, /uuid must be the call's UUID/],
    [{ uuid: 42 }, /uuid must be the call's UUID/],
    [{ uuid: UUID, payload: ['x'] }, /payload must be a JSON object/],
    [{ uuid: UUID, payload: 'from=2000' }, /payload must be a JSON object/],
    [{ uuid: UUID, payload: { blob: 'x'.repeat(MAX_METADATA_CHARS) } }, /^payload is longer than 8192 characters of JSON$/],
    [{ uuid: UUID, payload: nested(20) }, /^payload nests arrays and objects more than 16 levels deep$/],
    [{ uuid: UUID, metadata: {}, sts_url: 'ws://x' }, /unknown field "metadata".*unknown field "sts_url"|unknown field "metadata"/],
  ]
  for (const [body, problem] of refused) {
    const parsed = parseAvrCall(body)
    t.ok('problems' in parsed, JSON.stringify(body).slice(0, 60))
    if ('problems' in parsed) t.match(parsed.problems.join('; '), problem)
  }
})

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = {}
  for (let i = 0; i < depth; i++) value = { a: value }
  return value
}

t.test('POST /call registers the call as POST /calls/{uuid} would, payload as metadata', async (t) => {
  const r = await rig(t)
  const created = await post(`${r.base}/call`, JSON.stringify(AVR_BODY))
  t.equal(created.status, 201)
  const answer = (await created.json()) as { call_id: string; expires_at: string }
  t.equal(answer.call_id, UUID)
  t.ok(Date.parse(answer.expires_at) > Date.now() + 50_000, 'expires after the TTL')
  t.equal((await post(`${r.base}/call`, JSON.stringify(AVR_BODY))).status, 200, 'again: replaced')
  t.same(r.registrations.take(UUID), { metadata: AVR_BODY.payload }, 'the call takes the payload as its metadata')
  t.equal((await post(`${r.base}/call`, JSON.stringify({ uuid: UUID }))).status, 201, 'without payload')
  t.same(r.registrations.take(UUID), {})
})

t.test('POST /call needs the same bearer token (AVR\'s dialplan sends none: one CURLOPT line adds it)', async (t) => {
  const r = await rig(t)
  const none = await post(`${r.base}/call`, JSON.stringify(AVR_BODY), {})
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  t.equal((await post(`${r.base}/call`, JSON.stringify(AVR_BODY), { authorization: 'Bearer wrong-token-0123456789' })).status, 401)
  t.equal(r.registrations.size, 0)
  t.match(r.metrics.registry.render(), /audiosocket_http_requests_refused_total\{reason="unauthorized"\} 2/)

  const disabled = await rig(t, { token: null })
  const res = await post(`${disabled.base}/call`, JSON.stringify(AVR_BODY))
  t.equal(res.status, 403)
  t.match(await res.json(), { error: /set HTTP_TOKEN/ })
})

t.test('POST /call refusals: bad bodies 400 with the reason, other methods 405, deeper paths 404, draining 503, full 429', async (t) => {
  const r = await rig(t, { store: new RegistrationStore(60_000, { maxCount: 1 }) })
  const badJson = await post(`${r.base}/call`, '{"uuid":')
  t.equal(badJson.status, 400)
  t.match(await badJson.json(), { error: 'the body must be JSON' })
  const noUuid = await post(`${r.base}/call`, JSON.stringify({ payload: { from: '2000' } }))
  t.equal(noUuid.status, 400)
  t.match(await noUuid.json(), { error: /uuid must be the call's UUID/ })
  const badPayload = await post(`${r.base}/call`, JSON.stringify({ uuid: UUID, payload: [1] }))
  t.match(await badPayload.json(), { error: /payload must be a JSON object/ })

  const get = await fetch(`${r.base}/call`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(get.status, 405)
  t.equal(get.headers.get('allow'), 'POST')
  t.equal((await post(`${r.base}/call/${UUID}`, JSON.stringify(AVR_BODY))).status, 404, '/call/<uuid> is not a route')
  t.equal(r.registrations.size, 0)

  t.equal((await post(`${r.base}/call`, JSON.stringify(AVR_BODY))).status, 201)
  const full = await post(`${r.base}/call`, JSON.stringify({ uuid: 'f0000000-0000-4000-8000-000000000000' }))
  t.equal(full.status, 429, 'REGISTRATION_MAX_COUNT holds for /call too')
  t.ok(Number(full.headers.get('retry-after')) >= 1)

  r.state.notReady = { reason: 'draining' }
  t.equal((await post(`${r.base}/call`, JSON.stringify(AVR_BODY))).status, 503)
})
