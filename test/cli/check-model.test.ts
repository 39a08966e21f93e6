/**
 * src/cli/check-model.ts: the `model` item of `audiosocket-soniox check`, one verdict per thing
 * Soniox's models API can say of SONIOX_MODEL (in process, against the stand-in's list).
 */
import t from 'tap'
import { checkSonioxModel } from '../../src/cli/check-model.js'
import { FAKE_SONIOX_MODELS, startFakeSoniox, type FakeSonioxModel } from '../support/fake-soniox.js'

const EXTRA: FakeSonioxModel[] = [
  { id: 'stt-rt-v7-beta', aliased_model_id: null, name: 'Beta', transcription_mode: 'real_time', deprecated: true },
  { id: 'stt-rt-moved', aliased_model_id: 'stt-rt-v1', name: 'Moved', transcription_mode: 'real_time' },
  { id: 'stt-rt-batch', aliased_model_id: 'stt-async-v6', name: 'Batch', transcription_mode: 'real_time' },
]

t.test('each outcome: exists, alias, deprecated (itself or behind an alias), unknown, async', async (t) => {
  const soniox = await startFakeSoniox({ models: [...FAKE_SONIOX_MODELS, ...EXTRA] })
  t.teardown(() => soniox.close())
  const check = (model: string) => checkSonioxModel({ websocketUrl: soniox.url, apiKey: 'test-key', model, connectTimeoutMs: 2000 })
  const host = new URL(soniox.apiUrl).host

  t.same(await check('stt-rt-v6'), { verdict: 'ok', text: 'stt-rt-v6 exists (Speech-to-Text Real-time v6)' })
  t.same(await check('stt-rt-preview'), {
    verdict: 'ok',
    text: 'stt-rt-preview is an alias of stt-rt-v6: calls are transcribed by stt-rt-v6 (Soniox may move the alias to a newer model; SONIOX_MODEL=stt-rt-v6 pins it)',
  })
  t.same(await check('stt-rt-v5'), { verdict: 'warn', text: 'stt-rt-v5 is deprecated (retires 2026-12-15): set SONIOX_MODEL=stt-rt-v6 before it retires' })
  t.same(await check('stt-rt-v4'), {
    verdict: 'warn',
    text: 'stt-rt-v4 is an alias of stt-rt-v5; stt-rt-v5 is deprecated (retires 2026-12-15): set SONIOX_MODEL=stt-rt-v6 before it retires',
  })
  t.same(await check('stt-rt-v7-beta'), { verdict: 'warn', text: 'stt-rt-v7-beta is deprecated; Soniox names no replacement: pick a current model before it retires' })
  t.same(await check('stt-rt-moved'), { verdict: 'warn', text: `stt-rt-moved is an alias of stt-rt-v1, which ${host} does not list (a session shows whether Soniox still takes it)` })
  t.same(await check('stt-rt-v9'), {
    verdict: 'FAIL',
    text: `SONIOX_MODEL stt-rt-v9 is not a Soniox model: Soniox refuses every session with it (400 "Invalid model specified."). ${host} lists these real-time models: stt-rt-v6, stt-rt-v5, stt-rt-v7-beta`,
  })
  t.same(await check('stt-rt-batch'), { verdict: 'FAIL', text: 'SONIOX_MODEL stt-rt-batch is an alias of the async model stt-async-v6: the real-time WebSocket refuses it; use a real-time (stt-rt-*) model' })
  t.ok(soniox.apiRequests.every((r) => r.method === 'GET' && r.url === '/v1/models' && r.authorization === 'Bearer test-key'), 'one GET /v1/models each, with the key as Bearer')
})

t.test('the API cannot be asked: a warning that says why, never a failure', async (t) => {
  const soniox = await startFakeSoniox()
  const down = await startFakeSoniox({ modelsApiError: { status: 503, body: '{"status_code":503,"error_type":"service_unavailable","message":"Try again later."}' } })
  t.teardown(async () => {
    await soniox.close()
    await down.close()
  })
  const refused = await checkSonioxModel({ websocketUrl: soniox.url, apiKey: 'not-the-key', model: 'stt-rt-v6', connectTimeoutMs: 2000 })
  t.equal(refused.verdict, 'warn')
  t.match(refused.text, /^could not ask Soniox's models API about stt-rt-v6 \(GET http:\/\/127\.0\.0\.1:\d+\/v1\/models\): HTTP 401: unauthenticated Invalid API key\. \(the key is refused here too/)
  t.notMatch(refused.text, /not-the-key/, 'the key is never shown')
  const failing = await checkSonioxModel({ websocketUrl: down.url, apiKey: 'test-key', model: 'stt-rt-v6', connectTimeoutMs: 2000 })
  t.match(failing, { verdict: 'warn', text: /HTTP 503: service_unavailable Try again later\. \(the soniox item proves the model by a session\)$/ })
  const notFound = await checkSonioxModel({ websocketUrl: soniox.url.replace('/transcribe-websocket', '/somewhere'), apiKey: 'test-key', model: 'stt-rt-v6', connectTimeoutMs: 2000 }, (async () => new Response('{"message":"Not found."}', { status: 404 })) as typeof fetch)
  t.match(notFound, { verdict: 'warn', text: /HTTP 404: Not found\. \(no models API on that host/ })
})
