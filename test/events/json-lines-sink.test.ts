import { PassThrough, Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import type { EventEnvelope } from '../../src/events/envelope.js'
import { JsonLinesSink } from '../../src/events/json-lines-sink.js'

function event(callId: string, seq: number): EventEnvelope {
  return { id: `${callId}-${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text: 'hi\nthere' } }
}

function captureLogs() {
  const records: any[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  return { logger, records }
}

/** A writable that accepts one chunk per tick, with a tiny buffer, so backpressure really happens. */
function slowWritable(): { stream: Writable; chunks: string[] } {
  const chunks: string[] = []
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _encoding, callback) {
      setImmediate(() => {
        chunks.push(chunk.toString('utf8'))
        callback()
      })
    },
  })
  return { stream, chunks }
}

t.test('writes one JSON line per event, the same envelope a webhook receives', async (t) => {
  const stream = new PassThrough()
  let output = ''
  stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')))
  const sink = new JsonLinesSink({ stream })
  const events = [event('a', 0), event('b', 0), event('a', 1)]
  for (const e of events) sink.publish(e)
  await sink.close(1000)

  const lines = output.split('\n')
  t.equal(lines.pop(), '', 'every line ends with a newline')
  // A newline inside transcript text must stay escaped, or one event would span two lines.
  t.equal(lines.length, 3)
  t.same(lines.map((l) => JSON.parse(l)), events)
})

t.test('close waits until every line has been flushed to a slow stream', async (t) => {
  const { stream, chunks } = slowWritable()
  const sink = new JsonLinesSink({ stream })
  for (let seq = 0; seq < 20; seq++) sink.publish(event('a', seq))
  t.ok(chunks.length < 20, 'the stream is still behind when close() is called')

  await sink.close(5000)
  t.equal(chunks.length, 20)
  t.same(
    chunks.map((c) => JSON.parse(c).seq),
    Array.from({ length: 20 }, (_, i) => i),
  )
})

t.test('close resolves at its timeout when the stream never drains', async (t) => {
  const logs = captureLogs()
  const stuck = new Writable({ highWaterMark: 16, write() {} }) // never calls back
  const sink = new JsonLinesSink({ stream: stuck, logger: logs.logger })
  sink.publish(event('a', 0))
  sink.publish(event('a', 1))
  const started = Date.now()
  await sink.close(100)
  const elapsed = Date.now() - started
  t.ok(elapsed >= 90 && elapsed < 2000, `resolved at the timeout (${elapsed} ms)`)
  t.match(logs.records, [{ level: 50, unflushedLines: 2 }])
})

t.test('events after close are dropped, and close is idempotent', async (t) => {
  const stream = new PassThrough()
  const chunks: string[] = []
  stream.on('data', (c: Buffer) => chunks.push(c.toString()))
  const sink = new JsonLinesSink({ stream })
  sink.publish(event('a', 0))
  await sink.close(1000)
  sink.publish(event('a', 1))
  await sink.close(1000)
  t.equal(chunks.join('').trim().split('\n').length, 1)
})

t.test('a failing stream is logged once and never throws into publish', async (t) => {
  const logs = captureLogs()
  const broken = new Writable({
    write(_chunk, _encoding, callback) {
      const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })
      callback(err)
    },
  })
  const sink = new JsonLinesSink({ stream: broken, logger: logs.logger })
  t.doesNotThrow(() => {
    sink.publish(event('a', 0))
    sink.publish(event('a', 1))
  })
  await sink.close(1000)
  // Later events go nowhere but also do not throw (the stream is destroyed by now).
  t.doesNotThrow(() => sink.publish(event('a', 2)))
  const errors = logs.records.filter((r) => r.level === 50)
  t.equal(errors.length, 1, 'one line for the failure, not one per event')
  t.match(errors[0], { err: { code: 'EPIPE' } })
})

t.test('an unserialisable event is skipped without throwing', async (t) => {
  const logs = captureLogs()
  const stream = new PassThrough()
  const chunks: string[] = []
  stream.on('data', (c: Buffer) => chunks.push(c.toString()))
  const sink = new JsonLinesSink({ stream, logger: logs.logger })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.doesNotThrow(() => sink.publish({ ...event('a', 0), data: circular }))
  sink.publish(event('a', 1))
  await sink.close(1000)
  t.same(
    chunks.map((c) => JSON.parse(c).seq),
    [1],
  )
  t.match(logs.records, [{ level: 50, eventId: 'a-0' }])
})
