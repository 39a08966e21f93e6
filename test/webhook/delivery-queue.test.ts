/**
 * src/webhook/delivery-queue.ts, set up as the delivery worker runs it (a spool and a dead-letter
 * file in a test directory), against real HTTP(S) receivers on port 0: ordering and concurrency,
 * retries (5xx, 429 + Retry-After, timeouts, a receiver that is down and comes back), dead letters
 * (non-retriable 4xx, WEBHOOK_MAX_AGE on a virtual clock), TLS with a private CA, the spool
 * (delivery only after the write, recovery ahead of new events, write failures), and close().
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { DeadLetterFile } from '../../src/webhook/dead-letter.js'
import type { EventEnvelope, EventType } from '../../src/events/envelope.js'
import { serializeEvent } from '../../src/events/serialize-event.js'
import { DeliveryQueue, type DeliveryQueueOptions } from '../../src/webhook/delivery-queue.js'
import { parseRetryAfter } from '../../src/webhook/http-transport.js'
import { fileSpoolIo, Spool, type SpoolIo } from '../../src/webhook/spool.js'
import { systemClock, type Clock, type ClockTimer } from '../../src/shared/clock.js'
import { longTimer, type LongWait } from '../../src/shared/long-timer.js'
import { waitUntil } from '../support/wait.js'
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js'

/** Helpers take the tap test so that resources are released when it ends. */
type HasTeardown = Test

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
    at: (level: number) => records.filter((r) => r.level === level),
    withMsg: (msg: string) => records.filter((r) => r.msg === msg),
  }
}

/** The system clock, remembering the delays it was asked for and which timers are still pending. */
function trackedTimers() {
  const live = new Set<ClockTimer>()
  const requested: number[] = []
  const clock: Clock = {
    now: () => systemClock.now(),
    setTimeout: (callback, ms) => {
      requested.push(ms)
      const handle = systemClock.setTimeout(() => {
        live.delete(handle)
        callback()
      }, ms)
      live.add(handle)
      return handle
    },
    clearTimeout: (handle) => {
      if (handle !== undefined) live.delete(handle)
      systemClock.clearTimeout(handle)
    },
  }
  return { live, requested, clock }
}

/**
 * A virtual clock: a timer fires on the next turn of the event loop and moves `now` to its due time
 * (earliest first). Hours of backoff pass in milliseconds of real time, with exact delays to assert.
 * `likeNode`: a delay over 2^31-1 ms (or under 1) runs 1 ms, as Node's own timers do; the Clock
 * takes any delay over it through long-timer.ts, as systemClock does over Node's timers.
 * `requested` lists the delays handed to the base timers.
 */
function virtualTime(startMs = Date.parse('2026-11-20T22:00:00Z'), { likeNode = false } = {}) {
  let now = startMs
  let nextId = 0
  const pending = new Map<number, { dueAt: number; callback: () => void }>()
  const requested: number[] = []
  let scheduled = false
  const tick = (): void => {
    scheduled = false
    let first: [number, { dueAt: number; callback: () => void }] | undefined
    for (const entry of pending) if (!first || entry[1].dueAt < first[1].dueAt) first = entry
    if (!first) return
    pending.delete(first[0])
    now = Math.max(now, first[1].dueAt)
    first[1].callback()
    schedule()
  }
  const schedule = (): void => {
    if (scheduled || pending.size === 0) return
    scheduled = true
    setImmediate(tick)
  }
  const base = longTimer<number>({
    setTimer: (callback, ms) => {
      requested.push(ms)
      const id = nextId++
      const delay = likeNode && !(ms >= 1 && ms <= 2 ** 31 - 1) ? 1 : ms
      pending.set(id, { dueAt: now + delay, callback })
      schedule()
      return id
    },
    clearTimer: (handle) => void pending.delete(handle),
  })
  // The queue only arms and clears its timers: the handles need not refresh() or unref().
  const clock: Clock = {
    now: () => now,
    setTimeout: (callback, ms) => base.setTimer(callback, ms) as unknown as ClockTimer,
    clearTimeout: (handle) => {
      if (handle !== undefined) base.clearTimer(handle as unknown as number | LongWait<number>)
    },
  }
  return { requested, clock }
}

function event(callId: string, seq: number, type: EventType = 'transcript.final'): EventEnvelope {
  return { id: `${callId}-${seq}`, type, call_id: callId, seq, time: new Date().toISOString(), data: { index: seq } }
}

async function receiver(t: HasTeardown, options?: Parameters<typeof startWebhookReceiver>[0]): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(options)
  t.teardown(() => r.close())
  return r
}

/**
 * A queue with test-sized limits (millisecond backoff and no jitter, so retries are fast and exact),
 * with a spool and dead-letter file in a fresh test directory unless the test brings its own, and
 * started (events published before start() has resolved wait for it, as in the worker). Its
 * publish() takes envelopes, serialised as the main thread does before handing them to the worker.
 */
function sink(t: HasTeardown, options: Partial<DeliveryQueueOptions> & { url: string; logger: DeliveryQueueOptions['logger'] }) {
  // t.testdir() re-creates the test's one directory: called only when the test brought no spool.
  const spool = options.spool ?? durable(t, options.logger).spool
  const queue = new DeliveryQueue({
    timeoutMs: 2000,
    maxAgeMs: 60_000,
    backoff: { initialMs: 1, maxMs: 5, jitter: 0 },
    deadLetters: new DeadLetterFile(join(spool.directory, 'dead-letter.jsonl')),
    ...options,
    spool,
  })
  // A failed start is each test's to assert (start() is idempotent: the test's own call sees the same rejection).
  queue.start().catch(() => {})
  // Whatever a test leaves behind must not keep the test process alive.
  t.teardown(() => queue.close(100))
  return {
    start: () => queue.start(),
    publish: (envelope: EventEnvelope) => queue.publish(serializeEvent(envelope)),
    stats: () => queue.stats(),
    close: (timeoutMs: number) => queue.close(timeoutMs),
  }
}

/** A spool and dead-letter file in a fresh test directory. */
function durable(t: HasTeardown, logger: DeliveryQueueOptions['logger'], io?: SpoolIo) {
  const dir = t.testdir()
  return { dir, spool: new Spool({ dir, maxBytes: 1 << 20, logger, io }), deadLetters: new DeadLetterFile(join(dir, 'dead-letter.jsonl')) }
}

/** What a full disk does to a write. */
function diskFull(): never {
  throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })
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
  t.equal(req?.headers.connection, 'keep-alive', 'connections are kept alive between events')
  t.equal(req?.rawBody, JSON.stringify(e))
  // Without a secret nothing pretends to be signed.
  t.equal(req?.headers['webhook-signature'], undefined)
  t.match(s.stats(), { delivered: 1, retried: 0, deadLettered: 0, failed: 0, pending: 0 })
  t.same(
    logs.records.filter((l) => l.level >= WARN),
    [],
    'a clean delivery logs nothing above info',
  )
})

t.test('the whole URL is honoured: path, query string, and user:password as basic auth', async (t) => {
  const r = await receiver(t)
  const url = new URL(r.url)
  url.username = 'hook%40user'
  url.password = 'p%3Ass'
  url.search = '?token=a%20b'
  const s = sink(t, { url: url.href, logger: captureLogs().logger })
  s.publish(event('u1', 0))
  await s.close(2000)
  const [req] = r.requests
  t.equal(req?.url, '/hooks/events?token=a%20b', 'path and query as configured')
  t.equal(req?.headers.authorization, `Basic ${Buffer.from('hook@user:p:ss').toString('base64')}`, 'credentials decoded, as Node does for a URL')
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
      maxConcurrentSameCall = Math.max(maxConcurrentSameCall, open.filter((x) => x.body.call_id === req.body.call_id).length)
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
  t.match(s.stats(), { delivered: 60, retried: 0, failed: 0, pending: 0 })
})

t.test('the concurrency limit bounds requests in flight across calls', async (t) => {
  let maxConcurrent = 0
  const r = await receiver(t, {
    respond: () => {
      maxConcurrent = Math.max(maxConcurrent, r.requests.filter((x) => x.status === undefined).length)
      return { status: 204, delayMs: 10 }
    },
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger, concurrency: 2 })
  for (let seq = 0; seq < 3; seq++) for (const call of ['a', 'b', 'c', 'd', 'e', 'f']) s.publish(event(call, seq))
  await s.close(5000)
  t.equal(r.events.length, 18)
  t.equal(maxConcurrent, 2, 'two calls at a time, as configured')
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
  const clock: Clock = { ...systemClock, now: () => (nowMs += 1000) }
  const logs = captureLogs()
  const r = await receiver(t, { secret, respond: (_req, attempt) => (attempt === 1 ? { status: 500 } : undefined) })
  const s = sink(t, { url: r.url, secret, clock, logger: logs.logger })
  const e = event('c1', 0)
  s.publish(e)
  // close() measures its deadline on the same clock: a minute of readings leaves it time to deliver.
  await s.close(60_000)

  const [first, second] = r.requests
  t.same(
    r.requests.map((x) => x.status),
    [500, 204],
  )
  t.same(r.events, [e], 'accepted exactly once')
  t.equal(first?.headers['webhook-id'], e.id)
  t.equal(second?.headers['webhook-id'], e.id, 'the id is stable across attempts, so receivers can deduplicate')
  t.equal(first?.rawBody, second?.rawBody, 'the same bytes are sent every attempt')
  t.ok(Number(second?.headers['webhook-timestamp']) > Number(first?.headers['webhook-timestamp']), 'the timestamp is refreshed per attempt')
  t.same(
    r.requests.map((x) => x.signatureValid),
    [true, true],
    'each attempt is signed over its own timestamp',
  )
  t.match(s.stats(), { delivered: 1, retried: 1, failed: 0, deadLettered: 0, pending: 0 })

  t.match(logs.at(WARN), [{ msg: 'webhook delivery failing; events are kept and retried', eventId: e.id, status: 500, err: { code: 'ERR_WEBHOOK_STATUS' } }])
  // The one info line besides the spool's own at start.
  t.match(logs.at(INFO).filter((x) => x.msg !== 'webhook spool ready'), [{ msg: 'webhook delivery recovered', failedAttempts: 1 }])
  t.equal(logs.at(ERROR).length, 0)
})

t.test('429 with Retry-After: the receiver decides the wait, not the backoff and not its cap', async (t) => {
  const time = virtualTime()
  const r = await receiver(t, {
    respond: (_req, attempt) => (attempt === 1 ? { status: 429, headers: { 'retry-after': '120' } } : undefined),
  })
  // Without Retry-After this backoff would wait 1 ms; its cap is 5 ms.
  const s = sink(t, { url: r.url, logger: captureLogs().logger, maxAgeMs: 3_600_000, ...time })
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  t.same(time.requested, [120_000], 'waited exactly the 120 s asked for')
  t.equal(r.requests.length, 2)
})

t.test('503 with Retry-After: 0 retries at once despite a long backoff', async (t) => {
  const time = virtualTime()
  const r = await receiver(t, {
    respond: (_req, attempt) => (attempt === 1 ? { status: 503, headers: { 'retry-after': '0' } } : undefined),
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger, backoff: { initialMs: 30_000, maxMs: 60_000 }, ...time })
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  t.same(time.requested, [0])
})

t.test('a Retry-After longer than a Node timer holds (29 days) is waited out in full, not for 1 ms', async (t) => {
  const time = virtualTime(undefined, { likeNode: true })
  const attemptsAt: number[] = []
  const r = await receiver(t, {
    respond: (_req, attempt) => {
      attemptsAt.push(time.clock.now())
      return attempt === 1 ? { status: 503, headers: { 'retry-after': '2500000' } } : undefined
    },
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger, maxAgeMs: 30 * 24 * 3_600_000, ...time })
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  t.same(attemptsAt.map((at) => at - (attemptsAt[0] as number)), [0, 2_500_000_000], 'the second attempt came 2,500,000 s after the first')
  t.same(time.requested, [2 ** 31 - 1, 2_500_000_000 - (2 ** 31 - 1)], 'waited in two legs, each one a Node timer holds')
})

t.test('a wait never runs past the event\'s expiry: one last attempt is made at WEBHOOK_MAX_AGE', async (t) => {
  const time = virtualTime()
  const r = await receiver(t, {
    respond: (_req, attempt) => (attempt === 1 ? { status: 429, headers: { 'retry-after': '3600' } } : undefined),
  })
  const s = sink(t, { url: r.url, logger: captureLogs().logger, maxAgeMs: 60_000, ...time })
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  t.same(time.requested, [60_000], 'the hour asked for is cut to the minute the event has left')
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

t.test('408 and 5xx are retried; 3xx and other 4xx are dead-lettered', async (t) => {
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
    t.equal(s.stats().deadLettered, retried ? 0 : 1)
  }
})

t.test('400: not retried, dead-lettered with status and body excerpt, the call moves on', async (t) => {
  const logs = captureLogs()
  const { spool, deadLetters, dir } = durable(t, logs.logger)
  const r = await receiver(t, {
    respond: (req) => (req.body.seq === 0 ? { status: 400, body: `{"error":"unknown field","padding":"${'x'.repeat(2000)}"}` } : undefined),
  })
  const s = sink(t, { url: r.url, logger: logs.logger, spool, deadLetters })
  await s.start()
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
  t.match(logs.at(ERROR), [
    { msg: 'webhook event dead-lettered', eventId: 'c1-0', callId: 'c1', seq: 0, type: 'call.started', reason: 'rejected', attempts: 1, status: 400, errorCode: 'ERR_WEBHOOK_REJECTED' },
  ])
  t.equal(logs.at(ERROR).length, 1, 'exactly one error line')
  const [line] = logs.at(ERROR)
  t.match(line, { errorCode: 'ERR_WEBHOOK_REJECTED', error: 'the webhook answered 400, which is not retried' }, 'the code and one message: an outcome')
  t.notOk('err' in line, 'no err, so no stack trace of it or of its cause')
  t.ok(line.bodyExcerpt.startsWith('{"error":"unknown field"'), 'with the start of the answer')
  t.equal(line.bodyExcerpt.length, 203, 'bounded to 200 characters (and "...") in the log')
  t.notMatch(JSON.stringify(line), /"stack"|\n\s+at /, 'no stack anywhere in the line')
  t.equal(logs.at(WARN).length, 0, 'a rejection is not an outage: no "failing" warning')
  t.match(s.stats(), { delivered: 1, retried: 0, deadLettered: 1, failed: 0, pending: 0 })

  const { entries } = await deadLetters.read()
  t.equal(entries.length, 1)
  const [entry] = entries
  t.match(entry, { id: 'c1-0', callId: 'c1', seq: 0, type: 'call.started', reason: 'rejected', status: 400, attempts: 1, error: { code: 'ERR_WEBHOOK_REJECTED' } })
  t.ok(entry?.bodyExcerpt?.startsWith('{"error":"unknown field"'), 'the start of the answer is kept')
  t.equal(entry?.bodyExcerpt?.length, 512, 'bounded to 512 bytes')
  t.match(JSON.parse(entry?.bodyText ?? '{}'), { id: 'c1-0', call_id: 'c1', seq: 0, type: 'call.started', data: { index: 0 } }, 'the envelope as sent')
  t.equal(entry?.bodyText, r.requests[0]?.rawBody, 'byte for byte')
  t.ok(entry?.firstAttemptAt && entry.lastAttemptAt && entry.deadLetteredAt)

  // Both events are settled: the spool has nothing left to deliver after a restart.
  const again = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  t.same(await again.open(), [], 'the dead-lettered event was acknowledged in the spool')
  await again.close()
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
  t.match(logs.at(WARN), [{ eventId: 'c1-0', err: { code: 'ERR_WEBHOOK_TIMEOUT' } }])
  t.match(s.stats(), { delivered: 1, retried: 1, failed: 0 })
})

t.test('a receiver down for a while, then up on the same port: every event arrives, in order, logged twice', async (t) => {
  const logs = captureLogs()
  const down = await startWebhookReceiver()
  const port = Number(new URL(down.url).port)
  await down.close()

  const s = sink(t, { url: down.url, logger: logs.logger, backoff: { initialMs: 10, maxMs: 40, jitter: 0 } })
  for (let seq = 0; seq < 4; seq++) for (const call of ['a', 'b']) s.publish(event(call, seq))
  // Down "for a while": until both calls have failed several attempts (connection refused).
  await waitUntil(() => logs.withMsg('webhook attempt failed; retrying').length >= 6, 'six failed attempts')
  t.equal(down.requests.length, 0)

  const up = await receiver(t, { port })
  await up.waitFor((events) => events.length === 8)
  for (const call of ['a', 'b']) {
    t.same(
      up.eventsFor(call).map((e) => e.seq),
      [0, 1, 2, 3],
      `call ${call} in order after the outage`,
    )
  }
  t.equal(up.requests.length, 8, 'no duplicates: the receiver was down, not slow')
  t.match(logs.withMsg('webhook delivery failing; events are kept and retried'), [{ err: { code: 'ERR_WEBHOOK_NETWORK', message: /ECONNREFUSED/ } }])
  t.equal(logs.at(WARN).length, 1, 'one warning for the whole outage, not one per attempt or event')
  const recovered = logs.withMsg('webhook delivery recovered')
  t.equal(recovered.length, 1)
  t.ok(recovered[0].failedAttempts >= 6)
  t.equal(logs.at(ERROR).length, 0)
})

t.test('WEBHOOK_MAX_AGE: an event failing for longer is dead-lettered as expired, after backoff up to the cap', async (t) => {
  const time = virtualTime()
  const logs = captureLogs()
  const { spool, deadLetters } = durable(t, logs.logger)
  const r = await receiver(t, { respond: () => ({ status: 503, body: 'maintenance' }) })
  const s = sink(t, {
    url: r.url,
    logger: logs.logger,
    spool,
    deadLetters,
    maxAgeMs: 3_600_000,
    backoff: { initialMs: 1000, maxMs: 60_000, jitter: 0.2 },
    random: () => 0.5,
    ...time,
  })
  await s.start()
  const publishedAt = time.clock.now()
  s.publish(event('c1', 0))
  s.publish(event('c1', 1))
  await waitUntil(() => s.stats().pending === 0, 'both events settled')
  await s.close(1000)

  const delays = time.requested
  t.same(delays.slice(0, 4), [900, 1800, 3600, 7200], 'exponential, jittered down by 10 % (random 0.5 of 20 %)')
  t.ok(
    delays.every((d) => d <= 60_000),
    'never above WEBHOOK_RETRY_MAX_MS',
  )
  const firstEventAttempts = r.requests.filter((x) => x.body.seq === 0).length
  t.ok(firstEventAttempts > 50, `retried for the whole hour (${firstEventAttempts} attempts)`)
  t.equal(time.clock.now() - publishedAt >= 3_600_000, true, 'an hour passed on the virtual clock')

  const { entries } = await deadLetters.read()
  t.same(
    entries.map((e) => [e.id, e.reason, e.status, e.bodyExcerpt]),
    [
      ['c1-0', 'expired', 503, 'maintenance'],
      ['c1-1', 'expired', 503, 'maintenance'],
    ],
  )
  t.equal(entries[0]?.lastAttemptAt, new Date(publishedAt + 3_600_000).toISOString(), 'the last attempt is at exactly the max age')
  t.equal(entries[1]?.attempts, 1, 'an event already past its age still gets one attempt')
  t.equal(logs.at(WARN).length, 1, 'one warning for the outage')
  t.match(logs.at(ERROR), [
    { msg: 'webhook event dead-lettered', eventId: 'c1-0', reason: 'expired', status: 503, bodyExcerpt: 'maintenance', errorCode: 'ERR_WEBHOOK_EXPIRED', error: /^still undelivered 3600 s after it was published \(WEBHOOK_MAX_AGE is 3600 s\)$/ },
    { msg: 'webhook event dead-lettered', eventId: 'c1-1', reason: 'expired' },
  ])
  t.notMatch(JSON.stringify(logs.at(ERROR)), /"stack"/, 'no stack traces: a dead letter is an outcome')
  t.match(s.stats(), { deadLettered: 2, delivered: 0, failed: 0 })
})

t.test('expired without ever an answer (nothing listens): one error line, the last failure folded into its message, no stack', async (t) => {
  const time = virtualTime()
  const logs = captureLogs()
  const s = sink(t, { url: await deadUrl(), logger: logs.logger, maxAgeMs: 10_000, backoff: { initialMs: 1000, maxMs: 2000, jitter: 0 }, ...time })
  await s.start()
  s.publish(event('c1', 0))
  await waitUntil(() => s.stats().pending === 0, 'the event settled')
  await s.close(1000)
  const errors = logs.at(ERROR)
  t.equal(errors.length, 1)
  t.match(errors[0], { msg: 'webhook event dead-lettered', reason: 'expired', status: undefined, bodyExcerpt: undefined })
  t.match(errors[0], { errorCode: 'ERR_WEBHOOK_EXPIRED', error: /^still undelivered 10 s after it was published \(WEBHOOK_MAX_AGE is 10 s\); last attempt: .*ECONNREFUSED/ })
  t.notMatch(JSON.stringify(errors[0]), /"stack"/, 'no stack trace')
})

t.test('TLS: a receiver with a certificate from a private CA, trusted through the CA setting', { skip: existsSync('/usr/bin/openssl') ? false : 'needs /usr/bin/openssl to make a throwaway CA' }, async (t) => {
  const dir = t.testdir({
    'server.ext': 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  })
  const openssl = (...args: string[]): void => void execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: 'ignore' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=audiosocket-soniox test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext')

  const secret = 'tls-test-secret'
  const r = await receiver(t, { secret, tls: { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) } })
  t.match(r.url, /^https:\/\//)

  const logs = captureLogs()
  const trusting = sink(t, { url: r.url, secret, logger: logs.logger, ca: readFileSync(join(dir, 'ca.pem'), 'utf8') })
  trusting.publish(event('tls', 0))
  trusting.publish(event('tls', 1))
  await trusting.close(3000)
  t.same(
    r.events.map((e) => e.seq),
    [0, 1],
  )
  t.same(
    r.requests.map((x) => x.signatureValid),
    [true, true],
    'signed over TLS as over plain HTTP',
  )

  // The same receiver without the CA: the certificate is refused and the event is kept for retrying.
  const untrustingLogs = captureLogs()
  const untrusting = sink(t, { url: r.url, logger: untrustingLogs.logger, backoff: { initialMs: 50, maxMs: 50 } })
  untrusting.publish(event('nocert', 0))
  await waitUntil(() => untrustingLogs.at(WARN).length === 1, 'the failure warning')
  t.match(untrustingLogs.at(WARN)[0], { err: { code: 'ERR_WEBHOOK_NETWORK', message: /certificate/ } })
  t.equal(r.eventsFor('nocert').length, 0)
})

t.test('spool: an event is in the spool before its first attempt', async (t) => {
  const logs = captureLogs()
  const { spool, dir } = durable(t, logs.logger)
  let spooledAtArrival: boolean | undefined
  const r = await receiver(t, {
    respond: () => {
      // Read while the request is on the receiver: the record must be on disk already.
      const segment = readdirSync(dir).find((name) => name.startsWith('segment-'))
      spooledAtArrival = segment !== undefined && readFileSync(join(dir, segment), 'utf8').includes('"id":"c1-0"')
      return { status: 204 }
    },
  })
  const s = sink(t, { url: r.url, logger: logs.logger, spool })
  await s.start()
  s.publish(event('c1', 0))
  await r.waitFor((events) => events.length === 1)
  t.equal(spooledAtArrival, true, 'the spool record was written before the request went out')
  t.equal(s.stats().unspooled, 0)
})

t.test('spool: a restart delivers what the last run left, first, in order, with the same ids and bytes', async (t) => {
  const logs = captureLogs()
  const dir = t.testdir()
  let receiverUp = false
  const r = await receiver(t, { respond: () => (receiverUp ? undefined : { status: 503 }) })

  const first = sink(t, {
    url: r.url,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    logger: logs.logger,
    spool: new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger }),
  })
  await first.start()
  for (let seq = 0; seq < 4; seq++) for (const call of ['a', 'b']) first.publish(event(call, seq))
  await waitUntil(() => r.requests.length >= 4, 'a few refused attempts')
  await first.close(50)
  t.match(first.stats(), { leftInSpool: 8, failed: 0, pending: 0 })
  t.match(logs.withMsg('webhook sink closed with events undelivered; they stay in the spool and go first at the next start'), [{ undelivered: 8, calls: 2 }])
  const firstBodies = new Map(r.requests.map((x) => [x.body.id as string, x.rawBody]))

  receiverUp = true
  const second = sink(t, {
    url: r.url,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    logger: logs.logger,
    spool: new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger }),
  })
  const starting = second.start()
  // Published while the spool is still being read: must queue behind the recovered events of its call.
  second.publish(event('a', 4, 'call.ended'))
  await starting
  await second.close(5000)

  for (const call of ['a', 'b']) {
    t.same(
      r.eventsFor(call).map((e) => e.seq),
      call === 'a' ? [0, 1, 2, 3, 4] : [0, 1, 2, 3],
      `call ${call}: recovered events first, in seq order`,
    )
  }
  for (const accepted of r.requests.filter((x) => x.status === 204 && firstBodies.has(x.body.id))) {
    t.equal(accepted.rawBody, firstBodies.get(accepted.body.id), `${accepted.body.id}: the same bytes as before the restart`)
  }
  t.match(logs.withMsg('delivering events spooled by a previous run first'), [{ events: 8, calls: 2 }])
  t.match(second.stats(), { delivered: 9, failed: 0, leftInSpool: 0 })
})

t.test('spool: when writes fail (disk full) events are still delivered, from memory, and counted', async (t) => {
  const logs = captureLogs()
  const io: SpoolIo = { ...fileSpoolIo, writev: () => diskFull() }
  const { spool } = durable(t, logs.logger, io)
  const r = await receiver(t)
  const s = sink(t, { url: r.url, logger: logs.logger, spool })
  await s.start()
  for (let seq = 0; seq < 3; seq++) s.publish(event('c1', seq))
  await s.close(2000)
  t.same(
    r.events.map((e) => e.seq),
    [0, 1, 2],
  )
  t.match(s.stats(), { delivered: 3, unspooled: 3 })
  t.match(logs.at(ERROR), [{ msg: /spool write failed/, err: { code: 'ERR_SPOOL_WRITE', message: /ENOSPC/ } }])
  t.equal(logs.at(ERROR).length, 1, 'logged once, not per event')
})

t.test('start() fails when the spool is held by another live process', async (t) => {
  const dir = t.testdir({ 'spool.lock': `${process.ppid}\n` })
  const s = sink(t, { url: 'http://127.0.0.1:1/', logger: captureLogs().logger, spool: new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger }) })
  await t.rejects(s.start(), { code: 'ERR_SPOOL_LOCKED' })
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
  t.match(s.stats(), { delivered: 15, retried: 0, failed: 0, pending: 0 })
  t.equal(timers.live.size, 0, 'the close deadline ends with close(): nothing lingers')

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

t.test('close() with the disk full and the URL unreachable: resolves at its timeout and reports what was lost', async (t) => {
  const logs = captureLogs()
  const timers = trackedTimers()
  // Events the spool could not take are the only ones a close can lose.
  const { spool } = durable(t, logs.logger, { ...fileSpoolIo, writev: () => diskFull() })
  const s = sink(t, { url: await deadUrl(), logger: logs.logger, spool, backoff: { initialMs: 5, maxMs: 20 }, ...timers })
  await s.start()
  s.publish(event('a', 0))
  s.publish(event('a', 1))
  s.publish(event('b', 0))

  await s.close(200)

  t.ok(timers.requested.includes(200), 'the close deadline is the timeout given')
  const errors = logs.at(ERROR).filter((r) => r.msg !== 'spool write failed; events are delivered from memory only until writes succeed again')
  t.equal(errors.length, 1, 'one summary line, no per-event lines')
  t.match(errors[0], { msg: /left undelivered/, undelivered: 3, err: { code: 'ERR_WEBHOOK_GAVE_UP' } })
  t.same([...(errors[0]?.eventIds ?? [])].sort(), ['a-0', 'a-1', 'b-0'])
  t.match(s.stats(), { pending: 0, failed: 3, leftInSpool: 0, unspooled: 3 })
  t.equal(timers.live.size, 0, 'no backoff timer survives close()')
})

t.test('close() at its timeout aborts a request still waiting for its answer', async (t) => {
  const logs = captureLogs()
  let onArrival = (): void => {}
  const arrived = new Promise<void>((resolve) => (onArrival = resolve))
  const r = await receiver(t, {
    respond: () => {
      onArrival()
      return { status: 204, delayMs: Infinity }
    },
  })
  const { spool } = durable(t, logs.logger)
  const s = sink(t, { url: r.url, logger: logs.logger, timeoutMs: 30_000, spool })
  await s.start()
  s.publish(event('a', 0))
  // Close only once the request is on the receiver, so the abort path is the one exercised.
  await arrived
  // The receiver never answers: close() can only resolve by aborting the request at its own deadline.
  await s.close(100)
  t.match(s.stats(), { leftInSpool: 1, failed: 0 })
  t.equal(r.events.length, 0)
})

t.test('configuration errors surface in the constructor', async (t) => {
  const logger = pino({ level: 'silent' })
  const base = { timeoutMs: 1000, maxAgeMs: 60_000, backoff: { initialMs: 1, maxMs: 5 }, logger, ...durable(t, logger) }
  t.throws(() => new DeliveryQueue({ ...base, url: 'not a url' }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'ftp://example.com/' }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', maxAgeMs: 0 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', concurrency: 0 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', timeoutMs: 0 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', backoff: { initialMs: 10, maxMs: 1 } }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', headers: { 'x-bad': 'a\nb' } }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', headers: { 'Webhook-Signature': 'forged' } }), { code: 'ERR_CONFIG_INVALID', message: /cannot be overridden/ })
  t.throws(() => new DeliveryQueue({ ...base, url: 'http://x/', secret: 'whsec_!!' }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => new DeliveryQueue({ ...base, url: 'https://x/', ca: 'not a certificate' }), { code: 'ERR_CONFIG_INVALID', message: /no PEM certificate/ })
  t.throws(() => new DeliveryQueue({ ...base, url: 'https://x/', ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), {
    code: 'ERR_CONFIG_INVALID',
    message: /cannot be parsed/,
  })
})

t.test('metrics: deliveries with their latency from publication, failed attempts, dead letters by reason', async (t) => {
  const logs = captureLogs()
  const r = await receiver(t, {
    respond: (req, attempt) => (req.body?.call_id === 'bad' ? { status: 422 } : attempt === 1 && req.body?.seq === 1 ? { status: 503 } : undefined),
  })
  const time = virtualTime()
  const seen: string[] = []
  const latencies: Array<number | undefined> = []
  const s = sink(t, {
    url: r.url,
    logger: logs.logger,
    clock: time.clock,
    metrics: {
      delivered: (type, latencyMs) => {
        seen.push(`delivered:${type}`)
        latencies.push(latencyMs)
      },
      attemptFailed: () => seen.push('failed'),
      deadLettered: (reason) => seen.push(`dead:${reason}`),
    },
  })
  s.publish(event('ok', 0, 'call.started'))
  s.publish(event('ok', 1))
  s.publish(event('bad', 0))
  // (close() would time out at once on the virtual clock: wait for the outcomes instead)
  await waitUntil(() => s.stats().pending === 0, 'every event settled')
  t.same(seen.filter((x) => x.startsWith('delivered')).sort(), ['delivered:call.started', 'delivered:transcript.final'])
  t.equal(seen.filter((x) => x === 'failed').length, 2, 'the 503 that was retried and the 422 that was not')
  t.same(seen.filter((x) => x.startsWith('dead')), ['dead:rejected'])
  t.ok(latencies.every((ms) => typeof ms === 'number' && ms >= 0), 'events published by this process have a latency')
  t.ok((latencies[1] ?? 0) >= 1, 'the retried one includes its backoff (virtual time)')
})
