/**
 * POST and DELETE /conversations on the real HttpEndpoint (port 0), with a stub in place of the
 * ARI taps: the token, the setting named when ARI is off, bodies as JSON and as the dialplan's
 * CURL() form reaching begin() alike, the answers begin() and end() lead to, wrong methods.
 */
import t, { type Test } from 'tap'
import { createLogger } from '../../src/shared/logger.js'
import { HttpEndpoint, type HttpEndpointOptions, type HttpRefusalReason } from '../../src/server/http-endpoint.js'
import { RegistrationStore } from '../../src/server/registrations.js'
import type { BeginResult, ConversationRequest } from '../../src/server/conversation-taps.js'

const TOKEN = 'conv-token-0123456789abcdef'
const CONVERSATION_ID = '9e1f0c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f'
const LEG_IN = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d'
const LEG_OUT = 'b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e'

class StubConversations {
  readonly begun: ConversationRequest[] = []
  readonly ended: string[] = []
  result: BeginResult = { ok: true, conversationId: CONVERSATION_ID, legs: [{ callId: LEG_IN, role: 'caller' }, { callId: LEG_OUT, role: 'agent' }] }
  live = new Set([CONVERSATION_ID])
  async begin(request: ConversationRequest): Promise<BeginResult> {
    this.begun.push(request)
    return this.result
  }
  async end(conversationId: string): Promise<boolean> {
    this.ended.push(conversationId)
    return this.live.delete(conversationId)
  }
}

interface Rig {
  base: string
  stub: StubConversations
  refused: HttpRefusalReason[]
}

async function rig(t: Test, options: { conversations?: 'none'; token?: string | null } = {}): Promise<Rig> {
  const stub = new StubConversations()
  const refused: HttpRefusalReason[] = []
  const endpointOptions: HttpEndpointOptions = {
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'silent' }),
    notReady: () => undefined,
    renderMetrics: () => '',
    activeCalls: () => 0,
    registrations: new RegistrationStore(60_000),
    token: options.token === undefined ? TOKEN : options.token,
    metrics: { requestRefused: (reason) => void refused.push(reason) },
  }
  if (options.conversations !== 'none') endpointOptions.conversations = stub
  const endpoint = new HttpEndpoint(endpointOptions)
  const { port } = await endpoint.listen()
  t.teardown(() => endpoint.close())
  return { base: `http://127.0.0.1:${port}`, stub, refused }
}

const auth = { authorization: `Bearer ${TOKEN}` }

function post(r: Rig, body: string, contentType = 'application/json', headers: Record<string, string> = auth): Promise<Response> {
  return fetch(`${r.base}/conversations`, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body })
}

t.test('POST /conversations needs the bearer token', async (t) => {
  const r = await rig(t)
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }] as Array<Record<string, string>>) {
    const res = await post(r, '{"channel":"c"}', 'application/json', headers)
    t.equal(res.status, 401, JSON.stringify(headers))
    t.equal(res.headers.get('www-authenticate'), 'Bearer')
    t.match(await res.json(), { error: /Authorization: Bearer/ })
  }
  const del = await fetch(`${r.base}/conversations/${CONVERSATION_ID}`, { method: 'DELETE' })
  t.equal(del.status, 401, 'DELETE too')
  await del.body?.cancel()
  t.same(r.stub.begun, [], 'begin() never reached')
  t.same(r.stub.ended, [], 'nor end()')
  t.same(r.refused, ['unauthorized', 'unauthorized', 'unauthorized', 'unauthorized'])
})

t.test('without HTTP_TOKEN conversations are refused like registrations (403)', async (t) => {
  const r = await rig(t, { token: null })
  const res = await post(r, '{"channel":"c"}')
  t.equal(res.status, 403)
  t.match(await res.json(), { error: /HTTP_TOKEN/ })
  t.same(r.stub.begun, [])
})

t.test('without ARI (no conversations): 404 naming ARI_URL, for POST and DELETE', async (t) => {
  const r = await rig(t, { conversations: 'none' })
  const res = await post(r, '{"channel":"c"}')
  t.equal(res.status, 404)
  t.match(await res.json(), { error: /ARI_URL/ })
  const del = await fetch(`${r.base}/conversations/${CONVERSATION_ID}`, { method: 'DELETE', headers: auth })
  t.equal(del.status, 404)
  t.match(await del.json(), { error: /ARI_URL/ })
  t.same(r.refused, ['conversations_disabled', 'conversations_disabled'])
})

t.test('a bad body: 400 with the problems, begin() not called', async (t) => {
  const r = await rig(t)
  const cases: Array<[string, string, RegExp]> = [
    ['{"channel":', 'application/json', /the body must be JSON/],
    ['[]', 'application/json', /the body must be a JSON object/],
    ['', 'application/json', /^channel must be/],
    ['{"channel":"c","roles":{"in":"x","out":"x"}}', 'application/json', /must differ/],
    ['{"channel":"c","sample_rate":16000}', 'application/json', /sample_rate is not taken here/],
    ['{"channel":"c","bogus":1}', 'application/json', /unknown field "bogus"/],
    ['channel=c&bogus=1', 'application/x-www-form-urlencoded', /unknown form field "bogus"/],
    ['channel=a&channel=b', 'application/x-www-form-urlencoded', /"channel" is given twice/],
    ['channel=c&roles=caller%2Ccaller', 'application/x-www-form-urlencoded', /must differ/],
    ['channel=c&language_hints_strict=maybe', 'application/x-www-form-urlencoded', /language_hints_strict must be true or false/],
  ]
  for (const [body, type, error] of cases) {
    const res = await post(r, body, type)
    t.equal(res.status, 400, `${type}: ${body}`)
    t.match(await res.json(), { error }, `${type}: ${body}`)
  }
  t.same(r.stub.begun, [])
  t.equal(r.refused.filter((x) => x === 'bad_request').length, cases.length)
})

t.test('JSON and the CURL form reach begin() with the same request; 201 with the conversation and its legs', async (t) => {
  const r = await rig(t)
  const json = await post(r, JSON.stringify({ channel: '1733.42', roles: { in: 'caller', out: 'agent' }, language_hints: ['en', 'es'], metadata: { ticket: 'T-1' } }))
  t.equal(json.status, 201)
  t.same(await json.json(), { conversation_id: CONVERSATION_ID, legs: [{ call_id: LEG_IN, role: 'caller' }, { call_id: LEG_OUT, role: 'agent' }] })
  const form = await post(r, 'channel=1733.42&roles=caller%2Cagent&language_hints=en%2Ces&metadata.ticket=T-1', 'application/x-www-form-urlencoded')
  t.equal(form.status, 201)
  t.equal(form.headers.get('content-type'), 'application/json')
  t.same(await form.json(), { conversation_id: CONVERSATION_ID, legs: [{ call_id: LEG_IN, role: 'caller' }, { call_id: LEG_OUT, role: 'agent' }] })
  t.equal(r.stub.begun.length, 2)
  t.same(r.stub.begun[0], { channel: '1733.42', roles: { in: 'caller', out: 'agent' }, options: { recognition: { languageHints: ['en', 'es'] }, metadata: { ticket: 'T-1' } } })
  t.same(r.stub.begun[1], r.stub.begun[0], 'the form is the same request as its JSON twin')
  const charset = await post(r, 'channel=PJSIP%2Falice-00000001', 'application/x-www-form-urlencoded; charset=utf-8')
  t.equal(charset.status, 201, 'a form with a charset parameter is a form')
  await charset.body?.cancel()
  t.same(r.stub.begun[2], { channel: 'PJSIP/alice-00000001', roles: { in: 'caller', out: 'agent' }, options: {} }, 'defaults: roles caller / agent, no options')
  t.same(r.refused, [])
})

t.test('a refusal from begin(): its status and error pass through, with conversation_id when given', async (t) => {
  const r = await rig(t)
  const refusals: Array<[BeginResult & { ok: false }, Record<string, unknown>]> = [
    [{ ok: false, status: 404, error: 'no live channel with the id or name "x"' }, { error: 'no live channel with the id or name "x"' }],
    [{ ok: false, status: 409, error: 'this call is already being transcribed', conversationId: CONVERSATION_ID }, { error: 'this call is already being transcribed', conversation_id: CONVERSATION_ID }],
    [{ ok: false, status: 429, error: 'too many' }, { error: 'too many' }],
    [{ ok: false, status: 502, error: 'cannot tap', conversationId: CONVERSATION_ID }, { error: 'cannot tap', conversation_id: CONVERSATION_ID }],
    [{ ok: false, status: 503, error: 'the ARI events socket is waiting' }, { error: 'the ARI events socket is waiting' }],
  ]
  for (const [result, body] of refusals) {
    r.stub.result = result
    const res = await post(r, '{"channel":"x"}')
    t.equal(res.status, result.status)
    t.same(await res.json(), body, `${result.status}: the body is exactly the error (and id)`)
  }
  t.same(r.refused, refusals.map(() => 'conversation_refused'))
})

t.test('DELETE /conversations/<id>: 204 for a live one, 404 otherwise; the id is a UUID, case-insensitive', async (t) => {
  const r = await rig(t)
  const del = (id: string) => fetch(`${r.base}/conversations/${id}`, { method: 'DELETE', headers: auth })
  const first = await del(CONVERSATION_ID.toUpperCase())
  t.equal(first.status, 204)
  t.equal(await first.text(), '')
  t.same(r.stub.ended, [CONVERSATION_ID], 'end() gets the canonical (lowercase) id')
  const again = await del(CONVERSATION_ID)
  t.equal(again.status, 404)
  t.match(await again.json(), { error: 'no live conversation with this id' })
  const bad = await del('not-a-uuid')
  t.equal(bad.status, 400)
  t.match(await bad.json(), { error: /\/conversations\/<conversation_id>/ })
  t.same(r.stub.ended, [CONVERSATION_ID, CONVERSATION_ID], 'a bad id never reaches end()')
})

t.test('wrong methods: 405 with Allow, before the token is asked for', async (t) => {
  const r = await rig(t)
  const cases: Array<[string, string, string]> = [
    ['GET', '/conversations', 'POST'],
    ['DELETE', '/conversations', 'POST'],
    ['PUT', '/conversations', 'POST'],
    ['POST', `/conversations/${CONVERSATION_ID}`, 'DELETE'],
    ['GET', `/conversations/${CONVERSATION_ID}`, 'DELETE'],
  ]
  for (const [method, path, allow] of cases) {
    const res = await fetch(`${r.base}${path}`, { method })
    t.equal(res.status, 405, `${method} ${path}`)
    t.equal(res.headers.get('allow'), allow)
    await res.body?.cancel()
  }
  t.same(r.stub.begun, [])
  t.same(r.stub.ended, [])
  t.same(r.refused, cases.map(() => 'method_not_allowed'))
})

t.test('deeper paths under /conversations are not found (not taken as the collection)', async (t) => {
  const r = await rig(t)
  const post = await fetch(`${r.base}/conversations/${CONVERSATION_ID}/legs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"channel":"c"}' })
  t.equal(post.status, 404, 'POST /conversations/<id>/legs is no route')
  await post.body?.cancel()
  t.same(r.stub.begun, [], 'and starts no tap')
  const del = await fetch(`${r.base}/conversations/${CONVERSATION_ID}/legs`, { method: 'DELETE', headers: auth })
  t.equal(del.status, 404, 'DELETE there neither')
  await del.body?.cancel()
  t.same(r.stub.ended, [], 'nor ends a conversation')
})
