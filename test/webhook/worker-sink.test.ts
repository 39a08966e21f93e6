/**
 * src/webhook/worker-sink.ts: WEBHOOK_URL delivery through a real worker thread (the real
 * delivery-worker.ts, its spool on disk) to a real HTTP receiver on port 0. What crosses the thread
 * boundary is checked from the main side: events, log lines, metrics, stats, start failures,
 * close() with events left, a worker that dies mid-stream being replaced without losing an event, and
 * the events of one turn crossing as one message, to the worker that was running when they were published.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { DeadLetterReason } from '../../src/webhook/dead-letter.js'
import type { EventEnvelope } from '../../src/events/envelope.js'
import type { WebhookMetrics } from '../../src/webhook/delivery-queue.js'
import { Spool } from '../../src/webhook/spool.js'
import type { DeliveryWorkerInit } from '../../src/webhook/worker-messages.js'
import { WebhookWorkerSink } from '../../src/webhook/worker-sink.js'
import { waitUntil } from '../support/wait.js'
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js'

const ERROR = 50
const SECRET = 'whsec_' + Buffer.from('worker sink test secret').toString('base64')

function captureLogs() {
  const records: any[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) }).child({ component: 'webhook' })
  return { logger, records, withMsg: (msg: string) => records.filter((r) => r.msg === msg) }
}

function recordingMetrics() {
  const seen = { delivered: [] as Array<[string, number | undefined]>, attemptsFailed: 0, deadLettered: [] as DeadLetterReason[] }
  const metrics: WebhookMetrics = {
    delivered: (type, latencyMs) => void seen.delivered.push([type, latencyMs]),
    attemptFailed: () => void seen.attemptsFailed++,
    deadLettered: (reason) => void seen.deadLettered.push(reason),
  }
  return { metrics, seen }
}

function event(callId: string, seq: number): EventEnvelope {
  return { id: `${callId}-${seq}`, type: 'transcript.final', call_id: callId, seq, time: new Date().toISOString(), data: { text: `word ${seq}` } }
}

function init(url: string, dir: string, logger: pino.Logger, overrides: Partial<DeliveryWorkerInit['sink']> = {}, spoolMaxBytes = 1024 * 1024): DeliveryWorkerInit {
  return {
    sink: {
      url,
      secret: SECRET,
      timeoutMs: 2000,
      maxAgeMs: 60_000,
      concurrency: 4,
      backoff: { initialMs: 5, maxMs: 20 },
      headers: undefined,
      ca: undefined,
      version: 'test',
      ...overrides,
    },
    spool: { dir, maxBytes: spoolMaxBytes },
    deadLetterPath: join(dir, 'dead-letter.jsonl'),
    log: { level: logger.level, bindings: logger.bindings() },
  }
}

async function receiver(t: Test, options?: Parameters<typeof startWebhookReceiver>[0]): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver({ secret: SECRET, ...options })
  t.teardown(() => r.close())
  return r
}

function spoolDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'worker-sink-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function sink(t: Test, options: ConstructorParameters<typeof WebhookWorkerSink>[0]): WebhookWorkerSink {
  const s = new WebhookWorkerSink(options)
  t.teardown(() => s.close(100))
  return s
}

/** The real delivery worker, which also reports each message it receives and can be made to crash. */
const TEST_WORKER = new URL('../support/crashing-delivery-worker.js', import.meta.url)

/**
 * The first test worker started while this is in force dies on the publish message that brings
 * its count of events to `afterEvents`; its replacement does not. A worker reads process.env as it
 * is when it starts.
 */
function crashOnce(t: Test, dir: string, afterEvents: number): void {
  const marker = join(dir, 'crash-once')
  writeFileSync(marker, '')
  const saved = { CRASH_MARKER: process.env['CRASH_MARKER'], CRASH_AFTER_EVENTS: process.env['CRASH_AFTER_EVENTS'] }
  process.env['CRASH_MARKER'] = marker
  process.env['CRASH_AFTER_EVENTS'] = String(afterEvents)
  t.teardown(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
}

interface Received {
  type: string
  ids: string[]
}

/** The messages the test workers received (see crashing-delivery-worker.ts), in order, per worker in order of start. */
function receivedByWorker(logs: ReturnType<typeof captureLogs>): Received[][] {
  const byThread = new Map<number, Received[]>()
  for (const { threadId, type, ids } of logs.withMsg('test worker received') as Array<Received & { threadId: number }>) {
    let list = byThread.get(threadId)
    if (list === undefined) byThread.set(threadId, (list = []))
    list.push({ type, ids })
  }
  return [...byThread.values()]
}

/**
 * The next setImmediate callback is kept instead of scheduled (and setImmediate itself restored at
 * once): the sink's post of a turn's events then happens only when the test calls release().
 */
function holdNextImmediate(t: Test): { held: () => boolean; release: () => void } {
  const real = globalThis.setImmediate
  let callback: (() => void) | undefined
  const hold = (fn: (...args: unknown[]) => void, ...args: unknown[]): NodeJS.Immediate => {
    globalThis.setImmediate = real
    callback = () => fn(...args)
    return real(() => {})
  }
  globalThis.setImmediate = hold as typeof setImmediate
  t.teardown(() => {
    if (globalThis.setImmediate === (hold as typeof setImmediate)) globalThis.setImmediate = real
  })
  return {
    held: () => callback !== undefined,
    release: () => {
      const fn = callback
      callback = undefined
      fn?.()
    },
  }
}

/** What a next start would recover from the spool directory. */
async function undeliveredIn(dir: string): Promise<string[]> {
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, logger: pino({ level: 'silent' }) })
  const recovered = await spool.open()
  await spool.close()
  return recovered.map((e) => e.id)
}

/** Every call's events, by first arrival, are exactly seq 0..n-1 in order. */
function assertInOrder(t: Test, r: WebhookReceiver, calls: Record<string, number>): void {
  for (const [callId, count] of Object.entries(calls)) {
    const firstArrivals: number[] = []
    for (const e of r.eventsFor(callId)) if (!firstArrivals.includes(e.seq)) firstArrivals.push(e.seq)
    t.same(firstArrivals, [...Array(count).keys()], `call ${callId}: every event, first delivered in seq order`)
  }
}

t.test('events published on the main thread are delivered signed, with metrics, stats and log lines from the worker', async (t) => {
  const r = await receiver(t)
  const dir = spoolDir(t)
  const logs = captureLogs()
  const { metrics, seen } = recordingMetrics()
  const s = sink(t, { init: init(r.url, dir, logs.logger), logger: logs.logger, metrics })

  // Published before start(): held on the main side and handed over once the worker is up.
  s.publish(event('a', 0))
  await s.start()
  for (let seq = 1; seq < 20; seq++) s.publish(event('a', seq))
  for (let seq = 0; seq < 20; seq++) s.publish(event('b', seq))

  await r.waitFor((events) => events.length >= 40)
  assertInOrder(t, r, { a: 20, b: 20 })
  t.ok(r.requests.every((req) => req.signatureValid === true), 'every request signed with WEBHOOK_SECRET')
  t.equal(r.requests[0]?.headers['user-agent'], 'audiosocket-soniox/test', 'the worker uses the version it was given')

  await waitUntil(() => s.stats().delivered === 40 && seen.delivered.length === 40, 'the worker to report 40 deliveries')
  t.equal(s.stats().pending, 0, 'nothing pending')
  t.ok(
    seen.delivered.every(([type, latencyMs]) => type === 'transcript.final' && typeof latencyMs === 'number' && latencyMs >= 0),
    'each delivery reached the main thread metrics with its latency',
  )
  t.equal(seen.attemptsFailed, 0)
  t.type(s.spoolStats()?.bytes, 'number', 'spool figures cross the boundary')

  const ready = logs.withMsg('webhook spool ready')
  t.equal(ready.length, 1, "the worker's log line reached the main logger's destination")
  t.equal(ready[0]?.component, 'webhook', 'with the bindings of the logger it was given')
  t.equal(ready[0]?.dir, dir)

  await s.close(1000)
  t.notOk(readdirSync(dir).includes('spool.lock'), 'the worker released the spool lock')
  t.same(await undeliveredIn(dir), [], 'every event is acknowledged in the spool')
})

t.test('failed attempts and dead letters are counted on the main thread', async (t) => {
  const r = await receiver(t, {
    respond: (req, attempt) => (req.body?.call_id === 'rejected' ? { status: 400, body: 'no' } : attempt === 1 ? { status: 503 } : undefined),
  })
  const logs = captureLogs()
  const { metrics, seen } = recordingMetrics()
  const s = sink(t, { init: init(r.url, spoolDir(t), logs.logger), logger: logs.logger, metrics })
  await s.start()
  s.publish(event('retried', 0))
  s.publish(event('rejected', 0))
  await waitUntil(() => seen.delivered.length === 1 && seen.deadLettered.length === 1, 'one delivery and one dead letter')
  t.same(seen.deadLettered, ['rejected'])
  t.equal(seen.attemptsFailed, 2, 'the 503 and the 400')
  t.equal(s.stats().retried, 1)
  t.equal(s.stats().deadLettered, 1)
  t.equal(logs.withMsg('webhook event dead-lettered')[0]?.level, ERROR, "the worker's error line arrived at its level")
})

t.test('start() rejects with the worker’s reason when the spool cannot be used', async (t) => {
  const dir = spoolDir(t)
  // A live process other than this one holds the lock: the parent of the test process.
  writeFileSync(join(dir, 'spool.lock'), `${process.ppid}\n`)
  const logs = captureLogs()
  const s = sink(t, { init: init('http://127.0.0.1:9/', dir, logs.logger), logger: logs.logger })
  await t.rejects(s.start(), { code: 'ERR_SPOOL_LOCKED', message: /in use by process/ })
})

t.test('close() with the receiver down leaves the events in the spool; the next sink delivers them', async (t) => {
  const r = await receiver(t, { respond: () => ({ status: 503 }) })
  const dir = spoolDir(t)
  const logs = captureLogs()
  const first = sink(t, { init: init(r.url, dir, logs.logger), logger: logs.logger })
  await first.start()
  for (let seq = 0; seq < 3; seq++) first.publish(event('held', seq))
  await waitUntil(() => r.requests.length >= 2, 'failed attempts')
  await first.close(50)
  t.equal(first.stats().leftInSpool, 3, 'all three are reported left in the spool')
  t.equal(first.stats().failed, 0, 'none lost')
  t.equal(logs.withMsg('webhook sink closed with events undelivered; they stay in the spool and go first at the next start').length, 1)

  first.publish(event('late', 0))
  t.equal(first.stats().failed, 1, 'an event published after close() is counted lost')
  t.equal(logs.withMsg('webhook event published after the sink closed; dropped').length, 1, 'and logged')

  const r2 = await receiver(t)
  const second = sink(t, { init: init(r2.url, dir, logs.logger), logger: logs.logger })
  await second.start()
  await r2.waitFor((events) => events.length >= 3)
  assertInOrder(t, r2, { held: 3 })
})

t.test('a worker that dies is replaced, and no event is lost', async (t) => {
  const r = await receiver(t)
  const dir = spoolDir(t)
  crashOnce(t, dir, 5)
  const logs = captureLogs()
  const s = sink(t, {
    init: init(r.url, dir, logs.logger),
    logger: logs.logger,
    restartDelayMs: 20,
    workerUrl: TEST_WORKER,
  })
  await s.start()

  // Two calls interleaved; the worker dies on the 5th event, the others arrive while it is down.
  for (let seq = 0; seq < 10; seq++) {
    s.publish(event('x', seq))
    s.publish(event('y', seq))
    if (seq === 3) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await r.waitFor((events) => new Set(events.map((e) => e.id)).size >= 20, 15_000)
  assertInOrder(t, r, { x: 10, y: 10 })

  const bytesById = new Map<string, string>()
  for (const req of r.requests) {
    const id = req.body?.id as string
    t.equal(req.headers['webhook-id'], id, 'webhook-id is the event id, on the first worker and its replacement')
    if (bytesById.has(id)) t.equal(req.rawBody, bytesById.get(id), `a repeat of ${id} carries the same bytes`)
    bytesById.set(id, req.rawBody)
  }

  const stopped = logs.withMsg('webhook delivery worker stopped; a new one takes over the spool and the events not yet spooled')
  t.equal(stopped.length, 1, 'the death is logged once')
  t.equal(stopped[0]?.level, ERROR)
  t.equal(stopped[0]?.err?.code, 'ERR_WEBHOOK_WORKER')
  t.equal(stopped[0]?.err?.message, 'the webhook delivery worker stopped (exit code 1): injected delivery worker crash', 'with the exit code and the worker’s own error')
  await waitUntil(() => s.stats().pending === 0, 'nothing pending after the replacement delivered')
  t.ok(s.stats().delivered >= 20, 'deliveries of both workers are counted')

  await s.close(1000)
  t.same(await undeliveredIn(dir), [], 'the replacement acknowledged every spooled event, those of the dead worker included')
})

t.test('the events published in one turn reach the worker as one publish message, in order', async (t) => {
  const r = await receiver(t)
  const logs = captureLogs()
  const s = sink(t, { init: init(r.url, spoolDir(t), logs.logger), logger: logs.logger, workerUrl: TEST_WORKER })
  await s.start()

  const turn1 = [event('a', 0), event('b', 0), event('a', 1), event('b', 1), event('a', 2)]
  for (const e of turn1) s.publish(e)
  await new Promise((resolve) => setImmediate(resolve))
  const turn2 = [event('a', 3), event('b', 2)]
  for (const e of turn2) s.publish(e)

  await r.waitFor((events) => events.length >= 7)
  // Closing makes the worker's record complete: it is the last message the worker gets.
  await s.close(1000)
  const workers = receivedByWorker(logs)
  t.equal(workers.length, 1, 'one worker')
  t.same(
    workers[0],
    [
      { type: 'publish', ids: turn1.map((e) => e.id) },
      { type: 'publish', ids: turn2.map((e) => e.id) },
      { type: 'close', ids: [] },
    ],
    "one publish message per turn, with that turn's events in publication order, then the close",
  )
  t.equal(r.requests.length, 7, 'each event delivered once')
})

t.test('a turn of events meant for a worker that died goes to its replacement only in the hand-over at its start', async (t) => {
  const r = await receiver(t)
  const dir = spoolDir(t)
  // The first worker dies on its first event, before it can report that event secured.
  crashOnce(t, dir, 1)
  const logs = captureLogs()
  const s = sink(t, { init: init(r.url, dir, logs.logger), logger: logs.logger, restartDelayMs: 20, workerUrl: TEST_WORKER })
  await s.start()

  s.publish(event('d', 0))
  // The sink's post of that turn has run (it was scheduled first); the first worker's exit cannot
  // have been seen yet, as no I/O was polled in between.
  await new Promise((resolve) => setImmediate(resolve))
  // This turn's events are meant for the first worker, but their post is held until it is dead and
  // its replacement has started.
  const outbox = holdNextImmediate(t)
  const meantForTheDead = [event('d', 1), event('d', 2), event('d', 3)]
  for (const e of meantForTheDead) s.publish(e)
  t.ok(outbox.held(), 'the events went to an outbox for the first worker')

  await waitUntil(() => receivedByWorker(logs)[1]?.some((m) => m.type === 'publish') === true, 'the replacement to be handed the unsecured events')
  t.equal(logs.withMsg('webhook delivery worker stopped; a new one takes over the spool and the events not yet spooled').length, 1, 'the first worker died')
  outbox.release()

  const ids = meantForTheDead.map((e) => e.id)
  await r.waitFor((events) => ids.every((id) => events.some((e) => e.id === id)))
  await s.close(1000)

  const [first, replacement] = receivedByWorker(logs)
  t.same(first, [{ type: 'publish', ids: ['d-0'] }], 'the first worker got only the event it died on')
  t.same(
    replacement,
    [
      { type: 'publish', ids: ['d-0', ...ids] },
      { type: 'close', ids: [] },
    ],
    'the replacement got every unsecured event once, in the hand-over at its start, and no publish message of the dead worker’s turn',
  )
  for (const id of ids) t.equal(r.requests.filter((req) => req.body?.id === id).length, 1, `${id} delivered exactly once`)
  await waitUntil(() => s.stats().pending === 0, 'nothing pending')
})

t.test('an event that cannot be serialised is dropped on the main thread, logged and counted; the next ones go on', async (t) => {
  const r = await receiver(t)
  const logs = captureLogs()
  const s = sink(t, { init: init(r.url, spoolDir(t), logs.logger), logger: logs.logger })
  await s.start()
  s.publish(event('c', 0))
  s.publish({ ...event('c', 1), data: { huge: 10n } })
  s.publish(event('c', 2))
  await r.waitFor((events) => events.length >= 2)
  t.same(r.eventsFor('c').map((e) => e.seq), [0, 2])
  const dropped = logs.withMsg('webhook event dropped')
  t.equal(dropped.length, 1)
  t.equal(dropped[0]?.err?.code, 'ERR_WEBHOOK_GAVE_UP')
  t.equal(dropped[0]?.eventId, 'c-1')
  await waitUntil(() => s.stats().pending === 0, 'the others delivered')
  t.equal(s.stats().failed, 1, 'counted as failed')
})

t.test('an event published while close() waits is still delivered', async (t) => {
  const r = await receiver(t, { respond: (req) => (req.body?.seq === 0 ? { status: 204, delayMs: 200 } : undefined) })
  const logs = captureLogs()
  const s = sink(t, { init: init(r.url, spoolDir(t), logs.logger), logger: logs.logger })
  await s.start()
  s.publish(event('closing', 0))
  await waitUntil(() => r.requests.length === 1, 'the first request to be in flight')
  const closed = s.close(5000)
  s.publish(event('closing', 1))
  await closed
  t.same(r.eventsFor('closing').map((e) => e.seq), [0, 1], 'both delivered before close() resolved')
  t.equal(s.stats().failed, 0)
  t.equal(s.stats().leftInSpool, 0)
})

t.test('events neither spooled nor delivered at close are reported lost once, by the worker, not again by the main thread', async (t) => {
  const r = await receiver(t, { respond: () => ({ status: 503 }) })
  const logs = captureLogs()
  // A spool too small for any record: every event is delivered from memory only.
  const s = sink(t, { init: init(r.url, spoolDir(t), logs.logger, {}, 64), logger: logs.logger })
  await s.start()
  for (let seq = 0; seq < 3; seq++) s.publish(event('unspooled', seq))
  await waitUntil(() => r.requests.length >= 1, 'a failed attempt')
  await s.close(50)
  t.equal(s.stats().failed, 3, 'three events lost, counted once each')
  t.equal(s.stats().unspooled, 3)
  t.equal(logs.withMsg('webhook sink closed with events left undelivered').length, 1, 'one error line for them')
  t.equal(logs.withMsg('spool full').length, 1, 'and the reason, once')
})
