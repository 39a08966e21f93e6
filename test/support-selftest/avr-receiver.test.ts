/**
 * Self-test of the strict AVR receiver (test/support/avr-receiver.ts), driven by plain fetch(), so
 * that the WEBHOOK_FORMAT=avr tests built on it can trust that it refuses what AVR would not send.
 */
import t from 'tap'
import { avrShapeProblems, startAvrReceiver } from '../support/avr-receiver.js'

const UUID = '40325ec2-5efd-4bd3-805f-53576e581d13'
const TS = '2026-11-20T22:00:00.000Z'
const event = (type: string, payload: object, uuid = UUID): string => JSON.stringify({ uuid, type, timestamp: TS, payload })

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })
  await res.arrayBuffer()
  return res.status
}

t.test('AVR\'s own examples pass', async (t) => {
  for (const body of [
    event('call_started', {}),
    event('transcription', { role: 'user', text: 'Hello, I need help with my account' }),
    event('transcription', { role: 'agent', text: 'Sure.' }),
    event('dtmf_digit', { digit: '1' }),
    event('error', { message: 'boom' }),
    event('call_ended', {}),
  ]) {
    t.same(avrShapeProblems(JSON.parse(body)), [], body)
  }
})

t.test('anything else is named', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ type: 'call_started', uuid: UUID, timestamp: TS, payload: {} }, /envelope keys are \[type, uuid, timestamp, payload\]/],
    [{ uuid: UUID, type: 'call_started', timestamp: TS, payload: {}, id: 'evt_1' }, /envelope keys/],
    [{ uuid: 'call-1', type: 'call_started', timestamp: TS, payload: {} }, /is not a UUID/],
    [{ uuid: UUID, type: 'call_started', timestamp: '2026-11-20 22:00', payload: {} }, /not ISO-8601/],
    [{ uuid: UUID, type: 'call.started', timestamp: TS, payload: {} }, /not one of AVR's/],
    [{ uuid: UUID, type: 'call_started', timestamp: TS, payload: { metadata: null } }, /call_started payload keys are \[metadata\]/],
    [{ uuid: UUID, type: 'transcription', timestamp: TS, payload: { role: 'caller', text: 'x' } }, /role "caller" is not user or agent/],
    [{ uuid: UUID, type: 'transcription', timestamp: TS, payload: { role: 'user', text: 'x', index: 0 } }, /payload keys/],
    [{ uuid: UUID, type: 'transcription', timestamp: TS, payload: { role: 'user', text: ' ' } }, /text is not a non-empty string/],
    [{ uuid: UUID, type: 'dtmf_digit', timestamp: TS, payload: { digit: '12' } }, /not one DTMF digit/],
    [{ uuid: UUID, type: 'error', timestamp: TS, payload: { message: 'x', code: 'E' } }, /error payload keys/],
  ]
  for (const [body, problem] of cases) t.match(avrShapeProblems(body).join('; '), problem, JSON.stringify(body))
})

t.test('over HTTP: secret, headers, order per uuid, rate limit', async (t) => {
  const r = await startAvrReceiver({ secret: 's3cret', rateLimit: { max: 9, windowMs: 60_000 } })
  t.teardown(() => r.close())
  const secret = { 'x-avr-webhook-secret': 's3cret' }
  t.equal(await post(r.url, event('call_started', {})), 401, 'no secret: 401')
  t.equal(await post(r.url, event('call_started', {}), { 'x-avr-webhook-secret': 'S3CRET' }), 401, 'a wrong secret: 401')
  t.equal(await post(r.url, event('call_started', {}), { ...secret, 'webhook-id': 'evt_1' }), 400, 'Standard Webhooks headers are not AVR\'s')
  t.equal(await post(r.url, event('transcription', { role: 'user', text: 'early' }), secret), 200, 'accepted, but out of order')
  t.equal(await post(r.url, event('call_started', {}, 'f0000000-0000-4000-8000-000000000000'), secret), 200)
  t.equal(await post(r.url, event('error', { message: 'x' }, 'f0000000-0000-4000-8000-000000000000'), secret), 200)
  t.equal(await post(r.url, event('dtmf_digit', { digit: '5' }, 'f0000000-0000-4000-8000-000000000000'), secret), 200)
  t.equal(await post(r.url, event('call_ended', {}, 'f0000000-0000-4000-8000-000000000000'), secret), 200)
  t.equal(await post(r.url, event('call_ended', {}, 'f0000000-0000-4000-8000-000000000000'), secret), 200)
  t.equal(await post(r.url, event('call_ended', {}), secret), 429, 'the tenth request in the window: rate-limited')
  t.equal(r.rateLimited, 1)
  t.match(r.violations, [
    /X-AVR-WEBHOOK-SECRET is missing/,
    /X-AVR-WEBHOOK-SECRET is wrong/,
    /a webhook-id header/,
    /transcription before call_started/,
    /dtmf_digit after error/,
    /call_ended after call_ended/,
  ])
  t.equal(r.eventsFor('f0000000-0000-4000-8000-000000000000').length, 5)
})
