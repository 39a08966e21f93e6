import net from 'node:net'
import t from 'tap'
import { Http1Pool, type ExchangeHandler } from '../../src/webhook/http1-pool.js'
import type { ResponseHead } from '../../src/webhook/http1-response.js'
import { rawHttpServer as rawServer } from '../support/raw-http-server.js'
import { waitUntil } from '../support/wait.js'

interface Outcome {
  status?: number
  body: string
  error?: Error
  info?: { reusedSocket: boolean; responseStarted: boolean }
}

/** Runs one exchange to its end; resolves with what the handler heard. */
function exchange(pool: Http1Pool, body = '{"n":1}', options: { fresh?: boolean } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { body: '' }
    const handler: ExchangeHandler = {
      onHead: (head: ResponseHead) => (outcome.status = head.status),
      onBody: (bytes) => (outcome.body += bytes.toString()),
      onEnd: () => resolve(outcome),
      onError: (error, info) => resolve({ ...outcome, error, info }),
    }
    pool.request(`POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`, body, handler, options)
  })
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

t.test('keep-alive: sequential requests share one connection; the request goes out as written', async (t) => {
  const server = await rawServer(t, (req) => req.socket.write(OK))
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  for (let i = 0; i < 3; i++) t.match(await exchange(pool, `{"i":${i}}`), { status: 200, body: 'ok', error: undefined })
  t.equal(server.connections(), 1)
  t.equal(server.requests[2]?.text, 'POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\n{"i":2}')
})

t.test('maxSockets bounds connections; the requests beyond it wait their turn', async (t) => {
  let inFlight = 0
  let maxInFlight = 0
  const server = await rawServer(t, (req) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    setTimeout(() => {
      inFlight--
      req.socket.write(OK)
    }, 5)
  })
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 2 })
  t.teardown(() => pool.close())
  const outcomes = await Promise.all(Array.from({ length: 6 }, () => exchange(pool)))
  t.ok(outcomes.every((o) => o.status === 200 && o.error === undefined), 'all six answered')
  t.equal(maxInFlight, 2)
  t.equal(server.connections(), 2)
})

t.test('Connection: close, or a body delimited by the close: the next request opens a new connection', async (t) => {
  const server = await rawServer(t, (req, index) => {
    if (index === 0) req.socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else req.socket.end('HTTP/1.1 500 Oops\r\n\r\nno length')
  })
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  t.match(await exchange(pool), { status: 200 })
  t.match(await exchange(pool), { status: 500, body: 'no length', error: undefined })
  t.equal(server.connections(), 2)
})

t.test('the stale keep-alive race: a reused connection that dies before any answer says so', async (t) => {
  // The server answers the first request, then drops the connection when the second arrives on it,
  // as a server does that closed an idle connection the moment the client reused it.
  const server = await rawServer(t, (req, index) => {
    if (index === 1) req.socket.destroy()
    else req.socket.write(OK)
  })
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  t.match(await exchange(pool), { status: 200 })
  const stale = await exchange(pool)
  t.ok(stale.error, 'the exchange failed')
  t.same(stale.info, { reusedSocket: true, responseStarted: false })
  const fresh = await exchange(pool)
  t.match(fresh, { status: 200, error: undefined })
  t.equal(server.requests[2]?.connection, 2, 'the next request went on a new connection')
})

t.test('a connection the server closes while idle is not used again', async (t) => {
  const server = await rawServer(t, (req) => req.socket.end(OK))
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  t.match(await exchange(pool), { status: 200 })
  // The pool drops the connection when it reads the server's FIN, and only then closes its own
  // side: once the server's socket is closed, the pool has seen the FIN.
  await waitUntil(() => server.requests[0]?.socket.closed === true, "the server's socket of the first request to close")
  const second = await exchange(pool)
  t.match(second, { status: 200, error: undefined })
  t.equal(server.connections(), 2)
})

t.test('bytes nobody asked for retire the connection; no response is credited to the wrong request', async (t) => {
  // The first answer is followed by a second, unasked-for 200 on the same connection.
  const server = await rawServer(t, (req, index) => {
    if (index === 0) req.socket.write(OK + OK)
    else req.socket.write('HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n')
  })
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  const first = await exchange(pool)
  t.equal(first.status, 200)
  const second = await exchange(pool)
  t.equal(second.status, 503, 'the second request got its own answer, not the stray 200')
  t.equal(server.requests[1]?.connection, 2)
})

t.test('a protocol error fails the exchange and the connection', async (t) => {
  // Two identical lengths: node:http refuses them, so the connection after them cannot be trusted.
  const server = await rawServer(t, (req, index) => req.socket.write(index === 0 ? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok' : OK))
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  const got = await exchange(pool)
  t.match(got, { status: undefined, error: { name: 'HttpProtocolError', message: /more than one Content-Length/ } }, 'the head never reached the handler')
  t.same(got.info, { reusedSocket: false, responseStarted: true })
  t.match(await exchange(pool), { status: 200, error: undefined })
  t.equal(server.requests[1]?.connection, 2, 'the next request went on a new connection')
})

t.test('bytes that cannot begin an HTTP response fail the exchange at once, with no line end and the connection open', async (t) => {
  const server = await rawServer(t, (req) => req.socket.write('SSH-2.0-OpenSSH_9.6'))
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 4 })
  t.teardown(() => pool.close())
  const got = await exchange(pool)
  t.match(got.error, { name: 'HttpProtocolError', message: /not an HTTP\/1\.x status line: "S/ })
})

t.test('connection refused', async (t) => {
  // A port that was just free: listen on it, then close.
  const closed = net.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const pool = new Http1Pool({ host: '127.0.0.1', port: deadPort, maxSockets: 1 })
  t.teardown(() => pool.close())
  const got = await exchange(pool)
  t.match(got.error, { code: 'ECONNREFUSED' })
  t.same(got.info, { reusedSocket: false, responseStarted: false })
})

t.test('cancel() without an error is silent; with one it is reported; close() fails what is in flight', async (t) => {
  const server = await rawServer(t, () => {})
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 1 })
  const heard: string[] = []
  const handler = (name: string): ExchangeHandler => ({
    onHead: () => heard.push(`${name} head`),
    onBody: () => {},
    onEnd: () => heard.push(`${name} end`),
    onError: (error) => heard.push(`${name} error: ${error.message}`),
  })
  const head = 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n'
  const silent = pool.request(head, '', handler('a'))
  const queued = pool.request(head, '', handler('b'))
  silent.cancel()
  queued.cancel(new Error('deadline'))
  pool.request(head, '', handler('c'))
  await waitUntil(() => server.requests.length === 1, "c's request on the server: in flight")
  pool.close()
  await waitUntil(() => heard.length >= 2, "c's failure")
  t.same(heard, ['b error: deadline', 'c error: the connection closed'])
  const after = await exchange(pool)
  t.match(after.error?.message, /pool is closed/)
})

t.test('fresh: a request that must not reuse a connection gets a new one, an idle one making room', async (t) => {
  const server = await rawServer(t, (req) => setTimeout(() => req.socket.write(OK), 5))
  const pool = new Http1Pool({ host: '127.0.0.1', port: server.port, maxSockets: 2 })
  t.teardown(() => pool.close())
  await Promise.all([exchange(pool), exchange(pool)])
  t.equal(server.connections(), 2, 'two connections, both idle now')
  t.match(await exchange(pool, '{}', { fresh: true }), { status: 200, error: undefined })
  t.equal(server.requests[2]?.connection, 3, 'it went on a third connection')
  t.match(await exchange(pool), { status: 200 }, 'the pool still works within its bound')
  t.equal(server.connections(), 3, 'no fourth connection: a pooled one carried it')
})
