import { pino } from 'pino'
import t from 'tap'
import type { EventEnvelope, EventType } from '../../src/webhook/envelope.js'
import { HttpWebhookSink, parseRetryAfter, type HttpWebhookSinkOptions } from '../../src/webhook/http-sink.js'
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js'

/** The part of a tap test the helpers need: resources are released when the test ends. */
interface HasTeardown {
  teardown(fn: () => unknown): void
}

// pino's numeric levels, as they appear in each JSON line.
const DEBUG = 20
const INFO = 30
const WARN = 40
const ERROR = 50

/** A pino logger writing parsed records into an array, so tests can assert on what was logged. */
function captureLogs() {
  const records: any[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  return {
    logger,
    records,
    // debug lines are allowed per attempt; the assertions below are about warn and above.
    at: (level: number) => records.filter((r) => r.level === level),
  }
}

/** Timers that remember what they were asked for and which are still pending. */
function trackedTimers() {
  const live = new Set<NodeJS.Timeout>()
  const requested: number[] = []
  return {
    live,
    requested,
    setTimer: (callback: () => void, ms: number): unknown => {
      requested.push(ms)
      const handle = setTimeout(() => {
        live.delete(handle)
        callback()
      }, ms)
      live.add(handle)
      return handle
    },
    clearTimer: (handle: unknown): void => {
      live.delete(handle as NodeJS.Timeout)
      clearTimeout(handle as NodeJS.Timeout)
    },
  }
}

function event(callId: string, seq: number, type: EventType = 'transcript.final'): EventEnvelope {
  return { id: `${callId}-${seq}`, type, call_id: callId, seq, time: new Date().toISOString(), data: { index: seq } }
}

async function receiver(t: HasTeardown, options?: Parameters<typeof startWebhookReceiver>[0]): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(options)
  t.teardown(() => r.close())
  return r
}

/** A sink with test-sized limits: millisecond backoff and no jitter, so retries are fast and exact. */
function sink(t: HasTeardown, options: Partial<HttpWebhookSinkOptions> & { url: string; logger: HttpWebhookSinkOptions['logger'] }) {
  const s = new HttpWebhookSink({
    timeoutMs: 2000,
    maxAttempts: 5,
    backoff: { initialMs: 1, maxMs: 5, jitter: 0 },
    ...options,
  })
  // Whatever a test leaves behind must not keep the test process alive.
  t.teardown(() => s.close(100))
  return s
}

/** A URL nothing listens on: a receiver that was started and closed again. */
async function deadUrl(): Promise<string> {
  const r = await startWebhookReceiver()
  await r.close()
  return r.url
}

t.test('posts each event as one JSON request with the contract headers', async (t) => {
  const logs = captureLogs()
  const r = await receiver(t)
  const s = sink(t, { url: r.url, logger: logs.logger, version: '1.2.3', headers: { Authorization: 'Bearer abc' } })
  const e = event('c1', 0, 'call.started')
  s.publish(e)
  await s.close(2000)

  const [req] = r.requests
  t.equal(r.requests.length, 1)
  t.equal(req?.method, 'POST')
  t.equal(req?.url, '/hooks/events', 'the path of the configured URL is kept')
  t.equal(req?.headers['content-type'], 'application/json')
  t.equal(req?.headers['user-agent'], 'audiosocket-soniox/1.2.3')
  t.equal(req?.headers.authorization, 'Bearer abc', 'extra headers are sent')
  t.equal(req?.rawBody, JSON.stringify(e))
  // Without a secret nothing pretends to be signed.
  t.equal(req?.headers['webhook-signature'], undefined)
  t.same(s.stats(), { delivered: 1, retried: 0, failed: 0, pending: 0 })
  t.same(logs.records.filter((l) => l.level >= WARN), [], 'a clean delivery logs nothing above info')
})

t.test('delivers each call in seq order, one request at a time, calls in parallel', async (t) => {
  const calls = ['a', 'b', 'c', 'd']
  const perCall = 15
  let maxConcurrent = 0
  let maxConcurrentSameCall = 0
  const r = await receiver(t, {
    respond: (req) => {
      // Requests not yet answered at the moment this one arrives (this one included).
      const open = r.requests.filter((x) => x.status === undefined)
      maxConcurrent = Math.max(maxConcurrent, open.length)
      maxConcurrentSameCall = Math.max(
        maxConcurrentSameCall,
        open.filter((x) => x.body.call_id === req.body.call_id).length,
      )
      // Uneven answer times shuffle the arrival order across calls, never within one.
      return { status: 200, delayMs: 2 + ((req.body.seq * 7 + req.body.call_id.charCodeAt(0)) % 6) }
    },
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger })

  // Interleaved like real calls: a-0, b-0, c-0, d-0, a-1, ...
  for (let seq = 0; seq < perCall; seq++) for (const call of calls) s.publish(event(call, seq))
  await r.waitFor((events) => events.length === calls.length * perCall)

  for (const call of calls) {
    t.same(
      r.eventsFor(call).map((e) => e.seq),
      Array.from({ length: perCall }, (_, i) => i),
      `call ${call} arrives in seq order`,
    )
  }
  t.equal(maxConcurrentSameCall, 1, 'never two requests of one call in flight')
  t.ok(maxConcurrent > 1, `different calls overlap (max ${maxConcurrent} in flight)`)
  await s.close(2000)
  t.same(s.stats(), { delivered: 60, retried: 0, failed: 0, pending: 0 })
})

t.test('a slow call does not hold up another call', async (t) => {
  const r = await receiver(t, {
    respond: (req) => (req.body.call_id === 'slow' && req.body.seq === 0 ? { status: 204, delayMs: 400 } : undefined),
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger })
  s.publish(event('slow', 0))
  s.publish(event('slow', 1))
  for (let seq = 0; seq < 10; seq++) s.publish(event('fast', seq))

  await r.waitFor((events) => events.filter((e) => e.call_id === 'fast').length === 10)
  t.same(r.eventsFor('slow'), [], 'the fast call finished while the slow one waited')
  t.equal(
    r.requests.filter((x) => x.body.call_id === 'slow').length,
    1,
    'the slow call has not sent seq 1 before seq 0 was answered',
  )

  await r.waitFor((events) => events.filter((e) => e.call_id === 'slow').length === 2)
  t.same(
    r.eventsFor('slow').map((e) => e.seq),
    [0, 1],
  )
})

t.test('500 then 200: retried, delivered once, same id, fresh signature timestamp', async (t) => {
  const secret = 'whsec_' + Buffer.from('retry-test-secret-32-bytes-long!').toString('base64')
  // Each reading of the clock is one second later, so two attempts must carry different timestamps.
  let nowMs = Date.now()
  const clock = { now: () => (nowMs += 1000) }
  const logs = captureLogs()
  const r = await receiver(t, { secret, respond: (_req, attempt) => (attempt === 1 ? { status: 500 } : undefined) })
  const s = sink(t, { url: r.url, secret, clock, logger: logs.logger })
  const e = event('c1', 0)
  s.publish(e)
  await s.close(2000)

  const [first, second] = r.requests
  t.equal(r.requests.length, 2)
  t.same(
    r.requests.map((x) => x.status),
    [500, 204],
  )
  t.same(r.events, [e], 'accepted exactly once')
  t.equal(first?.headers['webhook-id'], e.id)
  t.equal(second?.headers['webhook-id'], e.id, 'the id is stable across attempts, so receivers can deduplicate')
  t.equal(first?.rawBody, second?.rawBody, 'the same bytes are sent every attempt')
  t.ok(
    Number(second?.headers['webhook-timestamp']) > Number(first?.headers['webhook-timestamp']),
    'the timestamp is refreshed per attempt',
  )
  t.same(
    r.requests.map((x) => x.signatureValid),
    [true, true],
    'each attempt is signed over its own timestamp',
  )
  t.same(s.stats(), { delivered: 1, retried: 1, failed: 0, pending: 0 })

  const warns = logs.at(WARN)
  t.equal(warns.length, 1, 'the first failure is logged once')
  t.match(warns[0], { eventId: e.id, callId: 'c1', seq: 0, attempt: 1, status: 500, err: { code: 'ERR_WEBHOOK_STATUS' } })
  const infos = logs.at(INFO)
  t.equal(infos.length, 1, 'the recovery is logged once')
  t.match(infos[0], { eventId: e.id, attempts: 2, status: 204 })
  t.equal(logs.at(ERROR).length, 0)
})

t.test('Retry-After on 429 and 503 is honoured, capped at the backoff maximum', async (t) => {
  for (const status of [429, 503]) {
    await t.test(`${status}: a long Retry-After is cut to maxMs`, async (t) => {
      const timers = trackedTimers()
      const logs = captureLogs()
      const r = await receiver(t, {
        respond: (_req, attempt) => (attempt === 1 ? { status, headers: { 'retry-after': '1' } } : undefined),
      })
      // Without Retry-After this backoff would wait 1 ms; with it uncapped, 1000 ms.
      const s = sink(t, { url: r.url, logger: logs.logger, backoff: { initialMs: 1, maxMs: 150, jitter: 0 }, ...timers })
      s.publish(event('c1', 0))
      await s.close(3000)

      const [first, second] = r.requests
      const gap = (second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)
      t.ok(timers.requested.includes(150), 'waited exactly the capped delay')
      t.ok(gap >= 145 && gap < 1000, `the retry came after the cap, not the backoff or the full hour (${gap} ms)`)
      t.match(logs.at(WARN)[0], { status, delayMs: 150 })
      t.equal(r.events.length, 1)
    })

    await t.test(`${status}: a short Retry-After overrides a long backoff`, async (t) => {
      const r = await receiver(t, {
        respond: (_req, attempt) => (attempt === 1 ? { status, headers: { 'retry-after': '0' } } : undefined),
      })
      // The backoff alone would wait 30 s and fail the waitFor below.
      const s = sink(t, { url: r.url, logger: captureLogs().logger, backoff: { initialMs: 30_000, maxMs: 60_000 } })
      s.publish(event('c1', 0))
      await r.waitFor((events) => events.length === 1, 3000)
      t.equal(r.requests.length, 2)
    })
  }
})

t.test('parseRetryAfter reads delay-seconds and HTTP dates', async (t) => {
  const now = Date.parse('2026-11-20T22:00:00Z')
  t.equal(parseRetryAfter('120', now), 120_000)
  t.equal(parseRetryAfter(' 0 ', now), 0)
  t.equal(parseRetryAfter('Fri, 20 Nov 2026 22:00:30 GMT', now), 30_000)
  t.equal(parseRetryAfter('Fri, 20 Nov 2026 21:00:00 GMT', now), 0, 'a date in the past means now')
  t.equal(parseRetryAfter('soon', now), undefined)
  t.equal(parseRetryAfter('-5', now), undefined)
  t.equal(parseRetryAfter(undefined, now), undefined)
})

t.test('408 and 5xx are retried; 3xx and other 4xx are final', async (t) => {
  for (const [status, retried] of [
    [408, true],
    [502, true],
    [301, false],
    [404, false],
    [422, false],
  ] as const) {
    const r = await receiver(t, { respond: (_req, attempt) => (attempt === 1 ? { status } : undefined) })
    const s = sink(t, { url: r.url, logger: captureLogs().logger })
    s.publish(event('c1', 0))
    await s.close(2000)
    t.equal(r.requests.length, retried ? 2 : 1, `${status} ${retried ? 'is' : 'is not'} retried`)
    t.equal(s.stats().failed, retried ? 0 : 1)
  }
})

t.test('400 is not retried, is logged once, and the call moves on', async (t) => {
  const logs = captureLogs()
  const r = await receiver(t, { respond: (req) => (req.body.seq === 0 ? { status: 400 } : undefined) })
  const s = sink(t, { url: r.url, logger: logs.logger })
  s.publish(event('c1', 0, 'call.started'))
  s.publish(event('c1', 1))
  await s.close(2000)

  t.same(
    r.requests.map((x) => [x.body.seq, x.status]),
    [
      [0, 400],
      [1, 204],
    ],
    'one attempt for the rejected event, then the next event of the call',
  )
  const errors = logs.at(ERROR)
  t.equal(errors.length, 1)
  t.match(errors[0], {
    eventId: 'c1-0',
    callId: 'c1',
    seq: 0,
    type: 'call.started',
    attempts: 1,
    status: 400,
    err: { code: 'ERR_WEBHOOK_GAVE_UP' },
  })
  t.equal(logs.at(WARN).length, 0, 'no "retrying" warning when no retry follows')
  t.same(s.stats(), { delivered: 1, retried: 0, failed: 1, pending: 0 })
})

t.test('a receiver that never answers: the request times out and is retried', async (t) => {
  const logs = captureLogs()
  const r = await receiver(t, {
    respond: (_req, attempt) => (attempt === 1 ? { status: 204, delayMs: Infinity } : undefined),
  })
  const s = sink(t, { url: r.url, logger: logs.logger, timeoutMs: 150 })
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  await s.close(2000)

  t.equal(r.requests.length, 2)
  t.equal(r.requests[0]?.status, undefined, 'the first attempt was never answered')
  t.match(logs.at(WARN), [{ eventId: 'c1-0', attempt: 1, err: { code: 'ERR_WEBHOOK_TIMEOUT' } }])
  t.same(s.stats(), { delivered: 1, retried: 1, failed: 0, pending: 0 })
})

t.test('network errors are retried, then given up after maxAttempts with one error line', async (t) => {
  const logs = captureLogs()
  const s = sink(t, { url: await deadUrl(), logger: logs.logger, maxAttempts: 3 })
  s.publish(event('c1', 0, 'call.ended'))
  await s.close(5000)

  const errors = logs.at(ERROR)
  t.equal(errors.length, 1, 'exactly one error line for the event')
  t.match(errors[0], {
    msg: 'webhook event given up',
    eventId: 'c1-0',
    callId: 'c1',
    seq: 0,
    type: 'call.ended',
    attempts: 3,
    err: { code: 'ERR_WEBHOOK_GAVE_UP', message: /ECONNREFUSED/ },
  })
  t.notOk('status' in (errors[0] ?? {}), 'no status: no response ever arrived')
  t.match(logs.at(WARN), [{ attempt: 1, err: { code: 'ERR_WEBHOOK_NETWORK' } }])
  // The second failure is a retry, not a state change: debug only.
  t.equal(logs.at(DEBUG).filter((l) => l.eventId === 'c1-0').length, 1)
  t.same(s.stats(), { delivered: 0, retried: 2, failed: 1, pending: 0 })
})

t.test('a connection dropped mid-request fails that attempt only', async (t) => {
  // Unlike a refused connection this reaches the receiver, so every attempt can be counted.
  const r = await receiver(t, { respond: () => ({ status: 204, destroy: true }) })
  const s = sink(t, { url: r.url, logger: captureLogs().logger, maxAttempts: 3 })
  s.publish(event('c1', 0))
  s.publish(event('c1', 1))
  await s.close(5000)

  t.same(
    r.requests.map((x) => x.body.seq),
    [0, 0, 0, 1, 1, 1],
    'maxAttempts attempts per event, in order',
  )
  t.same(s.stats(), { delivered: 0, retried: 4, failed: 2, pending: 0 })
})

t.test('close() delivers everything queued before resolving', async (t) => {
  const logs = captureLogs()
  const timers = trackedTimers()
  const r = await receiver(t, { respond: () => ({ status: 200, delayMs: 10 }) })
  const s = sink(t, { url: r.url, logger: logs.logger, ...timers })
  for (let seq = 0; seq < 5; seq++) for (const call of ['a', 'b', 'c']) s.publish(event(call, seq))
  t.equal(s.stats().pending, 15)

  await s.close(5000)
  // No waitFor here: close() itself must have waited for the last answer.
  t.equal(r.events.length, 15)
  t.same(s.stats(), { delivered: 15, retried: 0, failed: 0, pending: 0 })
  // Request deadlines end with their responses and the close deadline with close(): nothing lingers.
  t.equal(timers.live.size, 0)

  // After close the sink refuses quietly: counted and logged, never thrown, never sent.
  s.publish(event('a', 5))
  t.equal(s.stats().failed, 1)
  t.match(logs.at(ERROR), [{ eventId: 'a-5', msg: /after the sink closed/ }])
  t.equal(r.requests.length, 15)
  t.equal(await s.close(10), undefined, 'close is idempotent')
})

t.test('close() keeps accepting events published while it waits', async (t) => {
  // Shutdown order: the server ends calls and their call.ended events arrive after close() began.
  const r = await receiver(t, { respond: () => ({ status: 204, delayMs: 20 }) })
  const s = sink(t, { url: r.url, logger: captureLogs().logger })
  s.publish(event('a', 0))
  const closing = s.close(5000)
  s.publish(event('a', 1, 'call.ended'))
  await closing
  t.same(
    r.events.map((e) => e.id),
    ['a-0', 'a-1'],
  )
})

t.test('close() with an unreachable URL resolves at its timeout and reports what was left', async (t) => {
  const logs = captureLogs()
  const timers = trackedTimers()
  const s = sink(t, {
    url: await deadUrl(),
    logger: logs.logger,
    maxAttempts: 1000,
    backoff: { initialMs: 5, maxMs: 20 },
    ...timers,
  })
  s.publish(event('a', 0))
  s.publish(event('a', 1))
  s.publish(event('b', 0))

  const started = Date.now()
  await s.close(200)
  const elapsed = Date.now() - started

  t.ok(elapsed >= 190 && elapsed < 2000, `resolved at the timeout (${elapsed} ms)`)
  const errors = logs.at(ERROR)
  t.equal(errors.length, 1, 'one summary line, no per-event give-up lines')
  t.match(errors[0], { msg: /left undelivered/, undelivered: 3 })
  t.same([...(errors[0]?.eventIds ?? [])].sort(), ['a-0', 'a-1', 'b-0'])
  t.same(s.stats().pending, 0)
  t.same(s.stats().failed, 3)
  t.equal(timers.live.size, 0, 'no backoff or request timer survives close()')
})

t.test('close() at its timeout aborts a request still waiting for its answer', async (t) => {
  const logs = captureLogs()
  const timers = trackedTimers()
  let onArrival = (): void => {}
  const arrived = new Promise<void>((resolve) => (onArrival = resolve))
  const r = await receiver(t, {
    respond: () => {
      onArrival()
      return { status: 204, delayMs: Infinity }
    },
  })
  const s = sink(t, { url: r.url, logger: logs.logger, timeoutMs: 30_000, ...timers })
  s.publish(event('a', 0))
  // Close only once the request is on the receiver, so the abort path is the one exercised.
  await arrived
  await s.close(100)

  t.match(logs.at(ERROR), [{ undelivered: 1, eventIds: ['a-0'] }])
  t.equal(timers.live.size, 0, 'the 30 s request deadline was cancelled too')
  t.equal(r.events.length, 0)
})

t.test('publish never throws: an unserialisable event is logged and skipped', async (t) => {
  const logs = captureLogs()
  const r = await receiver(t)
  const s = sink(t, { url: r.url, logger: logs.logger })
  const bad = { ...event('c1', 0), data: { big: 10n } } as unknown as EventEnvelope
  t.doesNotThrow(() => s.publish(bad))
  s.publish(event('c1', 1))
  await s.close(2000)

  t.same(
    r.events.map((e) => e.seq),
    [1],
    'the call carries on with its next event',
  )
  t.match(logs.at(ERROR), [{ eventId: 'c1-0', attempts: 0, err: { code: 'ERR_WEBHOOK_GAVE_UP' } }])
  t.equal(s.stats().failed, 1)
})

t.test('configuration errors surface in the constructor', async (t) => {
  const base = { timeoutMs: 1000, maxAttempts: 3, backoff: { initialMs: 1, maxMs: 5 }, logger: pino({ level: 'silent' }) }
  t.throws(() => new HttpWebhookSink({ ...base, url: 'not a url' }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'ftp://example.com/' }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'http://x/', maxAttempts: 0 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'http://x/', timeoutMs: 0 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'http://x/', backoff: { initialMs: 10, maxMs: 1 } }), {
    code: 'ERR_CONFIG_INVALID',
  })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'http://x/', headers: { 'x-bad': 'a\nb' } }), {
    code: 'ERR_CONFIG_INVALID',
  })
  t.throws(() => new HttpWebhookSink({ ...base, url: 'http://x/', secret: 'whsec_!!' }), { code: 'ERR_CONFIG_INVALID' })
})
