/**
 * src/ari/ari-rest.ts against the strict fake ARI (test/support/fake-ari.ts): each method's request
 * line, 404 as undefined/false, error statuses as ERR_ARI_REQUEST with Asterisk's message, the
 * request deadline (fake clock), a refused connection, a bounded body, the metrics.
 */
import net from 'node:net'
import t, { type Test } from 'tap'
import { AriError, AriRest, ariStatusOf } from '../../src/ari/index.js'
import { MAX_BODY_BYTES } from '../../src/ari/ari-rest.js'
import { AppError } from '../../src/shared/errors.js'
import { FAKE_ARI_PASSWORD, startFakeAri, type FakeAri } from '../support/fake-ari.js'
import { FakeTimers } from '../support/fake-timers.js'
import { freePort } from '../support/free-port.js'

async function setup(t: Test, options: ConstructorParameters<typeof AriRest>[1] = {}): Promise<{ ari: FakeAri; rest: AriRest; outcomes: string[] }> {
  const ari = await startFakeAri()
  const outcomes: string[] = []
  const rest = new AriRest(ari.connection, { metrics: { requestFinished: (o) => outcomes.push(o), eventStreamConnected: () => undefined }, ...options })
  t.teardown(async () => {
    rest.close()
    await ari.close()
  })
  return { ari, rest, outcomes }
}

/** The promise's rejection, which must be an AriError. */
async function rejection(t: Test, promise: Promise<unknown>): Promise<AriError> {
  try {
    await promise
  } catch (err) {
    t.ok(err instanceof AriError, 'an AriError (an AppError)')
    t.ok(err instanceof AppError)
    return err as AriError
  }
  t.fail('expected a rejection')
  throw new Error('no rejection')
}

t.test('every method sends its exact request line, with basic auth, and reads the answer', async (t) => {
  const { ari, rest, outcomes } = await setup(t)
  const channelId = '1733400000.42'
  ari.addChannel({ id: channelId, name: 'PJSIP/alice-00000001', caller: { name: 'Alice', number: '100' }, variables: { 'CALL_TAG(x)': 'a b+c/d' } })

  const channel = await rest.getChannel(channelId)
  t.match(channel, { id: channelId, name: 'PJSIP/alice-00000001', caller: { name: 'Alice', number: '100' } })
  t.match(await rest.listChannels(), [{ id: channelId }])
  t.equal(await rest.getChannelVariable(channelId, 'CALL_TAG(x)'), 'a b+c/d')
  const snoop = await rest.snoop(channelId, { spy: 'in', app: 'audiosocket-soniox', snoopId: 'snoop-1', appArgs: 'tap,in' })
  t.equal(snoop.id, 'snoop-1')
  const media = await rest.externalMedia({ channelId: 'media-1', app: 'audiosocket-soniox', externalHost: '127.0.0.1:9092', format: 'slin16', data: '40325ec2-5efd-4bd3-805f-53576e581d13' })
  t.equal(media.id, 'media-1')
  const bridge = await rest.createBridge({ bridgeId: 'bridge-1', type: 'mixing', name: 'tap 1' })
  t.match(bridge, { id: 'bridge-1', channels: [] })
  t.equal(await rest.addChannels('bridge-1', ['snoop-1', 'media-1']), undefined)
  t.match(await rest.listBridges(), [{ id: 'bridge-1', channels: ['snoop-1', 'media-1'] }])
  t.equal(await rest.hangup('media-1'), true)
  t.equal(await rest.destroyBridge('bridge-1'), true)
  t.match(await rest.asteriskInfo(), { system: { version: '22.10.1' } })

  t.same(
    ari.requests.map((r) => `${r.method} ${r.rawUrl}`),
    [
      'GET /ari/channels/1733400000.42',
      'GET /ari/channels',
      'GET /ari/channels/1733400000.42/variable?variable=CALL_TAG(x)',
      'POST /ari/channels/1733400000.42/snoop?spy=in&app=audiosocket-soniox&snoopId=snoop-1&appArgs=tap%2Cin',
      'POST /ari/channels/externalMedia?app=audiosocket-soniox&channelId=media-1&external_host=127.0.0.1%3A9092&encapsulation=audiosocket&transport=tcp&format=slin16&data=40325ec2-5efd-4bd3-805f-53576e581d13',
      'POST /ari/bridges?type=mixing&bridgeId=bridge-1&name=tap%201',
      'POST /ari/bridges/bridge-1/addChannel?channel=snoop-1%2Cmedia-1',
      'GET /ari/bridges',
      'DELETE /ari/channels/media-1',
      'DELETE /ari/bridges/bridge-1',
      'GET /ari/asterisk/info',
    ],
  )
  t.same(ari.violations, [], 'nothing a real Asterisk would refuse')
  const auth = `Basic ${Buffer.from(`ari-user:${FAKE_ARI_PASSWORD}`).toString('base64')}`
  t.ok(ari.requests.every((r) => r.headers.authorization === auth), 'every request carries basic auth')
  t.ok(ari.requests.every((r) => !r.rawUrl.includes('api_key')), 'never api_key in the URL')
  t.equal(outcomes.length, 11)
  t.ok(outcomes.every((o) => o === 'ok'))
})

t.test('ids and values holding / ; @ + and spaces travel escaped and arrive whole', async (t) => {
  const { ari, rest } = await setup(t)
  const id = 'weird/id;1@ctx+x y'
  ari.addChannel({ id, variables: { 'A+B': 'x' } })
  t.match(await rest.getChannel(id), { id })
  t.equal(await rest.getChannelVariable(id, 'A+B'), 'x')
  await rest.snoop(id, { spy: 'both', app: 'app.with-dots_1', snoopId: 'snoop/;@+ 2' })
  t.equal(ari.requests[0]?.rawUrl, '/ari/channels/weird%2Fid%3B1%40ctx%2Bx%20y')
  t.same(ari.requests[0]?.segments, ['channels', id], 'one path segment, decoded as Asterisk does')
  t.same(ari.requests[1]?.query, { variable: 'A+B' }, 'a + in a query value is not read as a space')
  t.same(ari.requests[2]?.query, { spy: 'both', app: 'app.with-dots_1', snoopId: 'snoop/;@+ 2' })
  t.ok(ari.channels.has('snoop/;@+ 2'))
  t.same(ari.violations, [])
})

t.test('a URL given with /ari (and a trailing slash, or an http.conf prefix) is the same endpoint', async (t) => {
  const ari = await startFakeAri()
  t.teardown(() => ari.close())
  for (const url of [`${ari.url}/ari`, `${ari.url}/ari/`, `${ari.url}/`]) {
    const rest = new AriRest({ ...ari.connection, url })
    await rest.listChannels()
    rest.close()
  }
  t.same(
    ari.requests.map((r) => r.rawUrl),
    ['/ari/channels', '/ari/channels', '/ari/channels'],
  )
  const prefixed = new AriRest({ ...ari.connection, url: `${ari.url}/asterisk/ari` })
  t.teardown(() => prefixed.close())
  ari.respond = () => ({ status: 200, body: [] })
  await prefixed.listChannels()
  t.equal(ari.requests.at(-1)?.rawUrl, '/asterisk/ari/channels', 'the prefix is kept')
})

t.test('a URL that is not http(s) is refused at construction with ERR_CONFIG_INVALID, its credentials masked', async (t) => {
  for (const url of ['ws://127.0.0.1:8088', 'not a url', 'http://user:s3cret-pw@']) {
    t.throws(() => new AriRest({ url, username: 'u', password: 'p' }), { code: 'ERR_CONFIG_INVALID' }, url)
  }
  try {
    new AriRest({ url: 'ftp://user:s3cret-pw@host/', username: 'u', password: 'p' })
  } catch (err) {
    t.notMatch((err as Error).message, 's3cret-pw')
  }
})

t.test('404 is undefined or false where the method says so', async (t) => {
  const { ari, rest, outcomes } = await setup(t)
  ari.addChannel({ id: 'c1' })
  t.equal(await rest.getChannel('nope'), undefined)
  t.equal(await rest.getChannelVariable('nope', 'X'), undefined, 'no such channel')
  t.equal(await rest.getChannelVariable('c1', 'UNSET'), undefined, 'no such variable')
  t.equal(await rest.hangup('nope'), false)
  t.equal(await rest.destroyBridge('nope'), false)
  t.same(outcomes, ['ok', 'ok', 'ok', 'ok', 'ok'], 'an answered 404 is a result, not an error')
  t.same(ari.violations, [])
})

t.test('an error status is ERR_ARI_REQUEST with the status and Asterisk message', async (t) => {
  const { ari, rest, outcomes } = await setup(t)
  ari.addChannel({ id: 'c1' })

  const notFound = await rejection(t, rest.snoop('nope', { spy: 'in', app: 'a', snoopId: 's' }))
  t.equal(notFound.code, 'ERR_ARI_REQUEST')
  t.equal(notFound.status, 404, 'a 404 where the method promises a result is an error')
  t.equal(notFound.ariMessage, 'Channel not found')
  t.match(notFound.message, 'ARI POST /ari/channels/nope/snoop answered 404: Channel not found')

  ari.respond = (req) => (req.method === 'POST' ? { status: 409, body: { message: 'Channel not in Stasis application' } } : undefined)
  const conflict = await rejection(t, rest.addChannels('b', ['c1']))
  t.equal(conflict.status, 409)
  t.equal(conflict.ariMessage, 'Channel not in Stasis application')
  t.equal(ariStatusOf(conflict), 409)

  ari.respond = () => ({ status: 500, body: '<html>Internal Server Error</html>' })
  const server = await rejection(t, rest.listChannels())
  t.equal(server.code, 'ERR_ARI_REQUEST')
  t.equal(server.status, 500)
  t.equal(server.ariMessage, undefined, 'no JSON message')
  t.match(server.message, 'answered 500: <html>Internal Server Error</html>', 'an excerpt of the body instead')

  ari.respond = () => ({ status: 503 })
  t.match((await rejection(t, rest.hangup('c1'))).message, 'answered 503: (no body)')
  t.same(outcomes, ['error', 'error', 'error', 'error'])
})

t.test('a wrong password is ERR_ARI_REQUEST 401 with what to fix; the password is never in the message', async (t) => {
  const ari = await startFakeAri()
  t.teardown(() => ari.close())
  const rest = new AriRest({ ...ari.connection, password: 'wrong-password-123' })
  t.teardown(() => rest.close())
  const err = await rejection(t, rest.asteriskInfo())
  t.equal(err.code, 'ERR_ARI_REQUEST')
  t.equal(err.status, 401)
  t.match(err.message, 'ARI refused the username/password: check ARI_USERNAME/ARI_PASSWORD and ari.conf')
  t.notMatch(err.message, 'wrong-password-123')
})

t.test('a 2xx answer that is not the JSON expected is ERR_ARI_BAD_RESPONSE', async (t) => {
  const { ari, rest } = await setup(t)
  ari.respond = () => ({ status: 200, body: 'not json' })
  t.equal((await rejection(t, rest.listChannels())).code, 'ERR_ARI_BAD_RESPONSE')
  ari.respond = () => ({ status: 200, body: { not: 'a list' } })
  const shape = await rejection(t, rest.listChannels())
  t.equal(shape.code, 'ERR_ARI_BAD_RESPONSE')
  t.match(shape.message, 'not a list of channels')
  ari.respond = () => ({ status: 200, body: [{ name: 'no id' }] })
  t.equal((await rejection(t, rest.listChannels())).code, 'ERR_ARI_BAD_RESPONSE')
})

t.test('an answer larger than the bound is refused, not buffered', async (t) => {
  const { ari, rest } = await setup(t)
  ari.respond = () => ({ status: 200, body: `[${'"x",'.repeat(MAX_BODY_BYTES / 4)}"x"]` })
  const err = await rejection(t, rest.listChannels())
  t.equal(err.code, 'ERR_ARI_BAD_RESPONSE')
  t.match(err.message, `larger than ${MAX_BODY_BYTES} bytes`)
})

t.test('no answer within the deadline is ERR_ARI_UNREACHABLE (fake clock: no waiting)', async (t) => {
  const clock = new FakeTimers()
  const { ari, rest, outcomes } = await setup(t, { clock, requestTimeoutMs: 5000 })
  ari.respond = () => 'hang'
  const pending = rest.getChannel('c1')
  const settled = pending.catch((err: unknown) => err)
  await ari.waitForRequests(1)
  clock.advance(4999)
  clock.advance(1)
  const err = (await settled) as AriError
  t.ok(err instanceof AriError)
  t.equal(err.code, 'ERR_ARI_UNREACHABLE')
  t.match(err.message, 'no answer from http://127.0.0.1:')
  t.match(err.message, 'within 5000 ms')
  t.same(outcomes, ['error'])
  t.equal(clock.pending, 0, 'no timer left behind')

  ari.respond = undefined
  t.same(await rest.listChannels(), [], 'the client goes on after a timeout')
  t.equal(clock.pending, 0, 'the deadline of an answered request is cleared')
})

t.test('a refused connection is ERR_ARI_UNREACHABLE with the cause', async (t) => {
  const port = await freePort()
  const rest = new AriRest({ url: `http://127.0.0.1:${port}`, username: 'u', password: 'p' })
  t.teardown(() => rest.close())
  const err = await rejection(t, rest.listChannels())
  t.equal(err.code, 'ERR_ARI_UNREACHABLE')
  t.match(err.message, `http://127.0.0.1:${port}/ari is unreachable: `)
  t.match((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED')
})

t.test('a connection reset before the answer is ERR_ARI_UNREACHABLE', async (t) => {
  const { ari, rest } = await setup(t)
  ari.respond = () => 'destroy'
  const err = await rejection(t, rest.listChannels())
  t.equal(err.code, 'ERR_ARI_UNREACHABLE')
})

t.test('a keep-alive connection Asterisk closed between requests: the request goes out once more, on a new one', async (t) => {
  // Each connection answers its first request and resets on the second: what a request meets
  // when it is written to a pooled socket the server has just dropped.
  let connections = 0
  const server = net.createServer((socket) => {
    connections++
    let served = 0
    socket.on('data', () => {
      if (served++ === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]')
      else socket.resetAndDestroy()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as net.AddressInfo
  const rest = new AriRest({ url: `http://127.0.0.1:${port}`, username: 'u', password: 'p' })
  t.teardown(() => rest.close())
  t.same(await rest.listChannels(), [])
  t.same(await rest.listChannels(), [], 'the second request succeeds')
  t.equal(connections, 2, 'after a reset on the reused connection, on a new one')
  // Only once: a new connection that resets too is a failure.
  const flaky = net.createServer((socket) => socket.on('data', () => socket.resetAndDestroy()))
  await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => flaky.close(() => resolve())))
  const once = new AriRest({ url: `http://127.0.0.1:${(flaky.address() as net.AddressInfo).port}`, username: 'u', password: 'p' })
  t.teardown(() => once.close())
  t.equal((await rejection(t, once.listChannels())).code, 'ERR_ARI_UNREACHABLE', 'a fresh connection is not retried')
})

t.test('close() destroys the pooled sockets; requests after it fail at once', async (t) => {
  const { ari, rest } = await setup(t)
  await rest.listChannels()
  rest.close()
  rest.close()
  const err = await rejection(t, rest.listChannels())
  t.equal(err.code, 'ERR_ARI_UNREACHABLE')
  t.match(err.message, 'closed')
  t.equal(ari.requests.length, 1)
})
