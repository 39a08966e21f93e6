import t from 'tap'
import { WebhookTransport } from '../../src/webhook/http-transport.js'
import { rawHttpServer } from '../support/raw-http-server.js'
import { FakeTimers } from '../support/fake-timers.js'

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'

t.test('the request as it goes on the wire', async (t) => {
  const server = await rawHttpServer(t, (req) => req.socket.write(OK))
  const transport = new WebhookTransport({ url: `http://u%40x:p%3Aw@127.0.0.1:${server.port}/hooks/in?k=1`, timeoutMs: 2000, headers: { 'X-Tenant': 'a' }, version: '9.9.9' })
  t.teardown(() => transport.close())
  t.match(await transport.post('evt_1', '{"é":1}').done, { kind: 'delivered', status: 200 })
  const [head, body] = (server.requests[0]?.text ?? '').split('\r\n\r\n')
  t.same(head?.split('\r\n'), [
    'POST /hooks/in?k=1 HTTP/1.1',
    `host: 127.0.0.1:${server.port}`,
    'connection: keep-alive',
    'x-tenant: a',
    `authorization: Basic ${Buffer.from('u@x:p:w').toString('base64')}`,
    'user-agent: audiosocket-soniox/9.9.9',
    'content-type: application/json',
    'content-length: 8',
  ], 'path and query, host with port, basic auth decoded from the URL, the byte length of a UTF-8 body')
  t.equal(Buffer.from(body ?? '', 'latin1').toString('utf8'), '{"é":1}')
})

t.test('a stale keep-alive connection: resent once on a fresh one, not counted as a failed attempt', async (t) => {
  const server = await rawHttpServer(t, (req, index) => {
    if (index === 1) req.socket.destroy()
    else req.socket.write(OK)
  })
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  t.match(await transport.post('evt_a', '{}').done, { kind: 'delivered' })
  t.match(await transport.post('evt_b', '{}').done, { kind: 'delivered' }, 'the second event is delivered despite the dropped connection')
  t.same(server.requests.map((r) => r.connection), [1, 1, 2], 'the first connection dropped the second request, which went again on a new one')
  t.equal(server.requests[2]?.text, server.requests[1]?.text, 'the same request, byte for byte')
})

t.test('a connection that fails twice in a row is a retriable network error', async (t) => {
  const server = await rawHttpServer(t, (req, index) => {
    if (index === 0) req.socket.write(OK)
    else req.socket.destroy()
  })
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  await transport.post('evt_a', '{}').done
  t.match(await transport.post('evt_b', '{}').done, { kind: 'failed', retriable: true, err: { code: 'ERR_WEBHOOK_NETWORK' } })
  t.equal(server.requests.length, 3, 'one resend on a fresh connection, no more')
})

t.test('a non-2xx answer: status, body excerpt and Retry-After, whatever the framing', async (t) => {
  const answers = [
    'HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nslow\r\n5\r\n down\r\n0\r\n\r\n',
    'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nno good',
  ]
  const server = await rawHttpServer(t, (req, index) => {
    if (index === 1) req.socket.end(answers[1] as string)
    else req.socket.write(answers[0] as string)
  })
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  t.match(await transport.post('evt_a', '{}').done, { kind: 'failed', retriable: true, status: 503, retryAfterMs: 7000, bodyExcerpt: 'slow down' })
  t.match(await transport.post('evt_b', '{}').done, { kind: 'failed', retriable: false, status: 400, bodyExcerpt: 'no good' })
})

t.test('an answer that is not HTTP/1.1 is a retriable protocol error naming it', async (t) => {
  const server = await rawHttpServer(t, (req) => req.socket.write('\x16\x03\x01\x00\x05hello\r\n\r\n'))
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  const outcome = await transport.post('evt_a', '{}').done
  t.match(outcome, { kind: 'failed', retriable: true, err: { code: 'ERR_WEBHOOK_PROTOCOL', cause: { name: 'HttpProtocolError', message: /not an HTTP\/1\.x status line/ } } })
})

t.test('a non-HTTP answer fails at its first byte, not at the request deadline', async (t) => {
  // No line end ever comes and the connection stays open; the deadline is a fake timer, never advanced.
  const server = await rawHttpServer(t, (req) => req.socket.write('\x15\x03\x03\x00\x02\x02\x32'))
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000, clock: new FakeTimers() })
  t.teardown(() => transport.close())
  const outcome = await transport.post('evt_a', '{}').done
  t.match(outcome, { kind: 'failed', retriable: true, err: { code: 'ERR_WEBHOOK_PROTOCOL', cause: { message: /not an HTTP\/1\.x status line: "\\u0015/ } } })
})

t.test('a 2xx that node:http refuses is a failed, retried attempt, and its connection is not reused', async (t) => {
  const refused: Array<[string, RegExp]> = [
    ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', /more than one Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok', /more than one Content-Length/],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', /both Content-Length and Transfer-Encoding/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n', /bad chunk size/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: a\x00\r\n\r\n', /control character/],
    ['HTTP/1.1 200 OK\nContent-Length: 0\n\n', /bare LF/],
    ['HTTP/1.1 200 OK\r\nX-Request-Id: a\x00b\r\nContent-Length: 0\r\n\r\n', /control character/],
  ]
  const server = await rawHttpServer(t, (req, index) => req.socket.write(Buffer.from(refused[index]?.[0] ?? OK, 'latin1')))
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  for (const [answer, message] of refused) {
    const outcome = await transport.post('evt_a', '{}').done
    t.match(outcome, { kind: 'failed', retriable: true, err: { code: 'ERR_WEBHOOK_PROTOCOL', cause: { message } } }, JSON.stringify(answer.slice(0, 60)))
  }
  t.match(await transport.post('evt_b', '{}').done, { kind: 'delivered', status: 200 }, 'a valid answer after them is delivered')
  t.same(server.requests.map((r) => r.connection), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'each refused answer closed its connection')
})

t.test('a chunked 2xx is delivered at its last chunk; cut short before it, it is a failed attempt', async (t) => {
  const server = await rawHttpServer(t, (req, index) => {
    if (index === 0) req.socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=1\r\nok\r\n0\r\n\r\n')
    else req.socket.end('HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n')
  })
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000 })
  t.teardown(() => transport.close())
  t.match(await transport.post('evt_a', '{}').done, { kind: 'delivered', status: 200 })
  t.match(await transport.post('evt_b', '{}').done, { kind: 'failed', retriable: true, err: { code: 'ERR_WEBHOOK_NETWORK', cause: { message: /closed in the middle of the response/ } } })
  t.same(server.requests.map((r) => r.connection), [1, 1], 'the valid chunked answer left its connection reusable')
})

t.test('an event id that could break the request is refused before anything is sent', async (t) => {
  const server = await rawHttpServer(t, (req) => req.socket.write(OK))
  const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 2000, secret: 'whsec_c2VjcmV0' })
  t.teardown(() => transport.close())
  const outcome = await transport.post('evt_1\r\nx-injected: 1', '{}').done
  t.match(outcome, { kind: 'failed', retriable: false, err: { message: /not a valid header value/ } })
  t.equal(server.requests.length, 0)
})

t.test('format avr: the secret goes verbatim in X-AVR-WEBHOOK-SECRET, no signature headers', async (t) => {
  const server = await rawHttpServer(t, (req) => req.socket.write(OK))
  // A whsec_ secret is not decoded: AVR receivers compare the header with the string they were given.
  for (const secret of ['whsec_dGVzdA==', 'plain shared secret', 'whsec_not base64!']) {
    const transport = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/events`, timeoutMs: 2000, secret, format: 'avr', version: '1.2.3' })
    t.teardown(() => transport.close())
    t.match(await transport.post('evt_1', '{"uuid":"u"}').done, { kind: 'delivered' })
    t.match(await transport.post('evt_2', '{"uuid":"u"}').done, { kind: 'delivered' })
  }
  const heads = server.requests.map((r) => r.text.split('\r\n\r\n')[0]?.split('\r\n'))
  t.same(heads[0], [
    'POST /events HTTP/1.1',
    `host: 127.0.0.1:${server.port}`,
    'connection: keep-alive',
    'X-AVR-WEBHOOK-SECRET: whsec_dGVzdA==',
    'user-agent: audiosocket-soniox/1.2.3',
    'content-type: application/json',
    'content-length: 12',
  ])
  t.same(heads[1], heads[0], 'the same header on every request: nothing per attempt to renew')
  t.equal(heads[2]?.[3], 'X-AVR-WEBHOOK-SECRET: plain shared secret')
  t.equal(heads[4]?.[3], 'X-AVR-WEBHOOK-SECRET: whsec_not base64!', 'a secret the standard format would refuse to decode is sent as it is')
  t.notOk(heads.flat().some((line) => /^webhook-/i.test(line ?? '')), 'no Standard Webhooks headers')

  const unsigned = new WebhookTransport({ url: `http://127.0.0.1:${server.port}/events`, timeoutMs: 2000, format: 'avr' })
  t.teardown(() => unsigned.close())
  await unsigned.post('evt_3', '{}').done
  t.notOk(server.requests.at(-1)?.text.toLowerCase().includes('x-avr-webhook-secret'), 'without a secret, no header')
})

t.test('format avr: a secret that cannot be a header value, or the header set twice, is a config error', async (t) => {
  t.throws(() => new WebhookTransport({ url: 'http://127.0.0.1:1/', timeoutMs: 1000, secret: 'line\nbreak', format: 'avr' }), { code: 'ERR_CONFIG_INVALID', message: /X-AVR-WEBHOOK-SECRET.*control characters/ })
  t.throws(() => new WebhookTransport({ url: 'http://127.0.0.1:1/', timeoutMs: 1000, secret: 's', format: 'avr', headers: { 'x-avr-webhook-secret': 'other' } }), {
    code: 'ERR_CONFIG_INVALID',
    message: /X-AVR-WEBHOOK-SECRET/,
  })
  t.doesNotThrow(() => new WebhookTransport({ url: 'http://127.0.0.1:1/', timeoutMs: 1000, format: 'avr', headers: { 'X-AVR-WEBHOOK-SECRET': 'set by hand' } }).close(), 'without WEBHOOK_SECRET the header may come from WEBHOOK_HEADERS')
})
