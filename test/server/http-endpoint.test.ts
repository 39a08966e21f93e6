/**
 * src/server/http-endpoint.ts on a real port: health, readiness, metrics, and call registration with
 * its bearer token, body schema and limits; what a peer sending junk at will costs in log lines.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/shared/logger.js'
import { HttpEndpoint, MAX_BODY_BYTES, MAX_BODY_DEPTH, type HttpMetrics, type NotReady } from '../../src/server/http-endpoint.js'
import { Registry } from '../../src/server/metrics.js'
import { RegistrationStore } from '../../src/server/registrations.js'
import { createServiceMetrics } from '../../src/server/service-metrics.js'
import { waitUntil } from '../support/wait.js'

const TOKEN = 'test-token-0123456789abcdef'
const UUID = '40325ec2-5efd-4bd3-805f-53576e581d13'

interface Rig {
  base: string
  port: number
  registrations: RegistrationStore
  logs: Array<Record<string, unknown>>
  /** Lines as written, for their size. */
  lines: string[]
  state: { notReady: NotReady | undefined }
  /** The clock of the log throttle and of the default store. */
  clock: { now: number }
}

interface RigOptions {
  token?: string | null
  registrations?: (now: () => number) => RegistrationStore
  metrics?: HttpMetrics
}

async function rig(t: Test, options: RigOptions = {}): Promise<Rig> {
  const logs: Array<Record<string, unknown>> = []
  const lines: string[] = []
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue
        lines.push(line)
        logs.push(JSON.parse(line) as Record<string, unknown>)
      }
      done()
    },
  })
  const registry = new Registry()
  registry.counter('demo_total', 'A demo counter.').inc(5)
  const clock = { now: 1_000_000 }
  const now = (): number => clock.now
  const registrations = options.registrations?.(now) ?? new RegistrationStore(60_000)
  const state: Rig['state'] = { notReady: undefined }
  const endpoint = new HttpEndpoint({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'debug', destination }),
    notReady: () => state.notReady,
    renderMetrics: () => registry.render(),
    activeCalls: () => 3,
    registrations,
    token: options.token === undefined ? TOKEN : options.token,
    metrics: options.metrics,
    now,
  })
  const { port } = await endpoint.listen()
  t.teardown(() => endpoint.close())
  return { base: `http://127.0.0.1:${port}`, port, registrations, logs, lines, state, clock }
}

/** Log records at error level or above (pino: 50 error, 60 fatal). */
const errorLines = (r: Rig): Array<Record<string, unknown>> => r.logs.filter((l) => (l.level as number) >= 50)

/** A request with a path sent exactly as given (fetch would normalise it). */
function rawRequest(port: number, method: string, path: string, body = ''): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
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
  t.equal(r.logs.filter((l) => l.msg === 'HTTP request refused: missing or wrong bearer token' && l.level === 40).length, 1, 'logged at warn, once per 10 s')
  t.notOk(JSON.stringify(r.logs).includes(TOKEN), 'the token never reaches the log')

  const disabled = await rig(t, { token: null })
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

t.test('a thousand unauthenticated requests: one small warn line, then one with the count held back; the metric counts every one', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  const r = await rig(t, { metrics: metrics.http })
  const refusedLine = (): Array<Record<string, unknown>> => r.logs.filter((l) => l.msg === 'HTTP request refused: missing or wrong bearer token')
  // The first one with a 5,000-character path: the line stays small anyway.
  t.equal((await post(`${r.base}/calls/${'x'.repeat(5000)}`, '{}', {})).status, 401)
  for (let batch = 0; batch < 999 / 111; batch++) {
    const statuses = await Promise.all(Array.from({ length: 111 }, () => post(`${r.base}/calls/${UUID}`, '{}', { authorization: 'Bearer guess' }).then((res) => res.status)))
    t.ok(statuses.every((status) => status === 401))
  }
  t.equal(refusedLine().length, 1, 'one line for 1,000 refusals within the interval')
  t.match(refusedLine()[0], { level: 40, suppressed: 0, remote: String, method: 'POST' })
  const line = r.lines.find((l) => l.includes('missing or wrong bearer token')) ?? ''
  t.ok(line.length < 400, `the line is small (${line.length} characters)`)

  r.clock.now += 10_000
  t.equal((await post(`${r.base}/calls/${UUID}`, '{}', {})).status, 401)
  t.equal(refusedLine().length, 2, 'the next interval logs again')
  t.match(refusedLine()[1], { suppressed: 999 }, 'with how many were held back')
  t.match(metrics.registry.render(), /^audiosocket_http_requests_refused_total\{reason="unauthorized"\} 1001$/m, 'the metric counts each refusal')
})

t.test('a malformed percent-escape in the path is a 400, not an endpoint bug', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  const r = await rig(t, { metrics: metrics.http })
  const res = await rawRequest(r.port, 'POST', '/calls/%E0%A4%A', '{}')
  t.equal(res.status, 400)
  t.match(JSON.parse(res.body), { error: /the path must be \/calls\/<uuid>/ })
  t.equal((await rawRequest(r.port, 'DELETE', '/calls/%')).status, 400)
  t.same(errorLines(r), [], 'no error line')
  t.match(metrics.registry.render(), /^audiosocket_http_requests_refused_total\{reason="bad_request"\} 2$/m)
})

t.test('a deeply nested body is a 400 (or 413 past the size), never a stack overflow', async (t) => {
  const r = await rig(t)
  const nested = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`
  // 30,000 levels fit in MAX_BODY_BYTES; JSON.stringify of it throws RangeError.
  const deep = await post(`${r.base}/calls/${UUID}`, `{"metadata":{"a":${nested(30_000)}}}`)
  t.equal(deep.status, 400)
  t.match(await deep.json(), { error: `the body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep` })
  const deepUnknown = await post(`${r.base}/calls/${UUID}`, `{"x":${nested(30_000)}}`)
  t.equal(deepUnknown.status, 400)
  const notTooDeepForTheBody = await post(`${r.base}/calls/${UUID}`, `{"metadata":{"a":${nested(20)}}}`)
  t.equal(notTooDeepForTheBody.status, 400, 'within the body bound, over the metadata one')
  t.match(await notTooDeepForTheBody.json(), { error: /metadata nests arrays and objects more than 16 levels deep/ })
  t.equal((await post(`${r.base}/calls/${UUID}`, `{"s":"${'['.repeat(1000)}"}`)).status, 400, 'brackets inside a string do not count: only the unknown field is refused')
  t.equal((await post(`${r.base}/calls/${UUID}`, `{"metadata":{"a":${nested(100_000)}}}`)).status, 413, '100,000 levels do not fit in MAX_BODY_BYTES')
  t.same(errorLines(r), [], 'no error line')
  t.equal(r.registrations.size, 0)
})

t.test('a client that goes away in the middle of its body is not an endpoint bug', async (t) => {
  const r = await rig(t)
  const socket = net.connect(r.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  // "100 Continue" comes once the server has handed the request to the endpoint, which is then waiting for the body.
  socket.write(`POST /calls/${UUID} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n`)
  await new Promise((resolve) => socket.once('data', resolve))
  socket.write('{"metadata":')
  socket.destroy()
  const settledLine = (): Record<string, unknown> | undefined =>
    r.logs.find((l) => l.msg === 'HTTP request abandoned by the client before its body ended' || l.msg === 'HTTP endpoint bug')
  await waitUntil(() => settledLine() !== undefined, 'the server to notice the client left')
  const settled = settledLine() ?? {}
  t.equal(settled.msg, 'HTTP request abandoned by the client before its body ended')
  t.equal(settled.level, 20, 'at debug')
  t.same(errorLines(r), [])
})

t.test('registrations past REGISTRATION_MAX_COUNT or REGISTRATION_MAX_BYTES get 429 with Retry-After; the store expires them as before', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true })
  const uuid = (n: number): string => `${UUID.slice(0, -2)}${String(n).padStart(2, '0')}`

  const byCount = await rig(t, { metrics: metrics.http, registrations: (now) => new RegistrationStore(60_000, { now, maxCount: 2 }) })
  t.equal((await post(`${byCount.base}/calls/${uuid(1)}`, '{}')).status, 201)
  byCount.clock.now += 15_000
  t.equal((await post(`${byCount.base}/calls/${uuid(2)}`, '{}')).status, 201)
  const full = await post(`${byCount.base}/calls/${uuid(3)}`, '{}')
  t.equal(full.status, 429)
  t.equal(full.headers.get('retry-after'), '45', 'seconds until the oldest registration expires')
  t.match(await full.json(), { error: /too many registrations waiting for their call \(REGISTRATION_MAX_COUNT\)/, setting: 'REGISTRATION_MAX_COUNT' })
  t.equal((await post(`${byCount.base}/calls/${uuid(2)}`, '{"metadata":{"a":1}}')).status, 200, 'replacing one is no growth')
  byCount.clock.now += 44_999
  t.equal((await post(`${byCount.base}/calls/${uuid(3)}`, '{}')).headers.get('retry-after'), '1', 'at least one second')
  byCount.clock.now += 1
  t.equal((await post(`${byCount.base}/calls/${uuid(3)}`, '{}')).status, 201, 'the oldest expired: room again')
  t.match(
    byCount.logs.filter((l) => l.msg === 'call registration refused: REGISTRATION_MAX_COUNT reached'),
    [{ level: 40, setting: 'REGISTRATION_MAX_COUNT', suppressed: 0 }],
    'one warn line per interval',
  )

  const metadata = JSON.stringify({ metadata: { v: 'x'.repeat(1000) } })
  const bytesOfOne = Buffer.byteLength(JSON.stringify(JSON.parse(metadata)))
  const byBytes = await rig(t, { metrics: metrics.http, registrations: (now) => new RegistrationStore(60_000, { now, maxBytes: 2 * bytesOfOne + 100 }) })
  t.equal((await post(`${byBytes.base}/calls/${uuid(1)}`, metadata)).status, 201)
  t.equal((await post(`${byBytes.base}/calls/${uuid(2)}`, metadata)).status, 201)
  t.equal((await post(`${byBytes.base}/calls/${uuid(3)}`, '{}')).status, 201, 'a small one still fits')
  const tooMuch = await post(`${byBytes.base}/calls/${uuid(4)}`, metadata)
  t.equal(tooMuch.status, 429)
  t.equal(tooMuch.headers.get('retry-after'), '60')
  t.match(await tooMuch.json(), { error: /REGISTRATION_MAX_BYTES/, setting: 'REGISTRATION_MAX_BYTES' })
  t.equal(byBytes.registrations.size, 3)
  t.match(metrics.registry.render(), /^audiosocket_http_requests_refused_total\{reason="registrations_full"\} 3$/m)
})

