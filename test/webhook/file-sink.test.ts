/**
 * src/webhook/file-sink.ts (EVENTS_FILE): JSON lines appended to a file, never truncated, flushed
 * by close(); an unusable path fails start() with ERR_EVENTS_FILE.
 */
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import type { EventEnvelope } from '../../src/webhook/envelope.js'
import { JsonLinesFileSink } from '../../src/webhook/file-sink.js'

function event(callId: string, seq: number): EventEnvelope {
  return { id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text: `é ${seq}\nnext line` } }
}

function lines(path: string): any[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l))
}

t.test('events are appended as JSON lines, across runs, and flushed by close()', async (t) => {
  const path = join(t.testdir(), 'events.jsonl')
  const sink = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await sink.start()
  for (let seq = 0; seq < 100; seq++) sink.publish(event('c1', seq))
  await sink.close(2000)
  t.same(
    lines(path),
    Array.from({ length: 100 }, (_, seq) => event('c1', seq)),
    'every event, in order, one per line (newlines inside text are escaped)',
  )
  t.equal(statSync(path).mode & 0o077, 0, 'events hold transcripts: a new file is not readable by others')

  const again = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await again.start()
  again.publish(event('c2', 0))
  await again.close(2000)
  t.equal(lines(path).length, 101, 'the second run appended, it did not truncate')
  t.same(lines(path)[100], event('c2', 0))
  t.equal(await again.close(10), undefined, 'close is idempotent')
})

t.test('a path that cannot be opened fails start() naming EVENTS_FILE', async (t) => {
  const path = join(t.testdir(), 'missing-dir', 'events.jsonl')
  const sink = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await t.rejects(sink.start(), { code: 'ERR_EVENTS_FILE', message: /EVENTS_FILE/ })
  t.doesNotThrow(() => sink.publish(event('c1', 0)), 'publish still never throws')
  await sink.close(100)
})
