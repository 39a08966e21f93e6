/**
 * src/soniox/models-api.ts: the models API URL of each region, a tolerant reading of
 * `GET /v1/models` (documented fields, assumed deprecation fields, odd answers), what the list says
 * of one model id, and failures as answers (against the Soniox stand-in's HTTP API).
 */
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { assessModel, fetchSonioxModels, modelsApiUrl, parseModel, type SonioxModelInfo } from '../../src/soniox/models-api.js'
import { FAKE_SONIOX_MODELS, startFakeSoniox } from '../support/fake-soniox.js'
import { freePort } from '../support/free-port.js'

t.test('modelsApiUrl: the API host of the WebSocket\'s region, or the same server', async (t) => {
  const table: Array<[string, string]> = [
    ['wss://stt-rt.soniox.com/transcribe-websocket', 'https://api.soniox.com/v1/models'],
    ['wss://stt-rt.eu.soniox.com/transcribe-websocket', 'https://api.eu.soniox.com/v1/models'],
    ['wss://stt-rt.jp.soniox.com/transcribe-websocket', 'https://api.jp.soniox.com/v1/models'],
    ['wss://stt-rt.in.soniox.com/transcribe-websocket', 'https://api.in.soniox.com/v1/models'],
    ['ws://127.0.0.1:4567/transcribe-websocket', 'http://127.0.0.1:4567/v1/models'],
    ['wss://soniox-proxy.example.net:8443/stt?token=secret', 'https://soniox-proxy.example.net:8443/v1/models'],
    ['wss://user:pass@stt-rt.eu.soniox.com/transcribe-websocket', 'https://api.eu.soniox.com/v1/models'],
    ['ws://[::1]:9000/transcribe-websocket', 'http://[::1]:9000/v1/models'],
  ]
  for (const [ws, api] of table) t.equal(modelsApiUrl(ws), api, ws)
})

t.test('parseModel: documented fields, assumed deprecation fields in any of their spellings, odd entries', async (t) => {
  t.strictSame(parseModel({ id: 'stt-rt-v6', aliased_model_id: null, name: 'V6', transcription_mode: 'real_time', languages: [], supports_x: true }), {
    id: 'stt-rt-v6',
    aliasOf: null,
    name: 'V6',
    realTime: true,
    deprecated: false,
    retirementDate: undefined,
    replacement: undefined,
  })
  t.match(parseModel({ id: 'stt-rt-preview', aliased_model_id: 'stt-rt-v6', transcription_mode: 'realtime' }), { aliasOf: 'stt-rt-v6', realTime: true, name: undefined })
  t.match(parseModel({ id: 'stt-async-v6', transcription_mode: 'async' }), { realTime: false, aliasOf: null })
  t.match(parseModel({ id: 'x' }), { realTime: undefined, deprecated: false }, 'no mode: unknown, not refused')
  t.match(parseModel({ id: 'a', deprecated: true, retirement_date: '2026-12-15', replacement_model_id: 'b' }), { deprecated: true, retirementDate: '2026-12-15', replacement: 'b' })
  t.match(parseModel({ id: 'a', is_deprecated: true }), { deprecated: true, retirementDate: undefined, replacement: undefined })
  t.match(parseModel({ id: 'a', deprecation_date: '2027-01-01' }), { deprecated: true, retirementDate: '2027-01-01' }, 'a date alone says it')
  t.match(parseModel({ id: 'a', sunset_date: '2027-02-01', replaced_by: 'c' }), { deprecated: true, retirementDate: '2027-02-01', replacement: 'c' })
  t.match(parseModel({ id: 'a', successor_model_id: 'd' }), { deprecated: true, replacement: 'd' }, 'a replacement alone says it')
  t.match(parseModel({ id: 'a', deprecated: false, aliased_model_id: '' }), { deprecated: false, aliasOf: null })
  for (const bad of [null, 'stt-rt-v6', 42, [], {}, { id: '' }, { id: 7 }]) t.equal(parseModel(bad), undefined, JSON.stringify(bad))
})

function info(id: string, more: Partial<SonioxModelInfo> = {}): SonioxModelInfo {
  return { id, aliasOf: null, name: undefined, realTime: true, deprecated: false, retirementDate: undefined, replacement: undefined, ...more }
}

t.test('assessModel: unknown, async, a model, an alias (chains, dangling, cycles), deprecation on the way', async (t) => {
  const models = [
    info('stt-rt-v6', { name: 'V6' }),
    info('stt-rt-v5', { deprecated: true, retirementDate: '2026-12-15', replacement: 'stt-rt-v6' }),
    info('stt-rt-v4', { aliasOf: 'stt-rt-v5' }),
    info('stt-rt-v3', { aliasOf: 'stt-rt-v4' }),
    info('stt-rt-preview', { aliasOf: 'stt-rt-v6' }),
    info('stt-rt-gone', { aliasOf: 'stt-rt-v1' }),
    info('stt-rt-loop-a', { aliasOf: 'stt-rt-loop-b' }),
    info('stt-rt-loop-b', { aliasOf: 'stt-rt-loop-a' }),
    info('stt-async-v6', { realTime: false }),
    info('stt-rt-async-alias', { aliasOf: 'stt-async-v6' }),
  ]
  t.match(assessModel(models, 'stt-rt-v9'), { kind: 'unknown', realTimeIds: ['stt-rt-v6', 'stt-rt-v5'] }, 'real-time models that are not aliases')
  t.match(assessModel(models, 'stt-async-v6'), { kind: 'async', model: { id: 'stt-async-v6' } })
  t.match(assessModel(models, 'stt-rt-async-alias'), { kind: 'async', model: { id: 'stt-async-v6' } })
  t.match(assessModel(models, 'stt-rt-v6'), { kind: 'model', model: { id: 'stt-rt-v6' }, aliasChain: [], danglingAlias: false, deprecated: undefined })
  t.match(assessModel(models, 'stt-rt-v5'), { kind: 'model', aliasChain: [], deprecated: { id: 'stt-rt-v5', replacement: 'stt-rt-v6' } })
  t.match(assessModel(models, 'stt-rt-preview'), { kind: 'model', aliasChain: ['stt-rt-v6'], deprecated: undefined })
  t.match(assessModel(models, 'stt-rt-v4'), { kind: 'model', aliasChain: ['stt-rt-v5'], deprecated: { id: 'stt-rt-v5' } }, 'an alias of a deprecated model')
  t.match(assessModel(models, 'stt-rt-v3'), { kind: 'model', aliasChain: ['stt-rt-v4', 'stt-rt-v5'], deprecated: { id: 'stt-rt-v5' } }, 'followed through')
  t.match(assessModel(models, 'stt-rt-gone'), { kind: 'model', aliasChain: ['stt-rt-v1'], danglingAlias: true })
  const loop = assessModel(models, 'stt-rt-loop-a')
  t.match(loop, { kind: 'model', aliasChain: ['stt-rt-loop-b'] }, 'a cycle ends')
  t.match(assessModel([], 'stt-rt-v6'), { kind: 'unknown', realTimeIds: [] })
})

t.test('fetchSonioxModels against the stand-in: the list with the key as Bearer; a refused key, an API that fails', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const answer = await fetchSonioxModels({ websocketUrl: soniox.url, apiKey: 'test-key', timeoutMs: 2000 })
  if (!answer.ok) throw new Error(answer.message)
  t.equal(answer.url, `${soniox.apiUrl}/v1/models`)
  t.same(answer.models.map((m) => m.id), FAKE_SONIOX_MODELS.map((m) => m.id))
  t.match(answer.models.find((m) => m.id === 'stt-rt-v5'), { deprecated: true, retirementDate: '2026-12-15', replacement: 'stt-rt-v6' })
  t.match(answer.models.find((m) => m.id === 'stt-rt-preview'), { aliasOf: 'stt-rt-v6', deprecated: false })
  t.same(soniox.apiRequests, [{ method: 'GET', url: '/v1/models', authorization: 'Bearer test-key' }])

  t.same(await fetchSonioxModels({ websocketUrl: soniox.url, apiKey: 'wrong', timeoutMs: 2000 }), {
    ok: false,
    url: answer.url,
    status: 401,
    message: 'HTTP 401: unauthenticated Invalid API key.',
  })

  const down = await startFakeSoniox({ modelsApiError: { status: 503, body: 'upstream connect error' } })
  t.teardown(() => down.close())
  t.match(await fetchSonioxModels({ websocketUrl: down.url, apiKey: 'test-key', timeoutMs: 2000 }), { ok: false, status: 503, message: 'HTTP 503: upstream connect error' }, 'a body that is not JSON: an excerpt')
  const notAList = await startFakeSoniox({ modelsApiError: { status: 200, body: '{"items":[]}' } })
  t.teardown(() => notAList.close())
  t.match(await fetchSonioxModels({ websocketUrl: notAList.url, apiKey: 'test-key', timeoutMs: 2000 }), { ok: false, status: 200, message: 'the answer is not a models list' })
})

t.test('fetchSonioxModels: a bare array is read too; unreachable and silent servers are answers, not throws', async (t) => {
  let answerWith: (res: import('node:http').ServerResponse) => void = (res) => res.end('[{"id":"stt-rt-v6","transcription_mode":"real_time"},{"no":"id"}]')
  const server = createServer((_req, res) => answerWith(res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  const url = `ws://127.0.0.1:${port}/transcribe-websocket`
  t.match(await fetchSonioxModels({ websocketUrl: url, apiKey: 'k', timeoutMs: 2000 }), { ok: true, models: [{ id: 'stt-rt-v6', realTime: true }] }, 'entries without an id are skipped')

  answerWith = () => {} // never answers
  t.match(await fetchSonioxModels({ websocketUrl: url, apiKey: 'k', timeoutMs: 200 }), { ok: false, message: 'no answer within 200 ms' })

  const closed = await freePort()
  const refused = await fetchSonioxModels({ websocketUrl: `ws://127.0.0.1:${closed}/transcribe-websocket`, apiKey: 'k', timeoutMs: 2000 })
  t.match(refused, { ok: false, status: undefined, message: /fetch failed.*ECONNREFUSED/ })
})
