/**
 * src/ari/ari-events.ts against the fake ARI's events socket: the upgrade (URL, basic auth), events
 * in order, malformed messages and a throwing handler skipped, reconnection with backoff (fake
 * clock: the test moves time, nothing sleeps), 401 named and retried, the half-open ping, close().
 */
import t, { type Test } from 'tap'
import { AriEventStream, type AriEvent, type AriEventStreamOptions } from '../../src/ari/index.js'
import { MAX_EVENT_BYTES } from '../../src/ari/ari-events.js'
import { AppError } from '../../src/shared/errors.js'
import { createLogger } from '../../src/shared/logger.js'
import { FAKE_ARI_PASSWORD, startFakeAri, type FakeAri, type FakeAriOptions } from '../support/fake-ari.js'
import { FakeTimers } from '../support/fake-timers.js'
import { waitUntil } from '../support/wait.js'

interface Rig {
  ari: FakeAri
  stream: AriEventStream
  clock: FakeTimers
  events: AriEvent[]
  errors: AppError[]
  connects: number
  /** eventStreamConnected calls, in order. */
  gauge: boolean[]
  logs: Array<Record<string, unknown>>
  until(predicate: () => boolean, what: string): Promise<void>
  /** Milliseconds until the earliest pending timer (the backoff while waiting). */
  nextDelay(): number | undefined
}

async function rig(t: Test, options: Partial<AriEventStreamOptions> = {}, fakeOptions: FakeAriOptions = {}): Promise<Rig> {
  const ari = await startFakeAri(fakeOptions)
  const clock = new FakeTimers()
  const logs: Array<Record<string, unknown>> = []
  const destination = { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }
  const r: Rig = {
    ari,
    clock,
    events: [],
    errors: [],
    connects: 0,
    gauge: [],
    logs,
    stream: undefined as unknown as AriEventStream,
    until: (predicate, what) => waitUntil(predicate, what, 5000),
    nextDelay: () => (clock.nextDue === undefined ? undefined : clock.nextDue - clock.now()),
  }
  r.stream = new AriEventStream({
    ...ari.connection,
    app: 'audiosocket-soniox',
    logger: createLogger({ level: 'debug', destination }),
    clock,
    random: () => 0, // no jitter: delays are exactly 500, 1000, 2000...
    pingIntervalMs: 0,
    onEvent: (event) => void r.events.push(event),
    onConnected: () => void r.connects++,
    onDisconnected: (error) => void r.errors.push(error),
    metrics: { requestFinished: () => undefined, eventStreamConnected: (connected) => void r.gauge.push(connected) },
    ...options,
  })
  t.teardown(async () => {
    await r.stream.close()
    await ari.close()
  })
  return r
}

t.test('connects with basic auth to /ari/events?app=APP&subscribeAll=true and delivers events in order', async (t) => {
  const r = await rig(t)
  t.equal(r.stream.state, 'idle')
  r.stream.start()
  t.equal(r.stream.state, 'connecting')
  await r.stream.connected()
  t.equal(r.stream.state, 'connected')
  await r.stream.connected() // at once when connected
  t.equal(r.connects, 1)
  t.same(r.gauge, [true])
  const upgrade = r.ari.upgrades[0]
  t.same(upgrade?.query, { app: 'audiosocket-soniox', subscribeAll: 'true' })
  t.equal(upgrade?.headers.authorization, `Basic ${Buffer.from(`ari-user:${FAKE_ARI_PASSWORD}`).toString('base64')}`)
  t.same(r.ari.violations, [])

  await r.ari.waitForUpgrades(1)
  r.ari.push({ type: 'StasisStart', application: 'audiosocket-soniox', channel: { id: 'c1', name: 'Snoop/x' }, args: ['tap'] })
  r.ari.push({ type: 'ChannelDtmfReceived', channel: { id: 'c1' }, digit: '5', duration_ms: 120 })
  r.ari.push({ type: 'ChannelDestroyed', channel: { id: 'c1' }, cause: 16, cause_txt: 'Normal Clearing' })
  await r.until(() => r.events.length === 3, 'three events')
  t.same(
    r.events.map((e) => e.type),
    ['StasisStart', 'ChannelDtmfReceived', 'ChannelDestroyed'],
  )
  t.equal(r.events[1]?.digit, '5')
  t.same(r.events[0]?.args, ['tap'])
  t.notMatch(JSON.stringify(r.logs), FAKE_ARI_PASSWORD, 'the password is never logged')
})

t.test('malformed messages are skipped and logged (throttled); a throwing handler does not stop the stream', async (t) => {
  const r = await rig(t, {
    onEvent: (event) => {
      if (event.type === 'Boom') throw new Error('handler bug')
      r.events.push(event)
    },
  })
  r.stream.start()
  await r.stream.connected()
  await r.ari.waitForUpgrades(1)
  r.ari.push('not json')
  r.ari.push({ no: 'type' })
  r.ari.push([1, 2])
  r.ari.push(Buffer.from([0, 1, 2])) // binary
  r.ari.push({ type: 'Boom' })
  r.ari.push({ type: 'ChannelVarset', variable: 'X', value: '1' })
  await r.until(() => r.events.length === 1, 'the valid event after the bad ones')
  t.equal(r.events[0]?.type, 'ChannelVarset')
  const malformed = r.logs.filter((l) => l.msg === 'ARI events: malformed message skipped')
  t.equal(malformed.length, 1, 'four malformed messages, one log line within the interval')
  t.equal(malformed[0]?.level, 40)
  t.match(malformed[0]?.err, { code: 'ERR_ARI_EVENTS' })
  const thrown = r.logs.filter((l) => l.msg === 'ARI events: the event handler threw; the event is skipped, the stream goes on')
  t.equal(thrown.length, 1)
  t.match(thrown[0], { level: 50, type: 'Boom', err: { message: 'handler bug' } })

  r.clock.advance(10_000)
  r.ari.push('still not json')
  r.ari.push({ type: 'StasisEnd' })
  await r.until(() => r.events.length === 2, 'the next event')
  const later = r.logs.filter((l) => l.msg === 'ARI events: malformed message skipped')
  t.equal(later.length, 2)
  t.equal(later[1]?.suppressed, 3, 'the next line says how many were held back')
  t.equal(r.stream.state, 'connected')
  t.same(r.errors, [], 'no disconnection')
})

t.test('a dropped socket is reconnected after the backoff; the backoff grows while attempts fail and starts over after a stable connection', async (t) => {
  const r = await rig(t)
  r.stream.start()
  await r.stream.connected()

  r.ari.dropSockets()
  await r.until(() => r.errors.length === 1, 'the loss reported')
  t.equal(r.stream.state, 'waiting')
  t.equal(r.errors[0]?.code, 'ERR_ARI_EVENTS')
  t.match(r.errors[0]?.message, 'was closed (code 1001: going away)')
  t.same(r.gauge, [true, false])
  t.equal(r.nextDelay(), 500, 'first delay: backoff.initialMs')
  t.match(
    r.logs.find((l) => l.msg === 'ARI events socket lost; reconnecting'),
    { level: 40, attempt: 1, delayMs: 500, err: { code: 'ERR_ARI_EVENTS' } },
  )

  r.ari.refuseUpgradesWith = 503
  r.clock.advance(500)
  t.equal(r.stream.state, 'connecting')
  await r.until(() => r.errors.length === 2, 'the refused attempt reported')
  t.match(r.errors[1]?.message, 'answered HTTP 503')
  t.equal(r.nextDelay(), 1000, 'doubles')
  r.clock.advance(1000)
  await r.until(() => r.errors.length === 3, 'the second refused attempt')
  t.equal(r.nextDelay(), 2000)

  r.ari.refuseUpgradesWith = undefined
  r.clock.advance(2000)
  await r.stream.connected()
  t.equal(r.connects, 2)
  t.equal(r.ari.upgrades.filter((u) => u.status === 101).length, 2)

  // Lost at once: not stable, so the backoff goes on growing.
  r.ari.dropSockets('destroy')
  await r.until(() => r.errors.length === 4, 'the second loss')
  t.equal(r.nextDelay(), 4000, 'a connection dropped at once does not reset the backoff')
  r.clock.advance(4000)
  await r.stream.connected()

  // Up for stableMs (10 s), then lost: the backoff starts over.
  r.clock.advance(10_000)
  r.ari.dropSockets()
  await r.until(() => r.errors.length === 5, 'the third loss')
  t.equal(r.nextDelay(), 500, 'reset after a stable connection')
  t.same(r.gauge, [true, false, true, false, true, false])
  t.same(r.ari.violations, [])
})

t.test('a 401 on the upgrade says what to fix and is retried with backoff', async (t) => {
  const r = await rig(t, { password: 'not-the-password' })
  r.stream.start()
  await r.until(() => r.errors.length === 1, 'the refusal reported')
  t.equal(r.errors[0]?.code, 'ERR_ARI_EVENTS')
  t.equal(r.errors[0]?.message, 'the ARI events upgrade was answered 401: ARI refused the username/password: check ARI_USERNAME/ARI_PASSWORD and ari.conf')
  t.equal(r.stream.state, 'waiting')
  t.equal(r.ari.upgrades[0]?.status, 401)
  r.clock.advance(r.nextDelay() ?? 0)
  await r.until(() => r.errors.length === 2, 'the retry refused too')
  t.equal(r.ari.upgrades.length, 2, 'retried: the admin may be fixing ari.conf')
  t.equal(r.connects, 0)
  t.same(r.gauge, [], 'never connected, never counted')
  t.match(r.logs.find((l) => l.msg === 'ARI events socket could not connect; retrying'), { level: 40, err: { message: /ARI_USERNAME\/ARI_PASSWORD/ } })
  t.notMatch(JSON.stringify(r.logs), 'not-the-password', 'the password is never logged')
})

t.test('a message larger than the bound ends that connection, which is reopened', async (t) => {
  const r = await rig(t)
  r.stream.start()
  await r.stream.connected()
  await r.ari.waitForUpgrades(1)
  r.ari.push(JSON.stringify({ type: 'Huge', pad: 'x'.repeat(MAX_EVENT_BYTES) }))
  await r.until(() => r.errors.length === 1, 'the connection ended')
  t.match(r.errors[0]?.message, /Max payload size exceeded/)
  t.same(r.events, [])
  r.clock.advance(r.nextDelay() ?? 0)
  await r.stream.connected()
  t.equal(r.connects, 2)
})

t.test('a ping left unanswered ends a half-open connection', async (t) => {
  const r = await rig(t, { pingIntervalMs: 1000 }, { autoPong: false })
  r.stream.start()
  await r.stream.connected()
  r.clock.advance(1000)
  await r.until(() => r.ari.stats.pings === 1, 'a ping')
  t.equal(r.stream.state, 'connected')
  r.clock.advance(1000)
  t.equal(r.stream.state, 'waiting', 'no pong within the interval: the connection is given up')
  t.equal(r.errors.length, 1)
  t.match(r.errors[0]?.message, 'did not answer a ping within 1000 ms')
  r.clock.advance(r.nextDelay() ?? 0)
  await r.stream.connected()
  t.equal(r.connects, 2)
})

t.test('close(): no reconnection, no callback, idempotent; connected() rejects after it', async (t) => {
  const r = await rig(t)
  r.stream.start()
  await r.stream.connected()
  await r.ari.waitForUpgrades(1)
  const closing = r.stream.close()
  t.equal(r.stream.close(), closing, 'the same promise')
  t.equal(r.stream.state, 'closed')
  await closing
  await r.until(() => r.ari.sockets.size === 0, 'the server sees the socket closed')
  t.equal(r.clock.pending, 0, 'no timer left')
  t.same(r.errors, [], 'a close asked for is not a disconnection')
  t.same(r.gauge, [true, false])
  r.stream.start()
  t.equal(r.stream.state, 'closed', 'start() after close() does nothing')
  await t.rejects(r.stream.connected(), { code: 'ERR_ARI_EVENTS' })
})

t.test('close() while waiting cancels the retry; while connecting, drops the attempt', async (t) => {
  const waiting = await rig(t)
  waiting.ari.refuseUpgradesWith = 503
  waiting.stream.start()
  const pending = waiting.stream.connected()
  await waiting.until(() => waiting.errors.length === 1, 'a refused attempt')
  t.equal(waiting.stream.state, 'waiting')
  await waiting.stream.close()
  await t.rejects(pending, { code: 'ERR_ARI_EVENTS' }, 'a waiter is not left hanging')
  t.equal(waiting.clock.pending, 0, 'the retry is cancelled')
  waiting.clock.advance(60_000)
  t.equal(waiting.ari.upgrades.length, 1, 'and never made')

  const connecting = await rig(t)
  connecting.stream.start()
  t.equal(connecting.stream.state, 'connecting')
  await connecting.stream.close()
  t.equal(connecting.stream.state, 'closed')
  t.same(connecting.errors, [])
  t.equal(connecting.connects, 0)
  t.equal(connecting.clock.pending, 0)
})

t.test('an https ARI URL is a wss:// events socket', async (t) => {
  // Nothing listens: only the URL the attempt used is checked, through the error.
  const r = await rig(t, { url: 'https://127.0.0.1:1/asterisk/ari/' })
  r.stream.start()
  await r.until(() => r.errors.length === 1, 'the failed attempt')
  t.match(r.errors[0]?.message, 'could not be opened at https://127.0.0.1:1/asterisk/ari')
  await r.stream.close()
})
